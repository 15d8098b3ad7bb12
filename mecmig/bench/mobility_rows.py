"""`mecmig bench mobility`'s pure part (issue 12): a row per handover from what one drive
recorded (the client's replies, the handovers' wall times, each move's record), and the
statistics per policy. No clock, no I/O: the live part (`mecmig.bench.mobility`) hands in
monotonic times in seconds (the probe's nanoseconds are on the same CLOCK_MONOTONIC: Mininet's
hosts are network namespaces, not time namespaces).

- `interruption_ms`: the largest gap between two consecutive replies the client got, minus the
  probe's interval (as `workloads.probe` counts its `downtime_ms`), over the pairs of replies
  that overlap the handover's window: from the earlier of the handover and its move's start to
  the later of the handover and its move's end, `WINDOW_PAD_S` either side. A gap that began
  before the previous handover's move served at its destination is that move's (at x8 a
  reactive move can still run when the next handover comes: its gap is counted once).
- `t_pre_ms`: the move's start (a speculation's Start, or the handover for a reactive move) to
  the moment it was ready for its final phase (a speculation's `ready_ms`, or `committing_ms`
  when the commit came while the rounds still ran; a reactive move's freeze).
- `t_down_ms`: the move's frozen window (the record's `frozen_ms`: freeze to restored).
- `dwell_ms`: the UE's stay at the target from its arrival (`known_dwell`), in wall ms at the
  drive's time scale; None when the stay lasts to the end of the path (open: seed 003 and
  `topology.dwell` leave those out).
- `viable`: seed 003's `T_pre + T_down <= T_dwell` (None when the dwell is open).
- `serving_after_ms`: the handover to the destination serving (its restore's end): what the UE
  waits for, once there, before its service is near; `served_within_dwell` compares it with
  the dwell (what speculation changes: its T_pre lies before the arrival).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW_PAD_S = 0.2
NS_PER_S = 1e9


@dataclass(frozen=True)
class Reply:
    """One answered request of the client: when its reply came (monotonic s), its counter,
    its connection."""

    t_s: float
    counter: int | None
    conn: int


def replies_of(samples: Sequence[Mapping[str, Any]]) -> list[Reply]:
    """The answered requests of `workloads.probe`'s samples (`--samples`), by reply time."""
    out = [
        Reply(s["reply_ns"] / NS_PER_S, s.get("counter"), int(s.get("conn", 1)))
        for s in samples
        if s.get("reply_ns") is not None
    ]
    return sorted(out, key=lambda r: r.t_s)


def largest_gap_ms(
    replies: Sequence[Reply],
    lo_s: float,
    hi_s: float,
    interval_ms: float,
    after_s: float = float("-inf"),
) -> float | None:
    """The longest silence between consecutive replies that overlaps [lo_s, hi_s] and began
    at or after `after_s` (one that began earlier belongs to what came before), minus the
    interval (never below 0); None when no pair of replies qualifies."""
    best: float | None = None
    for a, b in zip(replies, replies[1:], strict=False):
        if b.t_s <= lo_s or a.t_s >= hi_s or a.t_s < after_s:
            continue
        gap = max(0.0, (b.t_s - a.t_s) * 1000.0 - interval_ms)
        best = gap if best is None else max(best, gap)
    return best


def gaps_s(replies: Sequence[Reply], interval_ms: float) -> list[tuple[float, float]]:
    """The silences longer than 3 intervals (as `workloads.probe` lists them), in monotonic
    seconds: what the raw data keeps of the client, so that rows can be recomputed."""
    return [
        (round(a.t_s, 4), round(b.t_s, 4))
        for a, b in zip(replies, replies[1:], strict=False)
        if (b.t_s - a.t_s) * 1000.0 > 3 * interval_ms
    ]


def counters_monotonic(replies: Sequence[Reply], lo_s: float, hi_s: float) -> bool:
    """The counters the client saw within [lo_s, hi_s] never went back."""
    seen = [r.counter for r in replies if lo_s <= r.t_s <= hi_s and r.counter is not None]
    return all(b >= a for a, b in zip(seen, seen[1:], strict=False))


