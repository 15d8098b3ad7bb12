"""`mecmig bench loss`'s summary, shape check, loss.png and report.md (seed 003's Table III
beside ours)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import runs_section, statistics_table
from mecmig.bench.report import markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from mecmig.bench.harness_testbed import BenchRun
    from mecmig.bench.loss import Plan

NONCOPY_FLOOR_MS, NONCOPY_SHARE = 50.0, 0.15  # the downtime without the copy: its tolerance
FCCP_COPY_BOUND_MS = 40.0  # seed 003: FCCP's copy "below 0.04 s" even at 5 % loss
DROP_TOLERANCE = 0.2  # seed 003's R3-1: the measured drop rate within ±20 % of the configured
DROP_ENOUGH = 100  # expected drops for that check to mean something (its sd is then 10 %)
# seed 003, Table III (s; 100 Mbit/s): the copy at 0 and 5 % loss per app and level, and ASW's
# FullSP downtime (Sect. V.D): 3.431 s at 0 %, 5.027 s at 5 %
SEED003_COPY_S = {
    "BA": {"fccp": (0.0, 0.0), "fullsp": (0.356, 1.310)},
    "USPA": {"fccp": (0.008, 0.038), "fullsp": (0.368, 1.651)},
    "ASW": {"fccp": (0.0, 0.0), "fullsp": (0.516, 2.112)},
}
SEED003_ASW_DOWNTIME_S = (3.431, 5.027)
TERMS = (
    ("source_ms", "source", "tab:blue"),
    ("copy_ms", "copy", "tab:red"),
    ("target_ms", "target", "tab:green"),
    ("between_ms", "between phases", "tab:gray"),
)
COLORS = {"restart": "tab:green", "precopy": "tab:blue", "cold": "tab:red"}


def _ok(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if "error" not in r and r.get("downtime_ms") is not None]


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return round(statistics.fmean(values), 1) if values else None


def _sd(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return round(statistics.stdev(values), 1) if len(values) > 1 else None


def _median(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def cells(rows: Sequence[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    """Per (strategy, loss): the runs that measured, the terms' means (and sd), the packets."""
    ok = _ok(rows)
    out = []
    for strategy in plan.strategies:
        for loss in plan.losses:
            mine = [r for r in ok if r["strategy"] == strategy and r["loss_pct"] == loss]
            seen = sum(int(r.get("packets_seen") or 0) for r in mine)
            dropped = sum(int(r.get("packets_dropped") or 0) for r in mine)
            cell: dict[str, Any] = {
                "strategy": strategy,
                "level": mine[0]["level"] if mine else None,
                "loss_pct": loss,
                "runs": len(mine),
            }
            for key in ("copy_ms", "downtime_ms", "noncopy_ms"):
                cell[key], cell[f"{key[:-3]}_sd_ms"] = _mean(mine, key), _sd(mine, key)
            cell["noncopy_median_ms"] = _median(mine, "noncopy_ms")
            cell["copy_median_ms"] = _median(mine, "copy_ms")
            for key in ("source_ms", "target_ms", "between_ms", "client_ms", "bytes"):
                cell[key] = _mean(mine, key)
            cell.update(packets_seen=seen, packets_dropped=dropped)
            cell["measured_loss_pct"] = round(100 * dropped / seen, 3) if seen else None
            out.append(cell)
    return out


