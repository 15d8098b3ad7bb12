"""`mecmig bench sync`'s pure part (issue 12, seed 002): what a replica's volume sync period
costs, from what one run recorded. No clock, no I/O: the live part (`mecmig.bench.sync`) hands
in monotonic times in seconds.

The client hits the service (`workloads.volcount`: a counter on the volume, read and written at
every request) every few ms and logs each reply's time and count. At a handover the new
primary answers from its volume, which is as of its last sync: the count goes back by the hits
made since. So, per handover:

- `lost_hits`: the last count before the switch minus the count the new primary started from
  (its first answer minus one); 0 when its copy was current;
- `staleness_ms`: how far back the updates the handover lost go: the switch's start minus the
  reply time of the first hit the new primary's copy missed (counted `first answer`, among
  the replies since the previous switch); 0 when nothing was lost. The copy is at least that
  old (it was taken before that hit was written); the reply of the last hit it held can be
  much older when the client itself was silent before the switch, so that one is not used;
- `scheduled_staleness_ms`: the same as the replicas' schedule saw it (the switch minus the
  start of the last sync there: `SyncSchedule.staleness`);
- `within_period`: staleness ≤ the period plus the last sync's own duration plus
  SCHEDULING_SLACK_S (a sync starts at the first tick after it is due, and a tick may be
  busy probing the replicas): what a period promises.

Per run: `sync_bytes_per_s` (the syncs' bytes on the wire over the run's span), `syncs`,
`full_syncs` (all of the volume: the replica's first, and the first after each handover, whose
data flows the other way then), `delta_bytes_per_s` (the other syncs alone: what keeping a
replica current costs between handovers), `sync_ms_mean`, `write_bytes_per_s` (what the
service wrote to its volume).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AFTER_S = 3.5  # the new primary's first answer comes within this of the switch (a SYN lost
# at the switch is sent again after 1 s, then 3 s)
SCHEDULING_SLACK_S = 0.15  # a 50 ms tick, and 100 ms for a probe or a busy CPU before the sync


@dataclass(frozen=True)
class Hit:
    """A reply of the client: when (monotonic s) and the count it said."""

    t_s: float
    count: int


@dataclass(frozen=True)
class Switch:
    """A handover: to which site, when it began and ended (monotonic s), the controller's
    switch-over, and the schedule's staleness of that site's copy when it began (s)."""

    to_site: str
    began_s: float
    ended_s: float
    switchover_ms: float
    scheduled_staleness_s: float | None


@dataclass(frozen=True)
class Synced:
    """One sync: to where, when it started and ended (monotonic s), its bytes on the wire, and
    whether it sent all of the volume (a new replica, or the first sync after a handover)."""

    site: str
    started_s: float
    ended_s: float
    bytes: int
    full: bool = False


def hits_of(samples: Sequence[Sequence[Any]]) -> list[Hit]:
    """`workloads.http_poll --samples`' `[reply_s, body]`, the counted ones, by time."""
    out = [Hit(float(t), int(c)) for t, c in samples if c is not None]
    return sorted(out, key=lambda h: h.t_s)


def handover_row(
    hits: Sequence[Hit],
    sw: Switch,
    period_s: float,
    last_sync_s: float,
    since_s: float = float("-inf"),
) -> dict[str, Any]:
    """One handover's row (see the module docstring); `last_sync_s`: how long the last sync to
    its site took; `since_s`: the end of the previous switch (the replies before it came from
    another primary, whose counts may repeat these)."""
    before = [h for h in hits if since_s < h.t_s <= sw.began_s]
    after = [h for h in hits if sw.ended_s < h.t_s <= sw.ended_s + AFTER_S]
    row: dict[str, Any] = {
        "to_site": sw.to_site,
        "switchover_ms": round(sw.switchover_ms, 2),
        "scheduled_staleness_ms": None
        if sw.scheduled_staleness_s is None
        else round(sw.scheduled_staleness_s * 1000.0, 1),
        "lost_hits": None,
        "staleness_ms": None,
        "within_period": None,
    }
    row["around"] = [
        [round(h.t_s - sw.began_s, 4), h.count]
        for h in hits
        if sw.began_s - 0.05 <= h.t_s <= sw.ended_s + 0.1
    ]  # the replies around the switch (s from its start, count): what the row is made of
    if not before or not after:
        row["why"] = "no reply before the switch" if not before else "no reply after it"
        return row
    last = before[-1].count
    # the new primary's first answer: the first that went back (replies the old primary still
    # sent for requests it took before the switch continue the old count)
    first = next((h for h in after if h.count <= last), None)
    if first is None:
        row.update(lost_hits=0, staleness_ms=0.0, within_period=True)
        return row
    held = first.count - 1  # what its copy held
    lost = last - held
    missed = next((h for h in before if h.count > held), None)  # the first hit it lacks
    if missed is None:
        row["why"] = f"the new primary held {held}: no reply since the previous switch said more"
    staleness = (sw.began_s - missed.t_s) * 1000.0 if missed is not None else None
    row.update(
        lost_hits=lost,
        staleness_ms=None if staleness is None else round(staleness, 1),
        within_period=None
        if staleness is None
        else staleness <= (period_s + last_sync_s + SCHEDULING_SLACK_S) * 1000.0,
    )
    return row


