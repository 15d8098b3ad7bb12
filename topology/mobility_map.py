"""The radio map: cells with their resolved zone, serving site and attachment, and when a
moving UE is in a cell's range (a disc met by a straight segment: one interval, solved
exactly)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from topology.mobility_paths import Segment
from topology.mobility_spec import MapSpec, cell_site

# two times closer than this are the same instant (seconds)
EPS_S = 1e-9


@dataclass(frozen=True)
class Cell:
    """A point of access, resolved: the site that serves it and where its UEs attach."""

    name: str
    zone: str
    site: str
    attach: str
    kind: str
    x: float
    y: float
    range_m: float

    def distance(self, x: float, y: float) -> float:
        return math.hypot(x - self.x, y - self.y)


@dataclass(frozen=True)
class RadioMap:
    cells: tuple[Cell, ...]

    @classmethod
    def from_spec(cls, m: MapSpec) -> RadioMap:
        cells = []
        for c in m.cells:
            site = cell_site(m, c)
            attach = c.attach if c.attach is not None else site
            cells.append(Cell(c.name, c.zone, site, attach, c.kind, *c.position, c.range_m))
        return cls(tuple(cells))

    def cell(self, name: str) -> Cell:
        """The cell called `name` (KeyError if none)."""
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(f"no cell called {name!r}")

    def interval(self, seg: Segment, cell: Cell) -> tuple[float, float] | None:
        """When, during `seg`, the UE is within `cell`'s range (distance <= range_m)."""
        dx, dy = seg.x0 - cell.x, seg.y0 - cell.y
        a = seg.vx * seg.vx + seg.vy * seg.vy
        c = dx * dx + dy * dy - cell.range_m * cell.range_m
        if a == 0:
            return (seg.t0, seg.t1) if c <= 0 else None
        b = 2 * (dx * seg.vx + dy * seg.vy)
        disc = b * b - 4 * a * c
        if disc < 0:
            return None
        q = -0.5 * (b + math.copysign(math.sqrt(disc), b))
        roots = sorted((q / a, c / q)) if q != 0 else [0.0, 0.0]
        start, end = max(seg.t0 + roots[0], seg.t0), min(seg.t0 + roots[1], seg.t1)
        return (start, end) if start <= end else None

    def best(self, seg: Segment, t: float, exclude: Cell | None = None) -> Cell | None:
        """The nearest cell whose range holds the UE from `t` on (for some time after it),
        ties by name; None if there is none."""
        x, y = seg.at(t)
        candidates = []
        for c in self.cells:
            span = self.interval(seg, c)
            if c != exclude and span is not None and span[0] <= t + EPS_S < span[1]:
                candidates.append((c.distance(x, y), c.name, c))
        return min(candidates)[2] if candidates else None

    def next_entry(self, seg: Segment, t: float) -> float | None:
        """The first time at or after `t` in `seg` at which the UE is (for some time) within
        range of a cell; None if it is in none before the segment ends."""
        entries = []
        for c in self.cells:
            span = self.interval(seg, c)
            if span is not None and max(span[0], t) + EPS_S < span[1]:
                entries.append(max(span[0], t))
        return min(entries) if entries else None
