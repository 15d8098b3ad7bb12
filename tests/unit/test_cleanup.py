"""`mecmig cleanup`, without root: /proc as a directory tree, commands answered by a script,
signals recorded instead of sent. It removes what a crashed emulation recorded (its agents and
whatever runs in its namespaces, its veths by name, its bridges, its sockets) and mecmig's
site-side leftovers, and nothing a running emulation or agent holds, nor anybody else's."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path, PosixPath

import pytest

import agent.cleanup as cleanup_module
from agent.cleanup import Cleanup, cleanup_migration_leftovers, orphaned_agents, serving_agents
from mininet_scenarios.emulation import _link_ends
from mininet_scenarios.record import (
    Claims,
    EmulationRecord,
    bridge_patterns,
    cleanup_recorded,
    read_records,
    switch_interface,
)
from mininet_scenarios.topo import MecTopo
from tests.unit.proc_fakes import ScriptedRunner, fake_process
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
ROOT_NS, HOST_NS, OTHER_NS = "net:[4026531840]", "net:[4026532001]", "net:[4026532999]"


class ProcTree(PosixPath):
    """A fake /proc directory that remembers whom it was asked to kill."""

    killed: list[int]


@pytest.fixture()
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcTree]:
    """A fake /proc holding this process (in the root namespace); signals 'kill' by removing
    the process's directory, and are recorded in `proc.killed`."""
    tree = ProcTree(tmp_path / "proc")
    fake_process(tree, os.getpid(), ["python", "-m", "pytest"], netns=ROOT_NS)
    killed: list[int] = []

    def send(pid: int, sig: int) -> None:
        if not (tree / str(pid)).exists():
            raise ProcessLookupError(pid)
        killed.append(pid)
        shutil.rmtree(tree / str(pid))

    monkeypatch.setattr(cleanup_module, "_send_signal", send)
    monkeypatch.setattr(cleanup_module, "KILL_WAIT_S", 0.2)
    tree.killed = killed
    yield tree


class Links:
    """`ip link` of the fake machine: `ip link del` of one end of a veth removes its peer."""

    def __init__(self, *pairs: tuple[str, str | None]) -> None:
        self.pairs = {a: b for a, b in pairs} | {b: a for a, b in pairs if b}
        self.present = set(self.pairs)
        self.bridges = {"s1", "s2", "core"}

    def runner(self) -> ScriptedRunner:
        return ScriptedRunner(
            {
                ("ip", "-o", "link", "show"): lambda _: (0, self.listing()),
                ("ip", "link", "del"): self.delete,
                ("ovs-vsctl", "--timeout=10", "br-exists"): lambda a: (
                    0 if a[-1] in self.bridges else 2,
                    "",
                ),
                ("ovs-vsctl", "--timeout=10", "--if-exists", "del-br"): self.del_br,
            }
        )

    def listing(self) -> str:
        return "".join(f"{i}: {n}: <UP> mtu 1500\n" for i, n in enumerate(sorted(self.present), 1))

    def delete(self, argv: list[str]) -> tuple[int, str]:
        name = argv[-1]
        if name not in self.present:
            return 1, ""
        self.present -= {name, self.pairs.get(name)}
        return 0, ""

    def del_br(self, argv: list[str]) -> tuple[int, str]:
        self.bridges.discard(argv[-1])
        return 0, ""


def _crashed_record(run: Path, proc: ProcTree, owner_alive: bool = False) -> EmulationRecord:
    """An emulation of edge.yaml recorded by a process (pid 500) that is gone, unless
    `owner_alive`; its agent 600 and a probe 601 still run in the MEC host's namespace."""
    fake_process(proc, 600, ["python", "-m", "mecmig.cli", "agent"], start=7, netns=HOST_NS)
    fake_process(proc, 601, ["python", "-m", "workloads.probe"], start=8, netns=HOST_NS)
    record = EmulationRecord.begin("edge", ["core", "s1", "s2"], ["s1-eth1", "core-eth1"], run)
    record.data["owner"] = {"pid": 500, "start": 5}
    if owner_alive:
        fake_process(proc, 500, ["python", "-m", "mecmig.cli", "emulate"], start=5)
    record.data["hosts"] = [{"name": "hmec1", "pid": 700, "start": 9, "netns": HOST_NS}]
    sock = run / "agents" / "edge-mec1.sock"
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.write_text("")  # a socket file nobody serves
    record.data["agents"] = [{"site": "mec1", "pid": 600, "start": 7, "socket": str(sock)}]
    record.data["links"] = ["mgmt-mec1"]
    record.save()
    return record


