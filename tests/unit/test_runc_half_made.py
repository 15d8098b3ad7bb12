"""A restore that was cut leaves runc's directory of the container without its state; the next
restore of that name removes it first (runc would refuse it: "container with given ID already
exists"). A container that has its state is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.runc import Runc
from ground.runner import Result
from tests.unit.test_predump_chain import FakeRuncRunner


class Recording(FakeRuncRunner):
    def __init__(self) -> None:
        super().__init__()
        self.argvs: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        self.argvs.append(list(argv))
        return super().run(argv, **kw)


def test_a_half_made_container_is_removed_before_a_restore(tmp_path: Path) -> None:
    runner = Recording()
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    half = tmp_path / "runc" / "cache"
    (half / "criu-root").mkdir(parents=True)  # what a killed `runc restore` left (a mount)
    runc.restore("cache", tmp_path / "bundle", tmp_path / "image", tmp_path / "work")
    assert ["umount", "-l", str(half / "criu-root")] in runner.argvs  # its rootfs bind mount
    assert not half.exists() and len(runner.restores) == 1


def test_a_container_with_its_state_is_left_alone(tmp_path: Path) -> None:
    runner = FakeRuncRunner()
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    whole = tmp_path / "runc" / "cache"
    whole.mkdir(parents=True)
    (whole / "state.json").write_text("{}")
    runc.restore("cache", tmp_path / "bundle", tmp_path / "image", tmp_path / "work")
    assert (whole / "state.json").exists()


def test_a_restores_time_limit_grows_with_its_images(tmp_path: Path) -> None:
    from agent.runc import RESTORE_BASE_S, restore_timeout_s

    (tmp_path / "pages-1.img").write_bytes(b"\0" * 5_000_000)
    assert restore_timeout_s(tmp_path) == RESTORE_BASE_S + 0.1  # 5 MB at 50 MB/s
    assert restore_timeout_s(tmp_path / "absent") == RESTORE_BASE_S


def test_deleting_a_container_that_has_no_state_removes_its_half_made_directory(
    tmp_path: Path,
) -> None:
    runner = Recording()
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    half = tmp_path / "runc" / "cache"
    (half / "criu-root").mkdir(parents=True)
    runc.delete("cache")
    assert not half.exists()


def test_the_mounts_a_cut_restore_left_in_an_instance_are_found_deepest_first() -> None:
    from agent.container import mounts_under

    text = (
        "tmpfs /run tmpfs rw 0 0\n"
        "proc /var/lib/x/cache/rootfs/proc proc rw 0 0\n"
        "tmpfs /var/lib/x/cache/rootfs/proc/sys tmpfs rw 0 0\n"
        "tmpfs /var/lib/x/cache2 tmpfs rw 0 0\n"
    )
    assert mounts_under(Path("/var/lib/x/cache"), text) == [
        "/var/lib/x/cache/rootfs/proc/sys",
        "/var/lib/x/cache/rootfs/proc",
    ]
