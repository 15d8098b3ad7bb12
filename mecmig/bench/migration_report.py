"""report.md of `mecmig bench migration`: what was run, the goals, the tables and the figures
(the explanatory sections come from `mecmig.bench.migration_text`)."""

from __future__ import annotations

from typing import Any

from mecmig.bench.migration import GOAL_RATE, GOAL_SIZE, Plan, measured
from mecmig.bench.migration_cases import (
    BASELINE_MODE,
    BUDGET_MS,
    PROBE_INTERVAL_MS,
    PROBE_LEAD_S,
    PROBE_TAIL_S,
    size_text,
)
from mecmig.bench.migration_peer import PEER_DESCRIPTION, peer_section
from mecmig.bench.migration_plots import COLORS
from mecmig.bench.migration_text import (
    goal_notes,
    md_table,
    met_text,
    mib,
    notes_section,
    num,
    precopy_section,
)
from mecmig.bench.report import markdown_table

DESCRIPTION = {
    "cold": "engine stop-and-copy: reservation, freeze + full dump, copy, switch, restore",
    "precopy": "iterative pre-copy (full dumps, only changed 1 MiB blocks sent), final dump "
    "in the freeze, reservation boosted for the final copy",
    "postcopy": "CRIU lazy pages: freeze + dump without memory, restore at the destination, "
    "pages pulled from the source's page server after the restore",
    "hybrid": "pre-copy rounds of the files (/data) only, then post-copy of the memory",
    "baseline": "seed 004: runc checkpoint (stops it) -> copy everything -> runc restore, no "
    "reservation, no pre-copy",
    **PEER_DESCRIPTION,
}


def report_markdown(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    command: str,
    started: str,
    duration: float,
    plan: Plan,
    quick: bool,
) -> str:
    from mecmig.bench.report import fmt_rate, host_facts

    host = host_facts()
    g = summary["goals"]
    g1, g2, g3 = g["postcopy_downtime"], g["postcopy_vs_baseline"], g["precopy_vs_baseline"]
    sizes = ", ".join(size_text(s) for s in plan.sizes)
    rates = ", ".join(f"{r / 1e6:g} MB/s" for r in plan.dirty_rates)
    text = [
        "# Migration benchmark: downtime, total time and bytes per strategy\n",
        f"Produced by `{command}` (started {started}, took {duration:.0f} s) on Linux "
        f"{host['kernel']}, {host['cpu_count']} CPUs ({host['cpu_model']}), Open vSwitch "
        f"{host['ovs_version']} (userspace datapath), runc + CRIU 4.2.1.",
    ]
    if quick:
        text.append("\n> `--quick` run: one size, one dirty rate; a smoke test, do not quote it.")
    text += [
        "\n## What was run\n",
        "One testbed for the whole run: `scenarios/edge.yaml` in Mininet (mec1 and mec2 behind a "
        "core switch, 1 Gbit/s links, 1 ms each), the os-ken controller (reservations as OpenFlow "
        "meters, traffic switch), one site agent per MEC host. Per case the memhog instance "
        f"`counter` is deployed at mec1 with `--size` in {{{sizes}}} and `--dirty-rate` in "
        f"{{{rates}}}, `ue1` (at mec2) opens one TCP connection to it and sends a `PING` every "
        f"{PROBE_INTERVAL_MS:g} ms (`python -m workloads.probe`, started {PROBE_LEAD_S:g} s "
        f"before the migration and stopped {PROBE_TAIL_S:g} s after it returned), `counter` is "
        "migrated mec1 → mec2, then removed. Client-observed downtime is the probe's longest gap "
        "between two replies minus the interval; *silent total* adds up every silence longer "
        "than 3 intervals during the probe (pre-copy rounds and post-copy page faults stall "
        "the service too, outside the longest gap). State intact = the same TCP connection the "
        "whole time, the memhog counter never went back, the 1 MiB memory fingerprint unchanged. "
        f"{plan.repeat} repetition(s) per case" + (" (medians shown)." if plan.repeat > 1 else "."),
        "\nStrategies (downtime budget "
        f"{BUDGET_MS:g} ms where a strategy uses one; reservations from the controller):\n",
        "\n".join(f"- **{s}**: {DESCRIPTION[s]}" for s in plan.strategies),
        "\nThe baseline is driven from the benchmark with the site agents' primitives (source "
        "`checkpoint(leave_running=False)`, destination `start_receive`, source "
        "`send(delta=False)`, `finish_receive`, the controller's `relocate`, destination "
        f"`restore`; mode `{BASELINE_MODE}`). The destination is prepared (locked network "
        "namespace, bundle) before the checkpoint, as the engine does, so that step is outside "
        f"its downtime; it took {_prepare_text(rows)}.",
        "\n## Goals\n",
        markdown_table(
            ["goal", "measured", "result"],
            [
                [
                    g1["goal"],
                    f"post-copy {num(g1['postcopy_downtime_ms'])} ms",
                    met_text(g1["met"]),
                ],
                [
                    g2["goal"],
                    f"baseline {num(g2['baseline_downtime_ms'])} ms / post-copy "
                    f"{num(g2['postcopy_downtime_ms'])} ms = {num(g2['ratio'], 1)}x",
                    met_text(g2["met"]),
                ],
                [g3["goal"], _goal3_text(g3), _goal3_result(g3)],
                [
                    g["postcopy_total"]["goal"],
                    _total_text(g["postcopy_total"]),
                    met_text(g["postcopy_total"]["met"]),
                ],
                [
                    g["cold_vs_baseline"]["goal"],
                    _cold_text(g["cold_vs_baseline"]),
                    met_text(g["cold_vs_baseline"]["met"]),
                ],
            ],
        ),
        goal_notes(measured(rows), summary),
    ]
    done = measured(rows)
    for rate in plan.dirty_rates:
        text += [f"\n## Results, dirty rate {rate / 1e6:g} MB/s\n", _results_table(done, rate)]
    text += [
        "\n![client-observed downtime vs memory size](downtime.png)\n",
        "![total migration time vs memory size](total.png)\n",
        _phases_section(done, plan),
        peer_section(summary["vs_podman"]) if "vs_podman" in summary else "",
        precopy_section(done, summary, plan),
        notes_section(done, summary, fmt_rate),
    ]
    if summary["failures"]:
        text += ["\n## Failures\n", "\n".join(f"- {f}" for f in summary["failures"])]
    return "\n\n".join(block.strip("\n") for block in text if block) + "\n"


