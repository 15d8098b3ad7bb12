"""Which cell serves a moving UE, its handovers, and the next change of serving site ahead.

The serving cell is sticky without hysteresis: the UE keeps its cell while it is in its range;
when it leaves it (or has none) it takes the nearest cell whose range holds it, and none when
it is out of every range. Crossing times are solved exactly on each straight segment of the
motion (`RadioMap.interval`), so the handovers are deterministic and need no time step.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from topology.mobility_map import EPS_S, Cell, RadioMap
from topology.mobility_paths import Motion, Segment, path_motion, trace_motion
from topology.mobility_spec import MAX_TIME_S
from topology.mobility_trace import read_trace
from topology.scenario import Scenario


@dataclass(frozen=True)
class Handover:
    """The UE's serving cell changes at `t_s` (None: out of every range)."""

    t_s: float
    ue: str
    from_cell: str | None
    to_cell: str | None
    from_zone: str | None
    to_zone: str | None
    from_site: str | None
    to_site: str | None
    x: float
    y: float


@dataclass(frozen=True)
class SiteChange:
    """Ahead of a UE: its next handover to a cell of another site, `lead_s` after the time
    asked; it first came (or comes) within range of a cell of that site at `in_range_s`."""

    at_s: float
    lead_s: float
    in_range_s: float
    cell: str
    zone: str
    site: str


class UEMobility:
    """One UE on the map over [0, until]: where it is, which cell serves it, its handovers."""

    def __init__(self, ue: str, motion: Motion, radio: RadioMap, until: float) -> None:
        if not 0 <= until <= MAX_TIME_S:
            raise ValueError(f"until must be within 0-{MAX_TIME_S:g} s, not {until:g}")
        self.ue, self.motion, self.radio, self.until = ue, motion, radio, until
        changes = list(_changes(motion, radio, until))
        self.initial: Cell | None = changes[0][1]
        self.handovers = tuple(self._handover(t, a, b) for (_, a), (t, b) in _pairs(changes))

    def _handover(self, t: float, old: Cell | None, new: Cell | None) -> Handover:
        x, y = self.motion.position(t)
        return Handover(
            t, self.ue, *_names(old, new, "name"), *_names(old, new, "zone"),
            *_names(old, new, "site"), x, y,
        )  # fmt: skip

    def position(self, t: float) -> tuple[float, float]:
        return self.motion.position(t)

    def serving(self, t: float) -> Cell | None:
        """The cell that serves the UE at `t` (a handover at `t` has happened)."""
        name = self.initial.name if self.initial else None
        for h in self.handovers:
            if h.t_s > t:
                break
            name = h.to_cell
        return None if name is None else self.radio.cell(name)

    def next_site_change(self, t: float) -> SiteChange | None:
        """The next handover after `t` (up to `until`) to a cell of a site other than the one
        serving the UE at `t`; None if there is none."""
        now = self.serving(t)
        site = now.site if now else None
        for h in self.handovers:
            if h.t_s > t and h.to_site is not None and h.to_site != site:
                assert h.to_cell is not None and h.to_zone is not None
                seen = self._first_in_range(h.to_site, t, h.t_s)
                return SiteChange(h.t_s, h.t_s - t, seen, h.to_cell, h.to_zone, h.to_site)
        return None

    def _first_in_range(self, site: str, start: float, end: float) -> float:
        cells = [c for c in self.radio.cells if c.site == site]
        for seg in self.motion.walk(start, end):
            for lo in sorted(self._entries(seg, cells, start)):
                return min(lo, end)
        return end

    def _entries(self, seg: Segment, cells: list[Cell], start: float) -> Iterator[float]:
        for c in cells:
            span = self.radio.interval(seg, c)
            if span is not None and span[1] >= start:
                yield max(span[0], start)


def _names(old: Cell | None, new: Cell | None, attr: str) -> tuple[str | None, str | None]:
    return (getattr(old, attr) if old else None, getattr(new, attr) if new else None)


def _pairs(
    changes: list[tuple[float, Cell | None]],
) -> Iterator[tuple[tuple[float, Cell | None], tuple[float, Cell | None]]]:
    return zip(changes, changes[1:], strict=False)


def _changes(motion: Motion, radio: RadioMap, until: float) -> Iterator[tuple[float, Cell | None]]:
    """(0, the first serving cell), then (time, new serving cell) at each change up to until."""
    current: Cell | None = None
    started = False
    for seg in motion.walk(0.0, until):
        t = seg.t0
        if not started:
            current, started = radio.best(seg, t), True
            yield 0.0, current
        while True:
            if current is not None:
                span = radio.interval(seg, current)
                t = max(span[1], t) if span else t
                if t >= seg.t1 - EPS_S:
                    break
                current = radio.best(seg, t, exclude=current)
            else:
                entry = radio.next_entry(seg, t)
                if entry is None:
                    break
                t, current = entry, radio.best(seg, entry)
            if t > until:
                return
            yield t, current


def merged(mobilities: Iterable[UEMobility]) -> list[Handover]:
    """Every UE's handovers in one list, in time order (ties: by UE name)."""
    streams = [m.handovers for m in mobilities]
    return list(heapq.merge(*streams, key=lambda h: (h.t_s, h.ue)))


# ------------------------------------------------------------------------------ from a scenario


def moving_ues(sc: Scenario) -> tuple[str, ...]:
    """The UEs that move on the scenario's map (a path or a trace), in file order."""
    return tuple(u.name for u in sc.ues if u.path or u.trace is not None)


def ue_motion(sc: Scenario, name: str) -> Motion:
    """A UE's motion: along its path, or through its trace's rows (the file as the scenario
    names it: load_scenario makes it absolute; TraceError if it cannot be used)."""
    ue = sc.ue(name)
    if ue.path:
        return path_motion(ue.path, ue.loop)
    if ue.trace is None:
        raise ValueError(f"UE {name!r} has neither a path nor a trace")
    return trace_motion(read_trace(Path(ue.trace), name))


def ue_mobility(sc: Scenario, name: str, until: float | None = None) -> UEMobility:
    """A UE of the scenario on its map, over [0, until] (default: its path or trace once)."""
    if sc.map is None:
        raise ValueError(f"scenario {sc.name!r} has no map")
    motion = ue_motion(sc, name)
    if until is None:
        until = min(motion.duration, MAX_TIME_S)
    return UEMobility(name, motion, RadioMap.from_spec(sc.map), until)
