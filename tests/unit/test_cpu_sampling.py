"""A site's CPU load: the agent's process tree and its containers' cgroups read from a fake /proc
and /sys (agent.cpu), and the sampler's series from those readings (orchestration.cpu_sampler)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.cpu import TICKS, cgroup_cpu_s, tree_cpu_s
from orchestration.cpu_sampler import CpuSampler


def fake_proc(root: Path, pid: int, ticks: tuple[int, int, int, int], kids: list[int]) -> None:
    d = root / str(pid)
    (d / "task" / str(pid)).mkdir(parents=True)
    utime, stime, cutime, cstime = ticks
    rest = " ".join(["0"] * 10)  # ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    (d / "stat").write_text(f"{pid} (a (b) c) S {rest} {utime} {stime} {cutime} {cstime} 0 0\n")
    (d / "task" / str(pid) / "children").write_text(" ".join(map(str, kids)))


def test_the_agents_tree_counts_itself_its_reaped_children_and_live_descendants(
    tmp_path: Path,
) -> None:
    fake_proc(tmp_path, 10, (100, 50, 30, 20), [11])  # the agent; criu runs reaped: 30 + 20
    fake_proc(tmp_path, 11, (7, 3, 0, 0), [12])  # a page server
    fake_proc(tmp_path, 12, (1, 1, 0, 0), [])  # its child
    fake_proc(tmp_path, 13, (999, 999, 0, 0), [])  # not ours
    assert tree_cpu_s(10, tmp_path) == pytest.approx((150 + 50 + 10 + 2) / TICKS)
    assert tree_cpu_s(77, tmp_path) == 0.0  # gone


def test_containers_count_from_cgroup_v1_or_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "cpuacct" / "mecmig" / "mec1"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("2500000000\n")
    assert cgroup_cpu_s("/mecmig/mec1", tmp_path) == pytest.approx(2.5)
    v2 = tmp_path / "mecmig" / "mec2"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    assert cgroup_cpu_s("/mecmig/mec2", tmp_path) == pytest.approx(1.5)
    assert cgroup_cpu_s("/mecmig/none", tmp_path) == 0.0


class Site:
    """Readings as an agent gives them: 0.5 core busy, then 1.5, one reading failing."""

    def __init__(self) -> None:
        self.readings = [(0.0, 0.0), (0.1, 0.05), (0.2, 0.10), None, (0.4, 0.40)]

    def site_cpu(self) -> dict[str, float]:
        r = self.readings.pop(0)
        if r is None:
            raise OSError("agent away")
        return {"monotonic_s": 100 + r[0], "site_s": 5 + r[1]}


def test_the_load_is_cpu_seconds_over_the_agents_own_seconds() -> None:
    sampler = CpuSampler({"mec1": Site()}, clock=lambda: 0.0)
    for _ in range(5):
        sampler.sample()
    s = sampler.series["mec1"]
    assert s.cores == pytest.approx([0.5, 0.5, 1.5]) and s.failed == 1
    assert s.peak == pytest.approx(1.5) and s.mean == pytest.approx(2.5 / 3)


class Steady:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def site_cpu(self) -> dict[str, float]:
        now = time.monotonic()
        return {"monotonic_s": now, "site_s": 0.25 * (now - self.t0)}


def test_the_thread_samples_at_the_rate_asked() -> None:
    sampler = CpuSampler({"mec1": Steady()}, hz=20).start()
    time.sleep(0.55)
    s = sampler.stop()["mec1"]
    assert 9 <= len(s.cores) <= 12
    assert all(c == pytest.approx(0.25, abs=0.01) for c in s.cores)


def test_a_rate_out_of_bounds_is_refused() -> None:
    with pytest.raises(ValueError):
        CpuSampler({}, hz=0)
