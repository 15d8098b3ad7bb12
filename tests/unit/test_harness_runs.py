"""mecmig.bench.harness with a fake run function (no network): raw JSON per run, resume, crashed
runs marked, summary.json while running, CSVs and statistics."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mecmig.bench import progress
from mecmig.bench.harness import Experiment, Metric, RunSpec, Session, flatten

EXP = Experiment(
    name="fake",
    scenario="scenarios/edge.yaml",
    workload="a function of its parameters",
    sweep={"size": (1, 2), "mode": ("a", "b")},
    repetitions=3,
    metrics=(Metric("value_ms", "value", "ms"),),
    fixed={"hold": "auto"},
)


class Crash(Exception):
    pass


def fake(calls: list[str], crash_at: str | None = None) -> Callable[..., dict[str, Any]]:
    def run(spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        on_phase("measuring")
        calls.append(spec.key)
        if spec.key == crash_at:
            raise Crash("the testbed went away")
        value = spec["size"] * 100 + spec.repetition + (10 if spec["mode"] == "b" else 0)
        return {"size": spec["size"], "mode": spec["mode"], "value_ms": float(value),
                "phases": {"x": 1.5}, "gaps": [[1, 2]]}  # fmt: skip

    return run


def session(out: Path, resume: bool = False, exp: Experiment = EXP) -> tuple[Session, Any]:
    s = Session(out, command="mecmig bench fake", started_at="t0", quick=False, resume=resume)
    return s, s.add(exp)


def execute(run: Any, fn: Callable[..., dict[str, Any]], **kw: Any) -> None:
    with progress(Console(file=open("/dev/null", "w"))) as bars:  # noqa: SIM115
        run.track(bars, part="fake")
        run.execute(fn, **kw)


def raw_docs(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in (out / "raw" / "fake").glob("*.json")}


def test_runs_in_sweep_order_with_repetitions_innermost() -> None:
    keys = [(s["size"], s["mode"], s.repetition) for s in EXP.runs()]
    assert keys[:4] == [(1, "a", 1), (1, "a", 2), (1, "a", 3), (1, "b", 1)]
    assert len(keys) == 12 and len({s.key for s in EXP.runs()}) == 12
    spec = RunSpec.of(2, strategy="cold", memory_bytes=64)
    assert spec.key == 'strategy="cold",memory_bytes=64,repetition=2'
    assert spec.file_name == "strategy=_cold___memory_bytes=64__repetition=2.json"


def test_a_full_run_writes_raw_json_csv_and_statistics(tmp_path: Path) -> None:
    calls: list[str] = []
    s, run = session(tmp_path)
    execute(run, fake(calls))
    assert len(calls) == 12 and run.complete and s.complete
    docs = raw_docs(tmp_path)
    assert len(docs) == 12
    doc = docs[RunSpec.of(2, size=1, mode="b").file_name]
    assert doc["complete"] is True and doc["ok"] is True and doc["fixed"] == {"hold": "auto"}
    assert doc["params"] == {"size": 1, "mode": "b"} and doc["row"]["value_ms"] == 112.0
    assert doc["experiment"] == "fake" and doc["finished_at"] is not None

    interim = json.loads((tmp_path / "summary.json").read_text())
    assert interim["complete"] is False and len(interim["rows"]) == 12  # until the bench writes

    stats = {(x["size"], x["mode"]): x for x in run.statistics()}
    assert set(stats) == {(1, "a"), (1, "b"), (2, "a"), (2, "b")}
    cell = stats[(2, "b")]  # 211, 212, 213
    assert cell["metric"] == "value_ms" and cell["unit"] == "ms" and cell["n"] == 3
    assert cell["mean"] == 212.0 and cell["sd"] == 1.0 and cell["ci95"] == pytest.approx(2.4843)
    assert run.stats_of("value_ms", mode="a").n == 6

    files = s.write_files()
    assert files == ["fake.csv", "fake-statistics.csv"]
    lines = list(csv.DictReader((tmp_path / "fake.csv").open()))
    assert len(lines) == 12 and lines[0]["phases.x"] == "1.5" and lines[0]["gaps"] == "[[1, 2]]"
    assert lines[0]["complete"] == "True" and lines[0]["repetition"] == "1"
    stat_lines = list(csv.DictReader((tmp_path / "fake-statistics.csv").open()))
    assert {line["metric"] for line in stat_lines} == {"value_ms"} and len(stat_lines) == 4

    fields = s.summary_fields()
    assert fields["complete"] is True and fields["experiments"]["fake"]["runs"]["planned"] == 12
    assert fields["statistics"]["fake"] == run.statistics()


def test_a_crash_leaves_the_run_marked_and_resume_runs_only_what_is_missing(tmp_path: Path) -> None:
    crash = RunSpec.of(2, size=1, mode="b").key
    calls: list[str] = []
    s, run = session(tmp_path)
    with pytest.raises(Crash):
        execute(run, fake(calls, crash_at=crash))
    assert len(calls) == 5 and not run.complete and not s.complete
    doc = raw_docs(tmp_path)[RunSpec.of(2, size=1, mode="b").file_name]
    assert doc["complete"] is False and doc["ok"] is None and doc["row"] is None
    assert doc["error"] == "crashed: Crash: the testbed went away"
    assert run.unfinished() == [crash] and len(run.not_started()) == 7
    interim = json.loads((tmp_path / "summary.json").read_text())
    assert interim["complete"] is False and len(interim["rows"]) == 4
    assert interim["experiments"]["fake"]["runs"]["unfinished"] == [crash]
    assert s.summary_fields()["complete"] is False

    calls2: list[str] = []
    s2, run2 = session(tmp_path, resume=True)
    assert len(run2.resumed()) == 4 and len(run2.pending()) == 8
    execute(run2, fake(calls2))
    assert calls2[0] == crash and len(calls2) == 8 and set(calls).isdisjoint(calls2[1:])
    assert run2.complete and s2.summary_fields()["experiments"]["fake"]["runs"]["resumed"] == 4
    assert [r["value_ms"] for r in run2.rows()][:6] == [101, 102, 103, 111, 112, 113]
    assert all(d["complete"] for d in raw_docs(tmp_path).values())

    calls3: list[str] = []
    _, run3 = session(tmp_path, resume=True)
    execute(run3, fake(calls3))
    assert calls3 == [] and run3.complete and len(run3.rows()) == 12


def test_failed_runs_are_run_again_on_resume_and_stop_ends_the_experiment(tmp_path: Path) -> None:
    def failing(spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        row = fake([])(spec, on_phase)
        if spec["mode"] == "b":
            row["error"] = "refused"
        return row

    s, run = session(tmp_path)
    execute(run, failing, stop=lambda row: row["size"] == 2 and "error" in row)
    assert len(run.rows()) == 10 and len(run.not_started()) == 2 and not run.complete
    assert {x["mode"] for x in run.statistics()} == {"a"}  # failed rows are not measured
    calls: list[str] = []
    _, run2 = session(tmp_path, resume=True)
    assert len(run2.pending()) == 6  # 4 failed (mode b), 2 never run
    execute(run2, fake(calls))
    assert run2.complete and len(calls) == 6


def test_resume_ignores_other_settings_and_a_fresh_run_starts_empty(tmp_path: Path) -> None:
    _, run = session(tmp_path)
    execute(run, fake([]))
    other = Experiment(**{**EXP.__dict__, "fixed": {"hold": "never"}})
    _, run2 = session(tmp_path, resume=True, exp=other)
    assert run2.resumed() == [] and len(run2.pending()) == 12
    (tmp_path / "raw" / "fake" / "junk.json").write_text("{not json")
    _, run3 = session(tmp_path, resume=True)
    assert len(run3.resumed()) == 12
    _, run4 = session(tmp_path)  # no --resume: the raw data of before is gone
    assert run4.resumed() == [] and list((tmp_path / "raw" / "fake").glob("*.json")) == []


def test_summary_is_marked_incomplete_before_the_first_run(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"complete": true, "rows": ["of before"]}')
    s, run = session(tmp_path)
    with progress(Console(file=open("/dev/null", "w"))) as bars:  # noqa: SIM115
        run.track(bars, part="fake")
        doc = json.loads((tmp_path / "summary.json").read_text())
        assert doc["complete"] is False and doc["rows"] == []
        assert len(doc["experiments"]["fake"]["runs"]["not_started"]) == 12


def test_ctrl_c_is_a_crash_too(tmp_path: Path) -> None:
    def interrupted(spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        raise KeyboardInterrupt

    _, run = session(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        execute(run, interrupted)
    [doc] = raw_docs(tmp_path).values()
    assert doc["complete"] is False and doc["error"].startswith("crashed: KeyboardInterrupt")


def test_experiment_checks() -> None:
    s = Session(Path("/nonexistent"), command="x", started_at="t", quick=True, resume=True)
    with pytest.raises(ValueError, match="same parameters"):
        s.add(EXP, specs=[RunSpec.of(1, a=1), RunSpec.of(1, a=1)])
    s.add(EXP)
    with pytest.raises(ValueError, match="two experiments"):
        s.add(EXP)
    assert flatten({"a": {"b": {"c": 1}}, "d": (1, 2), "e": None}) == {
        "a.b.c": 1,
        "d": "[1, 2]",
        "e": None,
    }
