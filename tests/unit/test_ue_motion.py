"""The UE mover's order (no emulation: a recording emulation and controller): a cell that hangs
off another switch makes a port there the UE's standby (the controller picks it), plugs a second
link into it, moves the UE's traffic there (promote), swaps the UE's routes and removes its old
link, then forgets the old port; a cell on the same switch re-plugs nothing; every change is
announced."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mininet_scenarios.ue_motion import FollowLocation, UEMover
from topology.mobility_events import ue_mobility
from topology.scenario import load_scenario

DRIVE = Path(__file__).resolve().parents[2] / "scenarios" / "drive.yaml"


@dataclass
class View:
    new_switch: str
    new_port: int
    switchover_ms: float = 3.0


@dataclass
class Standby:
    switch: str
    port: int


@dataclass
class Recorder:
    scenario: Any = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    fail_promote: bool = False

    def add_standby(self, host: str, to: str) -> Standby:
        self.calls.append(("standby", host, to))
        return Standby(to, 7)

    def promote(self, host: str, to: str, keep_old: bool, drain_ms: float) -> View:
        self.calls.append(("promote", host, to, keep_old))
        if self.fail_promote:
            raise RuntimeError("no")
        return View(to, 7)

    def remove_standby(self, host: str, at: str) -> None:
        self.calls.append(("forget", host, at))

    def plug_second(self, name: str, switch: str, port: int) -> str:
        self.calls.append(("plug", name, switch, port))
        return f"{name}-eth9"

    def swap_to(self, name: str, intf: str) -> None:
        self.calls.append(("swap", name, intf))

    def unplug(self, name: str, intf: str) -> None:
        self.calls.append(("unplug", name, intf))

    def announce_access_point(self, ue: str, cell: str | None, t_s: float, scale: float) -> None:
        self.calls.append(("announce", ue, cell, t_s, scale))


def test_a_new_site_plugs_promotes_then_swaps_and_every_change_is_announced() -> None:
    sc = load_scenario(DRIVE)
    rec = Recorder(sc)
    mover = UEMover(rec, rec)  # type: ignore[arg-type]
    for h in ue_mobility(sc, "car").handovers:
        mover.apply(h)
    s1, s2, s3 = (sc.switch_of(s) for s in ("mec1", "mec2", "mec3"))
    assert rec.calls == [
        ("standby", "car", s2), ("plug", "car", s2, 7), ("promote", "car", s2, True),
        ("swap", "car", "car-eth9"), ("forget", "car", s1),
        ("announce", "car", "cell2", 7.5, 1.0),
        ("standby", "car", s3), ("plug", "car", s3, 7), ("promote", "car", s3, True),
        ("swap", "car", "car-eth9"), ("forget", "car", s2),
        ("announce", "car", "cell3", 22.5, 1.0),
    ]  # fmt: skip
    assert [(m.switch, m.port) for m in mover.log] == [(s2, 7), (s3, 7)]


def test_a_refused_promotion_removes_the_second_link_and_its_standby() -> None:
    sc = load_scenario(DRIVE)
    rec = Recorder(sc, fail_promote=True)
    mover = UEMover(rec, rec)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        mover.replug("car", "cell2")
    s1, s2 = sc.switch_of("mec1"), sc.switch_of("mec2")
    assert rec.calls[-2:] == [("unplug", "car", "car-eth9"), ("forget", "car", s2)]
    assert mover.at["car"] == s1  # not moved


def test_a_cell_on_the_same_switch_is_only_announced() -> None:
    sc = load_scenario(DRIVE)
    rec = Recorder(sc)
    mover = UEMover(rec, rec)  # type: ignore[arg-type]
    [first, _] = ue_mobility(sc, "car").handovers
    mover.at["car"] = sc.switch_of("mec2")  # as if already there
    moved = mover.apply(first)
    assert rec.calls == [("announce", "car", "cell2", 7.5, 1.0)]
    assert moved.switch is None and moved.replug_ms is None


class FakeMover:
    """What FollowLocation uses of a UEMover: the emulation's scenario, the client, replug."""

    def __init__(self) -> None:
        self.emu = Recorder(load_scenario(DRIVE))
        self.client = self
        self.calls: list[tuple[Any, ...]] = []

    def track_user(self, address: str, url: str, events: Any) -> str:
        self.calls.append(("track", address, tuple(events)))
        return f"http://127.0.0.1:8080/location/v2/subscriptions/userTracking/{len(self.calls)}"

    def untrack(self, url: str) -> None:
        self.calls.append(("untrack", url.rsplit("/", 1)[-1]))

    def replug(self, ue: str, cell: str) -> None:
        self.calls.append(("replug", ue, cell))


def _post(url: str, body: object) -> int:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def test_the_emulation_replugs_ues_as_the_controllers_notifications_say() -> None:
    mover = FakeMover()
    with FollowLocation(mover, ["car", "turner"]) as follow:  # type: ignore[arg-type]
        note = {"address": "acr:10.0.0.100", "userEventType": "ENTERING_EVENT",
                "currentAccessPointId": "cell2", "zoneId": "zone02"}  # fmt: skip
        assert _post(follow.url, {"zonalPresenceNotification": note}) == 204
        leaving = {**note, "userEventType": "LEAVING_EVENT", "currentAccessPointId": "cell1"}
        _post(follow.url, {"zonalPresenceNotification": leaving})  # left: nothing to re-plug
        _post(follow.url, {"zonalPresenceNotification": {**note, "address": "acr:10.9.9.9"}})
        _post(follow.url, {"something": "else"})
    assert mover.calls == [
        ("track", "acr:10.0.0.100", ("ENTERING_EVENT", "TRANSFERRING_EVENT")),
        ("track", "acr:10.0.0.101", ("ENTERING_EVENT", "TRANSFERRING_EVENT")),
        ("replug", "car", "cell2"),
        ("untrack", "1"),
        ("untrack", "2"),
    ]
    assert follow.replugged == [("car", "cell2")]
