"""`mecmig bench concurrency`'s figures: per policy and n the mean completion time and the budgets
and deadlines met, the issue's goals, concurrency.png and report.md."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import plot_statistics, runs_section, statistics_table
from mecmig.bench.report import markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from mecmig.bench.concurrency import Plan
    from mecmig.bench.harness import ExperimentRun, Session

COLORS = {"best-effort": "tab:red", "one-per-link": "tab:gray", "network-aware": "tab:blue"}
GOAL_N = 10


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def per_point(batches: list[dict[str, Any]], policy: str, n: int) -> dict[str, Any]:
    """Every repetition of (policy, n) pooled: migrations, completion, budgets, deadlines."""
    mine = [b for b in batches if b["policy"] == policy and b["n"] == n]
    migs = [m for b in mine for m in b["migrations"]]
    # a failed migration often ends fast: completion times of those that ended done only
    done = [
        m["completion_ms"]
        for m in migs
        if m["completion_ms"] is not None and m["outcome"] == "done"
    ]
    downs = [m["downtime_ms"] for m in migs if m["downtime_ms"] is not None]
    return {
        "batches": len(mine),
        "migrations": len(migs),
        "mean_completion_ms": _mean(done),
        "mean_makespan_ms": _mean([b["makespan_ms"] for b in mine if b["makespan_ms"]]),
        "mean_downtime_ms": _mean(downs),
        "max_downtime_ms": max(downs) if downs else None,
        "budget_misses": sum(not m["budget_met"] for m in migs),
        "deadline_misses": sum(not m["deadline_met"] for m in migs),
        "deadline_misses_per_batch": _mean([float(b["deadline_misses"]) for b in mine]) or 0.0,
        "state_lost": sum(not m["state_intact"] for m in migs),
        "failed": sum(m["outcome"] != "done" for m in migs),
        "link_overcommitted": any(b["link_overcommitted"] for b in mine),
    }


def summarize(batches: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Per policy and n, and the goals: network-aware meets every budget at every n; at n = 10
    its mean completion (of the migrations that ended done) is at most half of best-effort's
    and its deadline misses per batch at most a third of one-per-link's. Missing data: the
    goal is not judged (None)."""
    per = {p: {str(n): per_point(batches, p, n) for n in plan.ns} for p in plan.policies}
    aware = per.get("network-aware", {})
    aware_judged = bool(aware) and all(v["migrations"] for v in aware.values())
    every = [v for p in per.values() for v in p.values()]
    goals: dict[str, Any] = {
        "network_aware_budgets_met_every_n": (
            all(v["budget_misses"] == 0 for v in aware.values()) if aware_judged else None
        ),
        "state_intact": (
            all(v["state_lost"] == 0 for v in every if v["migrations"])
            if any(v["migrations"] for v in every)
            else None
        ),
        "no_link_overcommitted_network_aware": (
            not any(v["link_overcommitted"] for v in aware.values()) if aware_judged else None
        ),
    }
    at = str(GOAL_N)
    na, be, opl = (per.get(p, {}).get(at) for p in POLICY_ORDER)
    if na and be and na["mean_completion_ms"] and be["mean_completion_ms"]:
        ratio = na["mean_completion_ms"] / be["mean_completion_ms"]
        goals["completion_ratio_vs_best_effort_at_10"] = round(ratio, 3)
        goals["completion_half_of_best_effort_at_10"] = ratio <= 0.5
    if na and opl and na["batches"] and opl["batches"]:
        mine, theirs = na["deadline_misses_per_batch"], opl["deadline_misses_per_batch"]
        goals["deadline_misses_per_batch_at_10"] = {"network-aware": mine, "one-per-link": theirs}
        goals["deadline_misses_third_of_one_per_link_at_10"] = (
            mine * 3 <= theirs if theirs else mine == 0
        )
    return {"per_policy": per, "goals": goals}


POLICY_ORDER = ("network-aware", "best-effort", "one-per-link")


