"""The prose of the migration benchmark's report: formatting helpers, why each goal came out as
it did, the pre-dump estimate, and how to read the numbers (all from the measured phases)."""

from __future__ import annotations

import statistics
from typing import Any

from mecmig.bench.migration import POSTCOPY_GOAL_MS, Plan, median_of
from mecmig.bench.migration_cases import MIB, size_text
from mecmig.bench.report import markdown_table

LATE_MS = 1000.0  # a client-observed downtime this much above the frozen window is an outlier


def rate_name(bps: int) -> str:
    return f"{bps / 8e6:g} MB/s"


def num(value: float | None, digits: int = 0) -> str:
    """A number for a table ('-' for None), with thousands separators."""
    return "-" if value is None else f"{value:,.{digits}f}"


def mib(value: int | None) -> str:
    """Bytes as MiB with one decimal ('-' for None)."""
    return "-" if value is None else f"{value / MIB:,.1f}"


def met_text(flag: bool | None) -> str:
    """A goal's result in bold; None: not evaluated (the run lacks the case)."""
    return "not evaluated" if flag is None else ("**met**" if flag else "**not met**")


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table without the trailing newline (for blocks joined by blank lines)."""
    return markdown_table(headers, rows).rstrip("\n")


def largest(done: list[dict[str, Any]], strategy: str) -> dict[str, Any] | None:
    """The strategy's row at the largest size and dirty rate measured."""
    mine = [r for r in done if r["strategy"] == strategy]
    return max(mine, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]), default=None)


