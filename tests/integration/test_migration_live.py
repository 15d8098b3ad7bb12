"""Live migration for real: runc containers, CRIU 4.2.1, site agents in Mininet hosts, the
controller's reservation and traffic switch, a client probing every 5 ms over one TCP connection.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mecmig.bench.path_rate import path_rate_bps
from migration.engine import Migration, MigrationError, Plan
from migration.profile import largest_parts
from migration.timeline import Outcome
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.testbed import Testbed
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.client import MigrationClient
from orchestration.ids import new_migration_id
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from tests.integration.live import runc_pid
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "scenarios" / "edge.yaml"


@dataclass
class World:
    tb: Testbed
    agents: SiteAgents
    orch: Orchestrator


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    sc = load_scenario(EDGE)
    with make_testbed(EDGE, instance_hosts=False) as tb, SiteAgents(tb.emu, EDGE) as agents:
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        yield World(tb, agents, orch)


@pytest.fixture()
def counter(world: World) -> Iterator[str]:
    """A fresh memhog instance at mec1 (removed afterwards, wherever it ended up)."""
    world.orch.teardown("counter")
    world.orch.deploy("counter")
    _wait_answering(world, "10.0.0.21", 7000)
    yield "counter"
    world.orch.teardown("counter")


def _wait_answering(world: World, ip: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    ue = world.tb.emu.host("ue1")
    while time.monotonic() < deadline:
        out = ue.cmd(f"bash -c 'exec 3<>/dev/tcp/{ip}/{port} && echo PING >&3 && head -c4 <&3'")
        if "PONG" in out:
            return
        time.sleep(0.2)
    raise AssertionError(f"{ip}:{port} does not answer")


class ProbeRun:
    """`python -m workloads.probe` on ue1: one TCP connection, a request every 5 ms.

    It runs until `result()` stops it (1.5 s after the last migration), so a slow migration can
    never outlast the probe and look like a broken connection.
    """

    def __init__(self, world: World, ip: str, port: int) -> None:
        self.proc = world.tb.emu.host("ue1").popen(
            [
                sys.executable,
                "-m",
                "workloads.probe",
                ip,
                str(port),
                "--interval-ms",
                "5",
                "--duration",
                "0",
                # a freeze backs the client's TCP retransmissions off (0.2, 0.4, 0.8 ... s): wait
                # for them rather than declaring the connection dead after the default 10 s
                "--stall-timeout-ms",
                "60000",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)

    def result(self) -> dict[str, Any]:
        time.sleep(1.5)
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err.decode()
        data: dict[str, Any] = json.loads(out)
        return data


def _plan(world: World, instance: str) -> Plan:
    """mec1 -> mec2, cold, for tests that drive the phases one by one."""
    orch = world.orch
    return Plan(
        instance=instance,
        source=orch.site("mec1"),
        destination=orch.site("mec2"),
        destination_site="mec2",
        destination_port=orch.port_at(instance, "mec2"),
    )


def _assert_state_kept(probe: dict[str, Any]) -> None:
    brief = {k: v for k, v in probe.items() if k not in ("samples",)}
    assert probe["same_connection"], repr(brief)
    assert probe["counter_monotonic"], probe
    assert probe["fingerprint_stable"], probe
    assert probe["last_counter"] > probe["first_counter"], probe


@pytest.mark.parametrize("strategy", ["cold", "precopy", "postcopy", "hybrid"])
def test_migration_keeps_memory_state_and_the_open_tcp_connection(
    world: World, counter: str, strategy: str
) -> None:
    probe = ProbeRun(world, "10.0.0.21", 7000)
    record = world.orch.migrate(counter, "mec2", strategy=strategy, budget_ms=2000)
    result = probe.result()
    print(
        f"{strategy}: client-observed downtime {result['downtime_ms']:.0f} ms, "
        f"total {record.total_ms:.0f} ms, {record.bytes_transferred} bytes, mode {record.mode}"
    )
    assert record.outcome is Outcome.DONE
    assert world.orch.where(counter) == "mec2"
    _assert_state_kept(result)
    assert result["downtime_ms"] < 5000
    names = [p.name for p in record.phases]
    assert names[-2:] == ["release", "cleanup"] and "restore" in names
    if strategy == "precopy":
        tracks = world.agents.clients["mec1"].health()["mem_dirty_track"]
        assert record.mode == ("predump" if tracks else "full-dump-delta")
        assert record.metrics["rounds"] >= 1
    if strategy in ("postcopy", "hybrid"):
        assert names.index("restore") < names.index("pages")
        dump = record.phase("freeze_dump")
        assert dump is not None and dump.detail["image_bytes"] < 16 * 2**20
    # the probe's packets sent during the freeze were held at the controller from CRIU's
    # freeze on (the agent's CRIU asked for it), then delivered after the restore
    dump = record.phase("freeze_dump")
    assert dump is not None and dump.detail["held_at_freeze"] and dump.detail["held"]
    deliver = record.phase("deliver")
    assert deliver is not None and deliver.detail["packets"] > 0, record.phases
    assert world.tb.ctl.client.release_hold(counter).released_packets == 0  # no hold left
    view = {i.name: i for i in world.tb.ctl.client.instances()}
    assert view[counter].switch == "s2"
    assert world.tb.ctl.client.reservations() == []


def test_cold_dumps_its_pages_straight_to_the_destination(world: World, counter: str) -> None:
    """Stop-and-copy at the copy's speed: the final dump's pages go to a CRIU page server at the
    destination while CRIU dumps them (dump and copy overlap), only the small rest of the
    images is copied after it, and the freeze lasts about as long as the copy itself would
    on this path (measured here first), plus the restore."""
    rate = path_rate_bps(world.tb.emu, load_scenario(EDGE), "mec1", "mec2", tries=1)
    probe = ProbeRun(world, "10.0.0.21", 7000)
    record = world.orch.migrate(counter, "mec2", strategy="cold")
    result = probe.result()
    assert record.outcome is Outcome.DONE
    _assert_state_kept(result)
    freeze, transfer = record.phase("freeze_dump"), record.phase("transfer")
    switch, restore = record.phase("switch"), record.phase("restore")
    assert freeze and transfer and switch and restore
    assert freeze.detail["pages_to"] == f"{world.orch.site('mec2').address}:7101"
    pages = transfer.detail["pages_bytes"]
    assert pages >= 64 * 2**20  # all of memhog's memory went by the page server ...
    assert transfer.detail["rest_bytes"] < 8 * 2**20  # ... the copy after the dump the rest
    assert transfer.bytes == pages + transfer.detail["rest_bytes"]
    copy_ms = pages / rate * 1000.0
    frozen = record.metrics["frozen_ms"]
    print(
        f"path {rate / 1e6:.1f} MB/s: {pages} bytes of pages take {copy_ms:.0f} ms; dump "
        f"with them {freeze.duration_ms:.0f} ms, rest {transfer.duration_ms:.0f} ms, restore "
        f"{restore.duration_ms:.0f} ms; frozen {frozen:.0f} ms, client {result['downtime_ms']:.0f}"
    )
    # overlapped: the dump takes the copy's time and CRIU's freeze and start (no separate
    # write of the pages, no copy after it); then only a small copy, the switch, the restore
    assert freeze.duration_ms < copy_ms * 1.15 + 150.0, (freeze.duration_ms, copy_ms)
    assert transfer.duration_ms < 100.0
    tail = transfer.duration_ms + switch.duration_ms + restore.duration_ms
    assert frozen < freeze.duration_ms + tail + 20.0
    assert frozen < copy_ms * 1.15 + 150.0 + tail + 20.0


# Post-copy's frozen window and the client's downtime, as measured with the images handed off
# (mecmig bench migration --quick --strategies postcopy hybrid --repeat 3, 64 MiB dirtying
# 10 MB/s, this 2-core machine busy with other runs): frozen 336 ms median (400 before) for
# postcopy, 390 (572) for hybrid; here (64 MiB dirtying 1 MB/s) 350-383 ms, and the client's
# downtime 1414-1630 ms: after the restore the service waits on its first faulted pages. The
# bounds are those with a margin for a loaded machine. The goal, a client downtime of
# 100 ms, is not met: CRIU's dump (~100 ms), runc's restore (~55 ms) and CRIU's (~65 ms) alone
# exceed it.
POSTCOPY_FROZEN_MS = 500.0
POSTCOPY_DOWNTIME_MS = 2000.0


@pytest.mark.parametrize("strategy", ["postcopy", "hybrid"])
def test_postcopy_hands_its_images_off_within_the_dump(
    world: World, counter: str, strategy: str
) -> None:
    """No round trip to the engine between the freeze and the restore but the restore's own:
    the destination listens before the freeze, the source's agent takes the service's link
    down and sends the images (~2 MB) as soon as its page server is ready, within its dump
    step, and the destination's restore finishes the receive and says the status."""
    probe = ProbeRun(world, "10.0.0.21", 7000)
    record = world.orch.migrate(counter, "mec2", strategy=strategy, budget_ms=2000)
    result = probe.result()
    assert record.outcome is Outcome.DONE
    _assert_state_kept(result)
    receive, freeze = record.phase("receive"), record.phase("freeze_dump")
    transfer, restore = record.phase("transfer"), record.phase("restore")
    assert receive and freeze and transfer and restore
    assert receive.end_ms is not None and receive.end_ms <= freeze.start_ms
    assert transfer.detail["handed_off"] and transfer.bytes and transfer.bytes < 16 * 2**20
    assert transfer.duration_ms is not None and transfer.duration_ms < 5.0  # no call made
    profile = record.metrics["frozen_profile_ms"]
    assert profile["transfer"] > 0 and "source_link_down" not in profile, profile
    frozen = record.metrics["frozen_ms"]
    print(
        f"{strategy}: frozen {frozen:.0f} ms, client {result['downtime_ms']:.0f} ms; "
        f"{largest_parts(profile, 8)}"
    )
    assert frozen < POSTCOPY_FROZEN_MS, profile
    assert result["downtime_ms"] < POSTCOPY_DOWNTIME_MS


