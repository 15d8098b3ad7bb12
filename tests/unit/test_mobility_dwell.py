"""Dwell times per point of access, zone and site (seed 003 Table V) and whether a strategy fits
them (T_pre + T_down <= T_dwell), on hand-computed cases."""

from __future__ import annotations

import pytest

from topology.dwell import Dwell, Strategy, analyse, dwells, stats
from topology.mobility_events import Handover

ZONE_SITE = {"z1": "mec1", "z2": "mec2", "z3": "mec3", None: None}
CELL_ZONE = {"a": "z1", "b": "z1", "c": "z2", "d": "z2", "e": "z3", None: None}


def ho(t: float, old: str | None, new: str | None) -> Handover:
    zo, zn = CELL_ZONE[old], CELL_ZONE[new]
    return Handover(t, "u", old, new, zo, zn, ZONE_SITE[zo], ZONE_SITE[zn], 0.0, 0.0)


# a (z1) -> b (z1) at 10 -> c (z2) at 12 -> out of range at 20 -> d (z2) at 21 -> e (z3) at 30
EVENTS = [
    ho(10, "a", "b"),
    ho(12, "b", "c"),
    ho(20, "c", None),
    ho(21, None, "d"),
    ho(30, "d", "e"),
]


def test_dwell_per_point_of_access() -> None:
    got = dwells(EVENTS, until=40, granularity="poa")
    assert got == [
        Dwell("u", "b", 10, 2, open=False),
        Dwell("u", "c", 12, 8, open=False),
        Dwell("u", "d", 21, 9, open=False),
        Dwell("u", "e", 30, 10, open=True),  # still there at 40 s
    ]
    s = stats(got)
    assert (s.count, s.open, s.min_s) == (3, 1, 2)
    assert s.mean_s == pytest.approx(19 / 3)


def test_dwell_per_zone_and_per_site() -> None:
    zone = dwells(EVENTS, until=40, granularity="zone")
    # the handover inside z1 is no change; leaving every range is one
    assert [(d.target, d.start_s, d.dwell_s, d.open) for d in zone] == [
        ("z2", 12, 8, False),
        ("z2", 21, 9, False),
        ("z3", 30, 10, True),
    ]
    site = dwells(EVENTS, until=40, granularity="site")
    assert [(d.target, d.dwell_s) for d in site] == [("mec2", 8), ("mec2", 9), ("mec3", 10)]
    s = stats(zone)
    assert (s.count, s.open, s.mean_s, s.min_s) == (2, 1, 8.5, 8)


def test_viability_per_strategy() -> None:
    strategies = [
        Strategy("quick", 1000, 1000),  # 2 s: fits even the 2 s dwell (<=)
        Strategy("slow", 5000, 3500),  # 8.5 s: only the 9 s dwell
        Strategy("never", 60_000, 0),
    ]
    out = analyse(EVENTS, 40, strategies)
    poa, zone = out["poa"][1], out["zone"][1]
    assert poa.viable == (("quick", 3, 3), ("slow", 1, 3), ("never", 0, 3))
    assert [poa.fraction(s.name) for s in strategies] == [1.0, pytest.approx(1 / 3), 0.0]
    assert zone.viable == (("quick", 2, 2), ("slow", 1, 2), ("never", 0, 2))
    assert out["site"][1] == zone
    assert [s.fits(8.5) for s in strategies] == [True, True, False]


def test_no_handover_no_dwell() -> None:
    assert dwells([], 100, "poa") == []
    s = stats([], [Strategy("x", 1, 1)])
    assert (s.count, s.mean_s, s.min_s, s.fraction("x")) == (0, None, None, None)
    with pytest.raises(KeyError):
        s.fraction("other")


def test_a_strategy_from_the_command_line() -> None:
    assert Strategy.parse("fccp:4200:900.5") == Strategy("fccp", 4200, 900.5)
    for bad in ("fccp", "fccp:1", "fccp:-1:2", "1x:1:2", "a:b:c", "fccp:1:2:3", "x:1.2.3:4"):
        with pytest.raises(ValueError, match="NAME:T_PRE_MS:T_DOWN_MS"):
            Strategy.parse(bad)
    with pytest.raises(ValueError, match="within 0-3600000 ms"):
        Strategy.parse("huge:3600001:0")
