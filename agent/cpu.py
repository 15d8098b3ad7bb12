"""CPU time a site spends: its agent's process tree and its containers' cgroups (seed 000 Fig. 5
samples the source site's CPU while a chain moves; the whole machine's /proc/stat would count
every other site of an emulation too).

- The agent's tree: the agent process's own user and system time, its reaped children's
  (every `runc`, `criu`, copy that ran and ended: the kernel adds them to `cutime`/`cstime`
  when the agent waits for them), and the live descendants' (a page server, a lazy-pages
  daemon), from `/proc/<pid>/stat`.
- The containers: the sum of `cpuacct.usage` (cgroup v1) or `cpu.stat`'s `usage_usec`
  (cgroup v2) over the site's cgroup parent `/mecmig/<site>` (`agent.container`): every
  service process, restored ones too.

The paths are arguments, so the reading is tested on a fake /proc and /sys.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:  # it ended meanwhile
        return None
    # the command may hold spaces and parentheses: the fields start after the last ")"
    return text[text.rindex(")") + 2 :].split()


def _children(pid: int, proc: Path) -> list[int]:
    kids: list[int] = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def tree_cpu_s(pid: int, proc: Path = PROC) -> float:
    """CPU seconds of `pid` (with its reaped children) and its live descendants."""
    total = 0
    seen: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        fields = _stat_fields(p, proc)
        if fields is None:
            continue
        # after ")": state(0) ppid ... utime(11) stime(12) cutime(13) cstime(14)
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        todo += _children(p, proc)
    return total / TICKS


def cgroup_cpu_s(path: str, root: Path = CGROUP_ROOT) -> float:
    """CPU seconds of cgroup `path` (e.g. `/mecmig/mec1`) and everything below it; 0 if it
    does not exist (no container started yet)."""
    rel = path.strip("/")
    v1 = root / "cpuacct" / rel / "cpuacct.usage"
    if v1.exists():
        try:
            return int(v1.read_text()) / 1e9
        except (OSError, ValueError):
            return 0.0
    v2 = root / rel / "cpu.stat"
    try:
        for line in v2.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return 0.0
    return 0.0