def test_the_record_is_written_before_and_after_the_build(tmp_path: Path) -> None:
    record = EmulationRecord.begin("edge", ["s1", "core"], ["s1-eth1"], tmp_path)
    assert record.path == tmp_path / f"emulation-edge-{os.getpid()}.json"
    data = json.loads(record.path.read_text())
    assert data["owner"]["pid"] == os.getpid() and data["owner"]["start"] > 0
    assert data["bridges"] == ["core", "s1"]
    record.built([("hmec1", os.getpid())], ["s1-eth2"])
    record.add_agent("mec1", os.getpid(), tmp_path / "edge-mec1.sock")
    record.add_link("mgmt-mec1")
    record.add_link("mgmt-mec1")
    data = json.loads(record.path.read_text())
    assert data["interfaces"] == ["s1-eth1", "s1-eth2"]
    assert data["hosts"][0]["name"] == "hmec1" and data["hosts"][0]["netns"].startswith("net:[")
    assert data["agents"][0]["socket"] == str(tmp_path / "edge-mec1.sock")
    assert data["links"] == ["mgmt-mec1"]
    assert [p for p, _ in read_records(tmp_path)] == [record.path]
    record.discard()
    assert read_records(tmp_path) == []


def test_link_ends_are_named_as_mininet_names_them() -> None:
    topo = MecTopo(load_scenario(ROOT / "scenarios" / "edge.yaml"), instance_hosts=False)
    ends = _link_ends(topo)
    # s1 and s2 link to core at port 1, their MEC hosts at 2; ue1 is at s2
    assert {"s1-eth1", "core-eth1", "s2-eth1", "core-eth2", "s1-eth2", "s2-eth2"} <= set(ends)
    assert all(e.split("-eth")[0] in {"s1", "s2", "core"} for e in ends)
    assert switch_interface("s2", 100) == "s2-eth100"


def test_interfaces_of_a_bridge_by_name() -> None:
    mine = bridge_patterns("s1")
    assert any(p.fullmatch("s1-eth100") for p in mine)
    assert any(p.fullmatch("vs1p3") for p in mine)  # agent.netns.Plug.host_if
    assert not any(p.fullmatch(n) for p in mine for n in ("s10-eth1", "s1-eth", "vs1p", "eth0"))
    claims = Claims()
    claims.add({"bridges": ["s2"], "interfaces": ["s2-eth1"], "links": ["mgmt-mec2"]})
    assert claims.holds("s2-eth7") and claims.holds("mgmt-mec2") and not claims.holds("s1-eth1")


def test_a_crashed_emulation_is_removed_and_only_it(tmp_path: Path, proc: ProcTree) -> None:
    run = tmp_path / "run"
    _crashed_record(run, proc)
    fake_process(proc, 602, ["sleep", "1000"], netns=OTHER_NS)  # somebody else's namespace
    fake_process(proc, 603, ["bash"], netns=ROOT_NS)  # somebody in ours
    links = Links(
        ("s1-eth1", "core-eth1"),
        ("s1-eth2", None),  # its peer is in the MEC host's namespace
        ("vs1p3", None),  # an agent's container veth on s1
        ("mgmt-mec1", None),
        ("s10-eth1", "x-eth1"),  # another bridge's
        ("eth0", None),
    )
    runner = links.runner()
    out = cleanup_recorded(runner, run_dir=run, proc=proc)
    assert sorted(proc.killed) == [600, 601]
    assert links.present == {"s10-eth1", "x-eth1", "eth0"}
    assert links.bridges == set()
    assert "killed agent of mec1 600 (python)" in out.done
    assert "deleted interface mgmt-mec1" in out.done and "deleted bridge s1" in out.done
    assert not (run / "agents" / "edge-mec1.sock").exists()
    assert out.kept == [] and read_records(run) == []
    again = cleanup_recorded(links.runner(), run_dir=run, proc=proc)
    assert again.done == [] and again.kept == []