@dataclass(frozen=True)
class Move:
    """One migration of the drive, in monotonic seconds: asked for (`asked_s`: a speculation's
    Start, or the handover for a reactive one), ready for its final phase, frozen from
    `freeze_s` to `serving_s` (restored), ended (`end_s`)."""

    destination: str
    speculative: bool
    outcome: str  # the record's: done | rolled_back | failed
    asked_s: float
    ready_s: float | None
    freeze_s: float | None
    serving_s: float | None
    end_s: float
    frozen_ms: float | None
    bytes: int
    cancelled: bool = False  # a speculation called off (the UE turned away)
    error: str | None = None


def move_of(
    record: Mapping[str, Any],
    t0_s: float,
    asked_s: float,
    *,
    speculative: bool,
) -> Move:
    """A `Move` from a migration record (`MigrationRecord.to_dict()`), its timeline's start
    `t0_s` (monotonic s; the record's times are ms from it) and when it was asked for."""

    def at(ms: float | None) -> float | None:
        return None if ms is None else t0_s + ms / 1000.0

    phases = record.get("phases", [])
    # the freeze: the final dump, or the stop of a service started afresh (restart,
    # filesystem); serving: the restore, or that start
    freeze = next((p for p in reversed(phases) if p["name"] in ("freeze_dump", "freeze_stop")),
                  None)  # fmt: skip
    restore = next((p for p in reversed(phases) if p["name"] in ("restore", "start")), None)
    metrics = record.get("metrics", {})
    spec = metrics.get("speculation") or {}
    ready_ms = spec.get("ready_ms", spec.get("committing_ms")) if speculative else None
    if ready_ms is None and freeze is not None:
        ready_ms = freeze["start_ms"]
    ends = [float(p["end_ms"]) for p in phases if p.get("end_ms") is not None]
    end_s = t0_s + max(ends) / 1000.0 if ends else asked_s
    frozen = metrics.get("frozen_ms")
    return Move(
        destination=str(record["destination"]),
        speculative=speculative,
        outcome=str(record["outcome"]),
        asked_s=asked_s,
        ready_s=at(ready_ms),
        freeze_s=at(freeze["start_ms"]) if freeze else None,
        serving_s=at(restore.get("end_ms")) if restore else None,
        end_s=end_s,
        frozen_ms=None if frozen is None else float(frozen),
        bytes=int(record.get("bytes_transferred", 0)),
        cancelled=spec.get("outcome") == "cancelled",
        error=record.get("error"),
    )


@dataclass(frozen=True)
class Arrival:
    """A handover of the UE to a cell of another site: scenario time, the wall time it was
    played (monotonic s), the sites, its stay there (scenario s; None: open) and the re-plug."""

    t_s: float
    wall_s: float
    from_site: str | None
    to_site: str
    dwell_s: float | None
    replug_ms: float | None = None


@dataclass(frozen=True)
class Client:
    """What the client saw over the whole drive (`workloads.probe`'s result)."""

    replies: Sequence[Reply]
    interval_ms: float
    same_connection: bool
    counter_monotonic: bool
    fingerprint_stable: bool | None


def match_moves(arrivals: Sequence[Arrival], moves: Sequence[Move]) -> list[Move | None]:
    """Each arrival's move: the first move not yet taken, not cancelled, towards its site."""
    taken: set[int] = set()
    out: list[Move | None] = []
    for a in arrivals:
        found = None
        for i, m in enumerate(moves):
            if i not in taken and not m.cancelled and m.destination == a.to_site:
                taken.add(i)
                found = m
                break
        out.append(found)
    return out


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 1)


