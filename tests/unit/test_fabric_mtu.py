"""The fabric's MTU: jumbo frames on the switch-to-switch links and the MEC hosts' links (the
site agents' migrations), 1500 for UEs and service instances; from the scenario file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mininet_scenarios.mtu import fabric_mtu_plan
from mininet_scenarios.record import switch_interface
from topology.scenario import ScenarioError, load_scenario, parse_scenario
from topology.world import topology_from_scenario

ROOT = Path(__file__).resolve().parents[2]


def _default() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "scenarios" / "default.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_fabric_carries_jumbo_frames_unless_the_scenario_says_otherwise() -> None:
    assert load_scenario(ROOT / "scenarios" / "default.yaml").network.fabric_mtu == 9000
    data = _default()
    data.setdefault("network", {})["fabric_mtu"] = 1500
    assert parse_scenario(data, source="t.yaml").network.fabric_mtu == 1500


@pytest.mark.parametrize("mtu", [1279, 9001, "big"])
def test_an_mtu_out_of_bounds_is_refused_and_named(mtu: object) -> None:
    data = _default()
    data.setdefault("network", {})["fabric_mtu"] = mtu
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, source="t.yaml")
    assert set(dict(info.value.problems)) == {"network.fabric_mtu"}


def test_switch_links_and_mec_hosts_get_the_mtu_ues_and_instances_keep_1500() -> None:
    sc = load_scenario(ROOT / "scenarios" / "default.yaml")
    topo = topology_from_scenario(sc)
    plan = fabric_mtu_plan(topo, 9000)
    assert plan is not None
    switch_ends = {switch_interface(ln.a, ln.a_port) for ln in topo.links}
    switch_ends |= {switch_interface(ln.b, ln.b_port) for ln in topo.links}
    by_kind: dict[str, set[str]] = {}
    for att in topo.attachments:
        by_kind.setdefault(att.kind, set()).add(switch_interface(att.switch, att.port))
    assert by_kind["ue"] and by_kind["instance"] and by_kind["agent"]
    set_ = {line.split()[3] for line in plan.root}
    assert all(line.endswith(" mtu 9000") for line in plan.root)
    assert set_ == switch_ends | by_kind["agent"]  # every switch link, both ends; MEC hosts
    assert not set_ & (by_kind["ue"] | by_kind["instance"])
    asked = [plan.ovs[i + 2] for i, w in enumerate(plan.ovs) if w == "set"]
    assert set(asked) == set_ and plan.ovs.count("mtu_request=9000") == len(set_)
    assert dict(plan.hosts) == {
        f"h{s.name}": ("ip", "link", "set", "dev", f"h{s.name}-eth0", "mtu", "9000")
        for s in sc.sites
    }


def test_at_1500_nothing_is_changed() -> None:
    topo = topology_from_scenario(load_scenario(ROOT / "scenarios" / "default.yaml"))
    assert fabric_mtu_plan(topo, 1500) is None
