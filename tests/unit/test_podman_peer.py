"""The Podman peer of `mecmig bench migration`, with a recording runner (no podman needed)."""

from __future__ import annotations

import dataclasses
import io
import json
import socket
import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ground.runner import CommandError, Result
from mecmig.bench import podman_copy
from mecmig.bench.migration_peer import peer_ratios, peer_section
from mecmig.bench.podman_peer import (
    PODMAN_MODE,
    PeerMigrationError,
    PeerSite,
    Podman,
    PodmanPeer,
    checkpoint_args,
    frozen_metrics,
    rootfs_tar,
    run_args,
)
from migration.site import InstanceSpec
from migration.timeline import MigrationRecord, PhaseRecord

SRC = PeerSite("mec1", 101, "10.0.0.1", "mec1", 3)
DST = PeerSite("mec2", 102, "10.0.0.2", "mec2", 200)
ARGS = ("/usr/bin/python3", "/data/memhog.py", "--size", "64MiB", "--port", "7000")


class FakeSpawned:
    def __init__(self) -> None:
        self.killed = False

    def stdout(self) -> str:
        return "ready\n"

    def alive(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def kill(self, group: bool = False) -> None:
        self.killed = True

    def tail(self, lines: int = 20) -> str:
        return ""


class FakeRunner:
    """Records every command; podman writes the archive it is asked to export."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[list[str], int | None]] = []
        self.spawned: list[tuple[list[str], int | None]] = []
        self.fail = fail

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        argv = list(argv)
        self.calls.append((argv, kw.get("netns_pid")))
        out, code = "", 0
        if self.fail and self.fail in argv:
            raise CommandError(argv, 125, "Error: it failed")
        if argv[:3] == ["podman", "container", "checkpoint"]:
            Path(argv[argv.index("--export") + 1]).write_bytes(b"x" * 1000)
        elif argv[0] == "podman" and argv[1] == "inspect":
            out = "running\n"
        elif "send" in argv:
            out = json.dumps({"bytes": 1000, "seconds": 0.01})
        elif argv[-3:] == ["iptables", "-w", "-S"] or argv[-1] == "CRIU":
            code = 1  # CRIU lifted the lock
        return Result(tuple(argv), code, out, "", 0.0)

    def spawn(self, argv: Sequence[str], log_path: str, **kw: Any) -> FakeSpawned:
        self.spawned.append((list(argv), kw.get("netns_pid")))
        return FakeSpawned()

    def podman(self) -> list[list[str]]:
        return [a for a, _ in self.calls if a[0] == "podman"]


def peer(tmp_path: Path, runner: FakeRunner) -> PodmanPeer:
    data = tmp_path / "memhog.py"
    data.write_text("print('hi')\n")
    w = InstanceSpec("counter", ARGS, "10.0.0.21", 24, "02:00:00:00:00:21", 3)
    w = dataclasses.replace(w, files={"memhog.py": str(data)})
    return PodmanPeer(Podman(runner, env={}), w, tmp_path / "work", tmp_path / "links")  # type: ignore[arg-type]


def test_rootfs_has_mount_points_usr_merge_links_and_the_data(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "usr/bin").mkdir(parents=True)
    (host / "bin").symlink_to("usr/bin")
    (host / "lib").mkdir()  # not merged: bound from the host
    src = tmp_path / "memhog.py"
    src.write_text("x = 1\n")
    data = rootfs_tar({"memhog.py": str(src)}, host)
    assert data == rootfs_tar({"memhog.py": str(src)}, host)  # its hash names the image
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
        assert members["lib"].isdir() and members["usr"].isdir() and members["proc"].isdir()
        f = tar.extractfile("data/memhog.py")
        assert f is not None and f.read() == b"x = 1\n"
    args = run_args(peer(tmp_path, FakeRunner()).w, "img", Path("/run/x.netns"), host)
    at = args.index("/usr:/usr:ro")
    assert args[at - 1] == "-v"
    assert "/lib:/lib:ro" in args and "/bin:/bin:ro" not in args
    assert "--network" in args and "ns:/run/x.netns" in args
    assert "nofile=20000:20000" in args and "nproc=32768:32768" in args
    assert args[-len(ARGS) :] == list(ARGS)


def test_checkpoint_keeps_the_connection_and_names_the_compression() -> None:
    args = checkpoint_args("c", Path("/a.tar"), "none")
    assert args[:2] == ["container", "checkpoint"] and "--tcp-established" in args
    assert args[args.index("--compress") + 1] == "none" and args[-1] == "c"


def test_a_migration_in_order_with_its_phases_and_frozen_window(tmp_path: Path) -> None:
    runner = FakeRunner()
    p = peer(tmp_path, runner)
    p.deploy(SRC)
    assert (tmp_path / "links/counter.netns").resolve().name == "mecmig-counter-podman-mec1"
    runner.calls.clear()
    switched: list[str] = []
    rec = p.migrate(SRC, DST, "podman-zstd", lambda: switched.append("now") or 4.0)
    assert rec.outcome.value == "done" and rec.mode == PODMAN_MODE
    assert [ph.name for ph in rec.phases] == [
        "prepare", "freeze_dump", "transfer", "switch", "restore", "cleanup",
    ]  # fmt: skip
    assert switched == ["now"] and rec.bytes_transferred == 1000
    cmds = runner.podman()
    ckpt = next(c for c in cmds if c[1:3] == ["container", "checkpoint"])
    assert ckpt[ckpt.index("--compress") + 1] == "zstd"
    # the source's record goes before the restore (one store for both sites)
    rm = cmds.index(["podman", "rm", "-f", "-t", "0", "--ignore", "mecmig-bench-counter"])
    restore = next(i for i, c in enumerate(cmds) if c[1:3] == ["container", "restore"])
    assert rm < restore and "--tcp-established" in cmds[restore]
    # the destination is locked with CRIU's own lock before its link comes up
    argvs = [a for a, _ in runner.calls]
    lock = next(i for i, a in enumerate(argvs) if "iptables-restore" in a)
    up = argvs.index(["ip", "link", "set", "vmec2p200", "up"])
    assert lock < up < restore + len(argvs) - len(cmds)
    assert runner.spawned[0][1] == DST.host_pid  # the receiver at the destination's host
    send = next((a, pid) for a, pid in runner.calls if "send" in a)
    assert send[1] == SRC.host_pid and DST.address in send[0]
    assert (tmp_path / "links/counter.netns").resolve().name == "mecmig-counter-podman-mec2"
    assert rec.metrics["rounds"] == 0
    profile = rec.metrics["frozen_profile_ms"]
    assert set(profile) == {"podman_checkpoint", "copy", "switch", "podman_restore", "between"}
    assert sum(profile.values()) == pytest.approx(rec.metrics["frozen_ms"], abs=0.5)


def test_a_failed_restore_carries_the_record(tmp_path: Path) -> None:
    runner = FakeRunner(fail="restore")
    p = peer(tmp_path, runner)
    p.deploy(SRC)
    with pytest.raises(PeerMigrationError) as caught:
        p.migrate(SRC, DST, "podman", lambda: None)
    rec = caught.value.record
    assert rec.outcome.value == "failed" and rec.phase("restore") is not None
    assert rec.phase("restore").ok is False  # type: ignore[union-attr]
    p.close()
    assert not (tmp_path / "links/counter.netns").exists()


def test_frozen_metrics_parts_add_up() -> None:
    rec = MigrationRecord("m", "counter", "mec1", "mec2", "podman")
    rec.phases = [
        PhaseRecord("prepare", 0.0, 50.0),
        PhaseRecord("freeze_dump", 60.0, 460.0),
        PhaseRecord("transfer", 461.0, 1061.0),
        PhaseRecord("switch", 1062.0, 1070.0),
        PhaseRecord("restore", 1071.0, 1471.0),
    ]
    m = frozen_metrics(rec)
    assert m["frozen_ms"] == 1411.0
    assert m["frozen_profile_ms"] == {
        "podman_checkpoint": 400.0, "copy": 600.0, "switch": 8.0, "podman_restore": 400.0,
        "between": 3.0,
    }  # fmt: skip


def _row(strategy: str, downtime: float) -> dict[str, Any]:
    return {
        "strategy": strategy, "memory_bytes": 64 * 2**20, "dirty_rate_bps": 80_000_000,
        "outcome": "done", "downtime_ms": downtime, "frozen_ms": downtime - 100,
        "total_ms": downtime + 100, "bytes_transferred": 1, "phases": {},
    }  # fmt: skip


def test_ratios_and_their_report_lines() -> None:
    rows = [_row("postcopy", 100.0), _row("cold", 1000.0), _row("podman", 2000.0)]
    rows.append(_row("podman-zstd", 1500.0))
    vs = peer_ratios(rows, [64 * 2**20], [10_000_000])
    cell = vs["per_cell"][0]
    assert cell["ratios"]["postcopy"] == {
        "downtime_ms": 100.0, "vs_podman": 20.0, "vs_podman-zstd": 15.0,
    }  # fmt: skip
    assert cell["ratios"]["cold"]["vs_podman"] == 2.0 and vs["met"] is True
    text = peer_section(vs)
    assert "## Podman in the same run" in text
    assert "postcopy 100 ms: 20.0x vs podman, 15.0x vs podman-zstd" in text
    assert peer_ratios(rows[:2], [64 * 2**20], [10_000_000]) == {
        "goal": vs["goal"], "per_cell": [], "met": None,
    }  # fmt: skip


def test_the_copy_script_moves_one_file_and_confirms(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src, dst = tmp_path / "a.tar", tmp_path / "b.tar"
    src.write_bytes(bytes(range(256)) * 5000)
    got: list[int] = []
    recv = threading.Thread(target=lambda: got.append(podman_copy.receive(port, str(dst))))
    recv.start()
    assert podman_copy.send("127.0.0.1", port, str(src)) == 0
    recv.join(10)
    assert got == [0] and dst.read_bytes() == src.read_bytes()
    assert podman_copy.main(["bogus"]) == 2
