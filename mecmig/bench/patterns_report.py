"""`mecmig bench patterns`'s figures: the goals (seed 000's shape), patterns.png, cpu.png (Fig. 5)
and report.md with seed 000's Tables I and II beside ours."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import Comparison, runs_section, seed_table, statistics_table
from mecmig.bench.harness_stats import describe
from mecmig.bench.report import markdown_table, new_figure, save_figure
from mecmig.bench.seed_figures import SEED000_DOWNTIME, SEED000_TOTAL

if TYPE_CHECKING:
    from mecmig.bench.harness import ExperimentRun, Session
    from mecmig.bench.patterns import Plan

SPREAD_GOAL_MS = 10.0
SEED_DOWNTIME_S = (1.189, 1.571)  # seed 000 Table I at 2 MB/s and full bandwidth: 1.19-1.57 s
COLORS = {"async": "tab:red", "wait-for-me": "tab:gray", "round-robin": "tab:blue"}


def _bw(bps: int | None) -> str:
    return "unlimited" if bps is None else f"{bps / 8_000_000:g} MB/s"


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if "error" not in r and r.get("chain_downtime_ms") is not None]


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def summarize(rows: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Per pattern (all runs of it): mean CPU peak and mean, total time, chain downtime; the
    goals: seed 000's shape, the wait-for-me barrier's spread, our downtime below seed 000's."""
    ok = _ok(rows)
    per: dict[str, dict[str, Any]] = {}
    for pattern in plan.patterns:
        mine = [r for r in ok if r["pattern"] == pattern]
        per[pattern] = {
            "runs": len(mine),
            "cpu_peak": _mean(mine, "cpu_peak"),
            "cpu_mean": _mean(mine, "cpu_mean"),
            "total_ms": _mean(mine, "total_ms"),
            "chain_downtime_ms": _mean(mine, "chain_downtime_ms"),
            "freeze_spread_ms": _mean(mine, "freeze_spread_ms"),
            "state_intact": all(r["state_intact"] for r in mine) if mine else None,
        }
    have = [p for p in plan.patterns if per[p]["runs"]]

    def extreme(key: str, best: Any) -> str | None:
        vals = [(per[p][key], p) for p in have if per[p][key] is not None]
        return best(vals)[1] if vals else None

    shape = {
        "highest_cpu_peak": extreme("cpu_peak", max),
        "lowest_cpu_mean": extreme("cpu_mean", min),
        "shortest_total": extreme("total_ms", min),
        "longest_total": extreme("total_ms", max),
    }
    spreads = [r["freeze_spread_ms"] for r in ok if r["pattern"] == "wait-for-me"
               and r.get("freeze_spread_ms") is not None]  # fmt: skip
    fast = [r for r in ok if r["bandwidth_bps"] is None or r["bandwidth_bps"] >= 16_000_000]
    worst_fast = max((r["chain_downtime_ms"] for r in fast), default=None)
    return {
        "per_pattern": per,
        "shape": shape,
        "goals": {
            "async_highest_cpu_peak": shape["highest_cpu_peak"] == "async",
            "async_shortest_total": shape["shortest_total"] == "async",
            "round_robin_lowest_cpu": shape["lowest_cpu_mean"] == "round-robin",
            "round_robin_longest_total": shape["longest_total"] == "round-robin",
            "wait_for_me_spread_max_ms": max(spreads) if spreads else None,
            "wait_for_me_spread_met": bool(spreads) and max(spreads) <= SPREAD_GOAL_MS,
            "chain_downtime_max_ms_at_2MBps_and_unlimited": worst_fast,
            "chain_downtime_below_seed": worst_fast is not None
            and worst_fast < SEED_DOWNTIME_S[0] * 1000,
            "state_intact": all(r["state_intact"] for r in rows) if rows else False,
        },
        "failures": len(rows) - len(ok),
    }


def plot_patterns(rows: list[dict[str, Any]], plan: Plan, out: Path) -> str:
    """Chain downtime and total time (mean, 95 % CI) per pattern and bandwidth, with and without
    network awareness."""
    fig, axes = new_figure(2, width=6.0)
    ok = _ok(rows)
    width = 0.8 / max(1, len(plan.patterns) * len(plan.aware))
    for ax, key, title in (
        (axes[0], "chain_downtime_ms", "chain downtime seen by the client"),
        (axes[1], "total_ms", "total chain migration time"),
    ):
        i = 0
        for pattern in plan.patterns:
            for aware in plan.aware:
                xs, ys, es = [], [], []
                for j, bw in enumerate(plan.bandwidths):
                    vals = [r[key] / 1000 for r in ok if r["pattern"] == pattern
                            and r["network_aware"] == aware and r["bandwidth_bps"] == bw
                            and r.get(key) is not None]  # fmt: skip
                    if vals:
                        s = describe(vals)
                        xs.append(j + (i - len(plan.patterns) * len(plan.aware) / 2) * width)
                        ys.append(s.mean)
                        es.append(s.ci95 or 0.0)
                ax.bar(xs, ys, width, yerr=es, capsize=3, color=COLORS.get(pattern),
                       alpha=1.0 if aware else 0.55, hatch="//" if aware else None,
                       label=f"{pattern}{' + network-aware' if aware else ''}")  # fmt: skip
                i += 1
        ax.set_xticks(range(len(plan.bandwidths)), [_bw(b) for b in plan.bandwidths])
        ax.set_xlabel("final-iteration bandwidth")
        ax.set_ylabel("seconds (mean, 95 % CI)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(fig, out / "patterns.png")
    return "patterns.png"


def plot_cpu(rows: list[dict[str, Any]], out: Path) -> str:
    """Fig. 5: the source site's CPU over time, one line per pattern (first repetition at 2
    MB/s without network awareness, or the first run of the pattern there is)."""
    fig, (ax,) = new_figure(1, width=9.0)
    for pattern, color in COLORS.items():
        mine = [r for r in rows if r.get("pattern") == pattern and isinstance(r.get("cpu"), dict)]
        pick = next((r for r in mine if r["bandwidth_bps"] == 16_000_000
                     and not r["network_aware"]), mine[0] if mine else None)  # fmt: skip
        if pick is None:
            continue
        ax.plot(pick["cpu"]["t_s"], [c * 100 for c in pick["cpu"]["cores"]], color=color,
                label=f"{pattern} ({_bw(pick['bandwidth_bps'])})")  # fmt: skip
    ax.set_xlabel("time since the chain migration started (s)")
    ax.set_ylabel("source site CPU (% of one core)")
    ax.set_title("source site CPU during the chain migration (seed 000 Fig. 5), 10 Hz")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out / "cpu.png")
    return "cpu.png"


