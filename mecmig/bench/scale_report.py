"""The report of `mecmig bench scale`: latency per operation against the fabric's size (plot),
the tables the README quotes, the memory per site and per reservation, and the goals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mecmig.bench.report import markdown_table, new_figure, save_figure

VIAS = {
    "state": "pure state (FabricState)",
    "rest": "REST API, software switches",
    "runtime": "runtime (port status), software switches",
    "ovs": "REST API, Open vSwitch",
}


def plot(rows: list[dict[str, Any]], sizes: list[dict[str, Any]], path: Path) -> Path:
    """Median latency against sites, one line per operation: pure state | REST (and runtime)."""
    fig, (state_ax, rest_ax, mem_ax) = new_figure(ncols=3, width=5.5)
    for ax, vias, title in (
        (state_ax, ("state",), "pure state"),
        (rest_ax, ("rest", "runtime"), "REST / runtime, software switches"),
    ):
        ops = sorted({r["operation"] for r in rows if r["via"] in vias})
        for op in ops:
            mine = sorted(
                (r for r in rows if r["via"] in vias and r["operation"] == op),
                key=lambda r: r["sites"],
            )
            ax.plot(
                [r["sites"] for r in mine], [r["median_ms"] for r in mine], marker="o", label=op
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sites")
        ax.set_ylabel("median latency (ms)")
        ax.set_title(title)
        ax.axhline(5.0 if vias == ("state",) else 10.0, color="grey", ls="--", lw=0.8)
        ax.legend(fontsize="small")
    xs = [s["sites"] for s in sizes]
    mem_ax.plot(xs, [s["state_bytes"] / 2**20 for s in sizes], marker="o", label="state")
    mem_ax.plot(xs, [s["rss_bytes"] / 2**20 for s in sizes], marker="s", label="process RSS")
    mem_ax.set_xscale("log")
    mem_ax.set_yscale("log")
    mem_ax.set_xlabel("sites")
    mem_ax.set_ylabel("MiB")
    mem_ax.set_title("memory")
    mem_ax.legend(fontsize="small")
    return save_figure(fig, path)


def latency_table(rows: list[dict[str, Any]], via: str) -> str:
    mine = [r for r in rows if r["via"] == via]
    ops = list(dict.fromkeys(r["operation"] for r in mine))
    sites = sorted({r["sites"] for r in mine})
    table = []
    for op in ops:
        cells: list[object] = [op]
        for n in sites:
            r = next((r for r in mine if r["operation"] == op and r["sites"] == n), None)
            cells.append(
                "-"
                if r is None
                else f"{r['median_ms']} / {r['p95_ms']} / {r['max_ms']} ({r['flows_changed']})"
            )
        table.append(cells)
    return markdown_table(["operation", *(f"{n} sites" for n in sites)], table)


def markdown(
    rows: list[dict[str, Any]],
    sizes: list[dict[str, Any]],
    goals: list[dict[str, Any]],
    ovs: dict[str, Any] | None,
    command: str,
    started: str,
    duration: float,
) -> str:
    parts = [
        "# The controller at operator scale",
        "",
        f"`{command}` — started {started}, {duration} s. Generated fabrics: sites under "
        "aggregation switches (ceil(sqrt(sites))) in a ring, an instance and a UE at every tenth "
        "site. Cells: median / p95 / max latency in ms (flows changed, median).",
        "",
    ]
    for via, title in VIAS.items():
        if any(r["via"] == via for r in rows):
            parts += [f"## {title}", "", latency_table(rows, via), ""]
    parts += [
        "## Build and memory",
        "",
        markdown_table(
            [
                "sites",
                "switches",
                "hosts",
                "build ms",
                "state bytes",
                "bytes/site",
                "bytes/reservation",
                "process RSS",
            ],
            [
                [
                    s["sites"],
                    s["switches"],
                    s["hosts"],
                    s["build_ms"],
                    s["state_bytes"],
                    s["bytes_per_site"],
                    s["bytes_per_reservation"],
                    f"{s['rss_bytes'] / 2**20:.0f} MiB",
                ]
                for s in sizes
            ],
        ),
        "",
        "## Goals",
        "",
        markdown_table(
            ["goal", "limit ms", "measured ms", "met"],
            [
                [g["goal"], g["limit_ms"], g["value_ms"], "yes" if g["met"] else "**no**"]
                for g in goals
            ],
        ),
    ]
    if ovs and "skipped" in ovs:
        parts += ["", f"No Open vSwitch point: {ovs['skipped']}"]
    elif ovs:
        parts += ["", f"Open vSwitch point: {ovs.get('sites')} sites, {ovs.get('note', '')}"]
    return "\n".join(parts) + "\n"
