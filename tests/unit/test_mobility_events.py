"""The serving cell (sticky, nearest when it must change), the handovers solved exactly, the
next change of site ahead, and playback against an injected clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.mobility_world import Cells, radio
from topology.mobility_events import UEMobility, merged
from topology.mobility_map import RadioMap
from topology.mobility_paths import Motion, path_motion
from topology.mobility_playback import Playback, play
from topology.mobility_spec import PathPoint, motion_problems
from topology.scenario import UESpec


def east(speed: float = 10.0, to: float = 1000.0) -> Motion:
    return path_motion([PathPoint(x=0, y=0, speed_mps=speed), PathPoint(x=to, y=0)])


def cells_of(ue: UEMobility) -> list[tuple[float, str | None, str | None]]:
    return [(h.t_s, h.from_cell, h.to_cell) for h in ue.handovers]


def test_crossings_are_at_the_analytic_times() -> None:
    # east at 10 m/s: a's range ends at x = 100 (t = 10); b (150, 30) r 100 holds x in
    # 150 +- sqrt(100^2 - 30^2), so it takes over at 10 s and is left at x = 245.39; c (400, 0)
    # r 50 is entered at x = 350
    ue = UEMobility(
        "u",
        east(),
        radio([("a", "z1", 0, 0, 100), ("b", "z2", 150, 30, 100), ("c", "z3", 400, 0, 50)]),
        60,
    )
    assert ue.initial is not None and ue.initial.name == "a"
    leave_b = (150 + math.sqrt(100**2 - 30**2)) / 10
    expected = [(10.0, "a", "b"), (leave_b, "b", None), (35.0, None, "c"), (45.0, "c", None)]
    assert [(f, t) for _, f, t in cells_of(ue)] == [(f, t) for _, f, t in expected]
    for (got, _, _), (want, _, _) in zip(cells_of(ue), expected, strict=True):
        assert abs(got - want) < 1e-6  # well within the 1 ms asked
    h = ue.handovers[0]
    assert (h.from_zone, h.to_zone, h.from_site, h.to_site) == ("z1", "z2", "mec1", "mec2")
    assert (h.x, h.y) == pytest.approx((100, 0))


def test_the_serving_cell_is_sticky_while_in_range() -> None:
    # b is nearer from x = 100 on, but a still holds the UE until x = 200; b then holds it to 250
    ue = UEMobility("u", east(), radio([("a", "z1", 0, 0, 200), ("b", "z1", 150, 0, 100)]), 40)
    assert [(round(t, 9), f, to) for t, f, to in cells_of(ue)] == [
        (20.0, "a", "b"),
        (25.0, "b", None),
    ]
    serving = [getattr(ue.serving(t), "name", None) for t in (0, 12, 19.999, 20, 24.9, 25.1)]
    assert serving == ["a", "a", "a", "b", "b", None]


def test_leaving_a_cell_takes_the_nearest_in_range_ties_by_name() -> None:
    cells: Cells = [
        ("a", "z1", 0, 0, 100),
        ("far", "z2", 60, -140, 150),  # in range at x = 100, 140 m away
        ("near", "z3", 130, 40, 60),  # in range at x = 100, 50 m away
    ]
    ue = UEMobility("u", east(), radio(cells), 11)
    assert cells_of(ue)[0][1:] == ("a", "near")
    twins: Cells = [("a", "z1", 0, 0, 100), ("y", "z2", 130, 0, 60), ("x", "z2", 130, 0, 60)]
    assert cells_of(UEMobility("u", east(), radio(twins), 11))[0][1:] == ("a", "x")


def test_a_ue_out_of_every_range_has_no_cell_and_the_first_in_range_takes_it() -> None:
    ue = UEMobility("u", east(), radio([("b", "z1", 300, 0, 100), ("c", "z2", 330, 0, 100)]), 60)
    assert ue.initial is None and ue.serving(19.9) is None
    # at x = 200 only b's range is reached (c's starts at 230): b, kept until x = 400, then c
    assert [(round(t, 9), f, to) for t, f, to in cells_of(ue)] == [
        (20.0, None, "b"),
        (40.0, "b", "c"),
        (43.0, "c", None),
    ]


def test_a_ue_at_rest_keeps_its_cell() -> None:
    still = path_motion([PathPoint(x=10, y=0)])
    ue = UEMobility("u", still, radio([("a", "z1", 0, 0, 100), ("b", "z1", 12, 0, 100)]), 3600)
    assert ue.initial is not None and ue.initial.name == "b" and ue.handovers == ()


def test_handovers_after_until_are_not_reported() -> None:
    ue = UEMobility("u", east(), radio([("a", "z1", 0, 0, 100), ("b", "z2", 150, 0, 100)]), 9.999)
    assert ue.handovers == ()
    with pytest.raises(ValueError, match="until"):
        UEMobility("u", east(), radio([("a", "z1", 0, 0, 100)]), 86_401)


def test_the_next_change_of_site_with_its_lead_time() -> None:
    cells: Cells = [
        ("a", "z1", 0, 0, 100),
        ("a2", "z1", 180, 0, 100),  # same site: no change of site at 10 s
        ("b", "z2", 330, 0, 100),  # range from x = 230; taken when a2 is left at x = 280
        ("c", "z3", 480, 0, 100),
    ]
    ue = UEMobility("u", east(), radio(cells), 60)
    assert [to for _, _, to in cells_of(ue)] == ["a2", "b", "c", None]
    ahead = ue.next_site_change(3)
    assert ahead is not None
    assert (ahead.cell, ahead.zone, ahead.site) == ("b", "z2", "mec2")
    assert ahead.at_s == pytest.approx(28) and ahead.lead_s == pytest.approx(25)
    assert ahead.in_range_s == pytest.approx(23)  # b's range reached at x = 230
    soon = ue.next_site_change(25)  # already in b's range
    assert soon is not None and soon.in_range_s == 25 and soon.lead_s == pytest.approx(3)
    later = ue.next_site_change(28)  # served by b now: next is c, at x = 430
    assert later is not None and later.site == "mec3" and later.at_s == pytest.approx(43)
    assert ue.next_site_change(43) is None  # then out of every range


def test_a_loop_repeats_its_handovers_every_round() -> None:
    m = path_motion([PathPoint(x=0, y=0, speed_mps=10), PathPoint(x=300, y=0)], loop=True)
    ue = UEMobility("u", m, radio([("a", "z1", 0, 0, 100), ("b", "z2", 200, 0, 100)]), 120)
    times = [round(h.t_s, 9) for h in ue.handovers]
    # out: a -> b at x = 100 (10 s); back: b -> a at x = 100 (50 s); then every 60 s
    assert times == [10.0, 50.0, 70.0, 110.0]


def _stepped(ue: UEMobility, radio_map: RadioMap, step: float) -> list[tuple[float, str | None]]:
    """The same rule, sampled every `step` seconds: an independent oracle."""
    changes: list[tuple[float, str | None]] = []
    current = None
    n = int(ue.until / step)
    for i in range(n + 1):
        x, y = ue.position(i * step)
        if current is not None and current.distance(x, y) <= current.range_m:
            continue
        inside = [
            (c.distance(x, y), c.name, c) for c in radio_map.cells if c.distance(x, y) <= c.range_m
        ]
        new = min(inside)[2] if inside else None
        if i and new != current:
            changes.append((i * step, new.name if new else None))
        current = new
    return changes


def test_exact_crossings_agree_with_sampling_the_rule_every_2_ms() -> None:
    m = path_motion(
        [
            PathPoint(x=0, y=0, speed_kmh=50),
            PathPoint(x=700, y=60, pause_s=3),
            PathPoint(x=200, y=-80),
        ],
        loop=True,
    )
    cells: Cells = [
        ("p1", "z1", 40, 40, 110),
        ("p2", "z1", 170, -90, 120),
        ("p3", "z1", 290, 70, 105),
        ("p4", "z2", 410, -100, 140),
        ("p5", "z2", 540, 60, 110),
        ("w1", "z2", 620, -20, 40),
        ("m1", "z3", 480, -420, 500),
    ]
    r = radio(cells)
    ue = UEMobility("u", m, r, m.duration)
    exact = [(h.t_s, h.to_cell) for h in ue.handovers]
    sampled = _stepped(ue, r, 0.002)
    assert len(exact) == len(sampled) >= 8
    for (t, cell), (ts, cs) in zip(exact, sampled, strict=True):
        assert cell == cs and 0 <= ts - t < 0.002 + 1e-9


coords = st.floats(-500, 500, allow_nan=False)
# a loop the property once drew (hypothesis seed 37): its round takes 40 us, so 600 s of it are
# 30 million segments and the walk gave up (MotionLimitError); scenario validation refuses it
TINY_LOOP = [(1e-05, 0.0), (0.0, 0.0)]


def _loop_refused(path: list[PathPoint]) -> bool:
    """Whether scenario validation refuses this path as a loop (a round under MIN_LOOP_S)."""
    ue = UESpec(name="u", attach="s1", ip="10.0.0.9", path=tuple(path), loop=True)
    return any(key.endswith(".loop") for key, _ in motion_problems(0, ue, has_map=True))


@settings(max_examples=60, deadline=None)
@example(points=TINY_LOOP, speed=0.5, cells=[(0.0, 0.0, 20.0)], loop=True)
@given(
    points=st.lists(st.tuples(coords, coords), min_size=2, max_size=6),
    speed=st.floats(0.5, 40),
    cells=st.lists(st.tuples(coords, coords, st.floats(20, 300)), min_size=1, max_size=6),
    loop=st.booleans(),
)
def test_handovers_chain_in_time_order_and_the_serving_cell_holds_the_ue(
    points: list[tuple[float, float]],
    speed: float,
    cells: list[tuple[float, float, float]],
    loop: bool,
) -> None:
    path = [PathPoint(x=x, y=y, speed_mps=speed) for x, y in points]
    if loop and _loop_refused(path):  # no scenario has it: the path once, then at rest
        loop = False
    r = radio([(f"c{i}", f"z{i % 3 + 1}", x, y, rng) for i, (x, y, rng) in enumerate(cells)])
    ue = UEMobility("u", path_motion(path, loop), r, 600)
    previous = ue.initial.name if ue.initial else None
    times = [0.0] + [h.t_s for h in ue.handovers] + [ue.until]
    assert times == sorted(times)
    for h in ue.handovers:
        assert h.from_cell == previous and h.to_cell != h.from_cell
        previous = h.to_cell
    for a, b in zip(times, times[1:], strict=False):
        if b - a < 1e-6:
            continue
        mid = (a + b) / 2
        x, y = ue.position(mid)
        cell = ue.serving(mid)
        if cell is None:  # out of every range between two handovers
            assert all(c.distance(x, y) > c.range_m - 1e-6 for c in r.cells)
        else:  # the serving cell holds the UE all along
            assert cell.distance(x, y) <= cell.range_m + 1e-6


def test_events_of_several_ues_merge_in_time_order() -> None:
    r = radio([("a", "z1", 0, 0, 100), ("b", "z2", 150, 0, 100)])
    fast, slow = UEMobility("f", east(20), r, 100), UEMobility("s", east(5), r, 100)
    events = merged([slow, fast])
    assert [(e.ue, round(e.t_s, 6)) for e in events] == [
        ("f", 5.0),
        ("f", 12.5),
        ("s", 20.0),
        ("s", 50.0),
    ]


def test_playback_says_when_each_event_is_due_and_never_sleeps() -> None:
    r = radio([("a", "z1", 0, 0, 100), ("b", "z2", 150, 0, 100)])
    events = list(UEMobility("u", east(), r, 100).handovers)  # at 10 s and 25 s
    pb = Playback(events, start_wall=1000.0, scale=10)
    assert [round(d.wall_s, 9) for d in pb.schedule()] == [1001.0, 1002.5]
    assert pb.take_due(1000.99) == [] and pb.next_due() == pytest.approx(1001.0)
    assert pb.take_due(1001.0) == events[:1]
    assert pb.take_due(1010) == events[1:] and pb.next_due() is None
    with pytest.raises(ValueError, match="scale"):
        Playback(events, 0, scale=0)
    with pytest.raises(ValueError, match="time order"):
        Playback(events[::-1], 0)


def test_the_driver_sleeps_on_the_injected_clock_until_each_event_is_due() -> None:
    r = radio([("a", "z1", 0, 0, 100), ("b", "z2", 150, 0, 100)])
    events = list(UEMobility("u", east(), r, 100).handovers)
    now = [50.0]
    sleeps: list[float] = []
    seen: list[tuple[float, str | None]] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    handled = play(
        Playback(events, 50.0, scale=2),
        lambda: now[0],
        sleep,
        lambda e: seen.append((now[0], e.to_cell)),
    )
    assert handled == 2
    assert sleeps == pytest.approx([5.0, 7.5])  # 10 s and 25 s of scenario at twice real time
    assert [cell for _, cell in seen] == ["b", None]
    assert [t for t, _ in seen] == pytest.approx([55.0, 62.5])
