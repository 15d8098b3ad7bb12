"""A chain migration's record: the chain's own phases, each function's migration record on one
shared clock, and the figures seed 000 reports (Tables I and II): the chain's downtime window,
each function's, the spread of their freezes, total time and bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from migration.timeline import MigrationRecord, Outcome, PhaseRecord

FREEZE_PHASES = ("freeze_dump", "freeze_stop")  # where a function stops serving at its source
SERVE_PHASES = ("restore", "start")  # ... and where it serves again at its destination


class Pattern(StrEnum):
    """Seed 000's ways to move a chain (§III-B, C)."""

    ASYNC = "async"  # each function's migration unsupervised, in parallel
    WAIT_FOR_ME = "wait-for-me"  # phases in parallel, a barrier after each: one freeze for all
    ROUND_ROBIN = "round-robin"  # each phase for every function in turn, never two at once


PATTERNS: tuple[str, ...] = tuple(p.value for p in Pattern)


def frozen_window(rec: MigrationRecord) -> tuple[float, float] | None:
    """(start, end) in ms of the time `rec`'s function did not serve: its freeze to its
    restore; None if it never froze or never served again."""
    freeze = next((p for p in rec.phases if p.name in FREEZE_PHASES), None)
    serve = next((p for p in reversed(rec.phases) if p.name in SERVE_PHASES), None)
    if freeze is None or serve is None or serve.end_ms is None or serve.ok is not True:
        return None
    return freeze.start_ms, serve.end_ms


def criu_frozen_at(rec: MigrationRecord) -> float | None:
    """When CRIU froze `rec`'s function (epoch seconds, from its action script), if known."""
    freeze = next((p for p in rec.phases if p.name in FREEZE_PHASES), None)
    value = freeze.detail.get("frozen_at") if freeze is not None else None
    return float(value) if isinstance(value, int | float) else None


@dataclass
class ChainRecord:
    """Everything a chain migration did; `to_dict()` is its JSON form. Times are ms from the
    chain's start; every function's record uses the same origin."""

    id: str
    chain: str
    functions: list[str]
    destination: str
    pattern: str
    strategy: str
    network_aware: bool
    outcome: Outcome = Outcome.RUNNING
    error: str | None = None
    point_of_no_return_ms: float | None = None
    phases: list[PhaseRecord] = field(default_factory=list)
    members: dict[str, MigrationRecord] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def total_ms(self) -> float | None:
        ends = [p.end_ms for p in self.phases if p.end_ms is not None]
        ends += [m.total_ms for m in self.members.values() if m.total_ms is not None]
        return max(ends) if ends else None

    @property
    def bytes_transferred(self) -> int:
        return sum(m.bytes_transferred for m in self.members.values())

    def summarize(self) -> None:
        """The chain's figures from its functions' timelines (into `metrics`)."""
        windows = {name: frozen_window(rec) for name, rec in self.members.items()}
        frozen = {n: w for n, w in windows.items() if w is not None}
        m = self.metrics
        m["function_frozen_ms"] = {n: round(w[1] - w[0], 3) for n, w in frozen.items()}
        if frozen:
            starts = [w[0] for w in frozen.values()]
            m["freeze_spread_ms"] = round(max(starts) - min(starts), 3)
            m["freeze_spread_source"] = "dump requests"
            criu = [criu_frozen_at(rec) for rec in self.members.values()]
            if len(criu) > 1 and all(t is not None for t in criu):
                at = [t for t in criu if t is not None]
                # when CRIU itself froze each tree (its action script's clock)
                m["freeze_spread_ms"] = round((max(at) - min(at)) * 1000, 3)
                m["freeze_spread_source"] = "criu"
            # the chain carries nothing from its first function's freeze to its last restore
            m["chain_frozen_ms"] = round(max(w[1] for w in frozen.values()) - min(starts), 3)
            m["frozen_windows_overlap"] = max(starts) < min(w[1] for w in frozen.values())
        m["bytes"] = self.bytes_transferred
        m["total_ms"] = self.total_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain,
            "functions": list(self.functions),
            "destination": self.destination,
            "pattern": self.pattern,
            "strategy": self.strategy,
            "network_aware": self.network_aware,
            "outcome": self.outcome.value,
            "error": self.error,
            "point_of_no_return_ms": self.point_of_no_return_ms,
            "total_ms": self.total_ms,
            "bytes_transferred": self.bytes_transferred,
            "phases": [
                {
                    "name": p.name,
                    "start_ms": p.start_ms,
                    "end_ms": p.end_ms,
                    "ok": p.ok,
                    "duration_ms": p.duration_ms,
                    "detail": dict(p.detail),
                }
                for p in self.phases
            ],
            "members": {name: rec.to_dict() for name, rec in self.members.items()},
            "metrics": dict(self.metrics),
        }
