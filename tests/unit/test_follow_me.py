"""Follow-me decisions on a constructed map: two sites, a cell each (overlapping), and UEs on a
straight road: one drives through (START at T_pre + margin before the handover, COMMIT at it),
one approaches and turns back before it enters (START by dead reckoning, then CANCEL); the
known path never starts that one at all."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.follow_me import (
    Cancel,
    Commit,
    Followed,
    FollowMe,
    Nothing,
    Start,
    Viability,
    estimate_times,
)
from orchestration.prediction import known_dwell, known_path, straight_ahead
from topology.mobility_events import Handover, SiteChange, UEMobility, ue_mobility
from topology.scenario import Scenario, parse_scenario

SPEED = 10.0  # m/s (36 km/h)
# cell a (mec1) at x = 0, range 150; cell b (mec2) at x = 300, range 160: the UE leaves a's range
# at x = 150, where b serves it: from x = -100 at 10 m/s, the handover is at t = 25 s.
HANDOVER_S = 25.0
T_PRE, T_DOWN, MARGIN = 3.0, 1.0, 1.0


def scenario(paths: dict[str, list[dict[str, Any]]]) -> Scenario:
    return parse_scenario(
        {
            "name": "follow",
            "network": {"subnet": "10.0.0.0/24"},
            "sites": [{"name": "mec1"}, {"name": "mec2"}],
            "switches": [{"name": "core", "dpid": 100}],
            "links": [{"between": [s, "core"], "capacity": "100Mbit"} for s in ("mec1", "mec2")],
            "instances": [
                {
                    "name": "svc",
                    "site": "mec1",
                    "command": "/usr/bin/python3 /data/memhog.py --size 8MiB --port 7000",
                    "memory": "8MiB",
                    "ip": "10.0.0.20",
                }
            ],
            "map": {
                "zones": [{"name": "za", "site": "mec1"}, {"name": "zb", "site": "mec2"}],
                "cells": [
                    {"name": "a", "zone": "za", "position": [0, 0], "range_m": 150},
                    {"name": "b", "zone": "zb", "position": [300, 0], "range_m": 160},
                ],
            },
            "ues": [
                {"name": ue, "attach": "mec1", "ip": f"10.0.0.{100 + i}", "path": path}
                for i, (ue, path) in enumerate(paths.items())
            ],
        }
    )


THROUGH = [{"x": -100, "y": 0, "speed_mps": SPEED}, {"x": 500, "y": 0}]
BACK = [{"x": -100, "y": 0, "speed_mps": SPEED}, {"x": 120, "y": 0}, {"x": -100, "y": 0}]


def mobility(path: list[dict[str, Any]]) -> UEMobility:
    return ue_mobility(scenario({"car": path}), "car", until=200.0)


def svc(**kw: Any) -> Followed:
    return Followed(**({"name": "svc", "site": "mec1", "t_pre_s": T_PRE, "t_down_s": T_DOWN} | kw))


def policy(mob: UEMobility, *services: Followed, **kw: Any) -> FollowMe:
    return FollowMe(
        "car",
        services or (svc(),),
        kw.pop("predict", known_path(mob)),
        serving_site="mec1",
        margin_s=MARGIN,
        dwell=kw.pop("dwell", known_dwell(mob)),
        **kw,
    )


def run(p: FollowMe, mob: UEMobility, until: float, step: float = 0.5) -> list[Any]:
    """Ticks every `step`, the handovers at their times, in time order; every action."""
    out: list[Any] = []
    handovers = list(mob.handovers)
    t = 0.0
    while t <= until:
        while handovers and handovers[0].t_s <= t:
            out += p.on_handover(handovers.pop(0))
        out += p.tick(t)
        t = round(t + step, 9)
    return out


def test_the_map_and_paths_are_what_the_tests_say() -> None:
    through, back = mobility(THROUGH), mobility(BACK)
    assert [(h.t_s, h.from_cell, h.to_cell, h.to_site) for h in through.handovers] == [
        (pytest.approx(HANDOVER_S), "a", "b", "mec2"),
        (pytest.approx(56.0), "b", None, None),  # x = 460: out of b's range
    ]
    assert back.handovers == ()  # never leaves a's range
    assert back.next_site_change(0.0) is None


def test_start_at_t_pre_plus_margin_before_the_handover_then_commit_at_it() -> None:
    mob = mobility(THROUGH)
    p = policy(mob)
    actions = run(p, mob, until=40.0)
    start, commit = actions
    # lead 4 s = T_pre + margin: at t = 21 (ticks every 0.5 s)
    assert start == Start(
        "svc",
        "instance",
        "mec1",
        "mec2",
        21.0,
        True,
        pytest.approx(HANDOVER_S),
        Viability(T_PRE, T_DOWN, pytest.approx(31.0), True, pytest.approx(4.0), True),
    )  # fmt: skip  (the stay at mec2: x = 150 to 460, 31 s, then out of range)
    assert commit == Commit(
        "svc", "instance", "mec2", pytest.approx(HANDOVER_S), pytest.approx(4.0)
    )
    assert p.target("svc") == "mec2"
    p.settled("svc", "mec2", 26.0)
    assert p.where("svc") == "mec2" and p.target("svc") is None
    assert p.tick(30.0) == []  # at mec2 with the UE: nothing more


def test_nothing_before_the_lead_time() -> None:
    mob = mobility(THROUGH)
    p = policy(mob)
    assert p.tick(20.9) == []  # lead 4.1 s
    assert [type(a) for a in p.tick(21.0)] == [Start]
    assert p.tick(21.5) == []  # speculating: nothing new


def test_scaled_lead_is_in_wall_seconds() -> None:
    mob = mobility(THROUGH)
    p = policy(mob, scale=10.0)
    # lead L scenario seconds = L / 10 wall seconds; due when L / 10 <= 4, i.e. t >= -15: now
    (start,) = p.tick(0.0)
    assert isinstance(start, Start)
    assert start.viability.lead_s == pytest.approx(2.5) and start.viability.in_time is False
    assert start.viability.dwell_s == pytest.approx(3.1)  # 31 s at x10
    assert start.viability.viable is False  # 3 + 1 > 3.1


def test_turning_back_cancels_a_dead_reckoned_start() -> None:
    mob = mobility(BACK)
    p = policy(mob, predict=straight_ahead(mob, horizon_s=60.0))
    actions = run(p, mob, until=40.0)
    assert [type(a) for a in actions] == [Start, Cancel]
    start, cancel = actions
    # heading east at x = 110 (t = 21): the handover predicted at x = 150, 4 s ahead
    assert (start.t_s, start.target, start.speculative) == (21.0, "mec2", True)
    assert start.expected_at_s == pytest.approx(HANDOVER_S)
    # at x = 120 (t = 22) it turns back: heading west, no change of site lies ahead
    assert cancel == Cancel("svc", "instance", "mec2", 22.0, "prediction: no change of site ahead")
    assert p.target("svc") is None and p.where("svc") == "mec1"


def test_turning_back_is_never_started_with_the_known_path() -> None:
    mob = mobility(BACK)
    assert run(policy(mob), mob, until=40.0) == []


def test_the_prediction_changing_site_cancels() -> None:
    ahead = [SiteChange(30.0, 3.0, 27.0, "b", "zb", "mec2")]
    p = FollowMe("car", [svc()], lambda t: ahead[0], serving_site="mec1", margin_s=MARGIN)
    (start,) = p.tick(27.0)
    assert isinstance(start, Start) and start.target == "mec2"
    assert p.tick(27.5) == []  # still leads there
    ahead[0] = SiteChange(31.0, 3.5, 28.0, "c", "zc", "mec3")
    cancel, restart = p.tick(27.5)
    assert cancel == Cancel("svc", "instance", "mec2", 27.5, "prediction: next site mec3")
    assert isinstance(restart, Start) and restart.target == "mec3"


def test_timeout_cancels_and_a_cancelled_one_may_start_again() -> None:
    ahead = SiteChange(100.0, 1.0, 99.0, "b", "zb", "mec2")
    p = FollowMe(
        "car", [svc()], lambda t: ahead, serving_site="mec1", margin_s=MARGIN, timeout_s=10.0
    )
    assert isinstance(p.tick(0.0)[0], Start)
    assert p.tick(9.9) == []
    cancel, again = p.tick(10.0)
    assert cancel == Cancel(
        "svc", "instance", "mec2", 10.0, "timeout: no handover to mec2 within 10 s"
    )
    assert isinstance(again, Start) and again.t_s == 10.0


def test_a_ue_already_elsewhere_gets_a_plain_move_and_a_failure_waits_to_retry() -> None:
    mob = mobility(THROUGH)
    p = policy(mob, retry_s=5.0)
    h = Handover(25.0, "car", "a", "b", "za", "zb", "mec1", "mec2", 150.0, 0.0)
    start, commit = p.on_handover(h)  # no tick before: no warning
    assert isinstance(start, Start) and not start.speculative and start.expected_at_s is None
    assert start.viability.lead_s == 0.0 and start.viability.in_time is False
    assert commit == Commit("svc", "instance", "mec2", 25.0, 0.0)
    assert p.tick(25.5) == []  # committing: the driver settles it
    p.settled("svc", "mec1", 26.0)  # it failed: still at mec1
    assert p.tick(30.9) == []
    assert [type(a) for a in p.tick(31.0)] == [Start, Commit]


def test_a_ue_at_a_third_site_cancels_then_moves_there() -> None:
    ahead = SiteChange(30.0, 3.0, 27.0, "b", "zb", "mec2")
    p = FollowMe("car", [svc()], lambda t: ahead, serving_site="mec1", margin_s=MARGIN)
    p.tick(27.0)
    h = Handover(28.0, "car", "a", "c", "za", "zc", "mec1", "mec3", 0.0, 0.0)
    cancel, start, commit = p.on_handover(h)
    assert cancel == Cancel("svc", "instance", "mec2", 28.0, "the UE is at mec3 now")
    assert (start.target, start.speculative, commit.target) == ("mec3", False, "mec3")


def test_stateless_services_are_marked_once_and_never_moved() -> None:
    mob = mobility(THROUGH)
    p = policy(mob, svc(name="web", stateless=True), svc(name="chain1", kind="chain"))
    actions = run(p, mob, until=40.0)
    assert [(type(a), a.service) for a in actions] == [
        (Nothing, "web"), (Start, "chain1"), (Commit, "chain1"),
    ]  # fmt: skip
    nothing = actions[0]
    assert (nothing.t_s, nothing.target) == (21.0, "mec2") and "replicas" in nothing.reason
    assert actions[1].kind == "chain"


def test_estimates_and_bounds() -> None:
    t_pre, t_down = estimate_times(100_000_000, 200_000_000, "precopy", 1000.0)
    assert (t_pre, t_down) == (pytest.approx(0.5 + 4.0 * 1.25), 1.0)
    t_pre, t_down = estimate_times(100_000_000, 200_000_000, "cold")
    assert (t_pre, t_down) == (0.5, pytest.approx(0.3 + 4.0 + 0.3))
    assert estimate_times(100_000_000, 200_000_000, "postcopy") == (0.5, pytest.approx(0.6))
    with pytest.raises(ValueError):
        Followed("x", "mec1", -1.0, 0.0)
    with pytest.raises(ValueError, match="twice"):
        FollowMe("car", [svc(), svc()], lambda t: None, serving_site="mec1")
    with pytest.raises(ValueError, match="handover of"):
        FollowMe("car", [svc()], lambda t: None, serving_site="mec1").on_handover(
            Handover(1.0, "bus", None, "a", None, "za", None, "mec1", 0.0, 0.0)
        )
    clocked = FollowMe("car", [svc()], lambda t: None, serving_site="mec1", clock=lambda: 5.0)
    assert clocked.tick() == []


def test_the_default_dwell_is_the_predictors_and_leaving_every_range_is_no_site() -> None:
    mob = mobility(THROUGH)
    p = policy(mob, dwell=None)  # known_path: the stay at mec2 ends out of range, not at a site
    (start,) = p.tick(21.0)
    assert isinstance(start, Start)
    assert (start.viability.dwell_s, start.viability.viable) == (None, None)


def test_a_handover_announced_late_commits_instead_of_cancelling() -> None:
    """At the predicted arrival the dead reckoning already looks past the target (the UE is in
    b's range, the handover not yet announced): within the grace it is waited for; after it, a
    prediction that leads elsewhere cancels as usual."""
    mob = mobility(THROUGH)
    p = policy(mob, predict=straight_ahead(mob), grace_s=2.0)
    assert [type(a).__name__ for a in p.tick(21.0)] == ["Start"]
    assert p.tick(24.5) == []
    late = [h for h in mob.handovers if h.to_cell == "b"]
    for t in (25.0, 25.5, 26.9):  # the handover is late by up to 2 s: no cancel meanwhile
        assert p.tick(t) == [], t
    [commit] = p.on_handover(late[0], 27.0)
    assert commit == Commit("svc", "instance", "mec2", 27.0, pytest.approx(6.0))
    # with no grace, the same late handover finds the speculation already cancelled
    q = policy(mob, predict=straight_ahead(mob), grace_s=0.0)
    q.tick(21.0)
    [cancel] = q.tick(25.5)
    assert isinstance(cancel, Cancel) and cancel.reason.startswith("prediction"), cancel
