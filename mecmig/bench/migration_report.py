"""Outputs of `mecmig bench migration`: downtime.png, total.png, report.md, the console table."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mecmig.bench.migration import (
    GOAL_RATE,
    GOAL_SIZE,
    POSTCOPY_GOAL_MS,
    Plan,
    measured,
    median_of,
)
from mecmig.bench.migration_cases import (
    BASELINE_MODE,
    BUDGET_MS,
    MIB,
    PROBE_INTERVAL_MS,
    PROBE_LEAD_S,
    PROBE_TAIL_S,
    size_text,
)
from mecmig.bench.report import markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = {
    "cold": "tab:blue",
    "precopy": "tab:orange",
    "postcopy": "tab:green",
    "hybrid": "tab:purple",
    "baseline": "black",
}
DESCRIPTION = {
    "cold": "engine stop-and-copy: reservation, freeze + full dump, copy, switch, restore",
    "precopy": "iterative pre-copy (full dumps, only changed 1 MiB blocks sent), final dump "
    "in the freeze, reservation boosted for the final copy",
    "postcopy": "CRIU lazy pages: freeze + dump without memory, restore at the destination, "
    "pages pulled from the source's page server after the restore",
    "hybrid": "pre-copy rounds of the files (/data) only, then post-copy of the memory",
    "baseline": "seed 004: runc checkpoint (stops it) -> copy everything -> runc restore, no "
    "reservation, no pre-copy",
}


def rate_name(bps: int) -> str:
    return f"{bps / 8e6:g} MB/s"


# ------------------------------------------------------------------------------ plots


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """downtime.png and total.png: vs memory size, a line per strategy, a panel per dirty rate."""
    _plot_metric(
        rows,
        out / "downtime.png",
        "downtime_ms",
        "client-observed downtime (ms, log)",
        "Live migration mec1 → mec2: client-observed downtime (probe on ue1, 5 ms PINGs)",
        goals=True,
    )
    _plot_metric(
        rows,
        out / "total.png",
        "total_ms",
        "total migration time (ms, log)",
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
        ax.set_yscale("log")
        if sizes:
            ax.set_xscale("log", base=2)
            ax.set_xticks([s / MIB for s in sizes], [size_text(s) for s in sizes])
            ax.minorticks_off()
            ax.set_xlim(sizes[0] / MIB / 1.3, sizes[-1] / MIB * 1.3)
        ax.set_xlabel("container memory (memhog --size)")
        ax.set_title(f"dirty rate {rate_name(rate)}")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


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


# ------------------------------------------------------------------------------ report.md


def _yes(flag: bool | None) -> str:
    return "not evaluated" if flag is None else ("**met**" if flag else "**not met**")


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.1f}"


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
        f"{PROBE_INTERVAL_MS:g} ms (`python -m migration.probe`, started {PROBE_LEAD_S:g} s "
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
        "\n## Goals (512 MiB dirtying 10 MB/s)\n",
        markdown_table(
            ["goal", "measured", "result"],
            [
                [
                    g1["goal"],
                    f"post-copy {_n(g1['postcopy_downtime_ms'])} ms",
                    _yes(g1["met"]),
                ],
                [
                    g2["goal"],
                    f"baseline {_n(g2['baseline_downtime_ms'])} ms / post-copy "
                    f"{_n(g2['postcopy_downtime_ms'])} ms = {_n(g2['ratio'], 1)}x",
                    _yes(g2["met"]),
                ],
                [g3["goal"], _goal3_text(g3), _yes(g3["met"])],
            ],
        ),
    ]
    done = measured(rows)
    for rate in plan.dirty_rates:
        text += [f"\n## Results, dirty rate {rate / 1e6:g} MB/s\n", _results_table(done, rate)]
    text += [
        "\n![client-observed downtime vs memory size](downtime.png)\n",
        "![total migration time vs memory size](total.png)\n",
        _phases_section(done, plan),
        _precopy_section(done, summary, plan),
        _notes(done, summary, fmt_rate),
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
    parts = []
    for c in g3["per_cell"]:
        mark = "✓" if c["met"] else "✗"
        parts.append(
            f"{size_text(c['memory_bytes'])}/{rate_name(c['dirty_rate_bps'])}: gain "
            f"{c['gain_ms']:,.0f} ms vs moved out {c['transfer_moved_out_ms']:,.0f} ms {mark}"
        )
    return "; ".join(parts) or "-"


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
                _n(r["downtime_ms"]),
                _n(r.get("silent_ms")),
                _n(r["frozen_ms"]),
                _n(r["total_ms"]),
                _mib(r["bytes_transferred"]),
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
        return _n(r["phases"].get(name))

    return "\n\n".join(
        [
            f"\n## Phases at {size_text(size)}, {rate / 1e6:g} MB/s (ms)\n",
            "`precopy`: all pre-copy rounds together (their number). The frozen window runs "
            "from `freeze_dump` to the end of `restore`; post-copy's `pages` come after it.",
            markdown_table(
                ["strategy", *PHASES],
                [[r["strategy"], *(cell(r, p) for p in PHASES)] for r in mine],
            ),
        ]
    )


def _precopy_section(done: list[dict[str, Any]], summary: dict[str, Any], plan: Plan) -> str:
    pre = [r for r in done if "predump_estimate" in r]
    if not pre:
        return ""
    lines = []
    for r in sorted(pre, key=lambda r: (r["dirty_rate_bps"], r["memory_bytes"])):
        est = r["predump_estimate"]
        rate = r["dirty_rate_bps"] // 8
        base = median_of(done, "baseline", r["memory_bytes"], rate, "downtime_ms")
        lines.append(
            [
                size_text(r["memory_bytes"]),
                rate_name(r["dirty_rate_bps"]),
                _n(r["downtime_ms"]),
                _n(est["full_dump_ms"]),
                _mib(r.get("final_transfer_bytes")),
                _n(est["delta_dump_ms"]),
                _n(est["downtime_ms"]),
                _n(base),
                "-" if not base else f"{base / max(r['downtime_ms'], 1):.1f}x",
                "-" if not base else f"{base / max(est['downtime_ms'], 1):.1f}x",
            ]
        )
    return "\n\n".join(
        [
            "\n## Pre-copy without dirty tracking, and what pre-dumps would give\n",
            "This kernel has no soft-dirty page tracking, so CRIU cannot pre-dump (dump only the "
            "pages written since the last dump). Every pre-copy round is a full dump with the "
            "service left running, and only the transfer is incremental (1 MiB blocks that "
            "changed since the last send). The final dump, inside the freeze, is therefore "
            "still a full dump of all memory (mode `full-dump-delta`), and the final transfer "
            "hashes the whole image to find the changed blocks. The estimate below replaces the "
            "measured full final dump with a dump of only the final delta (the measured dump "
            "time x final delta bytes / full image bytes): estimated downtime = measured "
            "downtime − full final dump + delta dump. It keeps the in-freeze hashing, so it is "
            "conservative.",
            markdown_table(
                [
                    "memory",
                    "dirty rate",
                    "pre-copy downtime (ms)",
                    "full final dump (ms)",
                    "final delta (MiB)",
                    "est. delta dump (ms)",
                    "est. downtime with pre-dumps (ms)",
                    "baseline downtime (ms)",
                    "baseline / pre-copy, measured",
                    "… estimated with pre-dumps",
                ],
                lines,
            ),
        ]
    )


def _notes(done: list[dict[str, Any]], summary: dict[str, Any], fmt_rate: Any) -> str:
    """Reading the numbers: what makes up each strategy's downtime (from the measured phases)."""
    notes = ["\n## Reading the numbers\n"]
    post = [r for r in done if r["strategy"] == "postcopy"]
    if post:
        r = max(post, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]))
        p = r["phases"]
        notes.append(
            f"- **Post-copy** ({size_text(r['memory_bytes'])}, "
            f"{rate_name(r['dirty_rate_bps'])}): the freeze holds the lazy dump "
            f"({_n(p.get('freeze_dump'))} ms, {_mib(r.get('image_bytes'))} MiB of images without "
            f"the memory pages), their transfer ({_n(p.get('transfer'))} ms), the switch "
            f"({_n(p.get('switch'))} ms) and the lazy restore ({_n(p.get('restore'))} ms); the "
            f"client saw {_n(r['downtime_ms'])} ms. The memory then follows in `pages` "
            f"({_n(p.get('pages'))} ms, {_mib(r['bytes_transferred'])} MiB in all), while the "
            "service already runs at the destination, slowly: its page faults wait for the "
            f"network (silences add up to {_n(r.get('silent_ms'))} ms over the run, "
            f"{r.get('gaps_over_100ms', '-')} of them over 100 ms)."
        )
    pre = [r for r in done if r["strategy"] == "precopy"]
    if pre:
        r = max(pre, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]))
        rounds = [v for k, v in r["phases"].items() if k.startswith("precopy-")]
        notes.append(
            f"- **Pre-copy** ({size_text(r['memory_bytes'])}, {rate_name(r['dirty_rate_bps'])}):"
            f" {len(rounds)} round(s) in {_n(sum(rounds))} ms (stop: {r.get('stop_reason')}). "
            "Each round's dump (service left running) still freezes the process while CRIU "
            "copies its memory, so the client also stalls during the rounds: silences add up "
            f"to {_n(r.get('silent_ms'))} ms, {r.get('gaps_over_100ms', '-')} of them over "
            f"100 ms; the longest was {_n(r['downtime_ms'])} ms, the final frozen window "
            f"{_n(r['frozen_ms'])} ms."
        )
    base = [r for r in done if r["strategy"] == "baseline"]
    if base:
        r = max(base, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]))
        p = r["phases"]
        tx = p.get("transfer")
        rate = r["bytes_transferred"] * 8 / (tx / 1000) if tx else None
        notes.append(
            f"- **Baseline** ({size_text(r['memory_bytes'])}, {rate_name(r['dirty_rate_bps'])}):"
            f" full dump {_n(p.get('freeze_dump'))} ms, copy {_n(tx)} ms "
            f"({_mib(r['bytes_transferred'])} MiB at {fmt_rate(rate)}, no reservation), restore "
            f"{_n(p.get('restore'))} ms, all inside the freeze; the client saw "
            f"{_n(r['downtime_ms'])} ms (TCP retransmission back-off can add to the frozen "
            f"window of {_n(r['frozen_ms'])} ms)."
        )
    cold = [r for r in done if r["strategy"] == "cold" and r.get("reserved_bps")]
    if cold:
        grants = sorted({r["reserved_bps"] for r in cold})
        notes.append(
            "- **Cold** is the same stop-and-copy as the baseline but its copy runs inside the "
            f"controller's reservation ({', '.join(fmt_rate(g) for g in grants)}), which caps it "
            "below what the unreserved baseline gets from an idle link."
        )
    bad = summary["state_not_intact"]
    notes.append(
        "- State: "
        + (
            "intact in every measured case."
            if not bad
            else f"**not intact** in {len(bad)} case(s): {', '.join(bad)}."
        )
    )
    return "\n".join(notes)


# ------------------------------------------------------------------------------ console


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
            _n(r["downtime_ms"]),
            _n(r["total_ms"]),
            _mib(r["bytes_transferred"]),
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