def handover_rows(
    *,
    ue: str,
    service: str,
    policy: str,
    strategy: str,
    speculative: bool,
    scale: float,
    arrivals: Sequence[Arrival],
    moves: Sequence[Move],
    client: Client,
    repetition: int,
) -> list[dict[str, Any]]:
    """A row per arrival at another site (see the module docstring for each field)."""
    rows = []
    client_ok = bool(
        client.same_connection and client.counter_monotonic and client.fingerprint_stable
    )
    after = float("-inf")  # the previous move's destination served: its gaps began before
    for a, m in zip(arrivals, match_moves(arrivals, moves), strict=True):
        lo = min(a.wall_s, m.asked_s) if m else a.wall_s
        hi = max(a.wall_s, m.end_s) if m else a.wall_s
        lo, hi = lo - WINDOW_PAD_S, hi + WINDOW_PAD_S
        gap = largest_gap_ms(client.replies, lo, hi, client.interval_ms, after)
        if m is not None and m.serving_s is not None:
            after = m.serving_s
        t_pre = _ms(m.asked_s, m.ready_s) if m else None
        t_down = None if m is None or m.frozen_ms is None else round(m.frozen_ms, 1)
        dwell = None if a.dwell_s is None else round(a.dwell_s / scale * 1000.0, 1)
        viable = (
            None if dwell is None or t_pre is None or t_down is None else t_pre + t_down <= dwell
        )
        serving_after = _ms(a.wall_s, m.serving_s) if m else None
        moved = m is not None and m.outcome == "done" and m.destination == a.to_site
        rows.append(
            {
                "ue": ue,
                "service": service,
                "policy": policy,
                "strategy": strategy,
                "speculative": speculative,
                "handover_s": a.t_s,
                "from_site": a.from_site,
                "to_site": a.to_site,
                "interruption_ms": None if gap is None else round(gap, 1),
                "state_intact": bool(
                    moved and client_ok and counters_monotonic(client.replies, lo, hi)
                ),
                "bytes": m.bytes if m else None,
                "dwell_ms": dwell,
                "viable": viable,
                "t_pre_ms": t_pre,
                "t_down_ms": t_down,
                "serving_after_ms": serving_after,
                "served_within_dwell": None
                if dwell is None or serving_after is None
                else max(serving_after, 0.0) <= dwell,
                "ready_before_handover": None
                if m is None or m.ready_s is None
                else m.ready_s <= a.wall_s,
                "outcome": m.outcome if m else "no move",
                "replug_ms": None if a.replug_ms is None else round(a.replug_ms, 1),
                "repetition": repetition,
                **({"error": m.error} if m is not None and m.error else {}),
            }
        )
    return rows


