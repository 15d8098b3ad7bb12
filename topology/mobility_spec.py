"""The mobility part of a scenario file: a map of zones and cells, and how UEs move on it.

A **zone** is served by a MEC site; a **cell** (a point of access: a 5G small cell, a 4G macro
cell, a WiFi access point) has a position, a range and a zone. A UE moves along a **path** of
waypoints with a speed per leg, or replays a **trace** (a CSV file `t_s,ue,x,y`). Coordinates are
metres on a flat map. Every field is bounded; `map_problems` and `motion_problems` report the
references between them (and to the scenario's sites and switches) with their key paths, as
`topology.scenario` does for the rest of the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_ZONES = 256
MAX_CELLS = 1024
MAX_WAYPOINTS = 10_000
MAX_TRACE_ROWS = 100_000  # rows of one UE in a trace file
MAX_TRACE_BYTES = 16 * 2**20
MAX_COORD_M = 100_000.0  # the map spans at most 200 km x 200 km
MAX_RANGE_M = 50_000.0
MAX_SPEED_KMH = 500.0
MAX_SPEED_MPS = MAX_SPEED_KMH / 3.6
MAX_PAUSE_S = 86_400.0
MAX_TIME_S = 86_400.0  # a trace's times, and how far the model looks ahead
MIN_LOOP_S = 1.0  # a looping path's round takes at least this long
# zones and cells are not Linux interfaces: longer names (MEC013's zone01, poa-5g-01)
MAP_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
SITE_REF_MAX = 64

MapName = Annotated[str, Field(pattern=MAP_NAME_PATTERN)]
Coord = Annotated[float, Field(ge=-MAX_COORD_M, le=MAX_COORD_M, allow_inf_nan=False)]
SiteRef = Annotated[str, Field(min_length=1, max_length=SITE_REF_MAX)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneSpec(_Spec):
    """A zone: a group of cells served by one MEC site."""

    name: MapName
    site: SiteRef


class CellSpec(_Spec):
    """A point of access: where it is, how far it reaches, its zone."""

    name: MapName
    zone: MapName
    position: tuple[Coord, Coord]
    range_m: float = Field(gt=0, le=MAX_RANGE_M, allow_inf_nan=False)
    kind: Literal["5g", "4g", "wifi", "other"] = "other"
    # the MEC site that serves a UE in this cell (a MEC host per point of access); default:
    # its zone's site
    site: SiteRef | None = None
    # the site or switch a UE in this cell is attached to in the emulation; default: the site
    attach: SiteRef | None = None


class MapSpec(_Spec):
    """`map:` zones and their cells."""

    zones: tuple[ZoneSpec, ...] = Field(min_length=1, max_length=MAX_ZONES)
    cells: tuple[CellSpec, ...] = Field(min_length=1, max_length=MAX_CELLS)


class PathPoint(_Spec):
    """A waypoint of a UE's path. The speed is that of the leg that leaves this waypoint (a
    waypoint without one keeps the previous leg's); `pause_s` is spent here on arrival (at
    the first waypoint: before leaving)."""

    x: Coord
    y: Coord
    speed_kmh: float | None = Field(default=None, gt=0, le=MAX_SPEED_KMH, allow_inf_nan=False)
    speed_mps: float | None = Field(default=None, gt=0, le=MAX_SPEED_MPS, allow_inf_nan=False)
    pause_s: float = Field(default=0.0, ge=0, le=MAX_PAUSE_S, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_speed(self) -> PathPoint:
        if self.speed_kmh is not None and self.speed_mps is not None:
            raise ValueError("give speed_kmh or speed_mps, not both")
        return self

    @property
    def speed(self) -> float | None:
        """Metres per second, if this waypoint sets a speed."""
        if self.speed_kmh is not None:
            return self.speed_kmh / 3.6
        return self.speed_mps


Waypoints = Annotated[tuple[PathPoint, ...], Field(max_length=MAX_WAYPOINTS)]
TracePath = Annotated[str, Field(min_length=1, max_length=4096)]


class MovingUE(Protocol):
    """What `motion_problems` reads of a UE (topology.scenario.UESpec)."""

    @property
    def trajectory(self) -> tuple[object, ...]: ...
    @property
    def path(self) -> tuple[PathPoint, ...]: ...
    @property
    def loop(self) -> bool: ...
    @property
    def trace(self) -> str | None: ...


def cell_site(m: MapSpec, cell: CellSpec) -> str:
    """The MEC site serving a cell: its own `site:`, else its zone's."""
    if cell.site is not None:
        return cell.site
    return next(z.site for z in m.zones if z.name == cell.zone)


def _duplicates(key: str, names: list[str]) -> Iterator[tuple[str, str]]:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            yield f"map.{key}[{i}].name", f"{name!r} is already map.{key}[{first[name]}]"
        first.setdefault(name, i)


def map_problems(m: MapSpec, sites: set[str], switches: set[str]) -> Iterator[tuple[str, str]]:
    """References and duplicates in `map:`, each with its key path."""
    zones = {z.name for z in m.zones}
    yield from _duplicates("zones", [z.name for z in m.zones])
    for i, zone in enumerate(m.zones):
        if zone.site not in sites:
            yield f"map.zones[{i}].site", f"no site called {zone.site!r}"
    yield from _duplicates("cells", [c.name for c in m.cells])
    for i, cell in enumerate(m.cells):
        if cell.zone not in zones:
            yield f"map.cells[{i}].zone", f"no zone called {cell.zone!r}"
        if cell.site is not None and cell.site not in sites:
            yield f"map.cells[{i}].site", f"no site called {cell.site!r}"
        if cell.attach is not None and cell.attach not in switches:
            yield f"map.cells[{i}].attach", f"{cell.attach!r} is neither a site nor a switch"


def motion_problems(i: int, ue: MovingUE, has_map: bool) -> Iterator[tuple[str, str]]:
    """A UE's path: at most one way of moving, a map to move on, a first speed, a loop that
    takes time. (A trace file is checked when the scenario is loaded from its file.)"""
    given = [k for k, v in (("trajectory", ue.trajectory), ("path", ue.path)) if v]
    given += ["trace"] if ue.trace is not None else []
    if len(given) > 1:
        yield f"ues[{i}].{given[1]}", f"a UE has at most one of trajectory, path, trace ({given})"
    if (ue.path or ue.trace is not None) and not has_map:
        yield f"ues[{i}].{'path' if ue.path else 'trace'}", "moving on a map needs a top-level map:"
    if ue.loop and not ue.path:
        yield f"ues[{i}].loop", "loop applies to a path"
    if len(ue.path) > 1 and ue.path[0].speed is None:
        yield f"ues[{i}].path[0]", "the first waypoint needs speed_kmh or speed_mps"
    elif ue.loop and ue.path and loop_duration(ue.path) < MIN_LOOP_S:
        yield f"ues[{i}].loop", f"a loop must take at least {MIN_LOOP_S:g} s (legs and pauses)"


def loop_duration(path: tuple[PathPoint, ...]) -> float:
    """Seconds one round of a looping path takes: every leg, back to the first waypoint, and
    every pause (0 if a speed is missing)."""
    total, speed = 0.0, None
    for j, point in enumerate(path):
        speed = point.speed or speed
        nxt = path[(j + 1) % len(path)]
        length = math.hypot(nxt.x - point.x, nxt.y - point.y)
        if length > 0 and speed is None:
            return 0.0
        total += point.pause_s + (length / speed if length > 0 and speed else 0.0)
    return total
