"""How a UE moves: piecewise-linear motion made of segments (a leg at constant velocity, or a
pause), from a path of waypoints (maybe looping) or from a trace's rows. Pure arithmetic."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from topology.mobility_spec import PathPoint
from topology.mobility_trace import TracePoint

# how many segments one question may walk (a loop of short legs over a long time)
MAX_SEGMENTS = 2_000_000


class MotionLimitError(ValueError):
    """A question about a motion would walk more than MAX_SEGMENTS segments."""


@dataclass(frozen=True)
class Segment:
    """From `t0` to `t1` (maybe infinite) the UE is at (x0, y0) + (vx, vy) * (t - t0)."""

    t0: float
    t1: float
    x0: float
    y0: float
    vx: float = 0.0
    vy: float = 0.0

    def at(self, t: float) -> tuple[float, float]:
        dt = t - self.t0
        return self.x0 + self.vx * dt, self.y0 + self.vy * dt

    def shifted(self, dt: float) -> Segment:
        return Segment(self.t0 + dt, self.t1 + dt, self.x0, self.y0, self.vx, self.vy)


@dataclass(frozen=True)
class Motion:
    """A UE's motion from t = 0: `segments` in time order, contiguous; a looping motion
    repeats them every `period` seconds, else the UE rests where the last one ends."""

    segments: tuple[Segment, ...]
    period: float | None = None

    def __post_init__(self) -> None:
        assert self.segments and self.segments[0].t0 == 0.0, "a motion starts at t = 0"
        assert self.period is None or self.period > 0, "a loop takes time"

    @property
    def duration(self) -> float:
        """Seconds until it rests (non-looping) or one round (looping)."""
        return self.period if self.period is not None else self.segments[-1].t1

    def position(self, t: float) -> tuple[float, float]:
        """Where the UE is at `t` (before 0: where it starts)."""
        t = max(t, 0.0)
        if self.period is not None:
            t = math.fmod(t, self.period)
        elif t >= self.segments[-1].t1:
            return self.segments[-1].at(self.segments[-1].t1)
        i = bisect.bisect_right([s.t0 for s in self.segments], t) - 1
        return self.segments[i].at(t)

    def walk(self, start: float, until: float) -> Iterator[Segment]:
        """The segments that overlap [start, until], in absolute time; the last one of a
        non-looping motion extends to infinity (the UE rests)."""
        rounds = 0
        period = self.period or 0.0
        first_round = math.floor(start / period) if self.period is not None else 0
        count = 0
        while True:
            shift = (first_round + rounds) * period
            for seg in self.segments:
                seg = seg.shifted(shift) if shift else seg
                if seg.t1 < start or seg.t1 <= seg.t0:  # before, or an instant
                    continue
                if seg.t0 > until:
                    return
                count += 1
                if count > MAX_SEGMENTS:
                    raise MotionLimitError(
                        f"more than {MAX_SEGMENTS} path segments before {until:g} s: ask for less"
                    )
                yield seg
            if self.period is None:
                end = self.segments[-1].at(self.segments[-1].t1)
                yield Segment(self.segments[-1].t1, math.inf, *end)
                return
            rounds += 1


def path_motion(path: Sequence[PathPoint], loop: bool = False) -> Motion:
    """The motion along waypoints: pause at each (the first: before leaving), then the leg to
    the next at the speed the waypoint sets (or the one before it set); a loop goes back to
    the first waypoint and starts again."""
    segs: list[Segment] = []
    t, speed = 0.0, None
    n = len(path)
    for j, point in enumerate(path):
        if point.pause_s > 0:
            segs.append(Segment(t, t + point.pause_s, point.x, point.y))
            t += point.pause_s
        speed = point.speed or speed
        if j == n - 1 and not loop:
            break
        nxt = path[(j + 1) % n]
        length = math.hypot(nxt.x - point.x, nxt.y - point.y)
        if length == 0:
            continue
        if speed is None:
            raise ValueError("a leg without a speed (the first waypoint sets none)")
        dt = length / speed
        vx, vy = (nxt.x - point.x) / dt, (nxt.y - point.y) / dt
        segs.append(Segment(t, t + dt, point.x, point.y, vx, vy))
        t += dt
    if not segs:  # one waypoint, or all at one point, without a pause: at rest there
        segs.append(Segment(0.0, 0.0, path[0].x, path[0].y))
    if loop:
        if t <= 0:
            raise ValueError("a loop must take time")
        return Motion(tuple(segs), period=t)
    return Motion(tuple(segs))


def trace_motion(points: Sequence[TracePoint]) -> Motion:
    """The motion through a trace's rows, in a straight line between consecutive rows; at the
    first row's position before it, at the last row's after it."""
    first = points[0]
    segs = [Segment(0.0, first.t_s, first.x, first.y)] if first.t_s > 0 else []
    for a, b in zip(points, points[1:], strict=False):
        dt = b.t_s - a.t_s
        segs.append(Segment(a.t_s, b.t_s, a.x, a.y, (b.x - a.x) / dt, (b.y - a.y) / dt))
    if not segs:
        segs.append(Segment(0.0, 0.0, first.x, first.y))
    return Motion(tuple(segs))