@pytest.mark.parametrize("strategy", ["precopy", "hybrid"])
def test_predumps_where_the_kernel_tracks_dirty_memory_else_a_recorded_fallback(
    world: World, counter: str, strategy: str
) -> None:
    """The plan asks for CRIU pre-dumps. On a kernel with soft-dirty tracking they run for real
    (rounds chained by parent images, the final dump on top); on this one runc/CRIU refuse the
    first pre-dump and the migration falls back to full dumps / file rounds, says so in the
    record, and the service keeps its memory and its connection either way."""
    tracks = world.agents.clients["mec1"].health()["mem_dirty_track"]
    plan = replace(_plan(world, counter), strategy=strategy, budget_ms=2000, dirty_tracking=True)
    probe = ProbeRun(world, "10.0.0.21", 7000)
    record = Migration(
        plan, RestControllerLink(world.tb.ctl.client), migration_id=new_migration_id()
    ).run()
    result = probe.result()
    assert record.outcome is Outcome.DONE and world.orch.where(counter) == "mec2"
    _assert_state_kept(result)
    if tracks:
        assert record.mode in ("predump", "predump+lazy-pages")
        assert record.metrics["predump_rounds"] >= 1 and "predump_fallback" not in record.metrics
    else:
        assert record.mode in ("full-dump-delta", "data-delta+lazy-pages")
        assert record.metrics["predump_rounds"] == 0
        assert record.metrics["predump_fallback"], record.metrics
        print(f"{strategy}: pre-dump refused here: {record.metrics['predump_fallback']}")
    assert world.tb.ctl.client.reservations() == []


