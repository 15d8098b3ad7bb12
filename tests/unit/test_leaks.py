"""The leak inventory, without root: /proc as a directory tree, commands answered by a script.
It parses what `ip`, `ovs-vsctl`, `ovs-ofctl` and `runc` print, recognises mecmig's processes by
their argv, sizes the sites' directories, and a diff names what appeared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.leaks import (
    fd_count,
    image_dirs,
    mecmig_command,
    mecmig_processes,
    parse_netns_list,
    parse_stat_ppid,
    parse_stat_start,
    process_kind,
    read_proc,
    site_inventory,
)
from controller.ofmsg import CookieKind, cookie
from mininet_scenarios.leaks import (
    Inventory,
    diff,
    inventory,
    parse_cookie_flows,
    parse_link_names,
    parse_meters,
)
from tests.unit.proc_fakes import ScriptedRunner, fake_process

RUN, STATE = Path("/run/mecmig"), Path("/var/lib/mecmig")
IP_LINK = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default \
qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP mode DEFAULT
7: s1-eth2@if2: <BROADCAST,MULTICAST,PROMISC,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP
8: core-eth1@s1-eth1: <BROADCAST,MULTICAST,PROMISC,UP,LOWER_UP> mtu 1500 qdisc noqueue
9: s1-eth1@core-eth1: <BROADCAST,MULTICAST,PROMISC,UP,LOWER_UP> mtu 1500 qdisc noqueue
12: s1: <BROADCAST,MULTICAST,PROMISC> mtu 1500 qdisc noop state DOWN mode DEFAULT group default
"""
IP_VETH = "\n".join(line for line in IP_LINK.splitlines() if "-eth" in line)
RES7 = cookie(CookieKind.RESERVATION, 7)
FLOWS = f"""\
 cookie=0x100000000000000, duration=12.5s, table=0, n_packets=3, n_bytes=180, priority=0 \
actions=drop
 cookie={RES7:#x}, duration=2.1s, table=0, n_packets=9, n_bytes=900, idle_age=1, \
priority=30000,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_dst=7100 actions=meter:7,output:1
 cookie={cookie(CookieKind.HOLD, 21):#x}, duration=0.4s, table=0, n_packets=0, n_bytes=0, \
priority=60000,ip,nw_dst=10.0.0.21 actions=CONTROLLER:65535
 priority=0 actions=drop
"""
METERS = """\
OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):
meter=7 kbps burst stats bands=
type=drop rate=40000 burst_size=12000

meter=8 kbps burst stats bands=
type=drop rate=1000 burst_size=300
"""


def test_interface_names_without_their_peers() -> None:
    assert parse_link_names(IP_LINK) == {"lo", "eth0", "s1-eth2", "core-eth1", "s1-eth1", "s1"}
    assert parse_link_names("") == set()


def test_meters_and_flows_with_a_migration_cookie() -> None:
    assert parse_meters(METERS) == {7, 8}
    flows = parse_cookie_flows(FLOWS)
    assert [k for k, _ in flows] == [CookieKind.RESERVATION, CookieKind.HOLD]
    reservation = flows[0][1]
    assert "tp_dst=7100" in reservation and "meter:7" in reservation
    # counters go: the same flow later is the same item
    assert "duration" not in reservation and "n_packets" not in reservation
    assert "idle_age" not in reservation
    later = FLOWS.replace("n_packets=9, n_bytes=900", "n_packets=99, n_bytes=9900")
    assert parse_cookie_flows(later) == flows
    assert parse_cookie_flows(FLOWS, kinds=[CookieKind.BASE])[0][0] is CookieKind.BASE


def test_netns_list_keeps_mecmig_namespaces() -> None:
    listed = "mecmig-counter-mec2 (id: 10)\nmecmig-counter-mec1 (id: 9)\nother\n\n"
    assert parse_netns_list(listed) == {"mecmig-counter-mec1", "mecmig-counter-mec2"}