def test_a_recycled_pid_is_not_killed(tmp_path: Path, proc: ProcTree) -> None:
    run = tmp_path / "run"
    record = _crashed_record(run, proc)
    shutil.rmtree(proc / "600")
    shutil.rmtree(proc / "601")
    fake_process(proc, 600, ["sshd"], start=99999, netns=ROOT_NS)  # the pid, reused
    record.data["hosts"][0]["netns"] = OTHER_NS
    record.save()
    # the namespace recorded for hmec1 is somebody else's now: it shows no hmec1-eth*
    fake_process(proc, 602, ["sleep", "1"], netns=OTHER_NS, interfaces=["eth0"])
    cleanup_recorded(Links().runner(), run_dir=run, proc=proc)
    assert proc.killed == []


def test_a_namespace_outliving_its_shell_is_found_by_its_interface(
    tmp_path: Path, proc: ProcTree
) -> None:
    run = tmp_path / "run"
    record = _crashed_record(run, proc)
    record.data["agents"] = []
    record.save()
    shutil.rmtree(proc / "600")
    (proc / "601").rename(proc / "601.old")
    fake_process(proc, 601, ["iperf3", "-s"], start=8, netns=HOST_NS, interfaces=["hmec1-eth0"])
    cleanup_recorded(Links().runner(), run_dir=run, proc=proc)
    assert proc.killed == [601]


def test_a_running_emulation_and_what_it_holds_are_left_alone(
    tmp_path: Path, proc: ProcTree
) -> None:
    run = tmp_path / "run"
    _crashed_record(run, proc, owner_alive=True)
    links = Links(("s1-eth1", "core-eth1"), ("mgmt-mec1", None))
    out = cleanup_recorded(links.runner(), run_dir=run, proc=proc)
    assert out.done == [] and proc.killed == []
    assert out.kept == ["emulation edge is running (pid 500): left alone"]
    assert links.present == {"s1-eth1", "core-eth1", "mgmt-mec1"}
    # a crashed record naming the same bridges (left by an older cleanup) does not touch them
    old = EmulationRecord(run / "emulation-edge-1.json", {"bridges": ["s1"], "interfaces": []})
    old.save()
    cleanup_recorded(links.runner(), run_dir=run, proc=proc)
    assert links.present == {"s1-eth1", "core-eth1", "mgmt-mec1"} and links.bridges >= {"s1"}
    assert not old.path.exists()


def test_what_cannot_be_removed_keeps_the_record(tmp_path: Path, proc: ProcTree) -> None:
    run = tmp_path / "run"
    _crashed_record(run, proc)
    links = Links()
    runner = links.runner()
    runner.answers[("ovs-vsctl", "--timeout=10", "--if-exists", "del-br")] = lambda _: (1, "")
    out = cleanup_recorded(runner, run_dir=run, proc=proc)
    assert any(k.startswith("bridge core:") for k in out.kept)
    assert len(read_records(run)) == 1


def test_an_unreadable_record_is_kept_and_said(tmp_path: Path, proc: ProcTree) -> None:
    (tmp_path / "emulation-x-1.json").write_text("{not json")
    out = cleanup_recorded(Links().runner(), run_dir=tmp_path, proc=proc)
    assert out.kept and "cannot read" in out.kept[0]


def _site_layout(run: Path, state: Path) -> None:
    for scenario, site in (("edge", "mec1"), ("edge", "mec2"), ("tri", "east")):
        inst = state / "sites" / scenario / site / "counter"
        (inst / "xfer" / "images").mkdir(parents=True)
        (inst / "instance.json").write_text("{}")
        (inst / "xfer" / "images" / "pages-1.img").write_bytes(b"x" * 100)
        (run / "runc" / f"{scenario}-{site}").mkdir(parents=True)