def test_repeated_hops_there_and_back(world: World, counter: str) -> None:
    probe = ProbeRun(world, "10.0.0.21", 7000)
    for to in ("mec2", "mec1", "mec2", "mec1"):
        assert world.orch.migrate(counter, to, strategy="cold").outcome is Outcome.DONE
        time.sleep(1.0)  # a user does not change sites every two seconds: let TCP recover
    _assert_state_kept(probe.result())
    assert world.orch.where(counter) == "mec1"


def test_transfer_cut_rolls_back_and_the_service_keeps_running_at_the_source(
    world: World, counter: str
) -> None:
    dest = world.tb.emu.host("hmec2")
    dest.cmd("iptables -I INPUT -p tcp --dport 7100 -j REJECT --reject-with tcp-reset")
    probe = ProbeRun(world, "10.0.0.21", 7000)
    try:
        with pytest.raises(MigrationError) as info:
            world.orch.migrate(counter, "mec2", strategy="cold")
    finally:
        dest.cmd("iptables -D INPUT -p tcp --dport 7100 -j REJECT --reject-with tcp-reset")
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert world.orch.where(counter) == "mec1"
    assert world.agents.clients["mec2"].health()["instances"] == []
    assert world.tb.ctl.client.reservations() == []
    _assert_state_kept(probe.result())


