"""A UE's trace file: CSV rows `t_s,ue,x,y` (a header line names the columns, in any order),
the rows of one UE in time order, positions in metres on the map. Read whole, bounded."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from topology.mobility_spec import (
    MAX_COORD_M,
    MAX_SPEED_KMH,
    MAX_SPEED_MPS,
    MAX_TIME_S,
    MAX_TRACE_BYTES,
    MAX_TRACE_ROWS,
)

COLUMNS = ("t_s", "ue", "x", "y")
MAX_REPORTED = 10  # problems listed per file; the rest are counted


@dataclass(frozen=True)
class TracePoint:
    """Where the UE is `t_s` seconds into the scenario."""

    t_s: float
    x: float
    y: float


class TraceError(Exception):
    """A trace that cannot be used; `problems` are messages naming the line."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def read_trace(path: Path, ue: str) -> tuple[TracePoint, ...]:
    """The rows of `ue` in the trace file at `path`; TraceError lists what is wrong."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TRACE_BYTES + 1)
    except OSError as exc:
        raise TraceError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    if len(data) > MAX_TRACE_BYTES:
        raise TraceError(path, [f"larger than {MAX_TRACE_BYTES // 2**20} MiB"])
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise TraceError(path, ["not UTF-8 text"]) from exc
    return parse_trace(text, ue, path)


def parse_trace(text: str, ue: str, path: Path = Path("<trace>")) -> tuple[TracePoint, ...]:
    """The rows of `ue` in a trace given as text."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if sorted(header) != sorted(COLUMNS):
        raise TraceError(path, [f"line 1: the columns must be {','.join(COLUMNS)}, not {header}"])
    col = {name: header.index(name) for name in COLUMNS}
    points: list[TracePoint] = []
    problems: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(COLUMNS):
            problems.append(f"line {line}: {len(row)} values, expected {len(COLUMNS)}")
            continue
        if row[col["ue"]].strip() != ue:
            continue
        if len(points) == MAX_TRACE_ROWS:
            problems.append(f"line {line}: more than {MAX_TRACE_ROWS} rows for {ue}")
            break
        point, problem = _point(row, col, points[-1] if points else None)
        if problem:
            problems.append(f"line {line}: {problem}")
        elif point is not None:
            points.append(point)
    if not points and not problems:
        problems.append(f"no row for UE {ue!r}")
    if problems:
        more = len(problems) - MAX_REPORTED
        raise TraceError(path, problems[:MAX_REPORTED] + ([f"{more} more"] if more > 0 else []))
    return tuple(points)


def _point(
    row: list[str], col: dict[str, int], last: TracePoint | None
) -> tuple[TracePoint | None, str]:
    try:
        t, x, y = (float(row[col[k]]) for k in ("t_s", "x", "y"))
    except ValueError:
        return None, "t_s, x and y must be numbers"
    if not all(math.isfinite(v) for v in (t, x, y)):
        return None, "t_s, x and y must be finite"
    if not 0 <= t <= MAX_TIME_S:
        return None, f"t_s {t:g} is outside 0-{MAX_TIME_S:g} s"
    if max(abs(x), abs(y)) > MAX_COORD_M:
        return None, f"({x:g}, {y:g}) is outside +-{MAX_COORD_M:g} m"
    point = TracePoint(t, x, y)
    if last is None:
        return point, ""
    if t <= last.t_s:
        return None, f"t_s {t:g} is not after the previous row's {last.t_s:g}"
    speed = math.hypot(x - last.x, y - last.y) / (t - last.t_s)
    if speed > MAX_SPEED_MPS * (1 + 1e-9):
        return None, f"{speed * 3.6:.0f} km/h since the previous row (at most {MAX_SPEED_KMH:g})"
    return point, ""