def shape(cell_list: Sequence[dict[str, Any]], strategy: str) -> dict[str, Any]:
    """Seed 003's shape for one strategy: the loss affects only the copy. Over the loss levels,
    the median per level of the downtime without the copy (source + target + between) must
    stay within its tolerance (the larger of 50 ms and 15 % of its mean): `holds`. The median,
    not the mean: one run slowed by the machine (a 2-core host's dump and restore vary by
    tens of ms) must not read as the loss moving the rest of the downtime. FCCP's copy must
    also stay under 40 ms at every loss (seed 003's bound; its median per level). Reported
    beside, not part of `holds`: whether the copy grew from the lowest to the highest loss by
    more than twice the standard error of that difference (`copy_grows`; None with one run per
    level) and how much of the downtime's growth the copy's is."""
    mine = [c for c in cell_list if c["strategy"] == strategy and c["runs"]]
    out: dict[str, Any] = {"strategy": strategy, "level": mine[0]["level"] if mine else None}
    if len(mine) < 2:
        return {**out, "holds": None, "why": "fewer than two loss levels measured"}
    low, high = mine[0], mine[-1]
    noncopy = [c["noncopy_median_ms"] for c in mine]
    copy_growth = round(high["copy_ms"] - low["copy_ms"], 1)
    downtime_growth = round(high["downtime_ms"] - low["downtime_ms"], 1)
    spread = round(max(noncopy) - min(noncopy), 1)
    tolerance = round(max(NONCOPY_FLOOR_MS, NONCOPY_SHARE * statistics.fmean(noncopy)), 1)
    se = None
    if low["copy_sd_ms"] is not None and high["copy_sd_ms"] is not None:
        se = (low["copy_sd_ms"] ** 2 / low["runs"] + high["copy_sd_ms"] ** 2 / high["runs"]) ** 0.5
    out.update(
        losses_pct=[low["loss_pct"], high["loss_pct"]],
        copy_ms=[low["copy_ms"], high["copy_ms"]],
        downtime_ms=[low["downtime_ms"], high["downtime_ms"]],
        noncopy_ms=noncopy,
        noncopy_spread_ms=spread,
        noncopy_tolerance_ms=tolerance,
        loss_only_in_copy=spread <= tolerance,
        copy_growth_ms=copy_growth,
        copy_growth_se_ms=None if se is None else round(se, 1),
        copy_grows=None if se is None else copy_growth > 2 * se,
        downtime_growth_ms=downtime_growth,
        copy_share_of_growth=round(copy_growth / downtime_growth, 2) if downtime_growth else None,
        # the median per level: at 5 % loss a lost SYN costs TCP's 1 s retransmission timeout,
        # one run in several (CI saw 1044 ms beside 12 and 19 ms); seed 003's bound is typical
        copy_max_ms=max(c["copy_median_ms"] for c in mine),
    )
    grows = {True: "grew", False: "did not grow significantly", None: "(one run per level)"}
    why = (
        f"the downtime without the copy (median per level) spread {spread} ms over the loss "
        f"levels (tolerance "
        f"{tolerance} ms); the copy {grows[out['copy_grows']]}: {low['copy_ms']} -> "
        f"{high['copy_ms']} ms from {low['loss_pct']:g} to {high['loss_pct']:g} % ("
        f"{copy_growth:+} ms"
        + ("" if se is None else f", standard error {se:.1f} ms")
        + f"; the downtime {downtime_growth:+} ms)"
    )
    out["holds"] = out["loss_only_in_copy"]
    if out["level"] == "fccp":
        out["holds"] = out["holds"] and out["copy_max_ms"] < FCCP_COPY_BOUND_MS
        why += f"; copy at most {out['copy_max_ms']} ms (seed 003: < {FCCP_COPY_BOUND_MS:g} ms)"
    out["why"] = why
    return out


