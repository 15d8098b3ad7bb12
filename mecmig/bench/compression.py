"""`mecmig bench compression`: does zstd on a migration's copy pay, and is the choice ever slower
than the plain copy? (issue 13, item 5)

A compressible memory image (code and data) and a random one are sent with `agent.transfer`
over a veth pair into a network namespace of its own (`mecmig.bench.compression_link`), once
shaped to 100 Mbit/s (tc TBF: this kernel has no netem) and once unshaped, in three modes,
side by side in time: plain (`none`), `zstd`, and `chosen` (what `migration.compression.choose`
picks from a fresh `agent.compression.measure` sample and the path's rate, as the migration
engine does). Rows (one per mode and run): path, image, mode, seconds, bytes_on_wire,
bytes_total, ratio (wire / total), link_bps, chosen (the choice's mode in that run, on every
row), why. The summary gives, per path and image, the mean times and whether the chosen mode
was slower than the plain copy (beyond `TOLERANCE`). Outputs: summary.json, raw/,
compression.csv and its statistics, compression.png and report.md. Needs root.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mecmig.bench import ROOT
from mecmig.bench.harness import Experiment, Metric, RunSpec
from mecmig.bench.harness_testbed import bench_words, finish, harness_options, run_on_testbed
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_USAGE

if TYPE_CHECKING:
    from mecmig.bench.compression_link import CompressionBed

DEFAULT_OUT = ROOT / "results" / "compression"
MiB = 1 << 20
PATHS: dict[str, int | None] = {"100mbit": 100, "unshaped": None}  # TBF rate in Mbit/s
IMAGES = ("compressible", "random")
MODES = ("none", "zstd", "chosen")
TOLERANCE = 0.05  # the chosen mode is "slower" when its mean exceeds the plain one's by more


@dataclass(frozen=True)
class Plan:
    size_mib: int
    repeat: int


FULL = Plan(64, 5)
QUICK = Plan(16, 3)  # an unshaped copy takes ~0.1 s: one run of each is noise


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(size_mib=base.size_mib, repeat=args.repeat or base.repeat)


def experiment(plan: Plan) -> Experiment:
    return Experiment(
        name="compression",
        scenario="a veth pair into a namespace of its own (mmz-tx -> mmz-rx0), tc TBF 100 "
        "Mbit/s on the sender or unshaped",
        workload=f"two {plan.size_mib} MiB memory images (pages-1.img): this machine's "
        "libraries and Python sources end to end (compressible), os.urandom (random); one "
        "agent.transfer copy per run",
        sweep={"path": list(PATHS), "image": list(IMAGES)},
        repetitions=plan.repeat,
        metrics=(
            Metric("none_s", "the plain copy's time", "s"),
            Metric("zstd_s", "the zstd copy's time", "s"),
            Metric("chosen_s", "the chosen mode's copy time", "s"),
            Metric("chosen_over_none", "chosen / plain", "x"),
        ),
        fixed={"size_mib": plan.size_mib, "paths": dict(PATHS), "tolerance": TOLERANCE},
    )


def _mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per path and image: each mode's mean and median seconds and bytes on the wire, the modes
    the choice took, and whether the chosen copies were slower than the plain ones: their mean
    above the plain mean by more than `TOLERANCE` (`slower`), with the ratio of the means and
    the worst pair (chosen / plain of the same repetition)."""
    cells = []
    for path in PATHS:
        for image in IMAGES:
            mine = [r for r in rows if r["path"] == path and r["image"] == image]
            if not mine:
                continue
            by = {m: [r for r in mine if r["mode"] == m] for m in MODES}
            secs = {m: [float(r["seconds"]) for r in by[m]] for m in MODES}
            means = {m: _mean(secs[m]) for m in MODES}
            none, chosen = means["none"], means["chosen"]
            ratio = chosen / none if none and chosen is not None else None
            pairs = [
                c["seconds"] / n["seconds"]
                for c in by["chosen"]
                for n in by["none"]
                if c["repetition"] == n["repetition"]
            ]
            cells.append(
                {
                    "path": path,
                    "image": image,
                    "link_bps": mine[0]["link_bps"],
                    "seconds_mean": means,
                    "seconds_median": {
                        m: statistics.median(secs[m]) if secs[m] else None for m in MODES
                    },
                    "bytes_on_wire_mean": {
                        m: _mean([float(r["bytes_on_wire"]) for r in by[m]]) for m in MODES
                    },
                    "bytes_total": mine[0]["bytes_total"],
                    "chosen_modes": sorted({r["chosen"] for r in mine}),
                    "chosen_ran": sorted({r["compress"] for r in by["chosen"]}),
                    "chosen_over_none": None if ratio is None else round(ratio, 4),
                    "zstd_over_none": None
                    if not none or means["zstd"] is None
                    else round(means["zstd"] / none, 4),
                    "worst_pair": round(max(pairs), 4) if pairs else None,
                    "slower": None if ratio is None else ratio > 1 + TOLERANCE,
                    "runs": {m: len(secs[m]) for m in MODES},
                }
            )
    judged = [c["slower"] for c in cells if c["slower"] is not None]
    return {
        "tolerance": TOLERANCE,
        "cells": cells,
        "never_slower": None if not judged else not any(judged),
    }


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, the plot and report.md into `args.out`."""
    import os

    from mecmig.bench.compression_link import compression_bed
    from mecmig.bench.compression_report import plot_compression, report_markdown

    if args.repeat is not None and not 1 <= args.repeat <= 50:
        console.print("[red]--repeat takes 1 to 50[/red]")
        return EXIT_USAGE
    if os.geteuid() != 0:
        console.print("[red]environment not ready[/red]: the benchmark needs root (netns, tc)")
        return EXIT_ENVIRONMENT
    plan = plan_from(args)

    @contextmanager
    def bed() -> Iterator[CompressionBed]:
        with compression_bed(plan.size_mib * MiB, dict(PATHS)) as b:
            yield b

    def run_one(
        b: CompressionBed, spec: RunSpec, on_phase: Callable[[str], None]
    ) -> dict[str, Any]:
        row = b.run(spec["path"], spec["image"], on_phase)
        for r in [row, *row["copies"]]:
            r["repetition"] = spec.repetition
        return row

    done = run_on_testbed(
        args, console, experiment(plan), bench_words("compression", args), bed, run_one,
        part="copies", label=label, line=line,
    )  # fmt: skip
    rows = [c for r in done.runs.rows() if "error" not in r for c in r["copies"]]
    summary = summarize(rows)
    return finish(
        done, console, rows=rows, summary=summary,
        extra={"plan": asdict(plan)},
        plots=lambda: [plot_compression(summary, rows, args.out)],
        report=lambda files: report_markdown(rows, summary, plan, done, files),
        failures=[f"{label(s)}: {r['error']}" for s, r in done.runs.done() if "error" in r],
    )  # fmt: skip


def label(spec: RunSpec) -> str:
    return f"{spec['path']} {spec['image']} #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    wire = {c["mode"]: c["bytes_on_wire"] / MiB for c in row["copies"]}
    return (
        f"{label(spec)}: none {row['none_s']:.3f} s, zstd {row['zstd_s']:.3f} s "
        f"({wire['zstd']:.1f} MiB), chosen {row['chosen']} {row['chosen_s']:.3f} s"
    )


def add_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench compression`'s command line."""
    b = bench.add_parser(
        "compression",
        help="zstd on a migration's copy: plain, zstd and the engine's choice, compressible "
        "and random memory, at 100 Mbit/s and unshaped",
        description="Copies a compressible (code and data) and a random 64 MiB memory image "
        "with the agents' transfer over a veth pair into a namespace of its own, shaped to "
        "100 Mbit/s (tc TBF) and unshaped: plain, zstd, and the mode migration.compression "
        "chooses from a sample of the image and the path's rate; 5 repetitions. Rows: path, "
        "image, mode, seconds, bytes_on_wire, bytes_total, ratio, link_bps, chosen. The report "
        "says per path and image whether the chosen mode was slower than the plain copy. "
        "Writes summary.json, compression.png, CSVs and report.md into --out. Exit 0 the run "
        "completed, 1 a run failed, 3 not root.",
    )
    harness_options(
        b, "compression", quick="16 MiB images, 3 runs each: about a minute",
        repeat="repetitions (default 5)",
    )  # fmt: skip