def goal_notes(done: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Why each goal came out as it did, from the measured phases."""
    g = summary["goals"]
    out = []
    post = [r for r in done if r["strategy"] == "postcopy"]
    if post:
        fixed = [(r["phases"].get("freeze_dump") or 0) + (r["phases"].get("restore") or 0)
                 for r in post]  # fmt: skip
        frozen = [r["frozen_ms"] for r in post if r["frozen_ms"] is not None]
        out.append(
            "**Post-copy downtime.** Post-copy's frozen window does not grow with the memory "
            f"size ({min(frozen):,.0f}–{max(frozen):,.0f} ms over every size and dirty rate): it "
            "holds the lazy dump (everything but the memory pages), the transfer of those "
            "images (about 2 MiB), the switch and the lazy restore. The lazy dump and the "
            f"restore alone take {min(fixed):,.0f}–{max(fixed):,.0f} ms: CRIU's and runc's fixed "
            "cost of freezing, dumping and recreating a process tree with its namespaces, "
            f"cgroup and TCP socket. The {POSTCOPY_GOAL_MS:g} ms goal is below that floor, so "
            "it is not reachable with runc + CRIU as used here, whatever the network does; "
            "the 10x goal against the baseline is, because the baseline's window grows with "
            "the memory it copies."
        )
    wait = retransmission_wait(done)
    if wait:
        out.append(wait)
    cells = g["precopy_vs_baseline"]["per_cell"]
    if cells:
        out.append(
            "**Pre-copy vs the baseline.** Pre-copy moves almost all of the copy out of the "
            "frozen window, but its final dump is still a full dump (no dirty tracking, see "
            "below) and the final transfer hashes the whole image to find the changed blocks; "
            "and the baseline does not hold the client's traffic: its client waits for its TCP "
            "retransmission timer (see above). Per cell, in ms "
            "(moved out = baseline's transfer − pre-copy's final transfer; gain = baseline − "
            "pre-copy; the goal asks gain ≥ moved out):"
        )
        out.append(
            md_table(
                [
                    "memory",
                    "dirty rate",
                    "moved out",
                    "gain, client-observed",
                    "goal",
                    "gain, frozen windows",
                    "would be",
                    "gain, pre-dumps (est.)",
                    "would be",
                ],
                [
                    [
                        size_text(c["memory_bytes"]),
                        rate_name(c["dirty_rate_bps"]),
                        num(c["transfer_moved_out_ms"]),
                        num(c["gain_ms"]),
                        met_text(c["met"]),
                        num(c["frozen_gain_ms"]),
                        met_text(c["met_on_frozen_window"]),
                        num(c["predump_gain_ms"]),
                        met_text(c["met_with_predumps"]),
                    ]
                    for c in cells
                ],
            )
        )
        spread = max(abs(c["gain_ms"] - c["transfer_moved_out_ms"]) for c in cells)
        out.append(
            "Without dirty tracking both frozen windows hold a full dump and a restore, so in "
            "expectation pre-copy's gain over the baseline *is* the transfer time it moves out, "
            "no more: the goal's inequality then sits on the boundary, and each cell passes or "
            "fails by run-to-run noise (here the gain differs from the time moved out by at most "
            f"{spread:,.0f} ms; these are single runs, `--repeat N` gives medians). Only a "
            "smaller final dump (pre-dumps, soft-dirty tracking) makes the gain exceed it by "
            "construction, by the full dump minus the delta dump (the estimate's column)."
        )
    total = _total_note(post, g["postcopy_total"])
    if total:
        out.append(total)
    return "\n\n".join(out)


def _total_note(post: list[dict[str, Any]], goal: dict[str, Any]) -> str:
    """Where post-copy's total time went in the cells that missed the bound: no page moves
    before the restore, so the frozen window and the agents' other steps add to the pages."""
    missed = [c for c in goal["per_cell"] if not c["met"]]
    if not missed or not goal["path_mbps"]:
        return ""
    parts = []
    for c in missed:
        rows = [
            r
            for r in post
            if r["memory_bytes"] == c["memory_bytes"]
            and r["dirty_rate_bps"] == c["dirty_rate_bps"]
            and r["phases"].get("pages") is not None
        ]
        if not rows:
            continue
        pages = statistics.median(r["phases"]["pages"] for r in rows)
        rest = c["total_ms"] - pages
        wire = c["bytes_transferred"] / (goal["path_mbps"] * 1e6) * 1000
        parts.append(
            f"at {size_text(c['memory_bytes'])} the bytes need {wire:,.0f} ms on the path and "
            f"the bound leaves {c['bound_ms'] - wire:,.0f} ms beside them; the pages took "
            f"{pages:,.0f} ms and everything else (preparation, reservation, the frozen window, "
            f"the delivery, the clean-up) {rest:,.0f} ms"
        )
    if not parts:
        return ""
    return (
        "**Post-copy's total time.** No page moves before the restore, so post-copy's total is "
        "at least its frozen window plus its pages at the path's rate, and the agents' "
        "preparation and clean-up come on top: "
        + "; ".join(parts)
        + ". The bound's 0.2 x bytes / rate grows with the memory, those steps do not."
    )


def _extra(rows: list[dict[str, Any]]) -> list[float]:
    """Client-observed downtime minus the frozen window, sorted."""
    return sorted(
        r["downtime_ms"] - r["frozen_ms"]
        for r in rows
        if r.get("frozen_ms") is not None and r.get("downtime_ms") is not None
    )


def _span(values: list[float]) -> str:
    return f"{values[0]:,.0f} to {values[-1]:,.0f} ms (median {values[len(values) // 2]:,.0f} ms)"


def retransmission_wait(done: list[dict[str, Any]]) -> str:
    """How much longer the client waited than the service was frozen, and why (TCP's RTO)."""
    one_shot = [r for r in done if r["strategy"] in ("postcopy", "hybrid", "cold", "baseline")]
    held = _extra([r for r in one_shot if r.get("held")])
    dropped = _extra([r for r in one_shot if not r.get("held")])
    out = []
    if held:
        packets = sorted(r["held_packets"] for r in one_shot if r.get("held_packets") is not None)
        many = f" ({packets[len(packets) // 2]} per migration, median)" if packets else ""
        out.append(
            "**Held traffic.** The engine's strategies have the controller hold the service's "
            "packets from CRIU's freeze on (the source agent's CRIU asks for it): every switch "
            f"sends them to the controller, which keeps them{many} and delivers them out of "
            "the service's new port right after the restore. The client's downtime then "
            f"differs from the frozen window by {_span(held)} (cold, post-copy, hybrid; the "
            "window starts at the dump call, ~50 ms before CRIU freezes); post-copy's first "
            "replies also wait for the memory pages their handler touches."
        )
    if dropped:
        out.append(
            "**Dropped traffic waits for TCP.** Without a hold (the baseline; the others with "
            f"`--hold never`) the client's downtime differs from the frozen window by "
            f"{_span(dropped)}. "
            "The probe keeps sending during the freeze; the network lock (at the source from "
            "the dump on, at the destination until the restore completes) drops those packets, "
            "and the client's TCP retransmits them only after its retransmission timeout: at "
            "least 200 ms, doubling each time (200, 600, 1400, 3000 ms ... after the first "
            "loss). The service is seen again at the first retransmission after the restore: "
            "the frozen window rounded up to the next of those instants."
        )
    return "\n\n".join(out)


def precopy_section(done: list[dict[str, Any]], summary: dict[str, Any], plan: Plan) -> str:
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
                num(r["downtime_ms"]),
                num(est["full_dump_ms"]),
                mib(r.get("final_transfer_bytes")),
                num(est["delta_dump_ms"]),
                num(est["downtime_ms"]),
                num(base),
                "-" if not base else f"{base / max(r['downtime_ms'], 1):.1f}x",
                "-" if not base else f"{base / max(est['downtime_ms'], 1):.1f}x",
            ]
        )
    return "\n\n".join(
        [
            "## Pre-copy without dirty tracking, and what pre-dumps would give",
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
            md_table(
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


def notes_section(done: list[dict[str, Any]], summary: dict[str, Any], fmt_rate: Any) -> str:
    """Reading the numbers: what makes up each strategy's downtime (from the measured phases)."""
    notes = ["\n## Reading the numbers\n"]
    post = [r for r in done if r["strategy"] == "postcopy"]
    if post:
        r = max(post, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]))
        p = r["phases"]
        notes.append(
            f"- **Post-copy** ({size_text(r['memory_bytes'])}, "
            f"{rate_name(r['dirty_rate_bps'])}): the freeze holds the lazy dump "
            f"({num(p.get('freeze_dump'))} ms, {mib(r.get('image_bytes'))} MiB of images without "
            f"the memory pages), their transfer ({num(p.get('transfer'))} ms), the switch "
            f"({num(p.get('switch'))} ms) and the lazy restore ({num(p.get('restore'))} ms); the "
            f"client saw {num(r['downtime_ms'])} ms. The memory then follows in `pages` "
            f"({num(p.get('pages'))} ms, {mib(r['bytes_transferred'])} MiB in all), while the "
            "service already runs at the destination, slowly: its page faults wait for the "
            f"network (silences add up to {num(r.get('silent_ms'))} ms over the run, "
            f"{r.get('gaps_over_100ms', '-')} of them over 100 ms)."
        )
    pre = [r for r in done if r["strategy"] == "precopy"]
    if pre:
        r = max(pre, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]))
        rounds = [v for k, v in r["phases"].items() if k.startswith("precopy-")]
        notes.append(
            f"- **Pre-copy** ({size_text(r['memory_bytes'])}, {rate_name(r['dirty_rate_bps'])}):"
            f" {len(rounds)} round(s) in {num(sum(rounds))} ms (stop: {r.get('stop_reason')}). "
            "Each round's dump (service left running) still freezes the process while CRIU "
            "copies its memory, so the client also stalls during the rounds: silences add up "
            f"to {num(r.get('silent_ms'))} ms, {r.get('gaps_over_100ms', '-')} of them over "
            f"100 ms; the longest was {num(r['downtime_ms'])} ms, the final frozen window "
            f"{num(r['frozen_ms'])} ms."
        )
    base = [r for r in done if r["strategy"] == "baseline"]
    if base:
        r = max(base, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"]))
        p = r["phases"]
        tx = p.get("transfer")
        rate = r["bytes_transferred"] * 8 / (tx / 1000) if tx else None
        notes.append(
            f"- **Baseline** ({size_text(r['memory_bytes'])}, {rate_name(r['dirty_rate_bps'])}):"
            f" full dump {num(p.get('freeze_dump'))} ms, copy {num(tx)} ms "
            f"({mib(r['bytes_transferred'])} MiB at {fmt_rate(rate)}, no reservation), restore "
            f"{num(p.get('restore'))} ms, all inside the freeze (frozen window "
            f"{num(r['frozen_ms'])} ms); the client saw {num(r['downtime_ms'])} ms."
        )
    reserved: dict[str, set[int]] = {}
    for r in sorted(done, key=lambda r: (r["memory_bytes"], r["dirty_rate_bps"])):
        if r.get("reserved_bps"):
            reserved.setdefault(r["strategy"], set()).add(r["reserved_bps"])
        if r.get("boosted_bps"):
            reserved.setdefault(f"{r['strategy']}'s final copy", set()).add(r["boosted_bps"])
    if reserved:
        grants = "; ".join(
            f"{s} {', '.join(fmt_rate(g) for g in sorted(v))}" for s, v in reserved.items()
        )
        notes.append(
            "- **Reservations**: the engine's strategies copy inside the controller's reservation "
            f"(granted: {grants}; cold and the lazy strategies size it from the memory size "
            "and the budget, capped by what the path has left), the baseline takes what the "
            "idle link gives. On an idle testbed a reservation can only cap a copy; it pays "
            "off when other traffic competes for the link."
        )
        c, b = largest(done, "cold"), largest(done, "baseline")
        if c is not None and b is not None:
            notes.append(
                f"- **Cold vs baseline** (the same stop-and-copy; {size_text(c['memory_bytes'])}"
                f", {rate_name(c['dirty_rate_bps'])}): cold's copy "
                f"{num(c['phases'].get('transfer'))} ms inside its reservation, the baseline's "
                f"{num(b['phases'].get('transfer'))} ms unreserved; downtime "
                f"{num(c['downtime_ms'])} vs {num(b['downtime_ms'])} ms."
            )
    if post:
        notes.append(
            "- **Bytes**: post-copy's (and hybrid's) `pages` are counted at the source agent's "
            "network interfaces while they move (TCP/IP headers and any retransmissions "
            "included), the other phases at the "
            "application (payload); that is why post-copy's bytes exceed the image size."
        )
    notes.append(
        "- **Downtime vs frozen window**: where traffic is not held, the client-observed "
        "downtime can exceed the frozen window because the client's TCP retransmission timer "
        "backs off while the service is frozen: the silence ends at the first retransmission "
        "after the restore. Held traffic ends it at the delivery, right after the restore; "
        "post-copy's first replies also wait for the pages they touch. The downtime can also "
        "be shorter than the window by up to a few hundred ms: the window starts before the "
        "dump actually stops the process, and the restored process answers before the "
        "restore call returns."
    )
    late = [
        r
        for r in done
        if r["frozen_ms"] is not None and r["downtime_ms"] - r["frozen_ms"] > LATE_MS
    ]
    for r in late:
        p = r["phases"]
        why = (
            "the restored process waited on its page faults while the memory was still moving "
            f"(`pages` took {num(p.get('pages'))} ms)"
            if "pages" in p
            else "most likely the client's TCP retransmission back-off after the freeze"
        )
        notes.append(
            f"- **Outlier**: {r['strategy']} at {size_text(r['memory_bytes'])}, "
            f"{rate_name(r['dirty_rate_bps'])}: the client saw {num(r['downtime_ms'])} ms, "
            f"{num(r['downtime_ms'] - r['frozen_ms'])} ms more than the frozen window "
            f"({num(r['frozen_ms'])} ms): {why}. State intact: "
            f"{'yes' if r['state_intact'] else 'no'}."
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
