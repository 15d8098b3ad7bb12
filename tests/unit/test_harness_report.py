"""mecmig.bench.harness_report: the seeds beside ours, statistics tables, runs, a plot."""

from __future__ import annotations

from pathlib import Path

from mecmig.bench.harness import Experiment, Metric, RunSpec, Session
from mecmig.bench.harness_report import (
    Comparison,
    plot_statistics,
    runs_section,
    seed_table,
    statistics_table,
    stats_text,
)
from mecmig.bench.harness_stats import describe
from mecmig.bench.report import new_figure, save_figure
from mecmig.bench.seed_figures import SEED000_DOWNTIME, SEED004_DOWNTIME, SEED004_REPOINT

EXP = Experiment(
    name="x",
    scenario="s.yaml",
    workload="w",
    sweep={"rate": (1, 2)},
    repetitions=3,
    metrics=(Metric("ms", "time", "ms"),),
)


def filled(out: Path) -> Session:
    s = Session(out, command="c", started_at="t", quick=False)
    run = s.add(EXP)
    from mecmig.bench.harness import RunRecord

    for spec in run.specs[:5]:  # the last run never ran
        row = {"ms": 10.0 * spec["rate"] + spec.repetition}
        run.records[spec.key] = RunRecord(spec, complete=True, started_at="t", row=row)
    crashed = RunSpec.of(3, rate=2)
    run.records[crashed.key] = RunRecord(crashed, complete=False, started_at="t")
    return s


def test_seed_table_prints_their_number_beside_ours() -> None:
    ours = describe([1100.0, 1200.0, 1300.0]).scaled(0.001)
    text = seed_table(
        [
            Comparison(SEED000_DOWNTIME[2], ours, "precopy, 512MiB"),
            Comparison(SEED004_DOWNTIME[1], None, "not measured"),
            Comparison(SEED004_REPOINT[0], describe([0.003]), "switch-over"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].startswith("| seed (table) | their case |") and len(lines) == 5
    assert (
        "seed 000, Table I" in lines[2] and "1.189 ± 0.037 s (sd 0.049, CV 0.041, n=10)" in lines[2]
    )
    assert "1.2 ± 0.25 s (CV 0.083, n=3)" in lines[2] and lines[2].endswith("| 1 |")
    assert "seed 004, Table 9" in lines[3] and "2.3 ± 0.15 s (CV 0.07, n=5)" in lines[3]
    assert "| - | not measured | - |" in lines[3]
    assert "0.528 s (n=5, no spread given) |" in lines[4] and "0.003 s (n=1)" in lines[4]
    assert lines[4].endswith("| 0.0057 |")
    assert stats_text(None) == "-"


def test_statistics_table_and_runs_section(tmp_path: Path) -> None:
    s = filled(tmp_path)
    [run] = s.experiments
    table = statistics_table(run, "ms", cell=lambda name, v: f"{v} Mbit/s")
    lines = table.splitlines()
    assert lines[0] == "| rate | n | mean (ms) | sd | 95 % CI | CV | median | min – max |"
    assert lines[2].startswith("| 1 Mbit/s | 3 | 12 | 1 | ±2.48 [9.516, 14.48] | 0.083 | 12 |")
    assert lines[3].startswith("| 2 Mbit/s | 2 | 21.5 | 0.7071 | ±6.35 [")
    text = runs_section(s, ["x.csv", "x-statistics.csv"])
    assert "5 of 6 runs complete" in text and "raw JSON per run in `raw/x/`" in text
    assert "**crashed, partial data**: `rate=2,repetition=3`" in text
    assert "**This run is incomplete**" in text and "report: `x.csv`, `x-statistics.csv`." in text


def test_plot_statistics_draws_error_bars(tmp_path: Path) -> None:
    s = filled(tmp_path)
    fig, [ax] = new_figure()
    plot_statistics(ax, s.experiments[0].statistics(), metric="ms", x="rate")
    ax.set_xlabel("rate (Mbit/s)")
    ax.set_ylabel("time (ms)")
    ax.legend()
    [bars] = ax.containers
    line = bars.lines[0]
    assert line is not None
    assert list(line.get_xdata()) == [1.0, 2.0] and list(line.get_ydata()) == [12.0, 21.5]
    path = save_figure(fig, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
