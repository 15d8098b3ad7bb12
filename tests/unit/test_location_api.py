"""The location service's REST API (`/location/v2`, MEC013's shape) and the `/v1` routes that
feed it, over the controller's app as the controller builds it; notifications are kept in the
process (tests/unit/test_location_webhook.py sends them to a real subscriber)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.location import MAX_SUBSCRIPTIONS
from tests.unit.controller_helpers import THREE_SITES
from tests.unit.location_world import (
    CAR,
    PLAYBACK,
    TRACKING,
    USERS,
    ZONAL,
    ZONES,
    Kept,
    World,
    tracking,
    zonal,
)

BASE = "http://testserver/location/v2"
ZS = "zonalTrafficSubscription"
URL = f"{ZS}.callbackReference.notifyURL"
APP = "http://app/z"


@pytest.fixture
def kept() -> Kept:
    return Kept()


@pytest.fixture
def world(kept: Kept) -> Iterator[World]:
    w = World(kept)
    yield w
    w.close()


def test_zones_and_access_points(world: World) -> None:
    body = world.http.get(ZONES).json()
    assert body["zoneList"]["resourceURL"] == f"{BASE}/queries/zones"
    assert [
        (z["zoneId"], z["numberOfAccessPoints"], z["numberOfUnserviceableAccessPoints"],
         z["numberOfUsers"])
        for z in body["zoneList"]["zone"]
    ] == [("zone01", 3, 0, 2), ("zone02", 4, 0, 0), ("zone03", 2, 0, 0)]  # fmt: skip
    one = world.http.get(f"{ZONES}/zone02").json()["zoneInfo"]
    assert one["resourceURL"] == f"{BASE}/queries/zones/zone02"
    aps = world.http.get(f"{ZONES}/zone02/accessPoints").json()["accessPointList"]
    assert aps["zoneId"] == "zone02"
    assert [
        (a["accessPointId"], a["connectionType"], a["interestRealm"]) for a in aps["accessPoint"]
    ] == [
        ("poa5g04", "Smallcell", "mec2"),
        ("poa5g05", "Smallcell", "mec2"),
        ("wifi01", "Wifi", "mec2"),
        ("poa4g01", "Macro", "mec2"),
    ]
    ap = world.http.get(f"{ZONES}/zone01/accessPoints/poa5g01").json()["accessPointInfo"]
    assert ap == {
        "accessPointId": "poa5g01",
        "connectionType": "Smallcell",
        "operationStatus": "Serviceable",
        "numberOfUsers": 2,
        "interestRealm": "mec1",
        "resourceURL": f"{BASE}/queries/zones/zone01/accessPoints/poa5g01",
    }


def test_unknown_zones_and_access_points_get_404_and_bad_names_422(world: World) -> None:
    for path, message in [
        (f"{ZONES}/zone09", "no zone 'zone09'"),
        (f"{ZONES}/zone09/accessPoints", "no zone 'zone09'"),
        (f"{ZONES}/zone01/accessPoints/poa5g04", "no access point 'poa5g04' in zone 'zone01'"),
    ]:
        response = world.http.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == message
    response = world.http.get(f"{ZONES}/zone%20x")
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "zoneId"


def test_users_and_their_filters(world: World) -> None:
    users = world.http.get(USERS).json()["userList"]
    assert [(u["address"], u["accessPointId"], u["zoneId"]) for u in users["user"]] == [
        (CAR, "poa5g01", "zone01"),
        ("acr:10.0.0.101", "poa5g01", "zone01"),
    ]
    car = users["user"][0]
    assert car["contextLocationInfo"] == "x=0.0 y=0.0"
    assert set(car["timestamp"]) == {"seconds", "nanoSeconds"}
    assert car["resourceURL"] == f"{BASE}/queries/users?address={CAR}"
    world.http.post("/v1/ues/car/access-point", json={"accessPointId": "poa5g05"})

    def found(**params: Any) -> list[str]:
        response = world.http.get(USERS, params=params)
        assert response.status_code == 200, response.text
        return [u["address"] for u in response.json()["userList"]["user"]]

    assert found(zoneId="zone02") == [CAR]
    assert found(zoneId=["zone01", "zone02"]) == [CAR, "acr:10.0.0.101"]
    assert found(accessPointId="poa5g05", address="acr:10.0.0.101") == []
    assert found(address=CAR) == [CAR]
    assert found(zoneId="zone09") == []
    for params in ({"address": "10.0.0.100"}, {"zoneId": "x" * 40}, {"zoneId": ["z1"] * 17}):
        assert world.http.get(USERS, params=params).status_code == 422, params


def test_subscriptions_are_created_read_listed_and_deleted(world: World, kept: Kept) -> None:
    body = zonal("zone02", "http://app:8000/zone", userEventCriteria=["ENTERING_EVENT"])
    body["zonalTrafficSubscription"]["callbackReference"]["callbackData"] = "z2"
    body["zonalTrafficSubscription"]["clientCorrelator"] = "c-1"
    response = world.http.post(ZONAL, json=body)
    assert response.status_code == 201, response.text
    sub = response.json()["zonalTrafficSubscription"]
    assert sub == {
        "callbackReference": {"notifyURL": "http://app:8000/zone", "callbackData": "z2"},
        "clientCorrelator": "c-1",
        "zoneId": "zone02",
        "userEventCriteria": ["ENTERING_EVENT"],
        "resourceURL": f"{BASE}/subscriptions/zonalTraffic/1",
    }
    assert response.headers["location"] == sub["resourceURL"]
    response = world.http.post(TRACKING, json=tracking(CAR, "https://app/u"))
    assert response.status_code == 201
    assert response.json()["userTrackingSubscription"]["resourceURL"] == (
        f"{BASE}/subscriptions/userTracking/2"
    )
    assert world.http.get(f"{ZONAL}/1").json() == {"zonalTrafficSubscription": sub}
    listed = world.http.get(ZONAL).json()["notificationSubscriptionList"]
    assert listed == {
        "zonalTrafficSubscription": [sub],
        "resourceURL": f"{BASE}/subscriptions/zonalTraffic",
    }
    assert [s["address"] for s in world.http.get(TRACKING).json()["notificationSubscriptionList"][
        "userTrackingSubscription"
    ]] == [CAR]  # fmt: skip
    assert world.http.get(f"{TRACKING}/1").status_code == 404  # 1 is a zonal one
    assert world.http.delete(f"{ZONAL}/1").status_code == 204
    assert kept.forgotten == ["1"]
    assert world.http.get(f"{ZONAL}/1").status_code == 404
    assert world.http.delete(f"{ZONAL}/1").json() == {
        "error": "no zonalTraffic subscription '1'",
        "context": {},
    }
    assert world.http.get(ZONAL).json()["notificationSubscriptionList"] == {
        "zonalTrafficSubscription": [],
        "resourceURL": f"{BASE}/subscriptions/zonalTraffic",
    }


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (zonal("zone09", "http://app/z"), 404, None),
        (tracking("acr:10.0.0.9", "http://app/u"), 404, None),
        (zonal("zone01", "ftp://app/z"), 422, URL),
        (zonal("zone01", "http://"), 422, URL),
        (zonal("zone01", "http://app:99999/z"), 422, URL),
        (zonal("zone01", "http://app/" + "x" * 2048), 422, URL),
        (zonal("zone01", APP, userEventCriteria=["MOVING"]), 422, f"{ZS}.userEventCriteria[0]"),
        (zonal("zone01", "http://app/z", userEventCriteria=[]), 422, f"{ZS}.userEventCriteria"),
        (zonal("zone01", "http://app/z", duration=0), 422, f"{ZS}.duration"),
        (zonal("zone01", APP, clientCorrelator="c" * 257), 422, f"{ZS}.clientCorrelator"),
        (tracking("10.0.0.100", "http://app/u"), 422, "userTrackingSubscription.address"),
        ({"zoneId": "zone01"}, 422, "zonalTrafficSubscription"),
    ],
)  # fmt: skip
def test_bad_subscriptions_are_refused_and_change_nothing(
    world: World, body: dict[str, Any], status: int, where: str | None
) -> None:
    path = TRACKING if "userTrackingSubscription" in body else ZONAL
    response = world.http.post(path, json=body)
    assert response.status_code == status, response.text
    if where is not None:
        assert where in [p["path"] for p in response.json()["problems"]]
    listed = world.http.get(ZONAL).json()["notificationSubscriptionList"]
    assert listed["zonalTrafficSubscription"] == []
    bad = world.http.post(ZONAL, content=b"{", headers={"content-type": "application/json"})
    assert bad.status_code == 400


def test_at_most_256_subscriptions(world: World) -> None:
    for _ in range(MAX_SUBSCRIPTIONS):
        assert world.http.post(ZONAL, json=zonal("zone01", "http://app/z")).status_code == 201
    response = world.http.post(TRACKING, json=tracking(CAR, "http://app/u"))
    assert response.status_code == 409
    assert "256 subscriptions" in response.json()["error"]
    assert world.http.delete(f"{ZONAL}/3").status_code == 204
    assert world.http.post(TRACKING, json=tracking(CAR, "http://app/u")).status_code == 201


def test_announcing_a_ue_s_access_point(world: World, kept: Kept) -> None:
    world.http.post(ZONAL, json=zonal("zone02", "http://app/z"))
    response = world.http.post("/v1/ues/car/access-point", json={"accessPointId": "poa5g04"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "ue": "car",
        "address": CAR,
        "accessPointId": "poa5g04",
        "zoneId": "zone02",
        "previousAccessPointId": "poa5g01",
        "previousZoneId": "zone01",
        "notifications": 1,
    }
    assert [n.body["zonalPresenceNotification"]["userEventType"] for n in kept.notes] == [  # type: ignore[index]
        "ENTERING_EVENT"
    ]
    response = world.http.post("/v1/ues/car/access-point", json={"accessPointId": None})
    assert response.json()["accessPointId"] is None and response.json()["notifications"] == 1
    assert world.http.get(USERS, params={"address": CAR}).json()["userList"]["user"] == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/ues/nobody/access-point", {"accessPointId": "poa5g01"}, 404),
        ("/v1/ues/car/access-point", {"accessPointId": "poa9"}, 404),
        ("/v1/ues/car/access-point", {"accessPointId": 7}, 422),
        ("/v1/ues/car/access-point", {}, 422),
        ("/v1/ues/car/access-point", {"accessPointId": "poa5g02", "x": 1}, 422),
        ("/v1/ues/car%20x/access-point", {"accessPointId": "poa5g01"}, 422),
    ],
)
def test_a_refused_announcement_changes_nothing(
    world: World, kept: Kept, path: str, body: dict[str, Any], status: int
) -> None:
    world.http.post(TRACKING, json=tracking(CAR, "http://app/u"))
    before = world.http.get(USERS).json()
    response = world.http.post(path, json=body)
    assert response.status_code == status, response.text
    assert world.http.get(USERS).json() == before
    assert kept.notes == []


def test_playback_runs_once_at_a_time_and_stops(world: World, kept: Kept) -> None:
    assert world.http.get(PLAYBACK).status_code == 404
    assert world.http.delete(PLAYBACK).status_code == 404
    for scale in (0.5, 1001, "10"):
        assert world.http.post(PLAYBACK, json={"time_scale": scale}).status_code == 422
    world.http.post("/v1/ues/car/access-point", json={"accessPointId": "poa5g06"})
    response = world.http.post(PLAYBACK, json={"time_scale": 1})
    assert response.status_code == 202
    assert response.json() == {
        "running": True,
        "time_scale": 1.0,
        "events": 24,
        "played": 0,
        "duration_s": 760.964,
    }
    # the car was put back where its path starts
    car = world.http.get(USERS, params={"address": CAR}).json()["userList"]["user"][0]
    assert (car["accessPointId"], car["contextLocationInfo"]) == ("poa5g01", "x=0.0 y=0.0")
    again = world.http.post(PLAYBACK, json={"time_scale": 10})
    assert again.status_code == 409 and "runs already" in again.json()["error"]
    time.sleep(0.9)  # the bus's first handover is due at 0.82 s
    stopped = world.http.delete(PLAYBACK).json()
    assert (stopped["running"], stopped["played"]) == (False, 1)
    assert world.http.get(PLAYBACK).json() == stopped
    assert world.http.delete(PLAYBACK).status_code == 404
    bus = world.http.get(USERS, params={"address": "acr:10.0.0.102"}).json()["userList"]["user"]
    assert [u["accessPointId"] for u in bus] == ["poa5g07"]


def test_a_scenario_without_a_map_answers_with_no_zones() -> None:
    w = World(Kept(), scenario=THREE_SITES)
    try:
        assert w.http.get(ZONES).json()["zoneList"]["zone"] == []
        assert w.http.get(USERS).json()["userList"]["user"] == []
        response = w.http.get(f"{ZONES}/zone01")
        assert response.status_code == 404
        assert response.json()["error"] == "no zone 'zone01' (this scenario has no map:)"
        response = w.http.post(PLAYBACK, json={"time_scale": 10})
        assert response.status_code == 409 and "nothing to play" in response.json()["error"]
    finally:
        w.close()


def test_the_location_routes_are_in_the_openapi_document(world: World) -> None:
    paths = world.http.get("/v1/openapi.json").json()["paths"]
    assert {
        "/location/v2/queries/zones": {"get"},
        "/location/v2/queries/zones/{zoneId}": {"get"},
        "/location/v2/queries/zones/{zoneId}/accessPoints": {"get"},
        "/location/v2/queries/zones/{zoneId}/accessPoints/{accessPointId}": {"get"},
        "/location/v2/queries/users": {"get"},
        "/location/v2/subscriptions/zonalTraffic": {"get", "post"},
        "/location/v2/subscriptions/zonalTraffic/{subscriptionId}": {"get", "delete"},
        "/location/v2/subscriptions/userTracking": {"get", "post"},
        "/location/v2/subscriptions/userTracking/{subscriptionId}": {"get", "delete"},
        "/v1/ues/{name}/access-point": {"post"},
        "/v1/mobility/playback": {"get", "post", "delete"},
    }.items() <= {p: set(ops) for p, ops in paths.items()}.items()
    post = paths["/location/v2/subscriptions/zonalTraffic"]["post"]["responses"]
    assert {"201", "400", "404", "409", "413", "422"} <= set(post)