def _prepare_text(rows: list[dict[str, Any]]) -> str:
    values = [r["phases"]["prepare"] for r in measured(rows) if r["strategy"] == "baseline"]
    values = [v for v in values if v is not None]
    if not values:
        return "- (no baseline measured)"
    return f"{min(values):.0f}–{max(values):.0f} ms"


def _goal3_text(g3: dict[str, Any]) -> str:
    cells = g3["per_cell"]
    if not cells:
        return "-"
    text = f"met in {g3['cells_met']} of {len(cells)} size x dirty-rate cells"
    c = g3["headline"]
    if c is not None:
        text += (
            f"; at 512 MiB / 10 MB/s: gain {c['gain_ms']:,.0f} ms vs "
            f"{c['transfer_moved_out_ms']:,.0f} ms moved out"
        )
    return text + " (table below)"


def _goal3_result(g3: dict[str, Any]) -> str:
    text = met_text(g3["met"])
    at = g3["met_at_512MiB_10MBps"]
    if at is not None and at != g3["met"]:
        text += f" across all cells ({'met' if at else 'not met'} at 512 MiB / 10 MB/s)"
    return text


def _cell_name(c: dict[str, Any]) -> str:
    return f"{size_text(c['memory_bytes'])} / {c['dirty_rate_bps'] / 8e6:g} MB/s"


def _total_text(g: dict[str, Any]) -> str:
    """Per cell: post-copy's total time against its bound, with the path's rate."""
    if g["path_mbps"] is None:
        return f"the path's rate: {g['path_measured']}"
    cells = "; ".join(
        f"{_cell_name(c)}: {c['total_ms']:,.0f} ms vs {c['bound_ms']:,.0f} ms "
        f"({c['bytes_transferred'] / 1e6:,.1f} MB) {'met' if c['met'] else 'not met'}"
        for c in g["per_cell"]
    )
    whose = "" if g["path_measured"] == "this run's" else f" ({g['path_measured']})"
    return f"path {g['path_mbps']:g} MB/s{whose}; " + (cells or "no post-copy measured")


def _cold_text(g: dict[str, Any]) -> str:
    """Per cell: cold's frozen window over the baseline's."""
    cells = "; ".join(
        f"{_cell_name(c)}: {c['cold_frozen_ms']:,.0f} / {c['baseline_frozen_ms']:,.0f} ms = "
        f"{c['ratio']:.2f}x"
        for c in g["per_cell"]
    )
    return cells or "-"


def _results_table(done: list[dict[str, Any]], rate: int) -> str:
    from mecmig.bench.report import fmt_rate

    mine = sorted(
        (r for r in done if r["dirty_rate_bps"] == rate * 8),
        key=lambda r: (r["memory_bytes"], list(COLORS).index(r["strategy"]), r["repeat"]),
    )
    return markdown_table(
        [
            "memory",
            "strategy",
            "downtime (ms)",
            "silent total (ms)",
            "frozen (ms)",
            "total (ms)",
            "MiB moved",
            "rounds",
            "reserved",
            "state intact",
            "mode",
        ],
        [
            [
                size_text(r["memory_bytes"]),
                r["strategy"],
                num(r["downtime_ms"]),
                num(r.get("silent_ms")),
                num(r["frozen_ms"]),
                num(r["total_ms"]),
                mib(r["bytes_transferred"]),
                r["rounds"],
                fmt_rate(r["reserved_bps"]) if r.get("reserved_bps") else "none",
                "yes" if r["state_intact"] else "**no**",
                r["mode"],
            ]
            for r in mine
        ],
    )


PHASES = ("prepare", "reserve", "precopy", "boost", "freeze_dump", "transfer", "switch",
          "restore", "pages", "release", "cleanup")  # fmt: skip


def _phases_section(done: list[dict[str, Any]], plan: Plan) -> str:
    size = GOAL_SIZE if GOAL_SIZE in plan.sizes else max(plan.sizes)
    rate = GOAL_RATE if GOAL_RATE in plan.dirty_rates else max(plan.dirty_rates)
    mine = [r for r in done if r["memory_bytes"] == size and r["dirty_rate_bps"] == rate * 8]
    if not mine:
        return ""

    def cell(r: dict[str, Any], name: str) -> str:
        if name == "precopy":
            rounds = [v for k, v in r["phases"].items() if k.startswith("precopy-")]
            return f"{sum(rounds):,.0f} ({len(rounds)})" if rounds else "-"
        return num(r["phases"].get(name))

    return "\n\n".join(
        [
            f"## Phases at {size_text(size)}, {rate / 1e6:g} MB/s (ms)",
            "`precopy`: all pre-copy rounds together (their number). The frozen window runs "
            "from `freeze_dump` to the end of `restore`; post-copy's `pages` come after it.",
            md_table(
                ["strategy", *PHASES],
                [[r["strategy"], *(cell(r, p) for p in PHASES)] for r in mine],
            ),
        ]
    )
