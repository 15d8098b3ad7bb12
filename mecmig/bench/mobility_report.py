"""`mecmig bench mobility`'s figure and report: per policy the client's interruption at each
handover, T_pre + T_down against the dwell, the dwell-time statistics and the goals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import runs_section, statistics_table
from mecmig.bench.report import markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from mecmig.bench.harness import ExperimentRun, Session
    from mecmig.bench.mobility import Plan

SEED_003_DWELL_S = {"per point of access": (12.301, 1.037), "per zone": (53.151, 1.854)}


def plot_mobility(rows: Sequence[dict[str, Any]], plan: Plan, out: Path) -> str:
    """Left: each handover's interruption per policy (a dot each, the median a bar). Right:
    T_pre + T_down per handover against its dwell (the line: viable below it)."""
    fig, (left, right) = new_figure(2, width=6.0)
    names = list(plan.policies)
    width = 0.8 / max(len(plan.scales), 1)
    for k, x in enumerate(plan.scales):
        for i, p in enumerate(names):
            gaps = sorted(r["interruption_ms"] for r in rows if r["policy"] == p
                          and r["scale"] == x and r["interruption_ms"] is not None)  # fmt: skip
            if not gaps:
                continue
            pos = i - 0.4 + width * (k + 0.5)
            color = f"C{k}"
            label = f"x{x:g}" if i == 0 else None
            left.bar(pos, gaps[len(gaps) // 2], width, color=color, alpha=0.35, label=label)
            left.plot([pos] * len(gaps), gaps, "o", color=color, ms=3)
    left.set_xticks(range(len(names)))
    left.set_xticklabels(names, rotation=35, ha="right")
    left.set_ylabel("client's largest gap at the handover (ms)")
    left.set_title("interruption per handover (bar: median)")
    left.grid(alpha=0.3, axis="y")
    left.legend(fontsize=7)
    for p in names:
        pts = [(r["dwell_ms"], r["serving_after_ms"]) for r in rows
               if r["policy"] == p and r["dwell_ms"] is not None
               and r["serving_after_ms"] is not None]  # fmt: skip
        if pts:
            marker = "o" if not p.endswith("-reactive") else "x"
            right.plot([d / 1e3 for d, _ in pts], [n / 1e3 for _, n in pts], marker, label=p,
                       ms=5)  # fmt: skip
    top = max([r["dwell_ms"] / 1e3 for r in rows if r["dwell_ms"] is not None] or [1.0])
    right.plot([0, top * 1.1], [0, top * 1.1], "k--", lw=1, label="= dwell")
    right.set_xlabel("dwell at the target (s, wall time at the drive's scale)")
    right.set_ylabel("handover → serving at the target (s)")
    right.set_title("served within the stay (below the line)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    save_figure(fig, out / "mobility.png")
    return "mobility.png"


def _shortest(at: dict[str, Any], verdict: str) -> str:
    if at["scale"] is None:
        return verdict
    fractions = ", ".join(
        f"{p} {_pct(v)} ({_pct(at['served_within_dwell'].get(p))} served within the stay)"
        for p, v in at["viable"].items()
    )
    return f"{verdict}; at x{at['scale']:g} (dwell {_n(at['dwell_ms'])} ms): {fractions}"


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


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
    from mecmig.bench.mobility import INTERVAL_MS, MARGIN_MS
    from mecmig.bench.mobility_rows import REPLICA_GOAL_MS

    g = summary["goals"]

    def yes(b: bool | None) -> str:
        return "not judged (no data)" if b is None else "met" if b else "**missed**"

    table = [
        [
            p, f"x{x}", v["handovers"], _n(v["interruption_median_ms"]),
            _n(v["interruption_max_ms"]),
            _n(v["t_pre_mean_ms"]), _n(v["t_down_mean_ms"]), _n(v["serving_after_mean_ms"]),
            _n(v["dwell_mean_ms"]), _n(v["dwell_min_ms"]), f"{v['dwells_known']}",
            _pct(v["viable_fraction"]), _pct(v["served_within_dwell_fraction"]),
            "n/a (stateless)" if v["stateless"] else f"{v['state_intact']}/{v['handovers']}",
            _mib(v["bytes_mean"]),
        ]
        for x, at in summary["per_scale"].items()
        for p, v in at["per_policy"].items()
    ]  # fmt: skip
    each = [
        [
            r["policy"], f"x{r['scale']:g}", r["repetition"], f"{r['from_site']}→{r['to_site']}",
            _n(r["interruption_ms"]), _n(r["t_pre_ms"]), _n(r["t_down_ms"]),
            _n(r["serving_after_ms"]), _n(r["dwell_ms"]),
            "-" if r["viable"] is None else "yes" if r["viable"] else "no",
            "n/a" if r["state_intact"] is None else "yes" if r["state_intact"] else "**no**",
            _n(r["replug_ms"]),
        ]
        for r in rows
    ]  # fmt: skip
    vs = [
        (x, p, c)
        for x, at in summary["per_scale"].items()
        for p, c in at["speculative_vs_reactive"].items()
    ]
    lines = [
        "# Services that follow a car: speculative vs at the handover (issue 12)",
        "",
        f"`{command}`, started {started}, {duration} s. scenarios/drive.yaml: the car drives "
        "past mec1, mec2 and mec3 (handovers at 7.5 s and 22.5 s of scenario time) at time "
        f"scales {', '.join(f'x{x:g}' for x in plan.scales)} (x2: its stay at mec2 lasts 7.5 s "
        "of wall time; x8: 1.875 s, seed 003's shortest dwell per zone; x15: 1.0 s, about its "
        "shortest per point of access), re-plugged in "
        "Mininet at each new site; kv (memhog: "
        "16 MiB seeded, 1 "
        "MB/s dirtied, 64 MiB container) follows it from mec1. The car's client "
        f"(`workloads.probe`) keeps one TCP connection to kv, a PING every {INTERVAL_MS:g} ms. "
        "A policy named after a strategy is follow-me with speculation (the known path "
        "predicts the handover; the move starts ahead, is kept warm and commits at the "
        "handover); `-reactive` is the same strategy as a plain migration asked for at the "
        "handover. `replica` (seed 002): the stateless `web` of scenarios/replicas.yaml "
        "(the same road, car and cells) is served by warm replicas, a replica placed ahead at "
        "each site follow-me marks and made the primary by a flow switch at the handover "
        f"(never migrated); its client is a GET on a new connection every {INTERVAL_MS:g} ms "
        "(`workloads.http_poll`), its `t_pre_ms` the mark to the replica placed, its "
        "`t_down_ms` the controller's switch-over, its `bytes` 0; its `interruption_ms` is "
        "the switch's (from the handover to the switch's end, 200 ms either side) and "
        "`placement_gap_ms` the client's largest gap while the replica was placed ahead "
        "(starting it adds its port to the one userspace OVS that all sites' switches share "
        "here).",
        "",
        "Fields (a row per handover): `interruption_ms` is the client's largest gap between "
        "two replies (minus the interval) within the handover's window (the handover and its "
        "move, 200 ms either side; it includes the car's re-plug); `t_pre_ms` the move's start "
        "(the speculation's, or the handover) to ready for its final phase; `t_down_ms` the "
        "frozen window (freeze to restored); `dwell_ms` the car's stay at the target in wall "
        "time (the last site's is open: the drive ends there, so it is left out as seed 003 "
        "and `topology.dwell` do); `viable` seed 003's T_pre + T_down ≤ T_dwell; "
        "`serving_after_ms` the handover to the service serving at the target, "
        "`served_within_dwell` that against the dwell.",
        "",
        "## Goals",
        "",
        f"- no stateful handover loses its state: {yes(g['state_intact'])}",
        f"- speculative not worse than reactive by more than {MARGIN_MS:g} ms (median "
        f"interruption): {yes(g['speculative_not_worse_than_reactive'])}"
        + "".join(
            f"; {p} x{x}: {_n(c['speculative_median_ms'])} vs {_n(c['reactive_median_ms'])} ms"
            for x, p, c in vs
        ),
        f"- a replica switch costs the client ≤ {REPLICA_GOAL_MS:g} ms (policy `replica`, its "
        f"largest gap from the handover to the switch's end): "
        f"{yes(g['replica_switch_within_ms'])}"
        + "".join(
            f"; x{x}: {_n(at['per_policy']['replica']['interruption_max_ms'], 1)} ms at most, "
            f"switch-over {_n(at['per_policy']['replica']['t_down_mean_ms'], 1)} ms mean, "
            "placing a replica ahead: "
            + _n(
                max(
                    (
                        r["placement_gap_ms"]
                        for r in rows
                        if r["policy"] == "replica"
                        and r["scale"] == float(x)
                        and r.get("placement_gap_ms") is not None
                    ),
                    default=None,
                ),
                1,
            )
            + " ms at most"
            for x, at in summary["per_scale"].items()
            if at["per_policy"].get("replica", {}).get("handovers")
        ),
        "- with speculation, handovers viable on a path with ~1 s dwell times, where none of "
        "seed 003's strategies fits (Table V: 1.037 s per point of access): "
        + _shortest(summary["shortest_dwell"], yes(g.get("viable_at_shortest_dwell"))),
        "- Table III (packet loss) and Table IV (state levels): `mecmig bench loss`, "
        "`mecmig bench levels`",
        "",
        "## Per policy (all repetitions pooled; times in ms)",
        "",
        markdown_table(
            [
                "policy",
                "scale",
                "handovers",
                "median gap",
                "max gap",
                "mean T_pre",
                "mean T_down",
                "mean handover→serving",
                "mean dwell",
                "min dwell",
                "dwells known",
                "viable",
                "served within dwell",
                "state intact",
                "mean MiB moved",
            ],
            table,
        ),  # fmt: skip
        "",
        "Seed 003's Table V, for scale: mean / minimum dwell "
        + "; ".join(f"{k} {m:g} s / {lo:g} s" for k, (m, lo) in SEED_003_DWELL_S.items())
        + ". None of seed 003's strategies fits a 1 s dwell.",
        "",
        "## Every handover",
        "",
        markdown_table(
            [
                "policy",
                "scale",
                "rep",
                "move",
                "gap",
                "T_pre",
                "T_down",
                "handover→serving",
                "dwell",
                "viable",
                "state",
                "re-plug",
            ],
            each,
        ),  # fmt: skip
        "",
        "## Statistics per policy (over repetitions)",
        "",
        "### Largest interruption over the drive",
        "",
        statistics_table(runs, "max_interruption_ms"),
        "",
        "### Mean T_down per move",
        "",
        statistics_table(runs, "mean_t_down_ms"),
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"
