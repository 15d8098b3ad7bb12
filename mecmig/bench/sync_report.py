"""`mecmig bench sync`'s figure and report: per sync period, how stale the new primary's data
was at each handover, against the inter-site bytes per second the syncs cost."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import runs_section, statistics_table
from mecmig.bench.report import markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from mecmig.bench.harness import ExperimentRun, Session
    from mecmig.bench.sync import Plan


def plot_sync(summary: dict[str, Any], rows: Sequence[dict[str, Any]], out: Path) -> str:
    """Left: each handover's staleness per period (the line: the period). Right: mean
    staleness against the syncs' traffic, one point per period."""
    fig, (left, right) = new_figure(2, width=5.0)
    per = summary["per_period"]
    periods = sorted(float(p) for p in per)
    for p in periods:
        pts = [
            r["staleness_ms"] for r in rows if r["period_s"] == p and r["staleness_ms"] is not None
        ]
        left.plot([p] * len(pts), pts, "o", color="C0", ms=4, alpha=0.7)
    if periods:
        left.plot(periods, [p * 1000 for p in periods], "k--", lw=1, label="= the period")
    left.set_xscale("log")
    left.set_xlabel("sync period (s)")
    left.set_ylabel("new primary's data age at the handover (ms)")
    left.set_title("staleness per handover")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    ys = [per[f"{p:g}"]["staleness_mean_ms"] for p in periods]
    for key, label, color in (
        ("sync_bytes_per_s", "all syncs", "C1"),
        ("delta_bytes_per_s", "deltas only", "C2"),
    ):
        xs = [per[f"{p:g}"][key] for p in periods]
        known = [
            (x, y, p)
            for x, y, p in zip(xs, ys, periods, strict=True)
            if x is not None and y is not None
        ]
        right.plot(
            [x / 1e3 for x, _, _ in known], [y for _, y, _ in known], "o-", color=color,
            label=label,
        )  # fmt: skip
        for x, y, p in known:
            right.annotate(
                f"{p:g} s", (x / 1e3, y), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
    right.legend(fontsize=7)
    right.set_xlabel("inter-site traffic of the syncs (kB/s)")
    right.set_ylabel("mean staleness at a handover (ms)")
    right.set_title("staleness against traffic")
    right.grid(alpha=0.3)
    save_figure(fig, out / "sync.png")
    return "sync.png"


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report_markdown(
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    command: str,
    started: str,
    duration: float,
    plan: Plan,
    session: Session,
    runs: ExperimentRun,
    files: Sequence[str],
) -> str:
    from mecmig.bench.sync import DWELL_S, INTERVAL_MS, LOG_BYTES

    g = summary["goals"]
    verdict = (
        "not judged (no data)" if g["staleness_within_period"] is None
        else "met" if g["staleness_within_period"] else "**missed**"
    )  # fmt: skip
    table = [
        [
            f"{p} s", v["handovers"], _n(v["staleness_mean_ms"]), _n(v["staleness_max_ms"]),
            _n(v["scheduled_staleness_mean_ms"]), _n(v["lost_hits_mean"], 1),
            _n(v["sync_bytes_per_s"] / 1e3 if v["sync_bytes_per_s"] is not None else None, 1),
            _n(v["delta_bytes_per_s"] / 1e3 if v["delta_bytes_per_s"] is not None else None, 1),
            v["full_syncs"],
            _n(v["write_bytes_per_s"] / 1e3 if v["write_bytes_per_s"] is not None else None, 1),
            _n(v["sync_ms_mean"], 1),
        ]
        for p, v in summary["per_period"].items()
    ]  # fmt: skip
    each = [
        [
            f"{r['period_s']:g} s", r["repetition"], r["handover"], r["to_site"],
            r["lost_hits"] if r["lost_hits"] is not None else "-", _n(r["staleness_ms"]),
            _n(r["scheduled_staleness_ms"]), _n(r["switchover_ms"], 1),
            "-" if r["within_period"] is None else "yes" if r["within_period"] else "**no**",
        ]
        for r in rows
    ]  # fmt: skip
    lines = [
        "# A replicated service's volume sync: staleness against traffic (issue 12, seed 002)",
        "",
        f"`{command}`, started {started}, {duration} s. scenarios/sync.yaml: `notes` "
        f"(workloads/volcount.py: a counter on its volume, read and written at every request, "
        f"and a {LOG_BYTES}-byte record appended to a log there per hit) runs at mec1 with a "
        "warm replica at mec2; each tick (50 ms) syncs the primary's volume to the replica "
        "when a period has passed (the agents' volume sync: only what changed since the last "
        f"sync there). The phone hits it every {INTERVAL_MS:g} ms on a new connection. "
        f"{plan.handovers} handovers per period, {DWELL_S:g} s apart plus a phase that walks "
        "through the period; each is a flow switch, the old primary becomes the replica.",
        "",
        "`staleness_ms`: how old the new primary's data was at the switch, seen by the client "
        "(the count goes back to what the last sync carried: the switch minus the reply time "
        "of the last hit that sync held); `scheduled_staleness_ms`: the same from the "
        "schedule (the switch minus the start of the last sync); `lost_hits`: the hits made "
        "after that sync, lost by the handover (a sync carries the primary's data one way). "
        "A full sync sends all of the volume: a new replica's first, and the first to each "
        "replica after a handover (the data flows the other way then, and a delta needs the "
        "receiver to hold what its sender last sent it); the deltas alone are what keeping a "
        "replica current costs between handovers.",
        "",
        "## Goal",
        "",
        f"- each handover's staleness within its period plus the last sync's duration: "
        f"{verdict} ({g['handovers_measured']} of {g['handovers']} handovers measured)",
        "",
        "## Per period",
        "",
        markdown_table(
            [
                "period",
                "handovers",
                "mean staleness (ms)",
                "max staleness (ms)",
                "scheduled (ms)",
                "hits lost",
                "sync traffic (kB/s)",
                "of it deltas (kB/s)",
                "full syncs",
                "written (kB/s)",
                "sync time (ms)",
            ],
            table,
        ),  # fmt: skip
        "",
        "## Every handover",
        "",
        markdown_table(
            [
                "period",
                "rep",
                "#",
                "to",
                "hits lost",
                "staleness (ms)",
                "scheduled (ms)",
                "switch-over (ms)",
                "within",
            ],
            each,
        ),  # fmt: skip
        "",
        "## Statistics per period (over repetitions)",
        "",
        statistics_table(runs, "staleness_mean_ms"),
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"