# ------------------------------------------------------------------------------ statistics


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def _fraction(flags: Sequence[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return round(sum(known) / len(known), 3) if known else None


def policy_stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One policy's handovers: the dwell-time statistics (mean, minimum of the known dwells,
    the fraction viable), the interruption and the times."""
    dwells = [float(r["dwell_ms"]) for r in rows if r["dwell_ms"] is not None]
    gaps = [float(r["interruption_ms"]) for r in rows if r["interruption_ms"] is not None]
    pre = [float(r["t_pre_ms"]) for r in rows if r["t_pre_ms"] is not None]
    down = [float(r["t_down_ms"]) for r in rows if r["t_down_ms"] is not None]
    after = [float(r["serving_after_ms"]) for r in rows if r["serving_after_ms"] is not None]
    return {
        "handovers": len(rows),
        "dwells_known": len(dwells),
        "dwell_mean_ms": _mean(dwells),
        "dwell_min_ms": min(dwells) if dwells else None,
        "viable_fraction": _fraction([r["viable"] for r in rows]),
        "served_within_dwell_fraction": _fraction([r["served_within_dwell"] for r in rows]),
        "interruption_mean_ms": _mean(gaps),
        "interruption_median_ms": round(statistics.median(gaps), 1) if gaps else None,
        "interruption_max_ms": max(gaps) if gaps else None,
        "t_pre_mean_ms": _mean(pre),
        "t_down_mean_ms": _mean(down),
        "serving_after_mean_ms": _mean(after),
        "state_intact": sum(r["state_intact"] is True for r in rows),
        "stateless": bool(rows) and all(r["state_intact"] is None for r in rows),
        "bytes_mean": _mean([float(r["bytes"]) for r in rows if r["bytes"] is not None]),
    }


REPLICA_GOAL_MS = 10.0  # seed 002: a replica switch costs the client at most this


def keeps_state(policy: str) -> bool:
    """Whether the policy's strategy carries the service's memory state (the CRIU ones: seed
    003's full state); restart and filesystem start it afresh from its files, and a replica
    (a stateless service) has none."""
    from migration.strategies import STRATEGIES

    s = STRATEGIES.get(policy.removesuffix("-reactive"))
    return s is not None and s.keeps_memory


def state_kept(rows: Sequence[Mapping[str, Any]]) -> bool | None:
    """Every stateful handover by a strategy that carries the state kept it (a stateless
    service's rows, `state_intact` None, have none to keep; the state levels that start
    the service afresh lose its memory by design, as Table IV says, and are reported, not
    judged); None: no such handover."""
    stateful = [r for r in rows if r["state_intact"] is not None and keeps_state(r["policy"])]
    return all(bool(r["state_intact"]) for r in stateful) if stateful else None


def replica_within(rows: Sequence[Mapping[str, Any]]) -> bool | None:
    """Every replica handover cost the client at most REPLICA_GOAL_MS; None: no replica row
    (or one without a measured gap)."""
    gaps = [r["interruption_ms"] for r in rows if r["policy"] == "replica"]
    if not gaps or any(g is None for g in gaps):
        return None
    return all(float(g) <= REPLICA_GOAL_MS for g in gaps)


def summarize(
    rows: Sequence[Mapping[str, Any]], policies: Sequence[str], margin_ms: float
) -> dict[str, Any]:
    """Per policy (in `policies`' order) its statistics; the goals: no stateful handover lost
    its state, and each speculative strategy's median interruption is not worse than its
    reactive one's by more than `margin_ms` (None: not judged, a side is missing)."""
    per = {p: policy_stats([r for r in rows if r["policy"] == p]) for p in policies}
    comparisons: dict[str, Any] = {}
    for p in policies:
        reactive = f"{p}-reactive"
        if p.endswith("-reactive") or reactive not in per:
            continue
        mine, theirs = per[p]["interruption_median_ms"], per[reactive]["interruption_median_ms"]
        comparisons[p] = {
            "speculative_median_ms": mine,
            "reactive_median_ms": theirs,
            "not_worse": None if mine is None or theirs is None else mine <= theirs + margin_ms,
        }
    return {
        "per_policy": per,
        "speculative_vs_reactive": comparisons,
        "goals": {
            "state_intact": state_kept(rows),
            "replica_switch_within_ms": replica_within(rows),
            "speculative_not_worse_than_reactive": (
                all(c["not_worse"] for c in comparisons.values())
                if comparisons and all(c["not_worse"] is not None for c in comparisons.values())
                else None
            ),
            "margin_ms": margin_ms,
        },
    }


def shortest_dwell(rows: Sequence[Mapping[str, Any]], policies: Sequence[str]) -> dict[str, Any]:
    """At the time scale with the shortest known dwell: each speculative policy's fraction of
    viable handovers (seed 003's T_pre + T_down <= T_dwell) and of handovers served within the
    stay. Seed 003's strategies fit no ~1 s dwell (Table V's shortest: 1.037 s per point of
    access), so `beats_seed_003` is whether a speculative policy made any of them viable (None:
    no dwell known)."""
    known = [r for r in rows if r["dwell_ms"] is not None]
    if not known:
        return {"scale": None, "dwell_ms": None, "viable": {}, "served_within_dwell": {},
                "beats_seed_003": None}  # fmt: skip
    low = min(known, key=lambda r: float(r["dwell_ms"]))
    at = [r for r in known if r["scale"] == low["scale"]]
    speculative = [p for p in policies if not p.endswith("-reactive")]
    viable = {p: _fraction([r["viable"] for r in at if r["policy"] == p]) for p in speculative}
    served = {
        p: _fraction([r["served_within_dwell"] for r in at if r["policy"] == p])
        for p in speculative
    }
    fractions = [f for f in viable.values() if f is not None]
    return {
        "scale": low["scale"],
        "dwell_ms": low["dwell_ms"],
        "viable": viable,
        "served_within_dwell": served,
        "beats_seed_003": any(f > 0 for f in fractions) if fractions else None,
    }


def summarize_scales(
    rows: Sequence[Mapping[str, Any]],
    policies: Sequence[str],
    scales: Sequence[float],
    margin_ms: float,
) -> dict[str, Any]:
    """`summarize` per time scale (keyed '2', '8'), and the goals over all of them."""
    per = {
        f"{x:g}": summarize([r for r in rows if r["scale"] == x], policies, margin_ms)
        for x in scales
    }
    verdicts = [s["goals"]["speculative_not_worse_than_reactive"] for s in per.values()]
    return {
        "per_scale": per,
        "shortest_dwell": shortest_dwell(rows, policies),
        "goals": {
            "state_intact": state_kept(rows),
            "replica_switch_within_ms": replica_within(rows),
            "viable_at_shortest_dwell": shortest_dwell(rows, policies)["beats_seed_003"],
            "speculative_not_worse_than_reactive": (
                all(verdicts) if verdicts and all(v is not None for v in verdicts) else None
            ),
            "margin_ms": margin_ms,
        },
    }
