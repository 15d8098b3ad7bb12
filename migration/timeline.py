"""A migration's record: its phases with monotonic timestamps, bytes, and how it ended.

The clock is injected (`Clock`), so the phase machine is testable without time passing. Every
phase change is also handed to an optional listener as a structured event (the CLI's progress
display, the benchmarks and the REST API read those).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds on a monotonic clock."""
        ...


def monotonic() -> float:
    return time.monotonic()


class Outcome(StrEnum):
    RUNNING = "running"
    DONE = "done"
    ROLLED_BACK = "rolled_back"  # failed before the point of no return; the source serves again
    FAILED = "failed"  # failed after it (clean-up incomplete) or the rollback itself failed


@dataclass
class PhaseRecord:
    name: str
    start_ms: float
    end_ms: float | None = None
    ok: bool | None = None
    bytes: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_ms is None else self.end_ms - self.start_ms


@dataclass
class MigrationRecord:
    """Everything a migration did, in the order it did it; `to_dict()` is its JSON form."""

    id: str
    instance: str
    source: str
    destination: str
    strategy: str
    mode: str = ""
    outcome: Outcome = Outcome.RUNNING
    error: str | None = None
    point_of_no_return_ms: float | None = None
    phases: list[PhaseRecord] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def phase(self, name: str) -> PhaseRecord | None:
        """The last phase called `name`."""
        for rec in reversed(self.phases):
            if rec.name == name:
                return rec
        return None

    @property
    def total_ms(self) -> float | None:
        ends = [p.end_ms for p in self.phases if p.end_ms is not None]
        return max(ends) if ends else None

    @property
    def bytes_transferred(self) -> int:
        return sum(p.bytes for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["total_ms"] = self.total_ms
        data["bytes_transferred"] = self.bytes_transferred
        for rec, out in zip(self.phases, data["phases"], strict=True):
            out["duration_ms"] = rec.duration_ms
        return data


Listener = Callable[[str, MigrationRecord, PhaseRecord | None], None]


class Timeline:
    """Times the phases of one migration against an injected clock."""

    def __init__(
        self, record: MigrationRecord, clock: Clock = monotonic, listener: Listener | None = None
    ) -> None:
        self.record = record
        self.clock = clock
        self.listener = listener
        self.t0 = clock()

    def now_ms(self) -> float:
        return (self.clock() - self.t0) * 1000.0

    def _emit(self, event: str, phase: PhaseRecord | None) -> None:
        if self.listener is not None:
            self.listener(event, self.record, phase)

    @contextlib.contextmanager
    def phase(self, name: str, **detail: Any) -> Iterator[PhaseRecord]:
        """Record a phase; a failure inside marks it not ok and propagates."""
        rec = PhaseRecord(name, self.now_ms(), detail=dict(detail))
        self.record.phases.append(rec)
        self._emit("phase_started", rec)
        try:
            yield rec
        except BaseException as exc:
            rec.ok = False
            rec.detail.setdefault("error", str(exc))
            rec.end_ms = self.now_ms()
            self._emit("phase_failed", rec)
            raise
        rec.ok = True
        rec.end_ms = self.now_ms()
        self._emit("phase_done", rec)

    def mark_point_of_no_return(self) -> None:
        self.record.point_of_no_return_ms = self.now_ms()
        self._emit("point_of_no_return", None)

    def finish(self, outcome: Outcome, error: str | None = None) -> None:
        self.record.outcome = outcome
        self.record.error = error
        self._emit("finished", None)
