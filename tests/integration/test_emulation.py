"""The default scenario built for real: Mininet, userspace OVS (standalone), real packets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mininet_scenarios.emulation import MEC_HOST_RTO_MIN_MS, EmulationError, emulate
from topology.scenario import load_scenario, parse_scenario
from topology.world import agent_host

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "scenarios" / "default.yaml"


def _bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def test_default_scenario_every_host_reaches_every_other() -> None:
    sc = load_scenario(DEFAULT)
    with emulate(sc, fail_mode="standalone") as emu:
        losses = emu.pingall()
        assert len(losses) == 5 * 4
        assert {pair: loss for pair, loss in losses.items() if loss} == {}
        # the ports Mininet gave the hosts are the ones the model assigned
        for att in emu.topo.model.attachments:
            sw = emu.net.get(att.switch)
            port = subprocess.run(
                ["ovs-vsctl", "get", "Interface", f"{att.switch}-eth{att.port}", "ofport"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert port == str(att.port), (att, sw)
        # the MEC hosts' TCP retransmits after 5 ms at the least; the UE's keeps 200 ms
        for site in sc.sites:
            routes = emu.run_on(agent_host(site.name), ["ip", "route", "show"]).stdout
            assert routes.strip() and all(
                f"rto_min lock {MEC_HOST_RTO_MIN_MS}ms" in line for line in routes.splitlines()
            ), routes
        assert "rto_min" not in emu.run_on("ue1", ["ip", "route", "show"]).stdout
        # the fabric carries jumbo frames between MEC hosts (one 9000-byte packet, not to be
        # fragmented, each way); a UE's link stays at 1500, and the same packet from it fails
        mec1, mec2 = (agent_host(s.name) for s in sc.sites[:2])
        jumbo = ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(9000 - 28)]
        assert emu.run_on(mec1, [*jumbo, emu.ip(mec2)]).returncode == 0
        assert emu.run_on(mec2, [*jumbo, emu.ip(mec1)]).returncode == 0
        assert " mtu 1500 " in emu.run_on("ue1", ["ip", "link", "show", "ue1-eth0"]).stdout
        assert emu.run_on("ue1", [*jumbo, emu.ip(mec2)], check=False).returncode != 0


def test_tcp_bulk_transfer_crosses_the_core(tmp_path: Path) -> None:
    """iperf3 from the UE at mec1 to mec2's host: real TCP through s1 -> core -> s2."""
    sc = load_scenario(DEFAULT)
    with emulate(sc, fail_mode="standalone") as emu:
        server = emu.host("hmec2")
        server.cmd("iperf3 -s -1 -D --pidfile /tmp/mecmig-test-iperf3.pid")
        try:
            out = ""
            for _ in range(20):
                out = emu.host("ue1").cmd(f"iperf3 -c {emu.ip('hmec2')} -t 1 -J")
                if '"end"' in out and '"error"' not in out:
                    break
            result = json.loads(out)
        finally:
            server.cmd("kill $(cat /tmp/mecmig-test-iperf3.pid) 2>/dev/null")
        received = result["end"]["sum_received"]["bytes"]
        assert received > 1_000_000, result["end"]


def test_teardown_after_a_failure_leaves_nothing() -> None:
    sc = load_scenario(DEFAULT)
    links_before = _root_links()
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), emulate(sc, fail_mode="standalone") as emu:
        pids = [h.pid for h in emu.net.hosts]
        assert {"s1", "s2", "core"} <= _bridges()
        raise RuntimeError("boom")
    assert not {"s1", "s2", "core"} & _bridges()
    assert pids and not [p for p in pids if _alive(p)]
    assert _root_links() <= links_before
    assert not list(Path("/run/mecmig").glob("emulation-default-*.json"))


def test_existing_bridge_of_the_same_name_is_refused() -> None:
    text = (
        DEFAULT.read_text()
        .replace("name: core", "name: mmtclash")
        .replace("[mec1, core]", "[mec1, mmtclash]")
        .replace("[mec2, core]", "[mec2, mmtclash]")
    )
    sc = parse_scenario(text)
    subprocess.run(["ovs-vsctl", "add-br", "mmtclash"], check=True)
    try:
        with pytest.raises(EmulationError, match="mmtclash"), emulate(sc):
            pass
        assert "mmtclash" in _bridges()  # not ours to delete
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", "mmtclash"], check=True)
    assert "s1" not in _bridges()


def test_mn_custom_topo_runs_the_scenario() -> None:
    """`mn --custom mininet_scenarios/topo.py --topo mecmig,FILE` works as Mininet users expect."""
    proc = subprocess.run(
        [
            sys.executable,
            "/usr/bin/mn",
            "--custom",
            str(ROOT / "mininet_scenarios" / "topo.py"),
            "--topo",
            f"mecmig,{DEFAULT}",
            "--switch",
            "ovs,datapath=user,protocols=OpenFlow13,failMode=standalone",
            "--controller",
            "none",
            "--test",
            "pingall",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Results: 0% dropped \((\d+)/\1 received\)", proc.stderr), proc.stderr
    assert not {"s1", "s2", "core"} & _bridges()
