"""The experiment harness every benchmark runs on: named experiments, resumable runs, raw data.

An `Experiment` names what is measured: its scenario, its workload, a parameter sweep and a number
of repetitions; each point of the sweep x repetition is a `RunSpec`. A `Session` is one invocation
of a benchmark into its output directory; it holds the benchmark's experiments (`Session.add`)
and keeps, as the runs go:

- `raw/<experiment>/<run>.json`: one file per run, written with `"complete": false` before the run
  starts and again, complete, with the run's row when it ends. A run that crashed (an exception,
  Ctrl-C, a killed process) keeps `"complete": false`;
- `summary.json`: rewritten after every run with `"complete": false` and the rows so far, until
  the benchmark writes its own at the end with `Session.summary_fields()` beside its fields
  (`complete` is true only when every planned run completed);
- at the end (`Session.write_files`): `<experiment>.csv` (a line per run, nested fields flattened
  with dots) and `<experiment>-statistics.csv` (mean, sd, 95 % CI, CV per sweep point and metric).

With `resume=True` the runs that a previous invocation completed without error (same experiment,
same fixed settings) are read back from `raw/` and not run again; without it `raw/<experiment>/`
starts empty. The statistics are `mecmig.bench.harness_stats`'s, the report's tables and plots
`mecmig.bench.harness_report`'s.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID

from mecmig.bench.harness_stats import Stats, describe
from mecmig.bench.report import SUMMARY_FILE, utc_now

RAW_DIR = "raw"
Row = dict[str, Any]
RunFunction = Callable[["RunSpec", Callable[[str], None]], Row]


@dataclass(frozen=True)
class RunSpec:
    """One run: a point of the sweep (ordered parameters, JSON scalars) and its repetition."""

    params: tuple[tuple[str, Any], ...]
    repetition: int = 1

    @classmethod
    def of(cls, repetition: int = 1, **params: Any) -> RunSpec:
        return cls(tuple(params.items()), repetition)

    def __getitem__(self, name: str) -> Any:
        return dict(self.params)[name]

    def get(self, name: str) -> Any:
        """The parameter's value, None when this run has no such parameter."""
        return dict(self.params).get(name)

    @property
    def key(self) -> str:
        """Unique within an experiment, stable across invocations: 'a=1,b=x,repetition=2'."""
        words = [f"{k}={json.dumps(v)}" for k, v in self.params]
        return ",".join([*words, f"repetition={self.repetition}"])

    @property
    def file_name(self) -> str:
        """The raw JSON's file name: the key with anything but [A-Za-z0-9.=_-] as '_'."""
        return re.sub(r"[^A-Za-z0-9.=_-]+", "_", self.key.replace(",", "__")) + ".json"


@dataclass(frozen=True)
class Metric:
    """A row field the statistics summarize, with its name and unit for people."""

    key: str
    label: str
    unit: str


@dataclass(frozen=True)
class Experiment:
    """What a benchmark measures, named: where, with what, over which sweep, how many times."""

    name: str
    scenario: str
    workload: str
    sweep: Mapping[str, Sequence[Any]]  # parameter -> its values, in running order
    repetitions: int = 1
    metrics: tuple[Metric, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)  # shared by every run; resume checks
    group_by: tuple[str, ...] | None = None  # statistics per these parameters (default: all)
    measured: Callable[[Row], bool] | None = None  # rows the statistics count (default: no error)

    def runs(self) -> list[RunSpec]:
        """Every sweep point in order (the last parameter varies fastest), repetitions innermost."""
        names = list(self.sweep)
        points = itertools.product(*(self.sweep[n] for n in names))
        return [
            RunSpec(tuple(zip(names, values, strict=True)), rep)
            for values in points
            for rep in range(1, self.repetitions + 1)
        ]

    def groups(self) -> tuple[str, ...]:
        return tuple(self.sweep) if self.group_by is None else self.group_by

    def counts(self, row: Row) -> bool:
        return "error" not in row if self.measured is None else self.measured(row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scenario": self.scenario,
            "workload": self.workload,
            "sweep": {k: list(v) for k, v in self.sweep.items()},
            "repetitions": self.repetitions,
            "fixed": dict(self.fixed),
            "metrics": [{"key": m.key, "label": m.label, "unit": m.unit} for m in self.metrics],
            "statistics_by": list(self.groups()),
        }


