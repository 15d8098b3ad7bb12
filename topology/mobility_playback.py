"""Playing handovers back against a clock, in real time or faster.

`Playback` is pure: started at a clock reading, it says when (on that clock) each event is
due and which are due at a given reading; it never sleeps. `play` is the small driver that
reads an injected clock and sleeps with an injected sleep until each event is due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from topology.mobility_events import Handover

MIN_SCALE, MAX_SCALE = 0.01, 10_000.0


@dataclass(frozen=True)
class Due:
    """`event` is due when the clock reads `wall_s`."""

    wall_s: float
    event: Handover


class Playback:
    """`events` (in time order) played from clock reading `start_wall`, `scale` scenario
    seconds per clock second (1: real time, 10: ten times faster)."""

    def __init__(self, events: Sequence[Handover], start_wall: float, scale: float = 1.0) -> None:
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise ValueError(f"scale must be within {MIN_SCALE:g}-{MAX_SCALE:g}, not {scale:g}")
        if any(b.t_s < a.t_s for a, b in zip(events, events[1:], strict=False)):
            raise ValueError("events must be in time order")
        self.events = tuple(events)
        self.start_wall = start_wall
        self.scale = scale
        self._next = 0

    def wall_of(self, event: Handover) -> float:
        """The clock reading at which `event` is due."""
        return self.start_wall + event.t_s / self.scale

    def schedule(self) -> Iterator[Due]:
        """Every event with its due time, in order (the cursor is not moved)."""
        return (Due(self.wall_of(e), e) for e in self.events)

    def next_due(self) -> float | None:
        """When the next event not yet taken is due; None when all were taken."""
        if self._next == len(self.events):
            return None
        return self.wall_of(self.events[self._next])

    def take_due(self, now: float) -> list[Handover]:
        """The events due by clock reading `now` that were not taken before, in order."""
        due = []
        while self._next < len(self.events) and self.wall_of(self.events[self._next]) <= now:
            due.append(self.events[self._next])
            self._next += 1
        return due


def play(
    playback: Playback,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    handle: Callable[[Handover], None],
) -> int:
    """Hand each event to `handle` once the clock says it is due; the number handled."""
    handled = 0
    while (due_at := playback.next_due()) is not None:
        wait = due_at - clock()
        if wait > 0:
            sleep(wait)
        for event in playback.take_due(clock()):
            handle(event)
            handled += 1
    return handled
