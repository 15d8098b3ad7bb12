"""How a UE moves: along legs at their speeds, pausing, looping; through a trace's rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from topology.mobility_paths import MAX_SEGMENTS, MotionLimitError, path_motion, trace_motion
from topology.mobility_spec import PathPoint
from topology.mobility_trace import TraceError, TracePoint, parse_trace, read_trace


def _near(p: tuple[float, float], q: tuple[float, float]) -> bool:
    return math.dist(p, q) < 1e-9


def test_a_leg_at_its_speed_then_rest_at_the_end() -> None:
    # 100 m east at 36 km/h (10 m/s), then 50 m north at 5 m/s (speed_mps)
    m = path_motion(
        [
            PathPoint(x=0, y=0, speed_kmh=36),
            PathPoint(x=100, y=0, speed_mps=5),
            PathPoint(x=100, y=50),
        ]
    )
    assert m.duration == pytest.approx(20.0)
    assert _near(m.position(0), (0, 0))
    assert _near(m.position(2.5), (25, 0))
    assert _near(m.position(10), (100, 0))
    assert _near(m.position(14), (100, 20))
    assert _near(m.position(20), (100, 50))
    assert _near(m.position(1000), (100, 50))  # at rest where the path ends
    assert _near(m.position(-5), (0, 0))


def test_a_waypoint_without_speed_keeps_the_previous_legs() -> None:
    m = path_motion([PathPoint(x=0, y=0, speed_mps=4), PathPoint(x=40, y=0), PathPoint(x=40, y=40)])
    assert m.duration == pytest.approx(20.0)
    assert _near(m.position(15), (40, 20))


def test_pauses_at_the_first_waypoint_and_on_arrival() -> None:
    m = path_motion(
        [
            PathPoint(x=0, y=0, speed_mps=10, pause_s=3),
            PathPoint(x=50, y=0, pause_s=7),
            PathPoint(x=50, y=100),
        ]
    )
    assert _near(m.position(2.9), (0, 0))  # still waiting at the start
    assert _near(m.position(4), (10, 0))
    assert _near(m.position(8), (50, 0))  # arrived at 8 s
    assert _near(m.position(14.9), (50, 0))  # pausing until 15 s
    assert _near(m.position(16), (50, 10))
    assert m.duration == pytest.approx(25.0)


def test_a_loop_goes_back_to_the_first_waypoint_and_repeats() -> None:
    m = path_motion(
        [PathPoint(x=0, y=0, speed_mps=10), PathPoint(x=100, y=0, pause_s=5)], loop=True
    )
    assert m.period == pytest.approx(25.0)  # 10 s there, 5 s pause, 10 s back
    assert _near(m.position(12), (100, 0))
    assert _near(m.position(17), (80, 0))
    assert _near(m.position(25), (0, 0))
    assert _near(m.position(25 * 40 + 3), (30, 0))
    segs = list(m.walk(20, 40))
    assert segs[0].t0 == pytest.approx(15) and segs[-1].t1 == pytest.approx(50)
    assert all(a.t1 == pytest.approx(b.t0) for a, b in zip(segs, segs[1:], strict=False))


def test_walking_a_loop_of_tiny_legs_too_far_is_refused() -> None:
    m = path_motion(
        [PathPoint(x=0, y=0, speed_mps=100, pause_s=1e-4), PathPoint(x=0.01, y=0)], loop=True
    )
    assert MAX_SEGMENTS * m.duration < 1000
    with pytest.raises(MotionLimitError):
        for _ in m.walk(0, 1000):
            pass


def test_a_single_waypoint_is_a_ue_at_rest() -> None:
    m = path_motion([PathPoint(x=3, y=4)])
    assert _near(m.position(0), (3, 4)) and _near(m.position(99), (3, 4))
    segs = list(m.walk(0, 10))
    assert len(segs) == 1 and segs[0].t1 == math.inf and (segs[0].vx, segs[0].vy) == (0, 0)


def test_a_trace_is_interpolated_between_rows_and_held_outside() -> None:
    m = trace_motion([TracePoint(5, 0, 0), TracePoint(15, 100, 0), TracePoint(20, 100, 50)])
    assert _near(m.position(0), (0, 0))  # before the first row: its position
    assert _near(m.position(10), (50, 0))
    assert _near(m.position(17.5), (100, 25))
    assert _near(m.position(60), (100, 50))


TRACE = """t_s,ue,x,y
0,bus,0,0
0,car,9,9
10,bus,100,0
20,bus,100,100
"""


def test_a_trace_file_gives_the_rows_of_its_ue(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(TRACE)
    assert read_trace(path, "bus") == (
        TracePoint(0, 0, 0),
        TracePoint(10, 100, 0),
        TracePoint(20, 100, 100),
    )
    assert read_trace(path, "car") == (TracePoint(0, 9, 9),)
    # columns in another order are fine
    assert parse_trace("ue,x,y,t_s\nbus,1,2,3\n", "bus") == (TracePoint(3, 1, 2),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "t,ue,x,y\n0,bus,0,0\n",
            "line 1: the columns must be t_s,ue,x,y, not ['t', 'ue', 'x', 'y']",
        ),
        ("t_s,ue,x,y\n0,bus,0\n", "line 2: 3 values, expected 4"),
        ("t_s,ue,x,y\n0,bus,a,0\n", "line 2: t_s, x and y must be numbers"),
        ("t_s,ue,x,y\n0,bus,nan,0\n", "line 2: t_s, x and y must be finite"),
        ("t_s,ue,x,y\n-1,bus,0,0\n", "line 2: t_s -1 is outside 0-86400 s"),
        ("t_s,ue,x,y\n0,bus,100001,0\n", "line 2: (100001, 0) is outside +-100000 m"),
        ("t_s,ue,x,y\n5,bus,0,0\n5,bus,1,0\n", "line 3: t_s 5 is not after the previous row's 5"),
        (
            "t_s,ue,x,y\n0,bus,0,0\n1,bus,140,0\n",
            "line 3: 504 km/h since the previous row (at most 500)",
        ),
        ("t_s,ue,x,y\n0,car,0,0\n", "no row for UE 'bus'"),
    ],
)
def test_a_bad_trace_names_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_trace(text, "bus")
    assert info.value.problems == [message]


def test_a_trace_is_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("w") as f:
        f.write("t_s,ue,x,y\n")
        line = "0,other," + "1" * 90 + ",0\n"
        f.write(line * (16 * 2**20 // len(line) + 1))
    with pytest.raises(TraceError, match="larger than 16 MiB"):
        read_trace(big, "bus")
    with pytest.raises(TraceError, match="cannot read the file"):
        read_trace(tmp_path / "none.csv", "bus")
    many = "t_s,ue,x,y\n" + "".join(f"{i * 0.5},bus,0,0\n" for i in range(100_001))
    with pytest.raises(TraceError) as info:
        parse_trace(many, "bus")
    assert info.value.problems == ["line 100002: more than 100000 rows for bus"]
    errors = "t_s,ue,x,y\n" + "0,bus,x,0\n" * 15
    with pytest.raises(TraceError) as info:
        parse_trace(errors, "bus")
    assert len(info.value.problems) == 11 and info.value.problems[-1] == "5 more"
