"""The UE mover's order (no emulation: a recording emulation and controller): a cell that hangs
off another switch moves the UE's traffic at the controller first (it picks the port), then
re-plugs the UE there; a cell on the same switch re-plugs nothing; every change is announced."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
class Recorder:
    scenario: Any = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def relocate(self, host: str, to: str) -> View:
        self.calls.append(("relocate", host, to))
        return View(to, 7)

    def move_host(self, name: str, switch: str, port: int) -> None:
        self.calls.append(("move_host", name, switch, port))

    def announce_access_point(self, ue: str, cell: str | None, t_s: float, scale: float) -> None:
        self.calls.append(("announce", ue, cell, t_s, scale))


def test_a_new_site_relocates_then_replugs_and_every_change_is_announced() -> None:
    sc = load_scenario(DRIVE)
    rec = Recorder(sc)
    mover = UEMover(rec, rec)  # type: ignore[arg-type]
    for h in ue_mobility(sc, "car").handovers:
        mover.apply(h)
    s2, s3 = sc.switch_of("mec2"), sc.switch_of("mec3")
    assert rec.calls == [
        ("relocate", "car", s2), ("move_host", "car", s2, 7),
        ("announce", "car", "cell2", 7.5, 1.0),
        ("relocate", "car", s3), ("move_host", "car", s3, 7),
        ("announce", "car", "cell3", 22.5, 1.0),
    ]  # fmt: skip
    assert [(m.switch, m.port) for m in mover.log] == [(s2, 7), (s3, 7)]


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
