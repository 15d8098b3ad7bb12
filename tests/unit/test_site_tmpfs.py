"""A benchmark's site directory on its own tmpfs: mounted for the block and unmounted after,
even when the block fails; a crashed run's tmpfs there is unmounted first, and only a
benchmark's own (another mount at that path is never touched)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ground.runner import Result
from mecmig.bench import site_tmpfs as mod
from mecmig.bench.site_tmpfs import DEVICE, is_bench_tmpfs, site_tmpfs


class Mounts:
    """A runner over a pretend mount table."""

    def __init__(self, table: list[tuple[str, str]]) -> None:
        self.table = table
        self.argvs: list[list[str]] = []

    def text(self) -> str:
        return "".join(f"{dev} {point} tmpfs rw 0 0\n" for dev, point in self.table)

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        argv = list(argv)
        self.argvs.append(argv)
        if argv[0] == "mount":
            self.table.append((argv[-2], argv[-1]))
        elif argv[0] == "umount":
            for i in reversed(range(len(self.table))):  # the topmost mount at that point
                if self.table[i][1] == argv[-1]:
                    del self.table[i]
                    break
        return Result(tuple(argv), 0, "", "", 0.0)


def test_is_bench_tmpfs_reads_the_device_and_the_point(tmp_path: Path) -> None:
    text = f"{DEVICE} {tmp_path} tmpfs rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n"
    assert is_bench_tmpfs(tmp_path, text)
    assert not is_bench_tmpfs(Path("/dev/shm"), text)  # a tmpfs, not ours
    assert not is_bench_tmpfs(tmp_path / "x", text)
    assert not is_bench_tmpfs(tmp_path, text + f"/dev/vdb {tmp_path} ext4 rw 0 0\n")  # on top


def test_mounted_for_the_block_and_unmounted_after_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "sites" / "loss" / "mec1"
    runner = Mounts([])
    monkeypatch.setattr(mod, "proc_mounts", runner.text)
    with pytest.raises(RuntimeError), site_tmpfs(runner, site, "1g") as path:
        assert path == site and site.is_dir()
        assert runner.table == [(DEVICE, str(site))]
        assert runner.argvs == [["mount", "-t", "tmpfs", "-o", "size=1g", DEVICE, str(site)]]
        raise RuntimeError("a run failed")
    assert runner.table == [] and runner.argvs[-1] == ["umount", "-l", str(site)]


def test_a_crashed_runs_tmpfs_goes_first_and_no_other_mount_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "mec2"
    runner = Mounts([("/dev/vdb", str(site)), (DEVICE, str(site)), (DEVICE, str(site))])
    monkeypatch.setattr(mod, "proc_mounts", runner.text)
    with site_tmpfs(runner, site, "512m"):
        # the two left by crashed runs are gone, the disk under them is still there
        assert runner.table == [("/dev/vdb", str(site)), (DEVICE, str(site))]
    assert runner.table == [("/dev/vdb", str(site))]
    other = Mounts([(DEVICE, str(site)), ("/dev/vdb", str(site))])  # a disk over ours
    monkeypatch.setattr(mod, "proc_mounts", other.text)
    with site_tmpfs(other, site, "512m"):
        assert other.argvs[0][0] == "mount"  # nothing was unmounted