def _seed_rows(rows: list[dict[str, Any]]) -> list[Comparison]:
    """Seed 000's async per-container figures beside our async runs without network awareness:
    each function's frozen window (downtime) and the chain's total time, per bandwidth."""
    ok = [r for r in _ok(rows) if r["pattern"] == "async" and not r["network_aware"]]
    bw_of = {"0.3 MB/s": 2_400_000, "2 MB/s": 16_000_000, "full bandwidth (3 GB/s)": None}
    fn_of = {"Dummy-LXC": "fw", "Video server": "video"}
    out = []
    for fig in SEED000_DOWNTIME + SEED000_TOTAL:
        container, bandwidth = fig.subject.split(", ", 1)
        mine = [r for r in ok if r["bandwidth_bps"] == bw_of[bandwidth]]
        fn = fn_of[container]
        if fig.quantity == "downtime":
            vals = [r["function_downtime_ms"][fn] / 1000 for r in mine
                    if r["function_downtime_ms"].get(fn) is not None]  # fmt: skip
            what = f"{fn} frozen window, async, {_bw(bw_of[bandwidth])}"
        else:
            vals = [r["functions"][fn]["total_ms"] / 1000 for r in mine
                    if r["functions"].get(fn, {}).get("total_ms") is not None]  # fmt: skip
            what = f"{fn} migration total, async, {_bw(bw_of[bandwidth])}"
        out.append(Comparison(fig, describe(vals) if vals else None, what))
    return out


def report_markdown(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    command: str,
    started: str,
    duration: float,
    plan: Plan,
    session: Session,
    runs: ExperimentRun,
    files: Sequence[str],
) -> str:
    g = summary["goals"]
    per = summary["per_pattern"]

    def yes(b: bool) -> str:
        return "met" if b else "**missed**"

    lines = [
        "# SFC migration patterns (seed 000, Tables I and II, Fig. 5)",
        "",
        f"`{command}`, started {started}, {duration} s. Chain `pair` of scenarios/chains.yaml "
        "(fw: sfcfwd with 32 MiB of seeded memory, forwarding in user space; video: httpstream), "
        "pre-copy, downtime budget 1000 ms, moved mec1 <-> mec2 while a client at ue1 keeps one "
        "HTTP connection through the chain (a GET every 5 ms). Memory is scaled to this 2-core "
        "machine: seed 000's containers were 470 and 573 MB LXC images.",
        "",
        "## Goals",
        "",
        f"- async has the highest CPU peak: {yes(g['async_highest_cpu_peak'])} "
        f"(highest: {summary['shape']['highest_cpu_peak']})",
        f"- async has the shortest total time: {yes(g['async_shortest_total'])} "
        f"(shortest: {summary['shape']['shortest_total']})",
        f"- round-robin has the lowest CPU: {yes(g['round_robin_lowest_cpu'])} "
        f"(lowest mean: {summary['shape']['lowest_cpu_mean']})",
        f"- round-robin has the longest total time: {yes(g['round_robin_longest_total'])} "
        f"(longest: {summary['shape']['longest_total']})",
        f"- wait-for-me's freeze spread ≤ {SPREAD_GOAL_MS:g} ms: {yes(g['wait_for_me_spread_met'])}"
        f" (max {g['wait_for_me_spread_max_ms']} ms)",
        f"- chain downtime below seed 000's 1.19–1.57 s at 2 MB/s and unlimited: "
        f"{yes(g['chain_downtime_below_seed'])} (worst "
        f"{g['chain_downtime_max_ms_at_2MBps_and_unlimited']} ms)",
        f"- state intact in every run: {yes(g['state_intact'])}",
        "",
        "## Per pattern (every bandwidth and awareness)",
        "",
        markdown_table(
            [
                "pattern",
                "runs",
                "chain downtime (ms)",
                "total (ms)",
                "freeze spread (ms)",
                "CPU mean (cores)",
                "CPU peak (cores)",
                "state intact",
            ],  # fmt: skip
            [
                [
                    p,
                    v["runs"],
                    _n(v["chain_downtime_ms"]),
                    _n(v["total_ms"]),
                    _n(v["freeze_spread_ms"]),
                    _n(v["cpu_mean"], 3),
                    _n(v["cpu_peak"], 3),
                    v["state_intact"],
                ]  # fmt: skip
                for p, v in per.items()
            ],
        ),
        "",
        "## Seed 000 beside ours",
        "",
        seed_table(_seed_rows(rows)),
        "",
        "## Statistics per pattern, awareness and bandwidth",
        "",
        "### Chain downtime (client)",
        "",
        statistics_table(runs, "chain_downtime_ms"),
        "",
        "### Total time",
        "",
        statistics_table(runs, "total_ms"),
        "",
        "### Source site CPU peak",
        "",
        statistics_table(runs, "cpu_peak"),
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
