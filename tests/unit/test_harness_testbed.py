"""mecmig.bench.harness_testbed with a fake testbed (no network): the testbed starts only when
runs are pending, a run that crashes is kept incomplete and the testbed's failure reported,
summary.json holds the benchmark's fields and the harness's, and the exit code says so."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mecmig.bench import ROOT, harness_testbed, report
from mecmig.bench.harness import RunSpec
from mecmig.bench.harness_testbed import BenchRun, finish, run_on_testbed
from mecmig.cli import EXIT_FAILED, EXIT_OK
from tests.unit.test_harness_runs import EXP, Crash, fake

CHAINS = ROOT / "scenarios" / "chains.yaml"
CRASH = RunSpec.of(2, size=1, mode="b")  # the fifth run of EXP


@pytest.fixture(autouse=True)
def _no_host_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "host_facts", lambda: {"kernel": "fake"})


class Bed:
    def __init__(self, crash_at: str | None) -> None:
        self.run = fake([], crash_at)


def fake_testbed(
    log: list[str], *, crash_at: str | None = None, fail_start: bool = False
) -> Callable[[], Any]:
    @contextmanager
    def testbed() -> Iterator[Bed]:
        log.append("start")
        if fail_start:
            raise Crash("no switch")
        try:
            yield Bed(crash_at)
        finally:
            log.append("stop")

    return testbed


def run_one(bed: Bed, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
    row = bed.run(spec, on_phase)
    row["repetition"] = spec.repetition
    return row


def bench(out: Path, testbed: Callable[[], Any], resume: bool = False) -> BenchRun:
    args = argparse.Namespace(out=out, quick=True, resume=resume)
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    return run_on_testbed(
        args, console, EXP, ["mecmig", "bench", "fake"], testbed, run_one,
        part="fakes", label=lambda s: s.key, line=lambda s, r: f"{s.key}: {r['value_ms']}",
    )  # fmt: skip


def close(done: BenchRun, made: list[list[str]]) -> int:
    def plots() -> list[str]:
        (done.session.out / "fake.png").write_bytes(b"")
        return ["fake.png"]

    def report_text(files: list[str]) -> str:
        made.append(files)
        return "# fake\n"

    rows = done.runs.rows()
    failures = [f"{s.key}: {r['error']}" for s, r in done.runs.done() if "error" in r]
    return finish(
        done, Console(file=open("/dev/null", "w")), rows=rows,  # noqa: SIM115
        summary={"n": len(rows)}, extra={"scenario": "scenarios/chains.yaml", "plan": {"x": 1}},
        plots=plots, report=report_text, failures=failures,
    )  # fmt: skip


def test_all_runs_on_one_testbed_and_the_summary_holds_every_field(tmp_path: Path) -> None:
    log: list[str] = []
    done = bench(tmp_path, fake_testbed(log))
    assert log == ["start", "stop"] and done.crashed == [] and done.runs.complete
    assert done.session.command == "mecmig bench fake" and done.session.quick
    made: list[list[str]] = []
    assert close(done, made) == EXIT_OK
    assert made == [["fake.csv", "fake-statistics.csv", "fake.png"]]
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert list(doc)[:5] == ["command", "started_at", "host", "quick", "duration_s"]
    assert list(doc)[5:] == ["scenario", "plan", "complete", "resumed", "experiments",
                             "statistics", "files", "rows", "summary"]  # fmt: skip
    assert doc["complete"] is True and doc["summary"] == {"n": 12} and len(doc["rows"]) == 12
    assert doc["files"] == ["fake.csv", "fake-statistics.csv"]
    assert (tmp_path / "report.md").read_text() == "# fake\n"


def test_a_crashed_run_is_kept_incomplete_and_resume_runs_the_rest(tmp_path: Path) -> None:
    log: list[str] = []
    done = bench(tmp_path, fake_testbed(log, crash_at=CRASH.key))
    assert log == ["start", "stop"]  # the testbed was stopped after the crash
    assert done.crashed == ["testbed: Crash: the testbed went away"]
    assert len(done.runs.rows()) == 4 and done.runs.unfinished() == [CRASH.key]
    assert close(done, []) == EXIT_FAILED
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["complete"] is False and len(doc["rows"]) == 4
    assert doc["experiments"]["fake"]["runs"]["unfinished"] == [CRASH.key]

    log2: list[str] = []
    again = bench(tmp_path, fake_testbed(log2), resume=True)
    assert log2 == ["start", "stop"] and again.runs.complete and len(again.runs.resumed()) == 4
    assert close(again, []) == EXIT_OK

    log3: list[str] = []
    nothing_left = bench(tmp_path, fake_testbed(log3), resume=True)
    assert log3 == [] and nothing_left.runs.complete  # no testbed when no run is pending


def test_a_testbed_that_does_not_start_is_reported(tmp_path: Path) -> None:
    log: list[str] = []
    done = bench(tmp_path, fake_testbed(log, fail_start=True))
    assert log == ["start"] and done.crashed == ["testbed: Crash: no switch"]
    assert len(done.runs.not_started()) == 12
    assert close(done, []) == EXIT_FAILED
    assert json.loads((tmp_path / "summary.json").read_text())["complete"] is False


def test_environment_ready_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness_testbed, "environment_problem", lambda *a, **k: "not root")
    lines: list[str] = []
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    monkeypatch.setattr(console, "print", lambda text, **k: lines.append(text))
    assert not harness_testbed.environment_ready(console, CHAINS)
    assert lines == ["[red]environment not ready[/red]: not root"]
    monkeypatch.setattr(harness_testbed, "environment_problem", lambda *a, **k: None)
    assert harness_testbed.environment_ready(console, CHAINS)
