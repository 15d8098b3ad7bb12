"""A benchmark's site directory on a tmpfs of its own, mounted for the run and unmounted after.

Two benchmarks use one: `bench reliability` gives the destination a small one, so that its
disk-full fault fills that and never this machine's disk; `bench loss` puts both sites' on one,
so that the source term it compares across loss levels holds no page-cache noise of the host's
disk (writing the 40 MB checkpoint to ext4 took 11-60 ms from run to run here, to a tmpfs 14-16).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ground.runner import Runner

DEVICE = "mecmig-bench"  # the mounts' source name: what marks them as a benchmark's own


def is_bench_tmpfs(path: Path, mounts: str) -> bool:
    """Whether what is mounted at `path`, the topmost mount there in a /proc/mounts text (its
    last line for `path`), is a benchmark's tmpfs."""
    top = None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == str(path):
            top = parts[0]
    return top == DEVICE


def proc_mounts() -> str:
    """This process's mount table (/proc/self/mounts)."""
    return Path("/proc/self/mounts").read_text()


@contextmanager
def site_tmpfs(runner: Runner, path: Path, size: str) -> Iterator[Path]:
    """`path` (created if missing) on a tmpfs of `size` (mount's size=, e.g. '512m') while the
    block runs; a crashed run's tmpfs there is unmounted first; lazily unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    while is_bench_tmpfs(path, proc_mounts()):  # a crashed run's (only ours, never another)
        runner.run(["umount", "-l", str(path)])  # one that cannot go raises: no endless loop
    runner.run(["mount", "-t", "tmpfs", "-o", f"size={size}", DEVICE, str(path)])
    try:
        yield path
    finally:
        runner.run(["umount", "-l", str(path)], check=False)
