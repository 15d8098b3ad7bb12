"""`mecmig bench migration`: where each strategy's frozen window went (migration.profile).

Each row carries `frozen_profile_ms` (the named parts of its frozen window, summing to it) and
`pages_mbps` (post-copy's background page pull; the copies' rate for the others). This module
adds them to a row from its record, draws frozen_profile.png (a stacked bar per strategy and
memory size: the median of each part over its repeats) and writes the report's section.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from mecmig.bench.migration_cases import size_text
from mecmig.bench.migration_text import rate_name
from mecmig.bench.report import new_figure, save_figure
from migration.profile import frozen_profile, pages_mbps
from migration.timeline import MigrationRecord

PLOT = "frozen_profile.png"
# the parts' colours by their layer: CRIU blues, runc oranges, the agents greens, the network
# purples and greys for the rest (a part not named here takes the next colour of tab20)
PART_COLORS = {
    "criu_freezing": "#08306b",
    "criu_memdump": "#2171b5",
    "criu_memwrite": "#6baed6",
    "criu_dump_other": "#9ecae1",
    "criu_forking": "#08519c",
    "criu_restore": "#4292c6",
    "runc_dump_overhead": "#e6550d",
    "runc_restore_overhead": "#fdae6b",
    "dump_agent": "#31a354",
    "restore_agent": "#74c476",
    "dump_rpc": "#c7e9c0",
    "restore_rpc": "#a1d99b",
    "hold": "#756bb1",
    "transfer": "#54278f",
    "source_link_down": "#bcbddc",
    "switch": "#9e9ac8",
    # whole phases, where the site reported nothing finer (the peer, a restart)
    "dump": "#8c6d31",
    "stop": "#8c6d31",
    "restore": "#e7ba52",
    "start": "#e7ba52",
    "between": "#bdbdbd",
    "unaccounted": "#636363",
}


def profile_fields(record: MigrationRecord | None) -> dict[str, Any]:
    """A row's `frozen_profile_ms` and `pages_mbps`, from its migration's record."""
    if record is None:
        return {"frozen_profile_ms": None, "pages_mbps": None}
    return {"frozen_profile_ms": frozen_profile(record), "pages_mbps": pages_mbps(record)}


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, int, int], list[dict[str, float]]]:
    out: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    for r in rows:
        prof = r.get("frozen_profile_ms")
        if isinstance(prof, dict) and r.get("outcome") == "done":
            key = (r["strategy"], r["memory_bytes"], r["dirty_rate_bps"])
            out.setdefault(key, []).append(prof)
    return out


def median_profiles(rows: list[dict[str, Any]]) -> dict[tuple[str, int, int], dict[str, float]]:
    """Per (strategy, size, dirty rate): the median of each part over the repeats."""
    medians = {}
    for key, profs in _groups(rows).items():
        names = list(dict.fromkeys(n for p in profs for n in p))
        medians[key] = {n: statistics.median(p.get(n, 0.0) for p in profs) for n in names}
    return medians


def plot_profile(rows: list[dict[str, Any]], out: Path, order: list[str]) -> str | None:
    """frozen_profile.png: a stacked bar per strategy (in `order`) and size; its file name, or
    None when no row has a profile."""
    medians = median_profiles(rows)
    if not medians:
        return None
    keys = sorted(medians, key=lambda k: (k[1], k[2], _rank(order, k[0])))
    names = list(dict.fromkeys(n for k in keys for n in medians[k]))
    fig, (ax,) = new_figure(width=max(6.5, 1.1 * len(keys) + 3), height=5.0)
    spare = iter(f"C{i}" for i in range(10))  # for parts without a colour of their own
    bottoms = [0.0] * len(keys)
    labels = [f"{s}\n{size_text(m)}, {rate_name(d)}" for s, m, d in keys]
    for name in names:
        values = [max(0.0, medians[k].get(name, 0.0)) for k in keys]
        if not any(values):
            continue
        color = PART_COLORS.get(name) or next(spare, "black")
        ax.bar(labels, values, bottom=bottoms, color=color, label=name, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for i, total in enumerate(bottoms):
        ax.annotate(f"{total:,.0f} ms", (i, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("frozen window (ms), median per part")
    ax.set_title("Where the frozen window went: CRIU, runc, the agents, the network")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", labelsize=8)
    save_figure(fig, out / PLOT)
    return PLOT


def _rank(order: list[str], strategy: str) -> int:
    return order.index(strategy) if strategy in order else len(order)


def _client_median(rows: list[dict[str, Any]], name: str) -> str:
    """The median of the rows' `client_timing_ms[name]`, as the report prints it ("-": none)."""
    values = [
        t[name]
        for r in rows
        if isinstance(t := r.get("client_timing_ms"), dict) and isinstance(t.get(name), int | float)
    ]
    return f"{statistics.median(values):,.0f}" if values else "-"


