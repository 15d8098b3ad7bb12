"""`mecmig bench migration`: client-observed downtime, total time and bytes of a live migration,
per strategy, memory size and dirty rate, against seed 004's runc checkpoint -> copy -> restore.

One testbed (scenarios/edge.yaml: controller, Mininet, a site agent per MEC host) for the whole
run. Each case deploys the memhog instance `counter` at mec1 with its memory size and dirty rate,
probes it from ue1 over one TCP connection (a PING every 5 ms), migrates it to mec2, and tears it
down (see `mecmig.bench.migration_cases`). Outputs: summary.json, downtime.png, total.png and
report.md (`mecmig.bench.migration_report`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mecmig.bench import ROOT, environment_problem, progress, shown
from mecmig.bench.harness import Experiment, Metric, RunSpec, Session
from mecmig.bench.migration_cases import (
    BUDGET_MS,
    DESTINATION,
    EDGE,
    INSTANCE,
    MIB,
    PROBE_INTERVAL_MS,
    SOURCE,
    STRATEGIES,
    UE,
    Case,
    rate_text,
    size_text,
)
from mecmig.bench.migration_peer import peer_ratios
from mecmig.bench.path_rate import PathRateError
from mecmig.bench.report import command_line, utc_now, write_summary
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE

DEFAULT_OUT = ROOT / "results" / "migration"
MB = 1_000_000
GOAL_SIZE, GOAL_RATE = 512 * MIB, 10 * MB  # the goals' container: 512 MiB dirtying 10 MB/s
POSTCOPY_GOAL_MS = 100.0
RATIO_GOAL = 10.0
TOTAL_GOAL = 1.2  # post-copy's total time, at most this x the bytes moved / the path's rate
COLD_GOAL = 1.2  # cold's frozen window, at most this x the baseline's (bare runc + CRIU)


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    strategies: tuple[str, ...]
    sizes: tuple[int, ...]  # bytes
    dirty_rates: tuple[int, ...]  # bytes/s
    repeat: int
    hold: str = "auto"  # whether the engine holds the service's traffic while frozen

    def cases(self) -> list[Case]:
        """Smallest size first; per size and dirty rate every strategy, `repeat` times."""
        return [
            Case(strategy, size, rate, n)
            for size in self.sizes
            for rate in self.dirty_rates
            for n in range(1, self.repeat + 1)
            for strategy in self.strategies
        ]


FULL = Plan(STRATEGIES, (64 * MIB, 256 * MIB, 512 * MIB), (0, 10 * MB), 1)
QUICK = Plan(STRATEGIES, (64 * MIB,), (10 * MB,), 1)


def plan_from(args: argparse.Namespace) -> Plan:
    """--quick or the full matrix, with --strategies/--sizes/--dirty-rates/--repeat on top."""
    base = QUICK if args.quick else FULL
    return Plan(
        strategies=tuple(dict.fromkeys(args.strategies)) if args.strategies else base.strategies,
        sizes=tuple(sorted(set(args.sizes))) if args.sizes else base.sizes,
        dirty_rates=tuple(sorted(set(args.dirty_rates))) if args.dirty_rates else base.dirty_rates,
        repeat=args.repeat,
        hold=getattr(args, "hold", "auto"),
    )


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, downtime.png, total.png, report.md into args.out."""
    from mecmig.bench.migration_cases import bench_testbed
    from mecmig.bench.migration_plots import plot, plot_ci, print_results
    from mecmig.bench.migration_profile import plot_profile, profile_fields, profile_section
    from mecmig.bench.migration_report import report_markdown
    from mecmig.bench.migration_stats import statistics_markdown
    from mecmig.bench.report import write_report
    from topology.scenario import load_scenario

    if args.repeat < 1:
        console.print("[red]--repeat must be at least 1[/red]")
        return EXIT_USAGE
    problem = environment_problem([load_scenario(EDGE)], tools=("ovs-vsctl", "runc"), criu=True)
    if problem:
        console.print(f"[red]environment not ready[/red]: {problem}", highlight=False)
        return EXIT_ENVIRONMENT
    plan = plan_from(args)
    out: Path = args.out
    started, t0 = utc_now(), time.monotonic()
    command = command_line(command_words(args))
    session = Session(
        out,
        command=command,
        started_at=started,
        quick=bool(args.quick),
        resume=bool(getattr(args, "resume", False)),
    )
    runs = session.add(experiment(plan), [spec_of(case) for case in plan.cases()])
    crashed: list[str] = []
    path_mbps = _previous_path_mbps(out) if session.resume else None
    path_note = "a previous run's (--resume)" if path_mbps is not None else "not measured"
    with progress(console) as bars:
        runs.track(bars, part="migrations", description="starting the testbed")
        if runs.pending():
            try:
                with bench_testbed() as bench:
                    bench.hold = plan.hold
                    try:  # the total-time goal's yardstick, on the idle testbed
                        path_mbps = round(bench.path_rate_bps() / MB, 2)
                        path_note = "this run's"
                    except PathRateError as exc:  # no case depends on it: they still run
                        path_note = f"not measured: {exc}"
                        console.print(f"[yellow]the path's rate[/yellow]: {path_note}")

                    def run_one(spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
                        t_case = time.monotonic()
                        row = bench.run_case(case_of(spec), on_phase)
                        row.update(profile_fields(bench.last_record))
                        row["case_seconds"] = round(time.monotonic() - t_case, 1)
                        return row

                    runs.execute(
                        run_one,
                        label=lambda spec: case_of(spec).label,
                        line=lambda spec, row: case_line(case_of(spec), row),
                    )
            except Exception as exc:  # noqa: BLE001 - the testbed itself failed: report what we have
                crashed.append(f"testbed: {type(exc).__name__}: {exc}")
    duration = round(time.monotonic() - t0, 1)
    rows = runs.rows()
    failures = [f"{case_of(s).label}: {r['error']}" for s, r in runs.done() if "error" in r]
    failures += crashed
    summary = summarize(rows, failures, plan, path_mbps, path_note)
    files = session.write_files()
    write_summary(
        out,
        command=command,
        started_at=started,
        quick=bool(args.quick),
        rows=rows,
        summary=summary,
        extra={
            "duration_s": duration,
            "scenario": shown(EDGE),
            "plan": {
                "strategies": list(plan.strategies),
                "memory_bytes": list(plan.sizes),
                "dirty_rates_bps": [r * 8 for r in plan.dirty_rates],
                "repeat": plan.repeat,
                "hold": plan.hold,
            },
            **session.summary_fields(),
            "files": files,
        },
    )
    plot(rows, out)
    plots = plot_ci(runs.statistics(), out, plan.repeat)
    profile_png = plot_profile(rows, out, list(plan.strategies))
    plots += [profile_png] if profile_png else []
    text = report_markdown(rows, summary, command, started, duration, plan, args.quick)
    text += "\n" + profile_section(rows, list(plan.strategies))
    write_report(out, text + "\n" + statistics_markdown(session, runs, plan, files + plots))
    print_results(console, rows, summary)
    console.print(
        f"results in {shown(out)}/ (summary.json, downtime.png, total.png, "
        f"{', '.join(plots + files)}, report.md, raw/); {duration} s",
        highlight=False,
    )
    session.print_status(console)
    for failure in failures:
        console.print(f"[red]failed[/red]: {failure}", highlight=False)
    return EXIT_FAILED if failures or not session.complete else EXIT_OK


def experiment(plan: Plan) -> Experiment:
    """The migration benchmark as a named experiment: its sweep, repetitions and metrics."""
    return Experiment(
        name="migration",
        scenario=shown(EDGE),
        workload=f"memhog instance '{INSTANCE}' at {SOURCE}, probed from {UE} over one TCP "
        f"connection (a PING every {PROBE_INTERVAL_MS:g} ms), migrated to {DESTINATION}",
        sweep={
            "memory_bytes": plan.sizes,
            "dirty_rate_bps": tuple(r * 8 for r in plan.dirty_rates),
            "strategy": plan.strategies,
        },
        repetitions=plan.repeat,
        metrics=(
            Metric("downtime_ms", "client-observed downtime", "ms"),
            Metric("frozen_ms", "frozen window", "ms"),
            Metric("total_ms", "total migration time", "ms"),
            Metric("bytes_transferred", "bytes on the wire", "B"),
        ),
        fixed={"hold": plan.hold, "budget_ms": BUDGET_MS},
        measured=is_measured,
    )


def spec_of(case: Case) -> RunSpec:
    return RunSpec.of(
        case.repeat,
        memory_bytes=case.memory_bytes,
        dirty_rate_bps=case.dirty_rate_bps,
        strategy=case.strategy,
    )


def case_of(spec: RunSpec) -> Case:
    return Case(
        spec["strategy"], spec["memory_bytes"], spec["dirty_rate_bps"] // 8, spec.repetition
    )


def case_line(case: Case, row: dict[str, Any]) -> str:
    """The progress line of a finished case: its headline numbers."""
    if row.get("downtime_ms") is None or row.get("total_ms") is None:
        return f"{case.label}: [red]FAILED[/red] {row.get('error', '')}"
    intact = "state intact" if row["state_intact"] else "[red]STATE NOT INTACT[/red]"
    err = f" [red]{row['error']}[/red]" if "error" in row else ""
    return (
        f"{case.label}: downtime {row['downtime_ms']:8.0f} ms, frozen {row['frozen_ms'] or 0:7.0f}"
        f" ms, total {row['total_ms']:7.0f} ms, {row['bytes_transferred'] / MIB:7.1f} MiB, "
        f"rounds {row['rounds']}, {intact}{err}"
    )


# ------------------------------------------------------------------------------ summary


def is_measured(row: dict[str, Any]) -> bool:
    """A migration that completed and was probed."""
    return (
        row.get("outcome") == "done" and row.get("downtime_ms") is not None and "error" not in row
    )


def measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of migrations that completed and were probed."""
    return [r for r in rows if is_measured(r)]


def median_of(rows: list[dict[str, Any]], strategy: str, size: int, rate: int, key: str) -> Any:
    """The median of `key` over the repeats of one cell (None if none was measured)."""
    values = [
        r[key]
        for r in measured(rows)
        if r["strategy"] == strategy
        and r["memory_bytes"] == size
        and r["dirty_rate_bps"] == rate * 8
        and r.get(key) is not None
    ]
    return statistics.median(values) if values else None


def phase_ms(rows: list[dict[str, Any]], strategy: str, size: int, rate: int, name: str) -> Any:
    values = [
        r["phases"][name]
        for r in measured(rows)
        if r["strategy"] == strategy
        and r["memory_bytes"] == size
        and r["dirty_rate_bps"] == rate * 8
        and r["phases"].get(name) is not None
    ]
    return statistics.median(values) if values else None


def predump_estimate(row: dict[str, Any]) -> dict[str, Any] | None:
    """A pre-copy row's downtime had its final dump been an incremental one (CRIU pre-dumps on a
    kernel with soft-dirty tracking): the measured downtime minus the full final dump plus a dump
    of only the final delta (the dump time scaled by final delta bytes / full image bytes).
    Only for rows that ran without pre-dumps (mode full-dump-delta): the others measured it."""
    dump = row["phases"].get("freeze_dump")
    image, delta = row.get("image_bytes"), row.get("final_transfer_bytes")
    if row["strategy"] != "precopy" or row.get("mode") != "full-dump-delta":
        return None
    if dump is None or not image or delta is None:
        return None
    delta_dump = dump * min(1.0, delta / image)
    return {
        "full_dump_ms": dump,
        "delta_dump_ms": round(delta_dump, 1),
        "downtime_ms": round(max(0.0, row["downtime_ms"] - dump + delta_dump), 1),
        "frozen_ms": round(max(0.0, row["frozen_ms"] - dump + delta_dump), 1),
    }


def _previous_path_mbps(out: Path) -> float | None:
    """The path's rate a resumed run measured before (its summary.json), if it did."""
    try:
        value = json.loads((out / "summary.json").read_text())["summary"]["path_mbps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def summarize(
    rows: list[dict[str, Any]],
    failures: list[str],
    plan: Plan,
    path_mbps: float | None = None,
    path_note: str = "this run's",
) -> dict[str, Any]:
    """The goals (at 512 MiB / 10 MB/s where they name it; the total-time and cold goals per
    cell), per-cell medians, failures. `path_mbps`: the path's rate (MB/s), one TCP stream
    between the MEC hosts, measured on the idle testbed before the cases; `path_note`: whose
    measurement it is ("this run's", a resumed run's) or why there is none."""
    for row in measured(rows):
        est = predump_estimate(row)
        if est is not None:
            row["predump_estimate"] = est
    cells = []
    for size in plan.sizes:
        for rate in plan.dirty_rates:
            cell: dict[str, Any] = {"memory_bytes": size, "dirty_rate_bps": rate * 8}
            for s in plan.strategies:
                cell[s] = {
                    k: median_of(rows, s, size, rate, k)
                    for k in ("downtime_ms", "total_ms", "frozen_ms", "bytes_transferred")
                }
            cells.append(cell)
    post = median_of(rows, "postcopy", GOAL_SIZE, GOAL_RATE, "downtime_ms")
    base = median_of(rows, "baseline", GOAL_SIZE, GOAL_RATE, "downtime_ms")
    ratio = base / post if base is not None and post else None
    goal1 = {
        "goal": f"post-copy client-observed downtime <= {POSTCOPY_GOAL_MS:g} ms "
        "(512 MiB dirtying 10 MB/s)",
        "postcopy_downtime_ms": post,
        "met": None if post is None else post <= POSTCOPY_GOAL_MS,
    }
    goal2 = {
        "goal": f"post-copy downtime >= {RATIO_GOAL:g}x lower than the baseline "
        "(runc checkpoint -> copy -> restore) on the same container (512 MiB, 10 MB/s)",
        "postcopy_downtime_ms": post,
        "baseline_downtime_ms": base,
        "ratio": None if ratio is None else round(ratio, 2),
        "met": None if ratio is None else ratio >= RATIO_GOAL,
    }
    return {
        "goals": {
            "postcopy_downtime": goal1,
            "postcopy_vs_baseline": goal2,
            "precopy_vs_baseline": _goal3(rows, plan),
            "postcopy_total": _total_goal(rows, plan, path_mbps, path_note),
            "cold_vs_baseline": _cold_goal(rows, plan),
        },
        "path_mbps": path_mbps,
        "path_measured": path_note,
        "vs_podman": peer_ratios(rows, plan.sizes, plan.dirty_rates),
        "cells": cells,
        "cases": len(rows),
        "measured": len(measured(rows)),
        "state_not_intact": [
            f"{r['strategy']} {size_text(r['memory_bytes'])} {r['dirty_rate_bps'] / 8e6:g} MB/s"
            for r in measured(rows)
            if not r["state_intact"]
        ],
        "failures": failures,
        "completed": not failures,
    }


