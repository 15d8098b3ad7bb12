"""`mecmig bench links`'s outputs: the plot (links.png), report.md and the console table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mecmig.bench.harness import ExperimentRun, Session
from mecmig.bench.harness_report import runs_section, statistics_table
from mecmig.bench.links import (
    CEILING_MBIT,
    FLOOD_FACTOR,
    MBIT,
    QUICK,
    RESERVATION_CAPACITY_MBIT,
    RESERVED_MBIT,
    TOLERANCE,
    Plan,
)
from mecmig.bench.report import fmt_rate, markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLORS = {"up": "tab:blue", "down": "tab:orange"}


def plot(capacity: ExperimentRun, reservation: ExperimentRun, path: Path) -> None:
    """Goodput vs capacity (both directions, the ideal and ±10 % band), goodput / capacity per
    run, and the reservation under the flood."""
    fig, (abs_ax, ratio_ax, res_ax) = new_figure(ncols=3, width=5.0, height=4.6)
    done = [(s, r) for s, r in capacity.done() if r.get("goodput_bps") is not None]
    caps = sorted({s["capacity_bps"] / MBIT for s, _ in done})
    if caps:
        lo, hi = min(caps) * 0.8, max(caps) * 1.25
        abs_ax.fill_between(
            [lo, hi],
            [lo * (1 - TOLERANCE), hi * (1 - TOLERANCE)],
            [lo * (1 + TOLERANCE), hi * (1 + TOLERANCE)],
            color="tab:green",
            alpha=0.15,
            label="capacity ±10 %",
        )
        abs_ax.plot([lo, hi], [lo, hi], color="tab:green", lw=0.8)
    for direction, color in COLORS.items():
        mine = [(s, r) for s, r in done if s["direction"] == direction]
        label = "site → core (up)" if direction == "up" else "core → site (down)"
        abs_ax.scatter(
            [s["capacity_bps"] / MBIT for s, _ in mine],
            [r["goodput_bps"] / MBIT for _, r in mine],
            color=color,
            label=label,
            zorder=3,
            s=22,
        )
        ratio_ax.scatter(
            [s["capacity_bps"] / MBIT * (0.94 if direction == "up" else 1.06) for s, _ in mine],
            [r["ratio"] for _, r in mine],
            color=color,
            label=label,
            zorder=3,
            s=22,
        )
    for ax in (abs_ax, ratio_ax):
        ax.set_xscale("log")
        if caps:
            ax.set_xticks(caps, [f"{c:g}" for c in caps])
            ax.minorticks_off()
        ax.set_xlabel("declared link capacity (Mbit/s)")
        ax.grid(alpha=0.3)
    abs_ax.set_yscale("log")
    if caps:
        abs_ax.set_yticks(caps, [f"{c:g}" for c in caps])
    abs_ax.set_ylabel("iperf3 TCP goodput (Mbit/s)")
    abs_ax.set_title("goodput through one shaped link")
    abs_ax.legend(fontsize=8, loc="upper left")
    ratio_ax.axhspan(1 - TOLERANCE, 1 + TOLERANCE, color="tab:green", alpha=0.15, label="±10 %")
    ratio_ax.axhline(1.0, color="tab:green", lw=0.8)
    ratio_ax.set_ylim(0.5, 1.3)
    ratio_ax.set_ylabel("goodput / capacity")
    ratio_ax.set_title("every run")
    ratio_ax.legend(fontsize=8, loc="lower left")
    _plot_reservation(res_ax, reservation)
    fig.suptitle("Shaped links (HTB on both veth ends, OVS userspace datapath)")
    save_figure(fig, path)


def _plot_reservation(ax: Axes, reservation: ExperimentRun) -> None:
    """Per flood and case: the TCP transfer's and the flood's mean goodput, min-max as bars."""
    names = {"reserved": "reserved", "reserved_paced": "reserved\n+paced", "unreserved": "none"}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s, r in reservation.done():
        if r.get("goodput_bps") is not None:
            groups.setdefault((s["flood"], s["case"]), []).append(r)
    xs = list(range(len(groups)))

    def bars(key: str, offset: float, color: str, label: str) -> None:
        values = [[(r[key] or 0) / MBIT for r in rows] for rows in groups.values()]
        means = [sum(v) / len(v) for v in values]
        err = [
            [m - min(v) for m, v in zip(means, values, strict=True)],
            [max(v) - m for m, v in zip(means, values, strict=True)],
        ]
        ax.bar([x + offset for x in xs], means, width=0.4, color=color, label=label)
        ax.errorbar([x + offset for x in xs], means, yerr=err, fmt="none", color="black", capsize=3)

    bars("goodput_bps", -0.2, "tab:blue", "TCP transfer (mean, min–max)")
    bars("flood_goodput_bps", 0.2, "tab:gray", "flood received")
    ax.axhline(RESERVED_MBIT, color="tab:red", ls="--", label=f"reserved {RESERVED_MBIT} Mbit/s")
    ax.axhline(RESERVATION_CAPACITY_MBIT, color="tab:green", ls=":", label="link capacity")
    ax.set_xticks(xs, [f"{f.upper()} flood\n{names[c]}" for f, c in groups], fontsize=8)
    ax.set_ylabel("goodput (Mbit/s)")
    ax.set_title(
        f"{RESERVATION_CAPACITY_MBIT} Mbit/s link beside a flood (TCP x4; UDP "
        f"{FLOOD_FACTOR * RESERVATION_CAPACITY_MBIT} Mbit/s)",
        fontsize=10,
    )
    ax.set_ylim(0, RESERVATION_CAPACITY_MBIT * 1.3)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", ncol=2)


def _yes(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def _ratio(p: dict[str, Any]) -> str:
    mark = "✓" if p["all_within_10pct"] else "✗"
    text = f"{p['mean_ratio']:.3f} {mark} ({fmt_rate(p['mean_goodput_bps'])})"
    if p.get("datapath_bound"):
        text += f", datapath-bound: it carries {fmt_rate(p['datapath_bps'])} here"
    return text


def _shaper_cell(row: dict[str, Any]) -> str:
    shaper = row.get("shaper") or {}
    parts = []
    for cls in ("1:10", "1:20"):
        c = shaper.get(cls)
        if c is not None:
            parts.append(f"{cls}: {c['bytes'] / 1e6:.1f} MB, {c['dropped']} dropped")
    return "; ".join(parts) or "-"


def markdown(
    session: Session,
    capacity: ExperimentRun,
    reservation: ExperimentRun,
    summary: dict[str, Any],
    files: Sequence[str],
    duration: float,
    plan: Plan,
) -> str:
    from mecmig.bench.report import host_facts

    host = host_facts()
    cap, res = summary["capacity"], summary["reservation"]
    per = {(p["capacity_bps"], p["direction"]): p for p in cap["per_link"]}
    caps = list(capacity.experiment.sweep["capacity_bps"])
    text = [
        "# Links benchmark: do shaped links have their declared capacity?\n",
        f"Produced by `{session.command}` (started {session.started_at}, took {duration:.0f} s) "
        f"on Linux {host['kernel']}, {host['cpu_count']} CPUs ({host['cpu_model']}), Open vSwitch "
        f"{host['ovs_version']} (userspace datapath).",
    ]
    if plan is QUICK:
        text.append("\n> `--quick` run: fewer capacities, 3 s transfers; do not quote these.")
    text += [
        "\n## What was run\n",
        f"- The scenario `{capacity.experiment.scenario}` (generated): a core switch, one site "
        "per capacity, each site's link to the core shaped by `mininet_scenarios/shaping.py` "
        "(HTB on the egress of both veth ends: 1:10 reserved/control at priority 0, 1:20 best "
        "effort at priority 1, both capped at the capacity), a UE at the core.",
        f"- **Capacity**: iperf3 TCP, {plan.seconds:g} s, {plan.repetitions} run(s) per "
        "capacity and direction: the site's MEC host to the UE (up: the site switch's end "
        "shapes) and back (down: the core's end shapes). Each run also reads the shaped end's "
        "class counters (`tc -s class show`) before and after: the bytes the userspace datapath "
        "sent went through the qdisc. A run that falls short of its capacity by more than 10 % "
        f"is followed by one through a link shaped at {CEILING_MBIT // 1000} Gbit/s on the same "
        "path shape (a site's switch, its link, the core): what this host's userspace datapath "
        "carries. Where that is less than the capacity the link is held to it instead "
        "(`datapath-bound`): its shaper is not what limits it there.",
        f"- **Reservation**: up the {RESERVATION_CAPACITY_MBIT} Mbit/s link, a flood from "
        "another host of the site to the UE (floods: "
        + ", ".join(
            "4 parallel iperf3 TCP streams"
            if f == "tcp"
            else f"iperf3 UDP at {FLOOD_FACTOR * RESERVATION_CAPACITY_MBIT} Mbit/s"
            for f in plan.floods
        )
        + f"), and beside it an iperf3 TCP transfer of {plan.seconds:g} s: with a "
        f"{RESERVED_MBIT} Mbit/s reservation for it (the controller's meter and DSCP 46 mark at "
        "the site's switch, default burst; the sender unpaced, then paced at 40 Mbit/s with "
        "iperf3 --fq-rate), and on a port no reservation matches. `meter dropped`: the "
        "reservation meter band's drops during the run.",
        "\n## Goals\n",
        markdown_table(
            ["goal", "measured", "result"],
            [
                [
                    cap["goal"],
                    "; ".join(
                        f"{fmt_rate(p['capacity_bps'])} {p['direction']}: "
                        f"{p['min_ratio']:.3f}–{p['max_ratio']:.3f}"
                        for p in cap["per_link"]
                    ),
                    _yes(cap["met"]),
                ],
                [
                    res["goal"],
                    "; ".join(
                        f"{p['flood'].upper()} flood: reserved and paced "
                        f"{fmt_rate(p['reserved_paced_goodput_bps'])} "
                        f"{'✓' if p['reserved_paced_met'] else '✗'}, reserved unpaced "
                        f"{fmt_rate(p['reserved_goodput_bps'])} "
                        f"{'✓' if p['reserved_met'] else '✗'}, not reserved "
                        f"{fmt_rate(p['unreserved_goodput_bps'])} (the flood beside them "
                        f"{fmt_rate(p['flood_beside_reserved_paced_bps'])}, "
                        f"{fmt_rate(p['flood_beside_reserved_bps'])}, "
                        f"{fmt_rate(p['flood_beside_unreserved_bps'])})"
                        for p in res["per_flood"]
                    ),
                    _yes(res["met"]),
                ],
            ],
        ),
        "\n## Goodput / capacity (mean of the runs; ✓ every run within ±10 %)\n",
        markdown_table(
            ["capacity", "up (site → core)", "down (core → site)"],
            [
                [
                    fmt_rate(c),
                    *(_ratio(per[(c, d)]) if (c, d) in per else "failed" for d in ("up", "down")),
                ]
                for c in caps
            ],
        ),
        "\n## Reservation under a flood\n",
        markdown_table(
            [
                *("flood", "case", "#", "TCP goodput", "/ 40 Mbit/s", "flood received"),
                *("meter dropped", "shaped end"),
            ],
            [
                [
                    r["flood"],
                    r["case"],
                    s.repetition,
                    fmt_rate(r["goodput_bps"]),
                    "-" if r["ratio"] is None else f"{r['ratio']:.3f}",
                    fmt_rate(r["flood_goodput_bps"]),
                    r.get("meter_dropped"),
                    _shaper_cell(r),
                ]
                for s, r in reservation.done()
            ],
        ),
        "\n![goodput vs capacity, per run, and the reservation under a flood](links.png)\n",
        "## Statistics\n",
        "Goodput / capacity per capacity and direction:\n",
        statistics_table(
            capacity,
            "ratio",
            cell=lambda name, v: fmt_rate(v) if name == "capacity_bps" else str(v),
            headers={"capacity_bps": "capacity"},
        ),
        "\nThe TCP transfer beside the flood, goodput / 40 Mbit/s:\n",
        statistics_table(reservation, "ratio"),
        "\n" + runs_section(session, ["summary.json", "links.png", *files, "scenario.yaml"]),
    ]
    if summary["failures"]:
        text += ["## Failures\n", *(f"- {f}" for f in summary["failures"])]
    return "\n\n".join(block.strip("\n") for block in text) + "\n"


def print_results(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="goodput / capacity (green: every run within ±10 %)")
    for col in ("capacity", "direction", "mean ratio", "min – max", "goodput"):
        table.add_column(col, justify="right")
    for p in summary["capacity"]["per_link"]:
        color = "green" if p["all_within_10pct"] else "red"
        table.add_row(
            fmt_rate(p["capacity_bps"]),
            p["direction"],
            f"[{color}]{p['mean_ratio']:.3f}[/{color}]",
            f"{p['min_ratio']:.3f} – {p['max_ratio']:.3f}",
            fmt_rate(p["mean_goodput_bps"]),
        )
    console.print(table)
    for p in summary["reservation"]["per_flood"]:
        console.print(
            f"beside a {p['flood'].upper()} flood: reserved and paced TCP "
            f"{fmt_rate(p['reserved_paced_goodput_bps'])}, reserved unpaced "
            f"{fmt_rate(p['reserved_goodput_bps'])}, not reserved "
            f"{fmt_rate(p['unreserved_goodput_bps'])}",
            highlight=False,
        )
    for name in ("capacity", "reservation"):
        goal = summary[name]
        mark = "[green]met[/green]" if goal["met"] else "[red]not met[/red]"
        console.print(f"goal {name}: {goal['goal']}: {mark}", highlight=False)