def test_start_time_is_field_22_even_with_parentheses_in_the_name(tmp_path: Path) -> None:
    fake_process(tmp_path, 42, ["/usr/bin/python3", "x"], start=987654, ppid=41)
    assert parse_stat_start((tmp_path / "42" / "stat").read_text()) == 987654
    assert parse_stat_ppid((tmp_path / "42" / "stat").read_text()) == 41
    me = read_proc(os.getpid())  # the real thing parses too
    assert me is not None and me.start > 0 and me.netns.startswith("net:[")
    assert me.ppid == os.getppid()


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["/w/.venv/bin/python", "-m", "mecmig.cli", "agent", "--site", "mec1"], "mecmig agent"),
        (["/w/.venv/bin/python", "/w/.venv/bin/mecmig", "controller"], "mecmig controller"),
        (["/w/.venv/bin/mecmig", "emulate", "--scenario", "x.yaml"], "mecmig emulate"),
        (["/w/.deps/criu/sbin/criu", "swrk", "3"], "criu"),
        (["/usr/sbin/criu", "restore", "-D", "/var/lib/mecmig/sites/e/m/c/xfer/images"], "criu"),
        (
            ["/w/.deps/criu/sbin/criu", "lazy-pages", "--page-server", "-D", "/x"],
            "criu lazy-pages",
        ),
        (["runc", "--root", "/run/mecmig/runc/edge-mec1", "checkpoint", "x"], "runc"),
        (["bash", "--norc", "--noediting", "-is", "mininet:hmec1"], "mininet shell"),
        (["/usr/sbin/criu", "check"], None),  # somebody else's CRIU
        (["runc", "--root", "/run/runc", "list"], None),  # somebody else's runc
        (["python3", "-m", "pytest"], None),
        (["/usr/bin/sleep", "mecmig"], None),
    ],
)
def test_mecmig_processes_by_their_argv(argv: list[str], kind: str | None) -> None:
    assert process_kind(tuple(argv), RUN, STATE) == kind


def test_mecmig_command_and_processes_from_proc(tmp_path: Path) -> None:
    assert mecmig_command(("python", "-m", "mecmig.cli")) is None
    fake_process(tmp_path, 10, ["/usr/bin/python3", "-m", "mecmig.cli", "agent"])
    fake_process(tmp_path, 11, ["/usr/lib/systemd/systemd"])
    fake_process(tmp_path, 12, ["/x/.deps/criu/sbin/criu", "lazy-pages"])
    (tmp_path / "13").mkdir()  # a kernel thread: no argv
    (tmp_path / "13" / "cmdline").write_bytes(b"")
    (tmp_path / "13" / "stat").write_text("13 (kworker) S " + "0 " * 30)
    runc = ["runc", "--root", "/run/mecmig/runc/edge-mec1", "checkpoint", "counter"]
    fake_process(tmp_path, 14, runc, ppid=10)
    fake_process(tmp_path, 15, ["criu: dump --rpc -t 99      ."], ppid=14)  # retitled
    fake_process(tmp_path, 16, ["criu: dump --rpc -t 98      ."], ppid=11)  # not ours
    assert mecmig_processes(tmp_path, RUN, STATE) == {
        10: "mecmig agent",
        12: "criu lazy-pages",
        14: "runc",
        15: "criu",
    }


def test_descriptors_of_a_pid(tmp_path: Path) -> None:
    fake_process(tmp_path, 5, ["a"], fds=4)
    assert fd_count(5, tmp_path) == 4
    assert fd_count(6, tmp_path) is None


def _sites(state: Path) -> None:
    inst = state / "sites" / "edge" / "mec2" / "counter"
    (inst / "xfer" / "images").mkdir(parents=True)
    (inst / "xfer" / "images" / "pages-1.img").write_bytes(b"x" * 1000)
    (inst / "xfer" / "predump" / "1").mkdir(parents=True)
    (inst / "xfer" / "predump" / "1" / "pages-1.img").write_bytes(b"y" * 300)
    (inst / "instance.json").write_text("{}")
    (state / "sites" / "edge" / "mec2" / "logs").mkdir()  # runc's logs: no instance
    empty = state / "sites" / "edge" / "mec1" / "web" / "xfer" / "images"
    empty.mkdir(parents=True)  # an empty images directory is no leak