def _per_cell(
    plan: Plan, judge: Callable[[int, int], dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """A goal's cells: `judge(size, dirty rate)` for each of the plan's, with the cell's memory
    and dirty rate; the cells it has no measurement for (None) left out."""
    return [
        {"memory_bytes": size, "dirty_rate_bps": rate * 8, **cell}
        for size in plan.sizes
        for rate in plan.dirty_rates
        if (cell := judge(size, rate)) is not None
    ]


def _all_met(per_cell: list[dict[str, Any]]) -> bool | None:
    """Whether every cell met its goal; None if none was measured."""
    return None if not per_cell else all(c["met"] for c in per_cell)


def _goal3(rows: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Pre-copy's downtime gain over the baseline vs the network transfer time it moved out of
    the frozen window (baseline's in-freeze transfer minus pre-copy's final, in-freeze one)."""

    def judge(size: int, rate: int) -> dict[str, Any] | None:
        pre = median_of(rows, "precopy", size, rate, "downtime_ms")
        base = median_of(rows, "baseline", size, rate, "downtime_ms")
        base_tx = phase_ms(rows, "baseline", size, rate, "transfer")
        pre_tx = phase_ms(rows, "precopy", size, rate, "transfer")
        if pre is None or base is None or base_tx is None or pre_tx is None:
            return None
        moved, gain = base_tx - pre_tx, base - pre
        frozen_gain = _gain(rows, size, rate, lambda r: r["frozen_ms"])
        est_gain = _gain(rows, size, rate, _predump_downtime)
        return {
            "precopy_downtime_ms": pre,
            "baseline_downtime_ms": base,
            "gain_ms": round(gain, 1),
            "baseline_transfer_ms": base_tx,
            "precopy_final_transfer_ms": pre_tx,
            "transfer_moved_out_ms": round(moved, 1),
            "met": gain >= moved,
            # the same test on the frozen windows (server side, no TCP back-off) and
            # with pre-copy's downtime estimated with pre-dumps (see predump_estimate)
            "frozen_gain_ms": frozen_gain,
            "met_on_frozen_window": None if frozen_gain is None else frozen_gain >= moved,
            "predump_gain_ms": est_gain,
            "met_with_predumps": None if est_gain is None else est_gain >= moved,
        }

    per_cell = _per_cell(plan, judge)
    headline = next(
        (
            c
            for c in per_cell
            if c["memory_bytes"] == GOAL_SIZE and c["dirty_rate_bps"] == GOAL_RATE * 8
        ),
        None,
    )
    return {
        "goal": "pre-copy downtime below the baseline by at least the network transfer time it "
        "moves out of the frozen window (baseline's transfer minus pre-copy's final transfer)",
        "per_cell": per_cell,
        "cells_met": sum(c["met"] for c in per_cell),
        "headline": headline,
        "met_at_512MiB_10MBps": None if headline is None else headline["met"],
        "met": _all_met(per_cell),
    }


def _total_goal(
    rows: list[dict[str, Any]], plan: Plan, path_mbps: float | None, path_note: str
) -> dict[str, Any]:
    """Post-copy's total time against the time its bytes need on the path, per cell: at most
    TOTAL_GOAL x bytes moved / the path's rate (medians over the repeats)."""

    def judge(size: int, rate: int) -> dict[str, Any] | None:
        total = median_of(rows, "postcopy", size, rate, "total_ms")
        moved = median_of(rows, "postcopy", size, rate, "bytes_transferred")
        if total is None or moved is None or not path_mbps:
            return None
        bound = TOTAL_GOAL * moved / (path_mbps * MB) * 1000
        return {
            "total_ms": total,
            "bytes_transferred": moved,
            "bound_ms": round(bound, 1),
            "met": total <= bound,
        }

    per_cell = _per_cell(plan, judge)
    return {
        "goal": f"post-copy total time <= {TOTAL_GOAL:g} x bytes moved / the path's rate (one "
        "TCP stream between the MEC hosts, measured before the cases)",
        "path_mbps": path_mbps,
        "path_measured": path_note,
        "per_cell": per_cell,
        "met": _all_met(per_cell),
    }


def _cold_goal(rows: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Cold's frozen window against the baseline's (runc checkpoint -> copy -> restore, the bare
    runc + CRIU stop-and-copy) in the same run, per cell: at most COLD_GOAL x. Frozen windows,
    not the client's downtime: nothing holds the baseline's traffic, so its client also waits
    for TCP's retransmission."""

    def judge(size: int, rate: int) -> dict[str, Any] | None:
        cold = median_of(rows, "cold", size, rate, "frozen_ms")
        base = median_of(rows, "baseline", size, rate, "frozen_ms")
        if cold is None or not base:
            return None
        return {
            "cold_frozen_ms": cold,
            "baseline_frozen_ms": base,
            "ratio": round(cold / base, 3),
            "met": cold <= COLD_GOAL * base,
        }

    per_cell = _per_cell(plan, judge)
    return {
        "goal": f"cold's frozen window <= {COLD_GOAL:g} x the baseline's (bare runc checkpoint "
        "-> copy -> runc restore) in the same run",
        "per_cell": per_cell,
        "met": _all_met(per_cell),
    }


def _predump_downtime(row: dict[str, Any]) -> float | None:
    if row["strategy"] == "baseline":
        return float(row["downtime_ms"])
    est = row.get("predump_estimate")
    return None if est is None else float(est["downtime_ms"])


def _gain(
    rows: list[dict[str, Any]], size: int, rate: int, value: Callable[[dict[str, Any]], Any]
) -> float | None:
    """median(value) of the baseline minus median(value) of pre-copy in one cell."""
    medians = []
    for strategy in ("baseline", "precopy"):
        values = [
            v
            for r in measured(rows)
            if r["strategy"] == strategy
            and r["memory_bytes"] == size
            and r["dirty_rate_bps"] == rate * 8
            and (v := value(r)) is not None
        ]
        if not values:
            return None
        medians.append(float(statistics.median(values)))
    return round(medians[0] - medians[1], 1)


def command_words(args: argparse.Namespace) -> list[str]:
    """The command line that reproduces this run (options only when not the default)."""
    words = ["mecmig", "bench", "migration"]
    if args.quick:
        words.append("--quick")
    if args.out.resolve() != DEFAULT_OUT:
        words += ["--out", str(args.out)]
    if args.strategies:
        words += ["--strategies", *dict.fromkeys(args.strategies)]
    if args.sizes:
        words += ["--sizes", *(size_text(s) for s in sorted(set(args.sizes)))]
    if args.dirty_rates:
        words += ["--dirty-rates", *(rate_text(r) for r in sorted(set(args.dirty_rates)))]
    if args.repeat != 1:
        words += ["--repeat", str(args.repeat)]
    return words
