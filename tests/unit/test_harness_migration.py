"""`mecmig bench migration` on the harness, with a fake testbed (no network): a crash mid-run
leaves summary.json incomplete and the crashed case marked; --resume runs only what is missing and
writes the benchmark's summary with the statistics, CSVs, plots and the seeds beside ours."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mecmig.bench import migration, migration_cases
from mecmig.bench.migration_cases import Case, empty_row

PHASES = {"prepare": 50.0, "reserve": 4.0, "freeze_dump": 300.0, "transfer": 400.0,
          "switch": 3.0, "restore": 280.0, "cleanup": 9.0}  # fmt: skip


def fake_row(case: Case) -> dict[str, Any]:
    """A migration's row as Bench.run_case returns it, numbers by strategy and repetition."""
    base = {"baseline": 2000.0, "cold": 1500.0, "precopy": 900.0, "postcopy": 600.0,
            "hybrid": 650.0}[case.strategy] + 10.0 * case.repeat  # fmt: skip
    phases = dict(PHASES)
    if case.strategy == "postcopy":
        phases["pages"] = 1500.0
    if case.strategy == "precopy":
        phases["precopy-1"] = 1000.0
    row = empty_row(case)
    row.update(
        downtime_ms=base,
        frozen_ms=base - 50,
        total_ms=base * 3,
        bytes_transferred=case.memory_bytes + 4_000_000,
        state_intact=True,
        same_connection=True,
        mode="full-dump-delta" if case.strategy == "precopy" else "x",
        outcome="done",
        rounds=1 if case.strategy == "precopy" else 0,
        phases=phases,
        image_bytes=case.memory_bytes,
        final_transfer_bytes=case.memory_bytes // 10,
        held=case.strategy != "baseline",
    )
    return row


class FakeBench:
    def __init__(self, calls: list[Case], crash_at: int | None) -> None:
        self.calls = calls
        self.crash_at = crash_at
        self.hold = "auto"
        self.last_record = None  # no migration ran: the row has no profile

    def run_case(self, case: Case, on_phase: Callable[[str], None]) -> dict[str, Any]:
        on_phase("migrate")
        self.calls.append(case)
        if len(self.calls) == self.crash_at:
            raise RuntimeError("the controller died")
        return fake_row(case)

    def path_rate_bps(self) -> float:
        return 115e6


@pytest.fixture
def fake_testbed(monkeypatch: pytest.MonkeyPatch) -> Callable[[int | None], list[Case]]:
    import ground.paths

    monkeypatch.setattr(migration, "environment_problem", lambda *a, **k: None)
    # the default plan without the peer's rows (it has them only where podman is installed)
    ours = (*migration_cases.ENGINE_STRATEGIES, "baseline")
    monkeypatch.setattr(migration, "FULL", dataclasses.replace(migration.FULL, strategies=ours))
    monkeypatch.setattr(ground.paths, "criu_binary", lambda: Path("/bin/true"))

    def install(crash_at: int | None) -> list[Case]:
        calls: list[Case] = []

        @contextmanager
        def testbed() -> Iterator[FakeBench]:
            yield FakeBench(calls, crash_at)

        monkeypatch.setattr(migration_cases, "bench_testbed", testbed)
        return calls

    return install


def args(out: Path, resume: bool = False) -> argparse.Namespace:
    sizes = [64 * 2**20, 512 * 2**20]
    return argparse.Namespace(quick=False, out=out, strategies=None, sizes=sizes,
                              dirty_rates=[0], repeat=2, hold="auto", resume=resume)  # fmt: skip