def test_destination_disk_full_rolls_back(world: World, counter: str) -> None:
    root = Path(f"/var/lib/mecmig/sites/edge/mec2/{counter}")
    # the destination's instance directory becomes a 1 MiB filesystem once it is prepared
    original_prepare = world.agents.clients["mec2"].prepare_target

    def prepare_small(spec: Any) -> None:
        original_prepare(spec)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root / "xfer")], check=True
        )

    world.agents.clients["mec2"].prepare_target = prepare_small  # type: ignore[method-assign]
    try:
        with pytest.raises(MigrationError) as info:
            world.orch.migrate(counter, "mec2", strategy="cold")
    finally:
        world.agents.clients["mec2"].prepare_target = original_prepare  # type: ignore[method-assign]
        subprocess.run(["umount", str(root / "xfer")], check=False)
    assert "disk full" in str(info.value.record.phase("transfer").detail)  # type: ignore[union-attr]
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert world.orch.where(counter) == "mec1"
    _wait_answering(world, "10.0.0.21", 7000)


def test_restore_error_after_the_final_dump_restores_the_source_from_its_own_dump(
    world: World, counter: str
) -> None:
    """Phase by phase: the namespace the restore needs vanishes after the transfer."""
    orch = world.orch
    plan = _plan(world, counter)
    probe = ProbeRun(world, "10.0.0.21", 7000)
    mig = Migration(plan, RestControllerLink(world.tb.ctl.client), migration_id=new_migration_id())
    mig.prepare()
    mig.final_dump()
    mig.transfer()
    mig.switch()
    subprocess.run(["ip", "netns", "del", f"mecmig-{counter}-mec2"], check=True)
    with pytest.raises(Exception) as failure:
        mig.restore()
    mig.rollback(failure.value)
    assert orch.where(counter) == "mec1"
    assert world.agents.clients["mec2"].health()["instances"] == []
    _assert_state_kept(probe.result())


def test_migration_through_the_controllers_rest_api(world: World, counter: str) -> None:
    """`POST /v1/migrations` (the orchestration layer mounted into the controller) migrates
    and holds the traffic from CRIU's freeze like `mecmig migrate` (it used to never hold)."""
    client = MigrationClient(world.tb.ctl.client.base_url)
    started = client.migrate(counter, "mec2", strategy="postcopy")
    assert started.instance == counter and started.outcome == "running"
    deadline = time.monotonic() + 60
    view = started
    while view.outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        view = client.migration(started.id)
    assert view.outcome == "done", view
    names = [p["name"] for p in view.phases]
    assert names[-3:] == ["pages", "release", "cleanup"]
    freeze = next(p for p in view.phases if p["name"] == "freeze_dump")
    assert freeze["detail"]["held"] is True and freeze["detail"]["held_at_freeze"] is True
    assert "deliver" in names and names.index("deliver") > names.index("restore")
    assert world.orch.where(counter) == "mec2"
    assert started.id in {m.id for m in client.migrations()}


def test_an_agent_killed_mid_migration_rolls_back_and_its_leftovers_go_at_restart(
    world: World, counter: str
) -> None:
    orch = world.orch
    plan = _plan(world, counter)
    probe = ProbeRun(world, "10.0.0.21", 7000)
    mig = Migration(plan, RestControllerLink(world.tb.ctl.client), migration_id=new_migration_id())
    mig.prepare()
    assert Path(f"/var/run/netns/mecmig-{counter}-mec2").exists()
    world.agents.kill("mec2")
    try:
        with pytest.raises(Exception) as failure:
            # cold: the destination's receiver and page server start before the freeze, and
            # fail there (the service never froze); were they up, the copy would fail
            mig.final_dump()
            mig.transfer()
        mig.rollback(failure.value)
        assert orch.where(counter) == "mec1"
        _assert_state_kept(probe.result())
    finally:
        world.agents.restart("mec2")
    assert world.agents.clients["mec2"].health()["instances"] == []
    assert not Path(f"/var/run/netns/mecmig-{counter}-mec2").exists()
    assert world.tb.ctl.client.reservations() == []


