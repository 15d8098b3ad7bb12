"""The report of `mecmig bench reliability`: the fault x phase table (the README quotes it) and
a plot of the soak (each migration's longest client gap against its frozen window)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mecmig.bench.fault_names import PHASES
from mecmig.bench.faults import Fault
from mecmig.bench.report import markdown_table, new_figure, save_figure


def _mark(row: dict[str, Any]) -> str:
    """One strategy's result in a cell: ✅ green, else ❌ and why."""
    if row.get("green"):
        return f"✅ {row['strategy']}"
    why = []
    if row.get("outcome") == "not run":
        why.append("not run")
    else:
        if not row.get("fired", True):
            why.append("did not fire")
        if row.get("service_at") != row.get("expected_at"):
            why.append(f"at {row.get('service_at')}")
        if not row.get("state_intact"):
            why.append("state lost")
        if not row.get("connection_kept"):
            why.append("connection broken")
        leaked = {k: v for k, v in (row.get("leaks") or {}).items() if v}
        if leaked:
            why.append("leaks " + ", ".join(f"{k} {v}" for k, v in leaked.items()))
    return f"❌ {row['strategy']} ({'; '.join(why)})"


def fault_table(rows: list[dict[str, Any]], faults: Mapping[str, Fault]) -> str:
    phases = [p for p in PHASES if any(r["phase"] == p for r in rows)]
    names = [f for f in faults if any(r["fault"] == f for r in rows)]
    table = []
    for name in names:
        cells: list[object] = [f"**{name}**"]
        for phase in phases:
            mine = [r for r in rows if r["fault"] == name and r["phase"] == phase]
            cells.append("<br>".join(_mark(r) for r in mine) if mine else "n/a")
        table.append(cells)
    return markdown_table(["fault \\ phase", *phases], table)


def markdown(
    rows: list[dict[str, Any]],
    soak: dict[str, Any] | None,
    command: str,
    started: str,
    duration: float,
    faults: Mapping[str, Fault],
) -> str:
    green = sum(1 for r in rows if r.get("green"))
    parts = [
        "# Reliability: faults at every phase, and a soak",
        "",
        f"`{command}` — started {started}, {duration} s. Scenario `scenarios/reliability.yaml`: "
        "Debian's memcached moves mec1 → mec2, its client at mec3 increments a counter every "
        "5 ms over one TCP connection.",
        "",
        f"**{green} of {len(rows)} rows green.** A row is green when the service answers where it "
        "must (the source before the point of no return, the destination after it), its "
        "counter survived, the client kept its connection, and nothing was left behind.",
        "",
        fault_table(rows, faults),
        "",
        "Faults:",
        "",
    ]
    parts += [
        f"- **{f.name}**: {f.what}"
        for f in faults.values()
        if any(r["fault"] == f.name for r in rows)
    ]
    if soak:
        parts += [
            "",
            "## Soak",
            "",
            markdown_table(
                ["migrations", "done", "state lost", "gaps over window + 50 ms", "leaked",
                 "RSS growth", "green"],
                [[soak["migrations"], soak["done"], soak["state_lost"], soak["gaps_over_window"],
                  ", ".join(f"{k} {v}" for k, v in soak["leaked"].items()) or "nothing",
                  f"{soak['rss_growth'] * 100:.1f} % ({soak['rss_baseline']})",
                  "✅" if soak["green"] else "❌"]],
            ),
        ]  # fmt: skip
    return "\n".join(parts) + "\n"


def plot(rows: list[dict[str, Any]], hops: list[dict[str, Any]], path: Any) -> None:
    fig, (ax,) = new_figure(1, width=8, height=4)
    if hops:
        xs = [h["n"] for h in hops]
        ax.plot(xs, [h.get("frozen_ms") or 0 for h in hops], ".", label="frozen window")
        ax.plot(xs, [h.get("longest_gap_ms") or 0 for h in hops], "x", label="longest client gap")
        ax.set_xlabel("soak migration")
        ax.set_ylabel("ms")
        ax.set_title("Soak: each migration's longest client gap vs. its frozen window")
        ax.legend()
    else:
        green = sum(1 for r in rows if r.get("green"))
        ax.bar(["green", "not green"], [green, len(rows) - green])
        ax.set_title("Fault matrix rows")
    save_figure(fig, path)