def test_crash_then_resume(
    tmp_path: Path, fake_testbed: Callable[[int | None], list[Case]]
) -> None:
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    calls = fake_testbed(3)
    assert migration.run(args(tmp_path), console) == 1
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["complete"] is False and len(doc["rows"]) == 2
    assert doc["summary"]["completed"] is False
    assert doc["summary"]["failures"] == ["testbed: RuntimeError: the controller died"]
    status = doc["experiments"]["migration"]["runs"]
    assert status["planned"] == 20 and status["complete"] == 2 and len(status["not_started"]) == 17
    [crashed] = status["unfinished"]
    raws = [json.loads(p.read_text()) for p in (tmp_path / "raw" / "migration").glob("*.json")]
    [raw] = [r for r in raws if not r["complete"]]
    assert raw["key"] == crashed and raw["error"] == "crashed: RuntimeError: the controller died"
    assert "**crashed, partial data**" in (tmp_path / "report.md").read_text()

    calls = fake_testbed(None)
    assert migration.run(args(tmp_path, resume=True), console) == 0
    assert len(calls) == 18  # the crashed case and the 17 never started
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["complete"] is True and doc["resumed"] is True and len(doc["rows"]) == 20
    assert doc["summary"]["completed"] is True and doc["summary"]["cases"] == 20
    assert doc["experiments"]["migration"]["runs"]["resumed"] == 2
    assert doc["plan"]["repeat"] == 2 and doc["command"].startswith("mecmig bench migration")
    assert doc["summary"]["path_mbps"] == 115.0 and doc["summary"]["path_measured"] == "this run's"
    stats = doc["statistics"]["migration"]
    cell = next(
        s
        for s in stats
        if s["metric"] == "downtime_ms" and s["strategy"] == "postcopy"
        and s["memory_bytes"] == 512 * 2**20
    )  # fmt: skip
    assert (cell["n"], cell["mean"], cell["sd"]) == (2, 615.0, pytest.approx(7.0711, abs=1e-4))
    assert cell["ci95"] == pytest.approx(12.706 * 7.0711 / 2**0.5, rel=1e-4)
    assert doc["files"] == ["migration.csv", "migration-statistics.csv"]
    for name in ("downtime.png", "total.png", "downtime_ci.png", "total_ci.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "migration.csv").read_text().splitlines()) == 21
    report = (tmp_path / "report.md").read_text()
    assert "## Statistics over the repetitions" in report and "## Beside the seeds" in report
    assert "| seed 004, Table 9 | downtime, HSS container, stop-and-copy | 15.01 ± 0.43 s" in report
    assert "| baseline, 64MiB, dirty 0 MB/s |" in report  # HSS's 173 MB: nearer 64 than 512 MiB
    assert "20 of 20 runs complete (2 read back by --resume)" in report


def test_the_total_time_and_cold_goals_are_judged_per_cell() -> None:
    """Post-copy's total time against 1.2 x bytes / the path's rate, cold's frozen window
    against 1.2 x the baseline's, each size and dirty rate on its own (issue 13's goals)."""
    plan = migration.Plan(("cold", "postcopy", "baseline"), (64 * 2**20, 512 * 2**20), (0,), 1)
    rows = [fake_row(case) for case in plan.cases()]
    goals = migration.summarize(rows, [], plan, path_mbps=115.0)["goals"]
    total = goals["postcopy_total"]
    small, large = total["per_cell"]
    # 64 MiB: 1,830 ms for 71.1 MB, bound 1.2 x 71.1 / 115 s = 742 ms; 512 MiB: bound 5,644 ms
    assert small["total_ms"] == 1830.0 and small["bound_ms"] == pytest.approx(742.0, abs=0.1)
    assert small["met"] is False and large["met"] is True and total["met"] is False
    from mecmig.bench.migration_text import goal_notes

    notes = goal_notes(rows, migration.summarize(rows, [], plan, path_mbps=115.0))
    assert (
        "at 64MiB the bytes need 618 ms on the path and the bound leaves 124 ms beside them; "
        "the pages took 1,500 ms and everything else" in notes
    ) and "at 512MiB" not in notes  # met there
    cold = goals["cold_vs_baseline"]
    assert [c["ratio"] for c in cold["per_cell"]] == [pytest.approx(1460 / 1960, abs=1e-3)] * 2
    assert cold["met"] is True
    unmeasured = migration.summarize(rows, [], plan, path_mbps=None)["goals"]
    assert (
        unmeasured["postcopy_total"]["met"] is None and not unmeasured["postcopy_total"]["per_cell"]
    )
    slow = [
        dict(r, frozen_ms=3000.0)
        if r["strategy"] == "cold" and r["memory_bytes"] == 512 * 2**20
        else r
        for r in rows
    ]
    per_cell = migration.summarize(slow, [], plan, path_mbps=115.0)["goals"]["cold_vs_baseline"]
    assert [c["met"] for c in per_cell["per_cell"]] == [True, False]
    assert (
        migration.summarize(slow, [], plan, path_mbps=115.0)["goals"]["cold_vs_baseline"]["met"]
        is False
    )


def test_a_path_rate_that_fails_leaves_the_cases_running(
    tmp_path: Path,
    fake_testbed: Callable[[int | None], list[Case]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The path's rate is the total-time goal's yardstick only: without it every case still
    runs, the run completes, the goal is not evaluated and says why."""
    from mecmig.bench.path_rate import PathRateError

    def broken(self: FakeBench) -> float:
        raise PathRateError("the stream mec1 -> mec2 failed (sender exit 1)")

    calls = fake_testbed(None)
    monkeypatch.setattr(FakeBench, "path_rate_bps", broken)
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    assert migration.run(args(tmp_path), console) == 0
    assert len(calls) == 20
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert summary["completed"] is True and summary["path_mbps"] is None
    assert summary["path_measured"] == (
        "not measured: the stream mec1 -> mec2 failed (sender exit 1)"
    )
    assert summary["goals"]["postcopy_total"]["met"] is None
    assert "the path's rate: not measured: the stream mec1 -> mec2 failed" in (
        (tmp_path / "report.md").read_text()
    )
    # resumed with nothing left to run: no testbed, the previous run's rate is not there either
    assert migration.run(args(tmp_path, resume=True), console) == 0
    assert len(calls) == 20