def test_site_leftovers_go_but_a_running_agents_stay(tmp_path: Path, proc: ProcTree) -> None:
    run, state = tmp_path / "run", tmp_path / "state"
    _site_layout(run, state)
    scenario = tmp_path / "tri.yaml"
    scenario.write_text((ROOT / "scenarios" / "three-sites.yaml").read_text())
    name = load_scenario(scenario).name
    (state / "sites" / "tri").rename(state / "sites" / name)
    (run / "runc" / "tri-east").rename(run / "runc" / f"{name}-east")
    # a running agent (its namespace owner alive) of site east, and an orphan of mec2
    fake_process(proc, 800, ["python", "-m", "mecmig.cli", "emulate"])
    agent = ["python", "-m", "mecmig.cli", "agent", "--scenario", "tri.yaml", "--site", "east"]
    fake_process(proc, 801, [*agent, "--root-netns-pid", "800"], cwd=str(tmp_path))
    orphan = ["python", "-m", "mecmig.cli", "agent", "--site", "mec2", "--root-netns-pid", "9"]
    fake_process(proc, 802, orphan)
    lazy = state / "sites" / "edge" / "mec1" / "counter" / "xfer" / "images"
    fake_process(proc, 803, ["/x/.deps/criu/sbin/criu", "lazy-pages", "-D", str(lazy)])
    (run / "agents").mkdir()
    (run / "agents" / "edge-mec1.sock").write_text("")
    served = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    served.bind(str(run / "agents" / f"{name}-east.sock"))
    served.listen(1)
    east = "mecmig-counter-east (id: 1)\nmecmig-counter-mec1 (id: 2)\nnotours (id: 3)\n"
    runner = ScriptedRunner(
        {
            ("ip", "netns", "list"): east,
            ("runc", "--root", str(run / "runc" / "edge-mec1"), "list"): "counter\n",
        }
    )
    assert [a.pid for a in serving_agents(proc, state)] == [801]
    assert serving_agents(proc, state)[0].scenario == name
    assert [p.pid for p in orphaned_agents(proc)] == [802]
    with served:
        out = cleanup_migration_leftovers(runner, run_dir=run, state_dir=state, proc=proc)
    assert proc.killed == [803]
    assert runner.ran("runc", "--root", str(run / "runc" / "edge-mec1"), "delete")
    assert runner.ran("ip", "netns", "del") == [["ip", "netns", "del", "mecmig-counter-mec1"]]
    assert sorted(p.name for p in (run / "runc").iterdir()) == [f"{name}-east"]
    assert [p.name for p in (state / "sites").iterdir()] == [name]
    assert sorted(p.name for p in (run / "agents").iterdir()) == [f"{name}-east.sock"]
    assert "deleted container counter (edge-mec1)" in out.done
    assert any("removed agent socket" in d and "edge-mec1.sock" in d for d in out.done)
    assert any(
        d.startswith(f"removed {state}/sites/edge/mec2 (instances counter") for d in out.done
    )
    assert any("agent 801 of site east is running" in k for k in out.kept)
    assert any("agent 802" in k and "kill 802" in k for k in out.kept)
    assert 802 not in proc.killed


def test_nothing_to_clean_is_said(
    tmp_path: Path,
    proc: ProcTree,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mecmig import cli

    monkeypatch.setattr("agent.cleanup.cleanup_migration_leftovers", lambda: Cleanup())
    monkeypatch.setattr(
        "mininet_scenarios.emulation.cleanup_recorded", lambda: Cleanup(kept=["emulation x"])
    )
    assert cli.main(["cleanup"]) == 0
    captured = capsys.readouterr()
    assert "nothing to clean up" in captured.out and "kept: emulation x" in captured.err
    monkeypatch.setattr(
        "agent.cleanup.cleanup_migration_leftovers", lambda: Cleanup(done=["deleted netns a"])
    )
    assert cli.main(["cleanup"]) == 0
    out = capsys.readouterr().out
    assert "deleted netns a" in out and "nothing" not in out


def test_agents_start_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SiteAgents(...).start()` then `with agents:` (mecmig emulate does both) starts one set
    of agents: a second one left the first running for good after the emulation stopped."""
    from mininet_scenarios.agents import SiteAgents

    class Emu:
        scenario = load_scenario(ROOT / "scenarios" / "edge.yaml")
        record = None

    agents = SiteAgents(Emu(), ROOT / "scenarios" / "edge.yaml", ScriptedRunner({}))  # type: ignore[arg-type]
    spawned: list[str] = []
    monkeypatch.setattr(agents, "_spawn", lambda name: spawned.append(name))
    monkeypatch.setattr(agents, "_wait_ready", lambda name, timeout: None)
    monkeypatch.setattr("mininet_scenarios.agents.site_root", lambda sc, site: Path("/nonexistent"))
    agents.start()
    agents.procs = {"mec1": object(), "mec2": object()}  # type: ignore[dict-item]
    with agents as again:
        assert again is agents
        assert spawned == ["mec1", "mec2"]
        agents.procs.clear()  # nothing to stop in this test
