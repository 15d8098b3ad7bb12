"""The figures and console table of `mecmig bench migration`: downtime.png, total.png."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mecmig.bench.migration import POSTCOPY_GOAL_MS, measured
from mecmig.bench.migration_cases import BUDGET_MS, MIB, size_text
from mecmig.bench.migration_text import mib, num, rate_name
from mecmig.bench.report import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = {
    "cold": "tab:blue",
    "precopy": "tab:orange",
    "postcopy": "tab:green",
    "hybrid": "tab:purple",
    "baseline": "black",
    "podman": "tab:red",
    "podman-zstd": "tab:brown",
}


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """downtime.png and total.png: vs memory size, a line per strategy, a panel per dirty rate."""
    _plot_metric(
        rows,
        out / "downtime.png",
        "downtime_ms",
        "client-observed downtime (log scale)",
        "Live migration mec1 → mec2: client-observed downtime (probe on ue1, 5 ms PINGs)",
        goals=True,
    )
    _plot_metric(
        rows,
        out / "total.png",
        "total_ms",
        "total migration time (log scale)",
        "Live migration mec1 → mec2: total migration time (first phase → clean-up)",
        goals=False,
    )


def _plot_metric(
    rows: list[dict[str, Any]], path: Path, key: str, ylabel: str, title: str, goals: bool
) -> None:
    done = measured(rows)
    rates = sorted({r["dirty_rate_bps"] for r in rows}) or [0]
    fig, axes = new_figure(ncols=len(rates), width=5.6, height=4.6)
    strategies = [s for s in COLORS if any(r["strategy"] == s for r in rows)]
    sizes = sorted({r["memory_bytes"] for r in rows})
    for ax, rate in zip(axes, rates, strict=True):
        for s in strategies:
            mine = [r for r in done if r["strategy"] == s and r["dirty_rate_bps"] == rate]
            _line(ax, mine, key, s, COLORS[s], "--" if s == "baseline" else "-")
            if goals and s == "precopy":
                est = [
                    {**r, key: r["predump_estimate"][key]} for r in mine if "predump_estimate" in r
                ]
                _line(ax, est, key, "precopy, estimated with pre-dumps", COLORS[s], ":", dots=False)
        if goals:
            ax.axhline(BUDGET_MS, color="tab:gray", lw=0.8, ls="-.", label="budget 1000 ms")
            ax.axhline(POSTCOPY_GOAL_MS, color="tab:red", lw=0.8, ls="--", label="goal 100 ms")
        _axes_of(ax, sizes, rate)
    values = [max(r[key], 1.0) for r in done if r.get(key) is not None]
    if goals:
        values += [POSTCOPY_GOAL_MS, BUDGET_MS]
    if values:
        low, high = min(values) / 1.5, max(values) * 1.5
        ticks = [m * 10**e for e in range(7) for m in (1, 2, 5) if low <= m * 10**e <= high]
        for ax in axes:  # one scale for every panel, labelled 1-2-5
            ax.set_ylim(low, high)
            ax.set_yticks(ticks, [_duration(t) for t in ticks])
            ax.set_yticks([], minor=True)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def _axes_of(ax: Axes, sizes: list[int], rate: int) -> None:
    """A panel's axes: log time, memory sizes on a log-2 scale, the dirty rate as its title."""
    ax.set_yscale("log")
    if sizes:
        ax.set_xscale("log", base=2)
        ax.set_xticks([s / MIB for s in sizes], [size_text(s) for s in sizes])
        ax.set_xticks([], minor=True)
        ax.set_xlim(sizes[0] / MIB / 1.3, sizes[-1] / MIB * 1.3)
    ax.set_xlabel("container memory (memhog --size)")
    ax.set_title(f"dirty rate {rate_name(rate)}")
    ax.grid(alpha=0.3, which="both")


def _duration(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


def _line(
    ax: Axes,
    rows: list[dict[str, Any]],
    key: str,
    label: str,
    color: str,
    style: str,
    dots: bool = True,
) -> None:
    by_size: dict[int, list[float]] = {}
    for r in rows:
        if r.get(key) is not None:
            by_size.setdefault(r["memory_bytes"], []).append(max(r[key], 1.0))
    if not by_size:
        return
    xs = sorted(by_size)
    ys = [statistics.median(by_size[x]) for x in xs]
    ax.plot([x / MIB for x in xs], ys, color=color, ls=style, marker="o" if dots else None,
            lw=1.8, label=label)  # fmt: skip
    if dots and any(len(v) > 1 for v in by_size.values()):
        for x, values in by_size.items():
            ax.scatter([x / MIB] * len(values), values, color=color, s=10, alpha=0.4)


def print_results(console: Console, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    table = Table(title="client-observed downtime / total (ms); state intact")
    for col in ("memory", "dirty rate", "strategy", "downtime", "total", "MiB", "state"):
        table.add_column(col, justify="left" if col in ("strategy", "state") else "right")
    for r in sorted(
        measured(rows),
        key=lambda r: (r["dirty_rate_bps"], r["memory_bytes"], list(COLORS).index(r["strategy"])),
    ):
        table.add_row(
            size_text(r["memory_bytes"]),
            rate_name(r["dirty_rate_bps"]),
            r["strategy"],
            num(r["downtime_ms"]),
            num(r["total_ms"]),
            mib(r["bytes_transferred"]),
            "[green]yes[/green]" if r["state_intact"] else "[red]no[/red]",
        )
    console.print(table)
    for goal in summary["goals"].values():
        met = goal["met"]
        mark = (
            "[yellow]not evaluated[/yellow]"
            if met is None
            else ("[green]met[/green]" if met else "[red]not met[/red]")
        )
        console.print(f"goal: {goal['goal']}: {mark}", highlight=False)


def plot_ci(stats: list[dict[str, Any]], out: Path, repeat: int) -> list[str]:
    """downtime_ci.png and total_ci.png: the mean and its 95 % confidence interval (error bars)
    over the repetitions vs memory size, a line per strategy, a panel per dirty rate."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    from mecmig.bench.harness_report import plot_statistics

    seconds = FuncFormatter(lambda value, _: f"{value:g}")
    names = []
    for key, what in (("downtime_ms", "client-observed downtime"), ("total_ms", "total time")):
        mine = [s for s in stats if s["metric"] == key]
        rates = sorted({s["dirty_rate_bps"] for s in mine}) or [0]
        sizes = sorted({s["memory_bytes"] for s in mine})
        fig, axes = new_figure(ncols=len(rates), width=5.6, height=4.6)
        for ax, rate in zip(axes, rates, strict=True):
            plot_statistics(
                ax,
                [s for s in mine if s["dirty_rate_bps"] == rate],
                metric=key,
                x="memory_bytes",
                series="strategy",
                x_value=lambda size: size / MIB,
                scale=0.001,
                colors=COLORS,
            )
            _axes_of(ax, sizes, rate)
            ax.yaxis.set_major_formatter(seconds)
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))  # fewer on wide spans
        axes[0].set_ylabel(f"{what} (s, log scale)")
        handles, labels = axes[-1].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8)
        fig.suptitle(
            f"Live migration mec1 → mec2: {what}\nmean of {repeat} run(s), error bars: 95 % "
            "confidence interval (Student's t)",
            fontsize=10,
        )
        name = f"{key.removesuffix('_ms')}_ci.png"
        save_figure(fig, out / name)
        names.append(name)
    return names