def profile_section(rows: list[dict[str, Any]], order: list[str], top: int = 4) -> str:
    """The report's section: the plot, each strategy's largest parts and its page rate."""
    medians = median_profiles(rows)
    if not medians:
        return ""
    lines = [
        "## Where the frozen window went\n",
        "Each row's `frozen_profile_ms` splits its frozen window (the freeze's start to the "
        "restore's end, as the engine timed it) layer by layer: the engine's phase, the agent's "
        "step in it (`*_rpc`: HTTP round trips and status calls), runc's process in that "
        "(`runc_*_overhead`), CRIU's own times in runc (`criu_*`, from its stats-dump and "
        "stats-restore images), the copy (`transfer`), the controller's steer (`switch`), "
        "gaps between phases (`between`) and what none explains (`unaccounted`). CRIU's "
        "start-up before it freezes counts as runc's; a post-copy dump's CRIU times come from "
        "CRIU's log (its stats image is zeros), its frozen time up to its page server. "
        "`pages_mbps`: post-copy's background page pull from the restore's start, the copies' "
        "rate for the others.\n",
        "Around the window, from the client (`client_timing_ms`, medians): *after restore* runs "
        "from the restore's end to the client's first reply after its longest silence (the "
        "held packets' delivery, then the first requests the restored service answers, with "
        "post-copy's page faults on the way); *freeze* from the client's last reply before "
        "that silence to the freeze phase's start (negative: the service still answered after "
        "the engine asked for the dump, while runc and CRIU started).\n",
        f"![the frozen window, part by part]({PLOT})\n",
        "| strategy | size | dirty | frozen (ms) | largest parts (ms) | pages MB/s "
        "| freeze (ms) | after restore (ms) |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for key in sorted(medians, key=lambda k: (k[1], k[2], _rank(order, k[0]))):
        strategy, size, rate = key
        prof = medians[key]
        biggest = sorted(prof.items(), key=lambda kv: -kv[1])[:top]
        parts = ", ".join(f"{n} {v:,.0f}" for n, v in biggest)
        rates = [
            r["pages_mbps"]
            for r in rows
            if (r["strategy"], r["memory_bytes"], r["dirty_rate_bps"]) == key
            and r.get("pages_mbps") is not None
        ]
        mbps = f"{statistics.median(rates):,.1f}" if rates else "-"
        same = [
            r
            for r in rows
            if (r["strategy"], r["memory_bytes"], r["dirty_rate_bps"]) == key
            and r.get("outcome") == "done"
        ]
        before = _client_median(same, "last_reply_to_freeze")
        after = _client_median(same, "restore_end_to_first_reply")
        lines.append(
            f"| {strategy} | {size_text(size)} | {rate_name(rate)} | {sum(prof.values()):,.0f} "
            f"| {parts} | {mbps} | {before} | {after} |"
        )
    return "\n".join(lines) + "\n"