def run_rows(
    hits: Sequence[Hit],
    switches: Sequence[Switch],
    syncs: Sequence[Synced],
    period_s: float,
    repetition: int,
) -> list[dict[str, Any]]:
    """A row per handover of one run, with the period and the repetition."""
    rows = []
    since = float("-inf")
    for i, sw in enumerate(switches):
        last = [s for s in syncs if s.site == sw.to_site and s.ended_s <= sw.began_s]
        took = (last[-1].ended_s - last[-1].started_s) if last else 0.0
        row = handover_row(hits, sw, period_s, took, since)
        since = sw.ended_s
        rows.append({"period_s": period_s, "repetition": repetition, "handover": i + 1, **row})
    return rows


def traffic(syncs: Sequence[Synced], span_s: float) -> dict[str, Any]:
    """The syncs' inter-site traffic over a run of `span_s` seconds."""
    total = sum(s.bytes for s in syncs)
    deltas = [s for s in syncs if not s.full]
    took = [(s.ended_s - s.started_s) * 1000.0 for s in syncs]
    return {
        "syncs": len(syncs),
        "full_syncs": len(syncs) - len(deltas),
        "sync_bytes": total,
        "sync_bytes_per_s": round(total / span_s, 1) if span_s > 0 else None,
        # the deltas alone: what keeping a replica current costs between handovers
        "delta_bytes_per_s": round(sum(s.bytes for s in deltas) / span_s, 1)
        if span_s > 0
        else None,
        "delta_bytes_mean": round(statistics.fmean(s.bytes for s in deltas), 1) if deltas else None,
        "sync_ms_mean": round(statistics.fmean(took), 1) if took else None,
        "sync_ms_max": round(max(took), 1) if took else None,
    }


def summarize(
    rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Per period: the staleness at handovers (mean, max), the hits lost, the traffic; and
    whether every handover's staleness was within its period (plus its sync)."""
    per: dict[str, Any] = {}
    for period in sorted({float(r["period_s"]) for r in runs}):
        mine = [r for r in rows if r["period_s"] == period]
        stale = [float(r["staleness_ms"]) for r in mine if r["staleness_ms"] is not None]
        sched = [
            float(r["scheduled_staleness_ms"])
            for r in mine
            if r["scheduled_staleness_ms"] is not None
        ]
        its = [r for r in runs if r["period_s"] == period]
        rates = [float(r["sync_bytes_per_s"]) for r in its if r.get("sync_bytes_per_s") is not None]
        deltas = [
            float(r["delta_bytes_per_s"]) for r in its if r.get("delta_bytes_per_s") is not None
        ]
        writes = [
            float(r["write_bytes_per_s"]) for r in its if r.get("write_bytes_per_s") is not None
        ]
        per[f"{period:g}"] = {
            "handovers": len(mine),
            "staleness_mean_ms": round(statistics.fmean(stale), 1) if stale else None,
            "staleness_max_ms": max(stale) if stale else None,
            "scheduled_staleness_mean_ms": round(statistics.fmean(sched), 1) if sched else None,
            "lost_hits_mean": round(statistics.fmean(float(r["lost_hits"]) for r in mine
                                                     if r["lost_hits"] is not None), 1)
            if any(r["lost_hits"] is not None for r in mine) else None,
            "sync_bytes_per_s": round(statistics.fmean(rates), 1) if rates else None,
            "delta_bytes_per_s": round(statistics.fmean(deltas), 1) if deltas else None,
            "full_syncs": sum(int(r.get("full_syncs", 0)) for r in its),
            "write_bytes_per_s": round(statistics.fmean(writes), 1) if writes else None,
            "sync_ms_mean": _mean([r.get("sync_ms_mean") for r in its]),
        }  # fmt: skip
    judged = [r["within_period"] for r in rows if r["within_period"] is not None]
    return {
        "per_period": per,
        "goals": {
            "staleness_within_period": all(judged) if judged else None,
            "handovers_measured": len(judged),
            "handovers": len(rows),
        },
    }


def _mean(values: Sequence[Any]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return round(statistics.fmean(known), 1) if known else None
