"""The harness's parts of the reservation benchmark's outputs: the switch-over's statistics over
the moves (mean, sd, 95 % CI, CV), seed 004's network re-pointing beside it (report.md and
switchover_vs_seed.png), and the runs (resumed, crashed)."""

from __future__ import annotations

from pathlib import Path

from mecmig.bench.harness import ExperimentRun, Session
from mecmig.bench.harness_report import Comparison, runs_section, seed_table, statistics_table
from mecmig.bench.report import new_figure, save_figure
from mecmig.bench.seed_figures import SEED004_REPOINT

PLOT = "switchover_vs_seed.png"


def comparisons(moves: ExperimentRun) -> list[Comparison]:
    """Seed 004's "VPN Setting" (its pre-copy's network re-pointing, inside the downtime) beside
    our relocation switch-over, in seconds."""
    ours = moves.stats_of("switchover_ms")
    what = "relocation switch-over, every move (first flow-mod -> last barrier reply)"
    return [
        Comparison(f, None if ours is None else ours.scaled(0.001), what) for f in SEED004_REPOINT
    ]


def statistics_markdown(session: Session, moves: ExperimentRun, files: list[str]) -> str:
    """## Switch-over statistics, ## Beside the seeds, ## Experiments and runs."""
    text = [
        "## Switch-over statistics\n",
        "Over every relocation measured: mean, sample standard deviation, 95 % confidence "
        "interval of the mean (Student's t, n − 1 degrees of freedom) and coefficient of "
        "variation, as seeds 000 and 004 report theirs. The meters' transfers run once per "
        "setting: their rows (and a one-value line each in `meters-statistics.csv`) are above.",
        statistics_table(moves, "switchover_ms", digits=3),
        "\n## Beside the seeds\n",
        "No seed measures a meter or a TCP goodput under a reservation. Seed 004 times its "
        "pre-copy's network re-pointing (\"VPN Setting\": the destination takes over the source's "
        "OpenVPN address, Table 7, means of 5 runs, no spread given), the step that our "
        "controller's relocation does with flow-mods; seed 000 does not time its traffic "
        "steering (ONOS) apart.\n",
        seed_table(comparisons(moves)),
        f"\n![seed 004's re-pointing and our switch-over]({PLOT})\n",
        runs_section(session, files),
    ]
    return "\n\n".join(block.strip("\n") for block in text if block) + "\n"


def plot_switchover_vs_seed(moves: ExperimentRun, out: Path) -> list[str]:
    """switchover_vs_seed.png: seed 004's three re-pointing times and our mean switch-over with
    its 95 % CI, on a log scale (they differ by orders of magnitude)."""
    fig, [ax] = new_figure(width=6.5, height=4.2)
    seeds = SEED004_REPOINT
    labels = [f"seed 004\n{f.subject.split()[0]}" for f in seeds]
    theirs = [f.mean * 1000 for f in seeds]
    bars = ax.bar(labels, theirs, color="tab:gray", label="seed 004, Table 7")
    ax.bar_label(bars, [f"{v:.0f} ms" for v in theirs], fontsize=8)
    ours = moves.stats_of("switchover_ms")
    low = min(theirs)
    if ours is not None:
        bars = ax.bar(
            [f"mecmig\n({ours.n} moves)"],
            [ours.mean],
            yerr=[0.0 if ours.ci95 is None else ours.ci95],
            capsize=6,
            color="tab:blue",
            label="ours: mean, 95 % CI",
        )
        ax.bar_label(bars, [f"{ours.mean:.2g} ms"], fontsize=8, padding=8)
        low = min(low, ours.min)
    ax.set_yscale("log")
    ax.set_ylim(bottom=low / 4)
    ax.set_ylabel("time to re-point the service's traffic (ms, log scale)")
    ax.set_title("Network re-pointing in a migration: seed 004 vs our relocation", fontsize=10)
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8)
    save_figure(fig, out / PLOT)
    return [PLOT]