def plot_concurrency(batches: list[dict[str, Any]], plan: Plan, out: Path) -> str:
    """Mean completion time (95 % CI over repetitions) and deadline misses per batch, vs n."""
    from mecmig.bench.harness_stats import describe

    fig, axes = new_figure(2, width=6.0)
    stats: list[dict[str, Any]] = []
    for metric in ("mean_completion_ms", "deadline_misses"):
        for p in plan.policies:
            for n in plan.ns:
                vals = [float(b[metric]) for b in batches
                        if b["policy"] == p and b["n"] == n and b[metric] is not None]  # fmt: skip
                if vals:
                    stats.append({"metric": metric, "policy": p, "n": n,
                                  **describe(vals).to_dict()})  # fmt: skip
    plot_statistics(axes[0], stats, metric="mean_completion_ms", x="n", series="policy",
                    scale=1e-3, colors=COLORS)  # fmt: skip
    axes[0].set_ylabel("mean completion time (s; mean, 95 % CI)")
    axes[0].set_title("submission to end, queueing included")
    plot_statistics(axes[1], stats, metric="deadline_misses", x="n", series="policy",
                    colors=COLORS)  # fmt: skip
    axes[1].set_ylabel("deadlines missed per batch")
    axes[1].set_title("deadlines missed")
    for ax in axes:
        ax.set_xlabel("migrations asked for at once (n), one 100 Mbit/s link")
        ax.set_xticks(list(plan.ns))
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out / "concurrency.png")
    return "concurrency.png"


def report_markdown(
    batches: list[dict[str, Any]],
    summary: dict[str, Any],
    command: str,
    started: str,
    duration: float,
    plan: Plan,
    session: Session,
    runs: ExperimentRun,
    files: Sequence[str],
) -> str:
    from mecmig.bench.concurrency import JOBS

    g, per = summary["goals"], summary["per_policy"]

    def yes(b: bool | None) -> str:
        return "not judged (no data)" if b is None else "met" if b else "**missed**"

    table = [
        [
            p, n, v["migrations"], _n(v["mean_completion_ms"]), _n(v["mean_makespan_ms"]),
            _n(v["mean_downtime_ms"]), _n(v["max_downtime_ms"]),
            f"{v['migrations'] - v['budget_misses']}/{v['migrations']}",
            f"{v['migrations'] - v['deadline_misses']}/{v['migrations']}",
            f"{v['migrations'] - v['state_lost']}/{v['migrations']}",
        ]
        for p in plan.policies
        for n, v in ((int(k), v) for k, v in per[p].items())
    ]  # fmt: skip
    jobs = [
        [j.name, j.kind, j.strategy, j.pattern if j.kind == "chain" else "-", f"{j.budget_ms:g}",
         f"{j.deadline_s:g}"]
        for j in JOBS
    ]  # fmt: skip
    lines = [
        "# Concurrent migrations over one shared link (issue 11)",
        "",
        f"`{command}`, started {started}, {duration} s. scenarios/concurrency.yaml: the first n "
        "of the services below leave mec1 for mec2 at once, all across mec1's 100 Mbit/s link "
        "(shaped), submitted together to the migration queue under each policy. Completion is "
        "from submission to the migration's end (queueing included); downtime is the migration "
        "record's frozen window (a chain's: its first freeze to its last restore).",
        "",
        "## Goals",
        "",
        f"- network-aware meets every downtime budget at every n: "
        f"{yes(g['network_aware_budgets_met_every_n'])}",
        f"- at n = {GOAL_N}, network-aware's mean completion ≤ ½ of best-effort's: "
        f"{yes(g.get('completion_half_of_best_effort_at_10'))} (ratio "
        f"{g.get('completion_ratio_vs_best_effort_at_10', '-')})",
        f"- at n = {GOAL_N}, network-aware's deadline misses ≤ ⅓ of one-per-link's: "
        f"{yes(g.get('deadline_misses_third_of_one_per_link_at_10'))} "
        f"(per batch: {g.get('deadline_misses_per_batch_at_10', '-')})",
        f"- no link over-committed by network-aware's reservations: "
        f"{yes(g['no_link_overcommitted_network_aware'])}",
        f"- state intact in every migration: {yes(g['state_intact'])}",
        "",
        "## Per policy and n (all repetitions pooled)",
        "",
        markdown_table(
            [
                "policy",
                "n",
                "migrations",
                "mean completion (ms)",
                "mean last completion (ms)",
                "mean downtime (ms)",
                "max downtime (ms)",
                "budgets met",
                "deadlines met",
                "state intact",
            ],
            table,
        ),  # fmt: skip
        "",
        "## The services (n takes the first n)",
        "",
        markdown_table(
            ["service", "kind", "strategy", "pattern", "budget (ms)", "deadline (s)"], jobs
        ),  # fmt: skip
        "",
        "## Statistics per n and policy (over repetitions)",
        "",
        "### Mean completion time per batch",
        "",
        statistics_table(runs, "mean_completion_ms"),
        "",
        "### Deadlines missed per batch",
        "",
        statistics_table(runs, "deadline_misses"),
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
