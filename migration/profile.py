"""Where a migration's frozen window went, to the millisecond: its profile, from its record.

The frozen window (`metrics.frozen_ms`) runs from the start of the freeze (the final dump, or
the stop of the source) to the end of the restore (or the fresh start). Each phase inside it is
split, outside in, along what each layer reported about the one inside it:

    engine phase  (the engine's clock: HTTP round trips, status calls, the hold)
      agent step  (`DumpInfo.seconds`, `RestoreInfo.seconds`: the agent's own work)
        runc      (the runc process's wall time)
          CRIU    (its stats-dump / stats-restore images: freezing, frozen, memdump, ...)

so that each layer's own part is its time minus the next one's. CRIU nests its dump times:
`frozen` holds `memdump`, which holds `memwrite`. A lazy (post-copy) dump's stats image is
zeros (its page server starts CRIU's counters afresh), so the agent reads its freezing and its
frozen time up to the page server's start from CRIU's log (agent.criu_images): there the frozen
part is `criu_dump_other` whole. CRIU's start-up before it freezes is in runc's part. A lazy
dump that sent its images itself (`handoff_s`) has that copy as its `transfer` part.
Gaps between phases are `between`; what no part explains is `unaccounted`, so that the parts
add up to the window exactly (a part measured as negative, a clock's jitter, counts as 0 and
shows there).

Pure: a record in, numbers out. `pages_mbps` is the rate the memory moved at: post-copy's
background page pull, or the copies' for the others.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from migration.site import CriuDumpStats, DumpInfo, RestoreInfo
from migration.timeline import MigrationRecord, PhaseRecord

FREEZE_PHASES = ("freeze_dump", "freeze_stop")
SERVE_PHASES = ("restore", "start")
MB = 1_000_000


def dump_detail(info: DumpInfo) -> dict[str, Any]:
    """What a freeze phase keeps of its dump for the profile."""
    criu = None if info.criu is None else criu_dump_detail(info.criu)
    return {"agent_s": info.seconds, "runc_s": info.runc_s, "criu_dump": criu}


def criu_dump_detail(stats: CriuDumpStats) -> dict[str, int]:
    return asdict(stats)


def restore_detail(info: RestoreInfo | None) -> dict[str, Any]:
    """What a restore phase keeps of its restore for the profile (nothing if unknown)."""
    if info is None:
        return {}
    criu = None if info.criu is None else asdict(info.criu)
    return {"agent_s": info.seconds, "runc_s": info.runc_s, "criu_restore": criu}


def _window(rec: MigrationRecord) -> tuple[float, float] | None:
    freeze = next((p for name in FREEZE_PHASES if (p := rec.phase(name))), None)
    serve = next((p for name in SERVE_PHASES if (p := rec.phase(name))), None)
    if freeze is None or serve is None or serve.end_ms is None:
        return None
    return freeze.start_ms, serve.end_ms


def _num(detail: dict[str, Any], key: str) -> float | None:
    value = detail.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _criu_dump_parts(stats: Any, lazy: bool) -> list[tuple[str, float]]:
    if not isinstance(stats, dict):
        return []
    ms = {k: float(v) / 1000.0 for k, v in stats.items() if isinstance(v, int | float)}
    freezing, memdump = ms.get("freezing_us", 0.0), ms.get("memdump_us", 0.0)
    if lazy:  # from CRIU's log: frozen is until its page server started
        return [("criu_freezing", freezing), ("criu_dump_other", ms.get("frozen_us", 0.0))]
    memwrite = ms.get("memwrite_us", 0.0)
    return [
        ("criu_freezing", freezing),
        ("criu_memdump", memdump - memwrite),
        ("criu_memwrite", memwrite),
        ("criu_dump_other", ms.get("frozen_us", 0.0) - memdump),
    ]


def _freeze_parts(ph: PhaseRecord, duration: float) -> list[tuple[str, float]]:
    d = ph.detail
    hold = _num(d, "hold_ms") or 0.0
    agent, runc = _num(d, "agent_s"), _num(d, "runc_s")
    lazy = bool(d.get("lazy"))
    parts = [("hold", hold)] if hold else []
    outer = duration - hold
    if agent is not None:
        parts.append(("dump_rpc", outer - agent * 1000.0))
        outer = agent * 1000.0
    handoff = (_num(d, "handoff_s") or 0.0) * 1000.0  # a lazy dump sent its images itself
    if handoff:
        parts.append(("transfer", handoff))
        outer -= handoff
    if runc is None:
        parts.append(("dump_agent" if agent is not None else "dump", outer))
        return parts
    parts.append(("dump_agent", outer - runc * 1000.0))
    outer = runc * 1000.0
    criu = _criu_dump_parts(d.get("criu_dump"), lazy)
    parts.append(("runc_dump_overhead", outer - sum(ms for _, ms in criu)))
    return parts + criu


def _restore_parts(ph: PhaseRecord, duration: float) -> list[tuple[str, float]]:
    d = ph.detail
    agent, runc = _num(d, "agent_s"), _num(d, "runc_s")
    parts: list[tuple[str, float]] = []
    outer = duration
    if agent is not None:
        parts.append(("restore_rpc", outer - agent * 1000.0))
        outer = agent * 1000.0
    if runc is not None:
        parts.append(("restore_agent", outer - runc * 1000.0))
        outer = runc * 1000.0
    stats = d.get("criu_restore")
    if runc is not None and isinstance(stats, dict):
        restore = float(stats.get("restore_us") or 0) / 1000.0
        forking = float(stats.get("forking_us") or 0) / 1000.0
        parts += [
            ("runc_restore_overhead", outer - restore),
            ("criu_forking", forking),
            ("criu_restore", restore - forking),
        ]
    else:
        parts.append(("restore", outer))
    return parts


def _switch_parts(ph: PhaseRecord, duration: float) -> list[tuple[str, float]]:
    steer = _num(ph.detail, "steer_ms")
    if steer is None:
        return [("switch", duration)]
    return [("source_link_down", duration - steer), ("switch", steer)]


def _parts_of(ph: PhaseRecord, duration: float) -> list[tuple[str, float]]:
    if ph.name == "freeze_dump":
        return _freeze_parts(ph, duration)
    if ph.name == "restore":
        return _restore_parts(ph, duration)
    if ph.name == "switch":
        return _switch_parts(ph, duration)
    if ph.name == "freeze_stop":
        hold = _num(ph.detail, "hold_ms") or 0.0
        return [("hold", hold), ("stop", duration - hold)]
    return [(ph.name, duration)]


def frozen_profile(rec: MigrationRecord, digits: int = 1) -> dict[str, float] | None:
    """The frozen window's named parts (ms, rounded to `digits`), in the order they happen;
    they add up to the window (`unaccounted` makes them exact). None: no frozen window."""
    window = _window(rec)
    if window is None:
        return None
    start, end = window
    frozen = end - start
    parts: dict[str, float] = {}
    covered_to = start
    between = 0.0
    for ph in rec.phases:
        if ph.end_ms is None or ph.end_ms <= start or ph.start_ms >= end:
            continue
        between += max(0.0, ph.start_ms - covered_to)
        covered_to = max(covered_to, ph.end_ms)
        for name, ms in _parts_of(ph, ph.end_ms - ph.start_ms):
            parts[name] = parts.get(name, 0.0) + max(0.0, ms)
    between += max(0.0, end - covered_to)
    parts = {k: r for k, v in parts.items() if (r := round(v, digits))}
    parts["between"] = round(between, digits)
    parts["unaccounted"] = round(frozen - sum(parts.values()), digits)
    return parts


def largest_parts(profile: dict[str, float], top: int = 5) -> str:
    """'transfer 512 ms, criu_memwrite 90 ms, ...': the `top` largest parts, for people."""
    biggest = sorted(profile.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{name} {ms:,.0f} ms" for name, ms in biggest if ms > 0)


def pages_mbps(rec: MigrationRecord) -> float | None:
    """MB/s (10^6 bytes) the memory moved at: post-copy's pages from the restore's start (the
    lazy-pages daemon starts pulling then) to the last page; else every copy's bytes over its
    sending time (a cold dump's pages, sent while it dumped, over the dump's runc time). None if
    nothing moved."""
    pages, restore = rec.phase("pages"), rec.phase("restore")
    if pages is not None and pages.bytes and pages.end_ms is not None and restore is not None:
        seconds = (pages.end_ms - restore.start_ms) / 1000.0
        return round(pages.bytes / seconds / MB, 2) if seconds > 0 else None
    sent, seconds = 0, 0.0
    for ph in rec.phases:
        freeze = rec.phase("freeze_dump")
        if ph.name == "transfer" and _num(ph.detail, "pages_bytes") and freeze is not None:
            # a cold dump's pages (in the phase's bytes) went while CRIU dumped: that time too
            seconds += _num(freeze.detail, "runc_s") or (freeze.duration_ms or 0.0) / 1000.0
        if ph.name == "transfer" or ph.name.startswith("precopy-"):
            s = _num(ph.detail, "send_s")
            if s is None and ph.duration_ms is not None:
                s = ph.duration_ms / 1000.0
            if ph.bytes and s:
                sent += ph.bytes
                seconds += s
    return round(sent / seconds / MB, 2) if sent and seconds > 0 else None