def _in_ue(world: World, code: str) -> str:
    out = (
        world.tb.emu.host("ue1")
        .popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        .communicate(timeout=120)
    )
    return out[0].decode() + out[1].decode()


@pytest.mark.parametrize("strategy", ["cold", "precopy", "postcopy", "hybrid"])
def test_memcached_keeps_every_key(world: World, strategy: str) -> None:
    world.orch.teardown("cache")
    world.orch.deploy("cache")
    try:
        fill = (
            "import time\nfrom workloads.memcached_check import fill\n"
            "for _ in range(50):\n"
            "    try:\n        fill('10.0.0.23', 11211, 2000, 512, 7); break\n"
            "    except OSError: time.sleep(0.2)\nprint('filled')"
        )
        assert "filled" in _in_ue(world, fill)
        record = world.orch.migrate("cache", "mec2", strategy=strategy)
        assert record.outcome is Outcome.DONE
        verify = (
            "from workloads.memcached_check import expected_values, verify\n"
            "present, missing = verify('10.0.0.23', 11211, expected_values(2000, 512, 7))\n"
            "print('present', present, 'missing', missing)"
        )
        out = _in_ue(world, verify)
        assert "present 2000 missing 0" in out, out
    finally:
        world.orch.teardown("cache")


def test_an_http_stream_runs_through_a_migration(world: World) -> None:
    world.orch.teardown("web")
    world.orch.deploy("web")
    ue = world.tb.emu.host("ue1")
    try:
        for _ in range(50):
            if ue.cmd("curl -s -m 1 http://10.0.0.22:8080/health").strip():
                break
            time.sleep(0.2)
        size = 12_000_000
        curl = ue.popen(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{http_code}",
                f"http://10.0.0.22:8080/stream?bytes={size}&rate=2000000",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        volume = Path("/var/lib/mecmig/sites/edge/mec1/web/xfer/volume")
        (volume / "video.bin").write_bytes(b"v" * 100_000)
        time.sleep(1.5)
        record = world.orch.migrate("web", "mec2", strategy="postcopy")
        out, _ = curl.communicate(timeout=120)
        assert record.outcome is Outcome.DONE
        assert out.decode().split() == [str(size), "200"], out
        moved = Path("/var/lib/mecmig/sites/edge/mec2/web/xfer/volume/video.bin")
        assert moved.read_bytes() == b"v" * 100_000  # the data volume moved with it
    finally:
        world.orch.teardown("web")


def test_restart_strategy_moves_the_files_and_starts_the_service_afresh(
    world: World, counter: str
) -> None:
    """Seed 003's filesystem-level migration: /data moves, memory does not."""
    src_data = Path(f"/var/lib/mecmig/sites/edge/mec1/{counter}/xfer/data")
    (src_data / "config.txt").write_text("kept across the move\n")
    record = world.orch.migrate(counter, "mec2", strategy="restart")
    assert record.outcome is Outcome.DONE and record.mode == "filesystem-state"
    dst_data = Path(f"/var/lib/mecmig/sites/edge/mec2/{counter}/xfer/data")
    assert (dst_data / "config.txt").read_text() == "kept across the move\n"
    assert world.orch.where(counter) == "mec2"
    _wait_answering(world, "10.0.0.21", 7000)


def test_a_dump_error_leaves_the_service_running_at_the_source(world: World, counter: str) -> None:
    """CRIU cannot write its images (a read-only filesystem there): the dump fails for real."""
    images = Path(f"/var/lib/mecmig/sites/edge/mec1/{counter}/xfer/images")
    images.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(images)], check=True)
    probe = ProbeRun(world, "10.0.0.21", 7000)
    try:
        with pytest.raises(MigrationError) as info:
            world.orch.migrate(counter, "mec2", strategy="precopy")
    finally:
        subprocess.run(["umount", str(images)], check=False)
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert world.orch.where(counter) == "mec1"
    assert world.agents.clients["mec2"].health()["instances"] == []
    _assert_state_kept(probe.result())


def _init_pid(site: str, instance: str) -> int:
    return runc_pid("edge", site, instance)