def drop_rates(rows: Sequence[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    """Per loss level: what the loss rule counted over every migration (seed 003's R3-1: within
    ±20 % of the configured rate, checked where enough drops were expected)."""
    out = []
    for loss in plan.losses:
        if loss == 0:
            continue
        mine = [r for r in rows if r.get("loss_pct") == loss and r.get("packets_seen")]
        seen = sum(int(r["packets_seen"]) for r in mine)
        dropped = sum(int(r["packets_dropped"]) for r in mine)
        measured = 100 * dropped / seen if seen else None
        enough = seen * loss / 100 >= DROP_ENOUGH
        out.append(
            {
                "loss_pct": loss,
                "packets_seen": seen,
                "packets_dropped": dropped,
                "measured_pct": None if measured is None else round(measured, 4),
                "checked": enough,
                "within_20pct": (abs(measured / loss - 1) <= DROP_TOLERANCE)
                if enough and measured is not None
                else None,
            }
        )
    return out


def summarize(rows: Sequence[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    cell_list = cells(rows, plan)
    shapes = {s: shape(cell_list, s) for s in plan.strategies}
    verdicts = [v["holds"] for v in shapes.values() if v["holds"] is not None]
    return {
        "per_strategy_loss": cell_list,
        "shape": shapes,
        "shape_holds": all(verdicts) if verdicts else None,
        "drop_rate": drop_rates(rows, plan),
        "seed003": {
            "table_iii_copy_s": SEED003_COPY_S,
            "asw_fullsp_downtime_s": SEED003_ASW_DOWNTIME_S,
        },
    }


# ------------------------------------------------------------------------------ the plot


def plot_loss(rows: Sequence[dict[str, Any]], plan: Plan, out: Path) -> str:
    """loss.png: (a) the copy per strategy against the loss, mean ± sd; (b) the downtime's
    terms stacked per strategy and loss (seed 003's Fig. 10 under loss)."""
    cell_list = cells(rows, plan)
    fig, (ax1, ax2) = new_figure(ncols=2)
    xs = list(range(len(plan.losses)))
    for strategy in plan.strategies:
        mine = [c for c in cell_list if c["strategy"] == strategy]
        points = [(x, c) for x, c in zip(xs, mine, strict=True) if c["copy_ms"] is not None]
        if points:
            ax1.errorbar(
                [x for x, _ in points], [c["copy_ms"] for _, c in points],
                yerr=[c["copy_sd_ms"] or 0 for _, c in points], marker="o", capsize=3,
                color=COLORS.get(strategy), label=f"{strategy} ({mine[0]['level']})",
            )  # fmt: skip
    ax1.set_xticks(xs, [f"{x:g} %" for x in plan.losses])
    ax1.set_xlabel("packet loss on the path between the MEC hosts")
    ax1.set_ylabel("state copy in the downtime (ms)")
    ax1.set_title("(a) copy time (seed 003, Table III)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    labels, bottoms = [], [0.0] * len(cell_list)
    for key, name, color in TERMS:
        heights = [c[key] or 0.0 for c in cell_list]
        ax2.bar(range(len(cell_list)), heights, bottom=bottoms, color=color, label=name)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    labels = [f"{c['strategy']}\n{c['loss_pct']:g} %" for c in cell_list]
    ax2.set_xticks(range(len(cell_list)), labels, fontsize=7)
    ax2.set_ylabel("downtime (ms), mean")
    ax2.set_title("(b) downtime = source + copy + target")
    ax2.legend()
    ax2.grid(alpha=0.3, axis="y")
    save_figure(fig, out / "loss.png")
    return "loss.png"


# ------------------------------------------------------------------------------ the report


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.3f}"


def report_markdown(
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    plan: Plan,
    done: BenchRun,
    files: list[str],
) -> str:
    session, runs = done.session, done.runs
    cell_list = summary["per_strategy_loss"]
    losses = [f"{x:g} %" for x in plan.losses]

    def by(strategy: str, key: str) -> list[str]:
        return [_s(c[key]) for c in cell_list if c["strategy"] == strategy]

    shape_lines = []
    for v in summary["shape"].values():
        verdict = {True: "holds", False: "**does not hold**", None: "not measured"}[v["holds"]]
        shape_lines.append(f"- {v['strategy']} ({v['level']}): {verdict}: {v.get('why')}")
    seed_rows = [
        [app, *(f"{a:g} → {b:g}" for a, b in levels.values())]
        for app, levels in SEED003_COPY_S.items()
    ]
    lines = [
        "# Packet loss on the migration path (seed 003, Table III)",
        "",
        f"`{session.command}`, started {session.started_at}, {done.duration_s} s. "
        "scenarios/loss.yaml: two sites behind a core switch, 100 Mbit/s links (tc HTB on both "
        "ends), the memhog `counter` (32 MiB, dirtying 1 MB/s) migrated mec1 → mec2 while ue1 "
        "probes it every 5 ms. Loss: iptables' statistic match drops packets from mec1's MEC "
        "host at mec2's (INPUT), i.e. the migration's data, at random; ACKs and everything "
        "else pass. Levels: restart = FCCP (files, configuration, volume), precopy and cold = "
        "FullSP (CRIU). Downtime = the freeze's start → the destination serves = source (the "
        "freeze: final dump or stop) + copy (transfer) + target (switch + restore or start) + "
        "the gaps between phases.",
        "",
        "## Shape (seed 003: the loss affects only the copy)",
        "",
        *shape_lines,
        "",
        "## Table III, ours (s, means)",
        "",
        markdown_table(
            ["strategy (level)", *(f"copy {x}" for x in losses)],
            [[f"{s} ({c})", *by(s, "copy_ms")] for s, c in _levels(cell_list)],
        ),
        "",
        markdown_table(
            ["strategy (level)", *(f"downtime {x}" for x in losses)],
            [[f"{s} ({c})", *by(s, "downtime_ms")] for s, c in _levels(cell_list)],
        ),
        "",
        markdown_table(
            ["strategy (level)", *(f"downtime − copy {x}" for x in losses)],
            [[f"{s} ({c})", *by(s, "noncopy_ms")] for s, c in _levels(cell_list)],
        ),
        "",
        "Seed 003's Table III (copy, s, 0 % → 5 % loss, 100 Mbit/s):",
        "",
        markdown_table(["app", "FCCP", "FullSP"], seed_rows),
        "",
        f"Seed 003's ASW FullSP downtime: {SEED003_ASW_DOWNTIME_S[0]:g} s at 0 %, "
        f"{SEED003_ASW_DOWNTIME_S[1]:g} s at 5 % (the copy's growth, 1.596 s, exactly).",
        "",
        "## Per strategy and loss",
        "",
        markdown_table(
            [
                "strategy",
                "loss",
                "runs",
                "copy (ms)",
                "source (ms)",
                "target (ms)",
                "between (ms)",
                "downtime (ms)",
                "client (ms)",
                "copy bytes",
                "dropped / seen",
            ],
            [
                [
                    c["strategy"],
                    f"{c['loss_pct']:g} %",
                    c["runs"],
                    _sd_text(c, "copy"),
                    c["source_ms"],
                    c["target_ms"],
                    c["between_ms"],
                    _sd_text(c, "downtime"),
                    c["client_ms"],
                    None if c["bytes"] is None else int(c["bytes"]),
                    f"{c['packets_dropped']} / {c['packets_seen']}" if c["packets_seen"] else "-",
                ]
                for c in cell_list
            ],
        ),  # fmt: skip
        "",
        "## The loss rule's drop rate during the migrations",
        "",
        markdown_table(
            ["configured", "packets seen", "dropped", "measured", "within ±20 %"],
            [
                [
                    f"{d['loss_pct']:g} %",
                    d["packets_seen"],
                    d["packets_dropped"],
                    "-" if d["measured_pct"] is None else f"{d['measured_pct']:.3f} %",
                    d["within_20pct"]
                    if d["checked"]
                    else f"too few packets (< {DROP_ENOUGH} drops expected)",
                ]
                for d in summary["drop_rate"]
            ],
        ),  # fmt: skip
        "",
        "Why our copy grows so much less than seed 003's (a few % at 5 % loss, within the "
        "run-to-run spread, against their x3-4): the emulation has no link delay (this kernel "
        "has no netem), so an idle round trip between the MEC hosts takes ~0.15 ms (ping), "
        "and a cold copy is paced at its reservation's rate, so no queue builds up to lengthen "
        "it; TCP repairs a lost segment within a round trip (fast retransmit, SACK), and only "
        "a lost retransmission or a copy's tail waits for the 200 ms retransmission timeout. "
        "Mathis et al.'s bound (MSS/RTT · 1.22/√p) is ~400 Mbit/s at 5 % loss and 0.15 ms, "
        "above the link's 100 Mbit/s: the link rate, not the loss, limits the copy. Seed "
        "003's netem (`rate 100mbit`, its default 1000-packet queue) let an unpaced copy "
        "queue up to ~120 ms, where the bound falls far below the link rate.",
        "",
        "## Statistics",
        "",
        "### Copy",
        "",
        statistics_table(runs, "copy_ms"),
        "",
        "### Downtime",
        "",
        statistics_table(runs, "downtime_ms"),
        "",
        "### Downtime without the copy",
        "",
        statistics_table(runs, "noncopy_ms"),
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"


def _levels(cell_list: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for c in cell_list:
        if c["level"] is not None:
            seen.setdefault(c["strategy"], c["level"])
    return list(seen.items())


def _sd_text(cell: dict[str, Any], key: str) -> str:
    mean, sd = cell[f"{key}_ms"], cell[f"{key}_sd_ms"]
    if mean is None:
        return "-"
    return f"{mean}" if sd is None else f"{mean} ± {sd}"