@dataclass
class RunRecord:
    """A run as its raw JSON holds it."""

    spec: RunSpec
    complete: bool
    started_at: str
    row: Row | None = None
    finished_at: str | None = None
    seconds: float | None = None
    error: str | None = None  # why it did not complete (crashed)
    resumed: bool = False  # read back from a previous invocation

    @property
    def ok(self) -> bool:
        """Complete, and its row reports no error."""
        return self.complete and self.row is not None and "error" not in self.row

    def to_dict(self, experiment: Experiment) -> dict[str, Any]:
        return {
            "experiment": experiment.name,
            "key": self.spec.key,
            "params": dict(self.spec.params),
            "repetition": self.spec.repetition,
            "fixed": dict(experiment.fixed),
            "complete": self.complete,
            "ok": self.ok if self.complete else None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            **({"error": self.error} if self.error else {}),
            "row": self.row,
        }


def _write_json(path: Path, doc: Any) -> None:
    """Write `doc` to `path` atomically (a crash leaves the old file or the new one, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


class ExperimentRun:
    """One experiment within a session: its planned runs, what is done, running the rest."""

    def __init__(self, session: Session, experiment: Experiment, specs: Sequence[RunSpec]) -> None:
        keys = [s.key for s in specs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"experiment {experiment.name}: two runs with the same parameters")
        self.session = session
        self.experiment = experiment
        self.specs = list(specs)
        self.raw_dir = session.out / RAW_DIR / experiment.name
        self.records: dict[str, RunRecord] = {}
        self.bars: Progress | None = None
        self.task: TaskID | None = None
        if session.resume:
            self._load()
        else:
            for old in self.raw_dir.glob("*.json"):
                old.unlink()

    # ---------------------------------------------------------------- what is done

    def _load(self) -> None:
        """Read back the completed, error-free runs of this experiment (same fixed settings)."""
        wanted = {s.key: s for s in self.specs}
        for path in sorted(self.raw_dir.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            spec = wanted.get(str(doc.get("key"))) if isinstance(doc, dict) else None
            if spec is None or doc.get("experiment") != self.experiment.name:
                continue
            if doc.get("fixed") != json.loads(json.dumps(dict(self.experiment.fixed))):
                continue
            record = RunRecord(
                spec=spec,
                complete=bool(doc.get("complete")),
                started_at=str(doc.get("started_at")),
                row=doc.get("row"),
                finished_at=doc.get("finished_at"),
                seconds=doc.get("seconds"),
                resumed=True,
            )
            if record.ok:
                self.records[spec.key] = record

    def pending(self) -> list[RunSpec]:
        """The planned runs still to run, in order: all but those that completed without error
        (read back by resume, or run by this invocation)."""
        return [s for s in self.specs if not (s.key in self.records and self.records[s.key].ok)]

    def resumed(self) -> list[RunSpec]:
        return [s for s in self.specs if s.key in self.records and self.records[s.key].resumed]

    def done(self) -> list[tuple[RunSpec, Row]]:
        """The completed runs and their rows, in the planned order."""
        out = []
        for s in self.specs:
            record = self.records.get(s.key)
            if record is not None and record.complete and record.row is not None:
                out.append((s, record.row))
        return out

    def rows(self) -> list[Row]:
        """The rows of the completed runs, in the planned order."""
        return [row for _, row in self.done()]

    def unfinished(self) -> list[str]:
        """Keys of the runs that started and did not complete (crashed)."""
        return [
            s.key for s in self.specs if s.key in self.records and not self.records[s.key].complete
        ]

    def not_started(self) -> list[str]:
        return [s.key for s in self.specs if s.key not in self.records]

    @property
    def complete(self) -> bool:
        return all(s.key in self.records and self.records[s.key].complete for s in self.specs)

    # ---------------------------------------------------------------- running

    def track(self, bars: Progress, part: str, description: str = "starting") -> TaskID:
        """The progress bar of this experiment (the runs read back count as done). With runs
        left to do, summary.json says from now on that this invocation has not completed (a
        process killed while its testbed starts leaves no stale summary claiming otherwise)."""
        if self.pending():
            self.session.checkpoint()
        self.bars = bars
        self.task = bars.add_task(
            description, total=len(self.specs), completed=len(self.resumed()), part=part
        )
        if self.resumed():
            bars.console.print(
                f"{part}: {len(self.resumed())} of {len(self.specs)} runs read back from "
                f"{self.raw_dir} (--resume)",
                highlight=False,
            )
        return self.task

    def execute(
        self,
        run: RunFunction,
        *,
        label: Callable[[RunSpec], str] = lambda s: s.key,
        line: Callable[[RunSpec, Row], str] | None = None,
        stop: Callable[[Row], bool] | None = None,
    ) -> None:
        """Run the pending runs in order: `run(spec, on_phase)` returns the run's row ('error' in
        it: the run failed but completed). Each run's raw JSON is written incomplete before and
        complete after it, and summary.json rewritten. An exception out of `run` marks the run
        crashed (incomplete, with the error) and goes on up; `stop(row)` true ends the
        experiment after that run (the rest stay not started)."""
        if self.bars is None or self.task is None:
            raise RuntimeError("track() the experiment on a progress display first")
        bars, task = self.bars, self.task
        for spec in self.pending():
            record = RunRecord(spec=spec, complete=False, started_at=utc_now())
            self.records[spec.key] = record
            self._save(record)
            t0 = time.monotonic()

            def on_phase(phase: str, spec: RunSpec = spec) -> None:
                bars.update(task, description=f"{label(spec)}: {phase}")

            on_phase("starting")
            try:
                row = run(spec, on_phase)
            except BaseException as exc:
                record.error = f"crashed: {type(exc).__name__}: {exc}"
                record.seconds = round(time.monotonic() - t0, 1)
                self._save(record)
                self.session.checkpoint()
                raise
            record.row, record.complete = row, True
            record.finished_at = utc_now()
            record.seconds = round(time.monotonic() - t0, 1)
            self._save(record)
            self.session.checkpoint()
            if line is not None:
                bars.console.print(line(spec, row), highlight=False)
            bars.advance(task)
            if stop is not None and stop(row):
                break

    def _save(self, record: RunRecord) -> None:
        _write_json(self.raw_dir / record.spec.file_name, record.to_dict(self.experiment))

    # ---------------------------------------------------------------- results

    def statistics(self) -> list[dict[str, Any]]:
        """Per statistics group and metric: the group's parameters, the metric, its unit and
        `Stats.to_dict()` over the measured rows (groups without a value are left out)."""
        exp = self.experiment
        groups: dict[tuple[Any, ...], list[Row]] = {}
        for s, row in self.done():
            if exp.counts(row):
                groups.setdefault(tuple(s.get(name) for name in exp.groups()), []).append(row)
        out = []
        for key, rows in groups.items():
            for metric in exp.metrics:
                values = [r[metric.key] for r in rows if r.get(metric.key) is not None]
                if values:
                    out.append(
                        {
                            **dict(zip(exp.groups(), key, strict=True)),
                            "metric": metric.key,
                            "unit": metric.unit,
                            **describe(values).to_dict(),
                        }
                    )
        return out

    def stats_of(self, metric: str, **params: Any) -> Stats | None:
        """The statistics of `metric` over the measured runs whose parameters include `params`
        (any grouping, e.g. every repetition of one cell)."""
        values = [
            row[metric]
            for s, row in self.done()
            if self.experiment.counts(row)
            and all(s.get(k) == v for k, v in params.items())
            and row.get(metric) is not None
        ]
        return describe(values) if values else None

    def status(self) -> dict[str, Any]:
        return {
            **self.experiment.to_dict(),
            "runs": {
                "planned": len(self.specs),
                "complete": sum(
                    1 for s in self.specs if s.key in self.records and self.records[s.key].complete
                ),
                "resumed": len(self.resumed()),
                "unfinished": self.unfinished(),
                "not_started": self.not_started(),
            },
            "complete": self.complete,
            "raw": str(self.raw_dir.relative_to(self.session.out)),
        }

    def write_csv(self) -> list[str]:
        """`<name>.csv` (a line per planned run that started) and `<name>-statistics.csv`."""
        lines = []
        for s in self.specs:
            record = self.records.get(s.key)
            if record is None:
                continue
            lines.append(
                {
                    **dict(s.params),
                    "repetition": s.repetition,
                    "complete": record.complete,
                    "ok": record.ok if record.complete else None,
                    "seconds": record.seconds,
                    **flatten(record.row or {}),
                }
            )
        name = self.experiment.name
        _write_csv(self.session.out / f"{name}.csv", lines)
        _write_csv(self.session.out / f"{name}-statistics.csv", self.statistics())
        return [f"{name}.csv", f"{name}-statistics.csv"]


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted columns ({'a': {'b': 1}} -> {'a.b': 1}); lists as JSON text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def _write_csv(path: Path, lines: Iterable[Mapping[str, Any]]) -> None:
    lines = list(lines)
    columns = list(dict.fromkeys(k for line in lines for k in line))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for line in lines:
            writer.writerow({k: "" if v is None else v for k, v in line.items()})


class Session:
    """One invocation of a benchmark into `out`: its experiments and the interim summary.json."""

    def __init__(
        self, out: Path, *, command: str, started_at: str, quick: bool, resume: bool = False
    ) -> None:
        self.out = out
        self.command = command
        self.started_at = started_at
        self.quick = quick
        self.resume = resume
        self.experiments: list[ExperimentRun] = []

    def add(self, experiment: Experiment, specs: Sequence[RunSpec] | None = None) -> ExperimentRun:
        """Plan `experiment` (its own runs unless `specs` says which, in which order)."""
        if any(e.experiment.name == experiment.name for e in self.experiments):
            raise ValueError(f"two experiments named {experiment.name}")
        run = ExperimentRun(self, experiment, experiment.runs() if specs is None else specs)
        self.experiments.append(run)
        return run

    def rows(self) -> list[Row]:
        """Every experiment's rows, in the order they were added."""
        return [row for e in self.experiments for row in e.rows()]

    @property
    def complete(self) -> bool:
        return all(e.complete for e in self.experiments)

    def checkpoint(self) -> None:
        """summary.json while the benchmark runs (or after it crashed): incomplete, rows so far."""
        _write_json(
            self.out / SUMMARY_FILE,
            {
                "command": self.command,
                "started_at": self.started_at,
                "quick": self.quick,
                "complete": False,
                "note": "written while the benchmark ran: it did not finish, or is still running "
                "(runs not complete are listed per experiment; --resume runs them)",
                "experiments": {e.experiment.name: e.status() for e in self.experiments},
                "rows": self.rows(),
            },
        )

    def write_files(self) -> list[str]:
        """Each experiment's CSV and statistics CSV; the files' names."""
        return [name for e in self.experiments for name in e.write_csv()]

    def summary_fields(self) -> dict[str, Any]:
        """What the harness adds to a benchmark's summary.json (beside its own fields)."""
        return {
            "complete": self.complete,
            "resumed": self.resume,
            "experiments": {e.experiment.name: e.status() for e in self.experiments},
            "statistics": {e.experiment.name: e.statistics() for e in self.experiments},
        }

    def print_status(self, console: Console) -> None:
        """A line per experiment that did not complete: what is left, and how to go on."""
        for e in self.experiments:
            if not e.complete:
                console.print(
                    f"[yellow]{e.experiment.name}: {len(e.unfinished())} run(s) crashed, "
                    f"{len(e.not_started())} not started[/yellow] (--resume runs them)",
                    highlight=False,
                )
