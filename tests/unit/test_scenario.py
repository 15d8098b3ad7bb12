"""The scenario file: typed, immutable, and every bad key named by its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ground.units import parse_rate, parse_size
from topology.scenario import ScenarioError, load_scenario, mac_from_ip, parse_scenario
from topology.world import topology_from_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def _default() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "scenarios" / "default.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _problems(data: dict[str, Any] | str) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, source="t.yaml")
    return dict(info.value.problems)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_load_and_build(path: Path) -> None:
    sc = load_scenario(path)
    topo = topology_from_scenario(sc)
    assert len(topo.switches) == len(sc.sites) + len(sc.switches)
    assert {a.host for a in topo.attachments} >= {i.name for i in sc.instances}


def test_default_scenario_is_two_sites_a_core_and_a_chain() -> None:
    sc = load_scenario(ROOT / "scenarios" / "default.yaml")
    assert [s.name for s in sc.sites] == ["mec1", "mec2"]
    assert [s.switch for s in sc.sites] == ["s1", "s2"]
    assert [s.dpid for s in sc.sites] == [1, 2]
    assert [s.name for s in sc.switches] == ["core"]
    assert sc.chain("stream").functions == ("fw", "video")
    assert sc.links[0].capacity == 100_000_000
    assert sc.links[0].between == ("s1", "core")  # site names resolved to their switch
    assert sc.instance("video").memory == 64 * 2**20
    assert sc.instance("video").command == ("python3", "-m", "http.server", "8080")
    assert sc.switch_of("ue1") == "s1"
    assert sc.mac_of("video") == "02:00:0a:00:00:0c"


def test_scenario_is_immutable() -> None:
    sc = parse_scenario(_default())
    with pytest.raises(ValidationError):
        sc.sites[0].name = "other"  # type: ignore[misc]


def test_defaults_are_deterministic_and_avoid_taken_values() -> None:
    data = _default()
    data["sites"][1]["dpid"] = 1  # mec1 gets the next free dpid instead
    data["sites"][0]["agent_ip"] = None
    data["instances"][0]["ip"] = "10.0.0.1"
    sc = parse_scenario(data)
    assert [s.dpid for s in sc.sites] == [2, 1]
    assert str(sc.sites[0].agent_ip) == "10.0.0.2"  # .1 is taken by the fw instance
    assert parse_scenario(data) == sc


def test_unknown_key_is_named_with_its_path() -> None:
    data = _default()
    data["sites"][1]["compute"]["gpus"] = 1
    assert _problems(data) == {"sites[1].compute.gpus": "Extra inputs are not permitted"}


def test_wrong_types_are_named_with_their_path() -> None:
    data = _default()
    data["sites"][0]["compute"]["cpus"] = "two"
    data["links"][1]["capacity"] = "fast"
    data["instances"][1]["ip"] = "10.0.0.999"
    problems = _problems(data)
    assert set(problems) == {"sites[0].compute.cpus", "links[1].capacity", "instances[1].ip"}
    assert "cannot read 'fast' as a bit rate" in problems["links[1].capacity"]


def test_references_must_exist() -> None:
    data = _default()
    data["instances"][0]["site"] = "mec9"
    data["links"][0]["between"] = ["mec1", "nowhere"]
    data["chains"][0]["functions"] = ["fw", "ghost"]
    data["chains"][0]["ue"] = "ue7"
    data["ues"][0]["trajectory"][1]["attach"] = "mars"
    assert set(_problems(data)) == {
        "instances[0].site",
        "links[0].between[1]",
        "chains[0].functions[1]",
        "chains[0].ue",
        "ues[0].trajectory[1].attach",
    }


def test_duplicates_are_refused() -> None:
    data = _default()
    data["instances"][1]["name"] = "fw"
    data["instances"][1]["ip"] = "10.0.0.100"
    data["links"].append({"between": ["core", "mec2"], "capacity": "1Gbit"})
    data["switches"].append({"name": "s1"})  # the default switch name of mec1
    problems = _problems(data)
    assert "instances[1].name" in problems
    assert problems["ues[0].ip"] == "10.0.0.100 is already used by instances[1]"
    assert problems["links[2].between"] == "duplicates links[1]"
    assert "switches[1].name" in problems


def test_addresses_must_be_host_addresses_of_the_subnet() -> None:
    data = _default()
    data["ues"][0]["ip"] = "192.168.1.5"
    data["instances"][0]["ip"] = "10.0.0.255"
    problems = _problems(data)
    assert "outside network.subnet" in problems["ues[0].ip"]
    assert "not a host address" in problems["instances[0].ip"]


def test_names_must_fit_linux_interface_names() -> None:
    data = _default()
    data["instances"][1]["name"] = "videoserver"
    assert "instances[1].name" in _problems(data)


def test_trajectory_in_time_order_and_link_not_to_itself() -> None:
    data = _default()
    data["ues"][0]["trajectory"] = [{"at_s": 10, "attach": "mec1"}, {"at_s": 5, "attach": "mec2"}]
    data["links"][0]["between"] = ["mec1", "s1"]
    problems = _problems(data)
    assert problems["ues[0].trajectory[1].at_s"] == "waypoints must be in time order"
    assert "itself" in problems["links[0].between"]


def test_duplicate_yaml_key_and_bad_yaml_are_errors() -> None:
    text = (
        (ROOT / "scenarios" / "default.yaml")
        .read_text()
        .replace("name: default", "name: default\nname: again")
    )
    assert "given twice" in _problems(text)[""]
    assert "not valid YAML" in _problems("sites: [")[""]
    assert "must hold a mapping" in _problems("- just a list")[""]


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "nope.yaml")


def test_error_message_lists_every_problem() -> None:
    data = _default()
    data["sites"] = []
    data["bogus"] = 1
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, source="t.yaml")
    text = str(info.value)
    assert text.startswith("t.yaml: 2 problem(s)")
    assert "bogus: Extra inputs are not permitted" in text


@pytest.mark.parametrize(
    ("text", "bps"),
    [("100Mbit", 10**8), ("1.5 Gbit/s", 1_500_000_000), ("500kbps", 500_000), (42, 42)],
)
def test_parse_rate(text: object, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize("bad", ["", "fast", "10 Mbyte", 0, -5, True, None])
def test_parse_rate_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_rate(bad)


def test_parse_size() -> None:
    assert parse_size("64MiB") == 64 * 2**20
    assert parse_size("1GiB") == 2**30
    assert parse_size("512MB") == 512 * 10**6
    with pytest.raises(ValueError):
        parse_size("64 furlongs")


def test_mac_from_ip() -> None:
    import ipaddress

    assert mac_from_ip(ipaddress.IPv4Address("10.0.0.100")) == "02:00:0a:00:00:64"


def test_a_sites_agent_endpoint_is_checked_and_normalised() -> None:
    data = _default()
    data["sites"][0]["agent"] = "http://10.0.0.1"
    data["sites"][1]["agent"] = "unix:/run/mecmig/agents/mec2.sock"
    sc = parse_scenario(data, source="t.yaml")
    assert sc.sites[0].agent == "http://10.0.0.1:7070"  # the agents' default port
    assert sc.sites[1].agent == "unix:/run/mecmig/agents/mec2.sock"
    assert parse_scenario(_default(), source="t.yaml").sites[0].agent is None


@pytest.mark.parametrize(
    ("agent", "why"),
    [
        ("https://10.0.0.1:7070", "expected unix:/path/to.sock or http://HOST:PORT"),
        ("10.0.0.1:7070", "expected unix:/path/to.sock or http://HOST:PORT"),
        ("http://10.0.0.1:99999", "not a TCP port"),
        ("http://user@10.0.0.1:7070", "not an IPv4 address or host name"),
        ("unix:agent.sock", "unix:/absolute/path"),
        ("unix:/" + "x" * 120, "at most 107 bytes"),
        ("http://" + "a" * 250 + ":7070", "at most 200 characters"),
    ],
)
def test_a_bad_agent_endpoint_is_named_with_its_path(agent: str, why: str) -> None:
    data = _default()
    data["sites"][1]["agent"] = agent
    problems = _problems(data)
    assert why in problems["sites[1].agent"], problems
