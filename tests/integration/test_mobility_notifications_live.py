"""One webhook subscriber hears a moving user's zone changes (MEC013) and its service's
relocations (MEC021) in the order they happen, on real OVS, os-ken, runc and CRIU (issue 12,
"Tests"): `scenarios/drive.yaml`'s car drives past mec1, mec2 and mec3 (the controller's
playback at x2, the emulation re-plugging it as the location service moves it) while
`POST /v1/follow-me` moves its kv ahead of each handover.

The subscriber (a real HTTP server) has a user-tracking subscription for the car and a
mobility-procedure subscription for kv (registered with the car as its device). Follow-me
starts each move before the car arrives and commits it after, so for each new zone the order is:
relocation TRIGGERED towards its site, the car ENTERING the zone, relocation COMPLETED there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mininet_scenarios.ue_motion import FollowLocation, UEMover
from tests.integration.live import Orchestrated, orchestrated
from tests.unit.location_world import Subscriber

# a hang (a process that never ends, a switch that never answers) fails here, not in CI's limit
pytestmark = pytest.mark.timeout(600)

SERVICE, UE = "kv", "car"
TRIGGERED, COMPLETED = 1, 2


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrated]:
    with orchestrated("drive.yaml", tmp_path_factory.mktemp("agents")) as o:
        yield o
        o.orch.teardown(SERVICE)


def _post(url: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    r = requests.post(url, json=body, timeout=10)
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json() if r.content else {}
    return out


def heard(received: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, ...]]:
    """What the subscriber heard, in arrival order: ("zone", event, zone) for the car's
    tracking notifications, ("move", status, site) for kv's mobility procedures."""
    out: list[tuple[str, ...]] = []
    for path, body in received:
        if path == "/car":
            n = body["zonalPresenceNotification"]
            out.append(("zone", n["userEventType"], n["zoneId"]))
        elif path == "/kv":
            site = body["targetAppInfo"]["mecHostInformation"]["hostName"]
            out.append(("move", str(body["mobilityStatus"]), site))
    return out


def test_zone_changes_and_relocations_reach_one_subscriber_in_order(bed: Orchestrated) -> None:
    bed.orch.teardown(SERVICE)
    bed.orch.deploy(SERVICE, "mec1")
    client = bed.tb.ctl.client
    base = client.base_url
    ip = str(bed.sc.ue(UE).ip)
    subscriber = Subscriber()
    try:
        _post(f"{base}/location/v2/subscriptions/userTracking", {
            "userTrackingSubscription": {
                "callbackReference": {"notifyURL": f"{subscriber.url}/car"},
                "address": f"acr:{ip}",
            }
        }, 201)  # fmt: skip
        _post(f"{base}/amsi/v1/app_mobility_services", {
            "serviceConsumerId": {"appInstanceId": SERVICE},
            "deviceInformation": [
                {"associateId": {"type": 1, "value": ip}, "appMobilityServiceLevel": 3}
            ],
        }, 201)  # fmt: skip
        _post(f"{base}/amsi/v1/subscriptions", {
            "subscriptionType": "MobilityProcedureSubscription",
            "callbackReference": f"{subscriber.url}/kv",
            "filterCriteria": {"appInstanceId": SERVICE, "mobilityStatus": [1, 2, 3]},
        }, 201)  # fmt: skip
        with FollowLocation(UEMover(bed.tb.emu, client), [UE]):
            _post(f"{base}/v1/follow-me", {"ue": UE}, 201)
            try:
                _post(f"{base}/v1/mobility/playback", {"time_scale": 2}, 202)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and bed.orch.where(SERVICE) != "mec3":
                    time.sleep(0.2)
                time.sleep(1.0)  # the last notifications on their way
            finally:
                requests.delete(f"{base}/v1/follow-me/{UE}", timeout=30)
        got = heard(list(subscriber.received))
    finally:
        subscriber.close()
    print(f"\n  heard: {got}")
    assert bed.orch.where(SERVICE) == "mec3"
    entering = [z for kind, event, z in got if kind == "zone" and event == "ENTERING_EVENT"]
    assert entering == ["zone02", "zone03"], got
    moves = [(status, site) for kind, status, site in got if kind == "move"]
    assert moves == [("1", "mec2"), ("2", "mec2"), ("1", "mec3"), ("2", "mec3")], got
    # the order across both services: each move triggered ahead of the car, completed after it
    order = [e for e in got if e[0] == "move" or e[1] == "ENTERING_EVENT"]
    assert order == [
        ("move", "1", "mec2"), ("zone", "ENTERING_EVENT", "zone02"), ("move", "2", "mec2"),
        ("move", "1", "mec3"), ("zone", "ENTERING_EVENT", "zone03"), ("move", "2", "mec3"),
    ], got  # fmt: skip