def _dev_tree(pid: int) -> dict[str, tuple[Any, ...]]:
    """The container's /dev tmpfs entry by entry: type and mode, owner, modification time (ns),
    device and link target. Its submounts (pts, shm, mqueue) are their own filesystems: only
    /dev's own entries are listed, as CRIU dumps them."""
    root = Path(f"/proc/{pid}/root/dev")
    dev = root.lstat().st_dev
    tree: dict[str, tuple[Any, ...]] = {}

    def walk(d: Path, rel: str) -> None:
        st = d.lstat()
        tree[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_rdev, None)
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if st.st_dev != dev:
                continue
            path = f"{rel}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), path)
                continue
            target = os.readlink(entry.path) if entry.is_symlink() else None
            tree[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_rdev, target)

    walk(root, ".")
    return tree


def _to_seconds(tree: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """tar keeps modification times in whole seconds."""
    return {k: (*v[:3], v[3] // 10**9, *v[4:]) for k, v in tree.items()}


def _restore_log(site: str, instance: str) -> str:
    logs = list(Path(f"/var/lib/mecmig/sites/edge/{site}/{instance}").rglob("restore.log"))
    assert logs, f"no CRIU restore log for {instance} at {site}"
    return "\n".join(p.read_text(errors="replace") for p in logs)


def test_the_containers_dev_comes_back_entry_for_entry(world: World, counter: str) -> None:
    """CRIU (patch 0012) dumps a tmpfs of directories, links, device nodes, FIFOs and empty files
    as a list, without tar: every entry comes back with its mode, owner, time to the
    nanosecond, device and target. With a second hard link or a file of data in it, tar does
    it, as before (and keeps the link)."""
    dev = Path(f"/proc/{_init_pid('mec1', counter)}/root/dev")
    os.mkfifo(dev / "mecmig fifo%", 0o620)
    (dev / "mecmig-empty").touch(0o640)
    os.chown(dev / "mecmig-empty", 1000, 1001)
    os.symlink("a target/with space%20 and é", dev / "mecmig-link")
    (dev / "mecmig-dir" / "sub").mkdir(parents=True)
    os.mknod(dev / "mecmig-dir/sub/null2", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.utime(dev / "mecmig-dir/sub", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    before = _dev_tree(_init_pid("mec1", counter))
    assert {"./mecmig fifo%", "./mecmig-link", "./mecmig-dir/sub/null2", "./fd", "./null"} <= set(
        before
    )

    assert world.orch.migrate(counter, "mec2", strategy="postcopy").outcome is Outcome.DONE
    assert _dev_tree(_init_pid("mec2", counter)) == before
    restore_log = _restore_log("mec2", counter)
    assert "restored from a list, without tar" in restore_log
    assert "Force no-breakpoints" in restore_log  # criu.conf's no-breakpoints (patch 0013)

    # a second name for the empty file: a list would restore two files, tar keeps one
    dev = Path(f"/proc/{_init_pid('mec2', counter)}/root/dev")
    os.link(dev / "mecmig-empty", dev / "mecmig-dir/empty-again")
    before = _dev_tree(_init_pid("mec2", counter))
    assert world.orch.migrate(counter, "mec1", strategy="cold").outcome is Outcome.DONE
    back = Path(f"/proc/{_init_pid('mec1', counter)}/root/dev")
    assert _to_seconds(_dev_tree(_init_pid("mec1", counter))) == _to_seconds(before)
    assert (back / "mecmig-empty").stat().st_ino == (back / "mecmig-dir/empty-again").stat().st_ino
    assert "restored from a list" not in _restore_log("mec1", counter)

    os.unlink(back / "mecmig-dir/empty-again")
    (back / "mecmig-data").write_bytes(b"kept by tar\n")
    before = _dev_tree(_init_pid("mec1", counter))
    assert world.orch.migrate(counter, "mec2", strategy="cold").outcome is Outcome.DONE
    back = Path(f"/proc/{_init_pid('mec2', counter)}/root/dev")
    assert (back / "mecmig-data").read_bytes() == b"kept by tar\n"
    assert _to_seconds(_dev_tree(_init_pid("mec2", counter))) == _to_seconds(before)
    assert "restored from a list" not in _restore_log("mec2", counter)