def test_site_inventory(tmp_path: Path) -> None:
    run, state, proc = tmp_path / "run", tmp_path / "state", tmp_path / "proc"
    _sites(state)
    (run / "runc" / "edge-mec2").mkdir(parents=True)
    (run / "runc" / "edge-mec1").mkdir(parents=True)  # empty: what runc leaves
    (run / "runc" / "edge-mec2" / "counter").mkdir()
    (run / "agents").mkdir()
    (run / "agents" / "edge-mec1.sock").write_text("")
    fake_process(proc, 20, ["python", "-m", "mecmig.cli", "agent"], fds=7)
    runner = ScriptedRunner(
        {
            ("ip", "netns", "list"): "mecmig-counter-mec2 (id: 3)\n",
            ("runc", "--root", str(run / "runc" / "edge-mec2")): "counter\n",
        }
    )
    got = site_inventory(runner, fd_pids=[20, 21], run_dir=run, state_dir=state, proc=proc)
    assert got.items["netns"] == {"mecmig-counter-mec2"}
    assert got.items["runc_containers"] == {"edge-mec2/counter"}
    assert got.items["runc_roots"] == {"edge-mec2"}
    assert got.items["instance_dirs"] == {"edge/mec1/web", "edge/mec2/counter"}
    assert got.items["image_dirs"] == {
        "edge/mec2/counter/xfer/images",
        "edge/mec2/counter/xfer/predump/1",
    }
    assert got.items["agent_sockets"] == {"edge-mec1.sock"}
    assert got.items["processes"] == {"mecmig agent 20"}
    assert got.numbers == {"disk_bytes": 1302, "image_bytes": 1300, "fds 20": 7}
    assert [p.name for p in image_dirs(state)] == ["images", "1"]


def test_runc_that_fails_is_an_item_not_silence(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "runc" / "edge-mec1").mkdir(parents=True)
    runner = ScriptedRunner({("runc",): lambda argv: (1, "")})
    got = site_inventory(runner, run_dir=run, state_dir=tmp_path / "s", proc=tmp_path / "p")
    assert [c.split(" ")[0] for c in got.items["runc_containers"]] == ["edge-mec1/?"]


def test_full_inventory_counts_and_diff(tmp_path: Path) -> None:
    run, state, proc = tmp_path / "run", tmp_path / "state", tmp_path / "proc"
    proc.mkdir()
    answers: dict[tuple[str, ...], str] = {
        ("ip", "-o", "link", "show"): IP_LINK,
        ("ip", "-o", "link", "show", "type", "veth"): IP_VETH,
        ("ovs-vsctl", "--timeout=5", "list-br"): "s1\n",
        ("ovs-vsctl", "--timeout=5", "list-ports", "s1"): "s1-eth1\ns1-eth2\n",
        ("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", "s1"): METERS,
        ("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "s1"): FLOWS,
    }
    before = inventory(ScriptedRunner({}), run_dir=run, state_dir=state, proc=proc)
    assert before.counts()["veths"] == 0
    run.mkdir()
    (run / "emulation-edge-77.json").write_text("{}")
    after = inventory(ScriptedRunner(answers), run_dir=run, state_dir=state, proc=proc)
    counts = after.counts()
    assert counts["veths"] == 3 and counts["interfaces"] == 3  # lo, eth0, s1
    assert counts["ovs_bridges"] == 1 and counts["ovs_ports"] == 2
    assert counts["meters"] == 2 and counts["cookie_flows"] == 2
    assert counts["disk_bytes"] == 0 and counts["emulation_records"] == 1
    leaks = diff(before, after)
    assert leaks and leaks.added["veths"] == ["core-eth1", "s1-eth1", "s1-eth2"]
    assert "s1 meter=7" in leaks.added["meters"]
    assert "+ ovs_bridges: s1" in leaks.describe()
    back = diff(after, before)
    assert not back and back.removed["ovs_bridges"] == ["s1"]
    assert diff(after, after).describe() == "no change"


def test_diff_of_numbers_and_missing_kinds() -> None:
    a = Inventory({"veths": frozenset({"x"})}, {"disk_bytes": 10, "fds 7": 5})
    b = Inventory({"netns": frozenset({"mecmig-a-b"})}, {"disk_bytes": 30, "fds 7": 4})
    d = diff(a, b)
    assert d.added == {"netns": ["mecmig-a-b"]} and d.removed == {"veths": ["x"]}
    assert d.grown == {"disk_bytes": (10, 30)} and d.shrunk == {"fds 7": (5, 4)}
    assert "disk_bytes: 10 -> 30" in d.describe()
    assert diff(b, a).grown == {"fds 7": (4, 5)}
