"""The controller's mobility clock and handover listeners: an announcement that gives its time
(`t_s`, `time_scale`) sets the clock, which then runs at that scale; a playback starts it at 0;
listeners (follow-me) get each change of access point as a Handover with zones and sites,
outside the service's lock, and a failing listener changes nothing for the others."""

from __future__ import annotations

from tests.unit.location_world import Kept, World
from topology.mobility_events import Handover


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def world() -> tuple[World, Clock]:
    w = World(Kept())
    clock = Clock()
    w.location.monotonic = clock
    return w, clock


def test_an_announcement_with_its_time_sets_the_clock_and_tells_the_listeners() -> None:
    w, clock = world()
    try:
        heard: list[Handover] = []
        w.location.add_listener(lambda h: 1 / 0)  # a broken listener: logged, the others go on
        w.location.add_listener(heard.append)
        assert w.location.scenario_time() is None
        body = {"accessPointId": "poa5g04", "t_s": 30.0, "time_scale": 4.0}
        r = w.http.post("/v1/ues/car/access-point", json=body)
        assert r.status_code == 200, r.text
        assert w.location.scenario_time() == 30.0
        clock.t += 2.5
        assert w.location.scenario_time() == 40.0  # 2.5 s at x4
        [h] = heard
        assert (h.t_s, h.ue, h.from_cell, h.to_cell) == (30.0, "car", "poa5g01", "poa5g04")
        assert (h.from_zone, h.from_site) == ("zone01", "mec1")
        assert (h.to_zone, h.to_site, (h.x, h.y)) == ("zone02", "mec2", (410.0, -100.0))
        # without a time: the clock runs on; the same cell again: no handover
        w.http.post("/v1/ues/car/access-point", json={"accessPointId": "poa5g04"})
        w.http.post("/v1/ues/car/access-point", json={"accessPointId": "poa5g06"})
        assert [(x.from_site, x.to_site, x.t_s) for x in heard[1:]] == [("mec2", "mec3", 40.0)]
    finally:
        w.close()


def test_the_announced_time_and_scale_are_bounded() -> None:
    w, _ = world()
    try:
        for bad in ({"t_s": -1.0}, {"t_s": 86_401.0}, {"time_scale": 0.5}, {"time_scale": 1001}):
            body = {"accessPointId": "poa5g04", **bad}
            r = w.http.post("/v1/ues/car/access-point", json=body)
            assert r.status_code == 422, (bad, r.text)
        assert w.location.scenario_time() is None
        r = w.http.get("/location/v2/queries/users", params={"address": "acr:10.0.0.100"})
        assert r.json()["userList"]["user"][0]["accessPointId"] != "poa5g04"
    finally:
        w.close()


def test_a_playback_starts_the_clock_at_zero_at_its_scale() -> None:
    w, clock = world()
    try:
        assert w.http.post("/v1/mobility/playback", json={"time_scale": 10}).status_code == 202
        clock.t += 1.0
        assert w.location.scenario_time() == 10.0
    finally:
        w.close()
