"""The harness's sections of the migration benchmark's report.md: statistics over the repetitions
(mean, sd, 95 % CI, CV), the seeds' figures beside ours, and the runs (resumed, crashed)."""

from __future__ import annotations

import math

from mecmig.bench.harness import ExperimentRun, Session
from mecmig.bench.harness_report import Comparison, runs_section, seed_table, statistics_table
from mecmig.bench.migration import Plan
from mecmig.bench.migration_cases import size_text
from mecmig.bench.migration_text import rate_name
from mecmig.bench.seed_figures import (
    SEED000_DOWNTIME,
    SEED000_TOTAL,
    SEED004_DOWNTIME,
    SEED004_TOTAL,
    SeedFigure,
)

# the strategy of ours that does what a seed's method does
OURS = {"asynchronous SFC migration": "precopy", "stop-and-copy": "baseline", "pre-copy": "precopy"}
HEADERS = {"memory_bytes": "memory", "dirty_rate_bps": "dirty rate"}
SEEDS = (*SEED000_DOWNTIME, *SEED000_TOTAL, *SEED004_DOWNTIME, *SEED004_TOTAL)


def nearest_size(sizes: tuple[int, ...], size: int | None) -> int:
    """The memory size of the plan closest to `size` on a log scale (the largest if unknown)."""
    if size is None:
        return max(sizes)
    return min(sizes, key=lambda s: abs(math.log(s / size)))


def comparison(runs: ExperimentRun, plan: Plan, figure: SeedFigure) -> Comparison:
    """Our figure nearest to a seed's: the same kind of migration, the memory size closest to
    their container's, the lowest dirty rate measured (their services wrote little)."""
    strategy = OURS[figure.method]
    if figure.seed == "000" and "full bandwidth" not in figure.subject:
        return Comparison(figure, None, "a capped migration bandwidth: `mecmig bench patterns`")
    if strategy not in plan.strategies:
        return Comparison(figure, None, f"{strategy}: not in this run")
    size, rate = nearest_size(plan.sizes, figure.size_bytes), min(plan.dirty_rates)
    metric = "downtime_ms" if figure.quantity == "downtime" else "total_ms"
    ours = runs.stats_of(metric, strategy=strategy, memory_bytes=size, dirty_rate_bps=rate * 8)
    what = f"{strategy}, {size_text(size)}, dirty {rate_name(rate * 8)}"
    return Comparison(figure, None if ours is None else ours.scaled(0.001), what)


def statistics_markdown(session: Session, runs: ExperimentRun, plan: Plan, files: list[str]) -> str:
    """## Statistics over the repetitions, ## Beside the seeds, ## Experiments and runs."""

    def cell(name: str, value: object) -> str:
        if name == "memory_bytes" and isinstance(value, int):
            return size_text(value)
        if name == "dirty_rate_bps" and isinstance(value, int):
            return rate_name(value)
        return str(value)

    one = plan.repeat == 1
    text = [
        "## Statistics over the repetitions\n",
        f"Per memory size x dirty rate x strategy, over its {plan.repeat} repetition(s) "
        "(migrations that completed and were probed): mean, sample standard deviation, 95 % "
        "confidence interval of the mean (Student's t with n − 1 degrees of freedom) and "
        "coefficient of variation (sd / mean), as seeds 000 and 004 report theirs."
        + (" With one repetition there is no spread: `--repeat N` gives it." if one else ""),
        "\n### Client-observed downtime\n",
        statistics_table(runs, "downtime_ms", cell, headers=HEADERS),
        "\n### Total migration time\n",
        statistics_table(runs, "total_ms", cell, headers=HEADERS),
        "\n![mean downtime and its 95 % CI](downtime_ci.png)\n",
        "![mean total time and its 95 % CI](total_ci.png)\n",
        "\n## Beside the seeds\n",
        "Their figures as their tables print them (seed 000: 10 runs, its sd a population sd, "
        "its CI Student's t; seed 004: 5 runs, its CI the normal approximation, no sd printed), "
        "ours as mean ± 95 % CI (Student's t), CV and n, in seconds, for our migration that does "
        "what theirs does (seed 004's stop-and-copy: our baseline, runc checkpoint → copy → "
        "restore, which they drove through the Docker CLI; pre-copy: our precopy, without "
        "soft-dirty pre-dumps here; seed 000's asynchronous chain migration, per container: our "
        "precopy of one container) at the memory size nearest to their container's (seed 004: "
        "the data moved, their Table 11; seed 000: 470 and 573 MB) and our lowest dirty rate. "
        "Their hardware, network (seed 000: 3 GB/s, seed 004: 10 Gbit/s) and services differ; "
        f"ours: one 1 Gbit/s emulated path, memhog ({size_text(min(plan.sizes))} to "
        f"{size_text(max(plan.sizes))}). The ratio is ours / theirs on the means.\n",
        seed_table([comparison(runs, plan, f) for f in SEEDS]),
        runs_section(session, files),
    ]
    return "\n\n".join(block.strip("\n") for block in text if block) + "\n"
