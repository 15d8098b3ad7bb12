"""The Podman rows of `mecmig bench migration` against mecmig's: downtime ratios per cell.

Each ratio is Podman's median client-observed downtime over a strategy's, in the same run, on
the same workload (memory size, dirty rate): 10 means the strategy's downtime is 10x below
Podman's. The issue's goal: post-copy at least 10x below Podman's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mecmig.bench.podman_peer import PODMAN_STRATEGIES

PEERS = tuple(PODMAN_STRATEGIES)
OURS = ("postcopy", "hybrid", "precopy", "cold", "baseline")
RATIO_GOAL = 10.0
PEER_DESCRIPTION = {
    "podman": "Podman 4.3 (runc + the same CRIU): `podman container checkpoint --export "
    "--compress none --tcp-established`, the archive copied between the two MEC hosts over "
    "the emulated network, `podman container restore --import --tcp-established`; same "
    "command, address and network namespace plumbing as mecmig's instances",
    "podman-zstd": "the same with Podman's default compression (`--compress zstd`)",
}


def _ratio(peer: float | None, ours: float | None) -> float | None:
    return None if peer is None or not ours else round(peer / ours, 2)


def peer_ratios(
    rows: list[dict[str, Any]], sizes: Sequence[int], rates: Sequence[int]
) -> dict[str, Any]:
    """Per cell with a Podman row: Podman's downtime and frozen window (its stop-to-running),
    and each of our strategies' downtime ratio to each Podman row's."""
    from mecmig.bench.migration import median_of

    cells: list[dict[str, Any]] = []
    for size in sizes:
        for rate in rates:
            peers = {
                p: {k: median_of(rows, p, size, rate, k) for k in ("downtime_ms", "frozen_ms")}
                for p in PEERS
            }
            if all(v["downtime_ms"] is None for v in peers.values()):
                continue
            ratios: dict[str, Any] = {}
            for s in OURS:
                ours = median_of(rows, s, size, rate, "downtime_ms")
                if ours is not None:
                    ratios[s] = {
                        "downtime_ms": ours,
                        **{f"vs_{p}": _ratio(peers[p]["downtime_ms"], ours) for p in PEERS},
                    }
            cells.append(
                {"memory_bytes": size, "dirty_rate_bps": rate * 8, **peers, "ratios": ratios}
            )
    post = [
        r
        for c in cells
        for p in PEERS
        if (r := c["ratios"].get("postcopy", {}).get(f"vs_{p}")) is not None
    ]
    return {
        "goal": f"post-copy downtime >= {RATIO_GOAL:g}x below Podman's in the same run "
        "(each cell, both Podman rows)",
        "per_cell": cells,
        "met": None if not post else all(r >= RATIO_GOAL for r in post),
    }


def peer_section(vs: dict[str, Any]) -> str:
    """report.md's part on Podman: a line per cell and strategy with its ratios."""
    from mecmig.bench.migration_cases import size_text

    if not vs["per_cell"]:
        return ""
    lines = [
        "\n## Podman in the same run\n",
        "Podman's downtime over each strategy's (client-observed, medians): 10x means the "
        "strategy's downtime is ten times below Podman's. Podman's stop-to-running is its "
        "frozen window, from `checkpoint` to the end of `restore`.\n",
    ]
    for c in vs["per_cell"]:
        where = f"{size_text(c['memory_bytes'])}, dirty {c['dirty_rate_bps'] / 8e6:g} MB/s"
        peers = ", ".join(
            f"{p} {_ms(c[p]['downtime_ms'])} (stop-to-running {_ms(c[p]['frozen_ms'])})"
            for p in PEERS
        )
        lines.append(f"- **{where}**: {peers}")
        for s, r in c["ratios"].items():
            vs_text = ", ".join(f"{_x(r[f'vs_{p}'])} vs {p}" for p in PEERS)
            lines.append(f"  - {s} {_ms(r['downtime_ms'])}: {vs_text}")
    met = {True: "met", False: "not met", None: "not measured"}[vs["met"]]
    lines.append(f"\nGoal: {vs['goal']}: **{met}**.")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"
