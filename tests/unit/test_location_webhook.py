"""Notifications to a real HTTP subscriber (a ThreadingHTTPServer on 127.0.0.1): subscribed
through the controller's REST API, moved by announcements and by the playback of
scenarios/city.yaml at x1000, delivered in order with MEC013's fields; and the sender's retries,
drops and non-blocking sends."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.location_events import Notification
from controller.location_models import InlineZonalPresenceNotification
from controller.location_webhook import WebhookSender
from tests.unit.location_world import (
    CAR,
    PLAYBACK,
    TRACKING,
    ZONAL,
    Subscriber,
    World,
    tracking,
    zonal,
)

E, L, T = "ENTERING_EVENT", "LEAVING_EVENT", "TRANSFERRING_EVENT"
WALKER, BUS = "acr:10.0.0.101", "acr:10.0.0.102"


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    s = Subscriber()
    yield s
    s.close()


@pytest.fixture
def world() -> Iterator[World]:
    w = World(WebhookSender(timeout_s=2.0, retry_s=0.05))
    yield w
    w.close()


def subscribe(world: World, path: str, body: dict[str, Any]) -> str:
    response = world.http.post(path, json=body)
    assert response.status_code == 201, response.text
    sub: dict[str, Any] = next(iter(response.json().values()))
    return str(sub["resourceURL"])


def events(notes: list[dict[str, Any]], with_address: bool = False) -> list[tuple[str, ...]]:
    """(event, zone, current AP, previous AP or '-'[, address]) of each notification."""
    out: list[tuple[str, ...]] = []
    for n in notes:
        row = (
            n["userEventType"],
            n["zoneId"],
            n["currentAccessPointId"],
            n.get("previousAccessPointId", "-"),
        )
        out.append((*row, n["address"]) if with_address else row)
    return out  # fmt: skip


def well_formed(notes: list[dict[str, Any]], link: str) -> None:
    stamps = []
    for n in notes:
        InlineZonalPresenceNotification.model_validate({"zonalPresenceNotification": n})
        assert n["link"] == [{"rel": link.split("/")[-2], "href": link}]
        stamps.append((n["timestamp"]["seconds"], n["timestamp"]["nanoSeconds"]))
    assert stamps == sorted(stamps)


def test_announced_handovers_reach_the_subscriber_in_order(
    world: World, subscriber: Subscriber
) -> None:
    z2 = subscribe(world, ZONAL, zonal("zone02", f"{subscriber.url}/z2"))
    z1 = subscribe(world, ZONAL, zonal("zone01", f"{subscriber.url}/z1", userEventCriteria=[L]))
    body = tracking(CAR, f"{subscriber.url}/car")
    body["userTrackingSubscription"]["callbackReference"]["callbackData"] = "my-car"
    car = subscribe(world, TRACKING, body)
    for ap in ("poa5g02", "poa5g04", "poa5g05", None, "poa5g06"):
        response = world.http.post("/v1/ues/car/access-point", json={"accessPointId": ap})
        assert response.status_code == 200, response.text
    subscriber.wait(10)
    time.sleep(0.1)  # nothing more arrives
    assert len(subscriber.received) == 10
    assert events(subscriber.on("/car")) == [
        (T, "zone01", "poa5g02", "poa5g01"),
        (L, "zone01", "poa5g02", "-"),
        (E, "zone02", "poa5g04", "poa5g02"),
        (T, "zone02", "poa5g05", "poa5g04"),
        (L, "zone02", "poa5g05", "-"),
        (E, "zone03", "poa5g06", "-"),
    ]
    assert events(subscriber.on("/z2")) == [
        (E, "zone02", "poa5g04", "poa5g02"),
        (T, "zone02", "poa5g05", "poa5g04"),
        (L, "zone02", "poa5g05", "-"),
    ]
    assert events(subscriber.on("/z1")) == [(L, "zone01", "poa5g02", "-")]
    assert {n["address"] for _, b in subscriber.received for n in b.values()} == {CAR}
    assert {n["callbackData"] for n in subscriber.on("/car")} == {"my-car"}
    assert all("callbackData" not in n for n in subscriber.on("/z2"))
    well_formed(subscriber.on("/car"), car)
    well_formed(subscriber.on("/z2"), z2)
    well_formed(subscriber.on("/z1"), z1)


def test_the_playback_of_city_yaml_reaches_the_subscriber_in_order(
    world: World, subscriber: Subscriber
) -> None:
    car = subscribe(world, TRACKING, tracking(CAR, f"{subscriber.url}/car"))
    z2 = subscribe(world, ZONAL, zonal("zone02", f"{subscriber.url}/z2"))
    response = world.http.post(PLAYBACK, json={"time_scale": 1000})
    assert response.status_code == 202, response.text
    subscriber.wait(31)  # the last handover is due after 0.76 s
    time.sleep(0.1)
    assert world.http.get(PLAYBACK).json()["running"] is False
    assert world.http.get(PLAYBACK).json()["played"] == 24
    assert len(subscriber.received) == 31
    # the car there and back: three zones, nine cells, a pause at the far end
    assert events(subscriber.on("/car")) == [
        (T, "zone01", "poa5g02", "poa5g01"),
        (T, "zone01", "poa5g03", "poa5g02"),
        (L, "zone01", "poa5g03", "-"),
        (E, "zone02", "poa5g04", "poa5g03"),
        (T, "zone02", "poa5g05", "poa5g04"),
        (T, "zone02", "wifi01", "poa5g05"),
        (L, "zone02", "wifi01", "-"),
        (E, "zone03", "poa5g06", "wifi01"),
        (T, "zone03", "poa5g07", "poa5g06"),
        (T, "zone03", "poa5g06", "poa5g07"),
        (L, "zone03", "poa5g06", "-"),
        (E, "zone02", "wifi01", "poa5g06"),
        (T, "zone02", "poa5g05", "wifi01"),
        (T, "zone02", "poa5g04", "poa5g05"),
        (L, "zone02", "poa5g04", "-"),
        (E, "zone01", "poa5g03", "poa5g04"),
        (T, "zone01", "poa5g02", "poa5g03"),
        (T, "zone01", "poa5g01", "poa5g02"),
    ]
    # everyone in zone02, in the order the handovers happened (car, bus, walker interleaved)
    assert events(subscriber.on("/z2"), with_address=True) == [
        (E, "zone02", "poa5g04", "poa5g03", CAR),  # 26.5 s
        (T, "zone02", "poa5g05", "poa5g04", CAR),  # 36.6 s
        (E, "zone02", "poa4g01", "poa5g06", BUS),  # 40.2 s
        (T, "zone02", "wifi01", "poa5g05", CAR),  # 45.5 s
        (L, "zone02", "wifi01", "-", CAR),  # 47.1 s
        (E, "zone02", "wifi01", "poa5g06", CAR),  # 97.3 s
        (T, "zone02", "poa5g05", "wifi01", CAR),  # 101.1 s
        (T, "zone02", "poa5g04", "poa5g05", CAR),  # 111.0 s
        (L, "zone02", "poa4g01", "-", BUS),  # 118.4 s
        (L, "zone02", "poa5g04", "-", CAR),  # 120.8 s
        (E, "zone02", "poa5g04", "poa5g02", WALKER),  # 264.9 s
        (T, "zone02", "poa4g01", "poa5g04", WALKER),  # 377.3 s
        (L, "zone02", "poa4g01", "-", WALKER),  # 708.0 s
    ]
    well_formed(subscriber.on("/car"), car)
    well_formed(subscriber.on("/z2"), z2)


# ------------------------------------------------------------------------------ the sender


def note(url: str, sid: str = "7", n: int = 0) -> Notification:
    return Notification(sid, "zonalTraffic", url, {"zonalPresenceNotification": {"n": n}})


def test_a_failed_post_is_tried_again(subscriber: Subscriber) -> None:
    subscriber.status = lambda n: 500 if n < 2 else 204
    sender = WebhookSender(retry_s=0.01)
    try:
        sender.send([note(f"{subscriber.url}/a", n=1), note(f"{subscriber.url}/a", n=2)])
        subscriber.wait(4)
    finally:
        sender.close()
    assert [b["zonalPresenceNotification"]["n"] for _, b in subscriber.received] == [1, 1, 1, 2]
    assert (sender.delivered, sender.dropped) == (2, 0)


def test_an_unreachable_subscriber_is_dropped_after_bounded_tries_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tries: list[str] = []

    def post(session: Any, url: str, body: dict[str, object], timeout: float) -> int:
        tries.append(url)
        return int(session.post(url, json=body, timeout=timeout).status_code)

    sender = WebhookSender(attempts=3, retry_s=0.01, post=post)
    caplog.set_level(logging.DEBUG, logger="controller.location_webhook")
    sender.send([note(f"http://127.0.0.1:{port}/gone", sid="42")])
    deadline = time.monotonic() + 10
    while sender.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    sender.close()
    assert (len(tries), sender.delivered, sender.dropped) == (3, 0, 1)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "subscription 42" in warnings[0].getMessage()
    assert "3 attempts failed" in warnings[0].getMessage()
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r not in warnings)


def test_sending_never_blocks_on_a_slow_subscriber(subscriber: Subscriber) -> None:
    def slow(n: int) -> int:
        time.sleep(0.5)
        return 204

    subscriber.status = slow
    sender = WebhookSender(timeout_s=2.0)
    try:
        started = time.monotonic()
        sender.send([note(f"{subscriber.url}/slow", n=i) for i in range(3)])
        assert time.monotonic() - started < 0.1
        subscriber.wait(3)
    finally:
        sender.close()
    assert [b["zonalPresenceNotification"]["n"] for _, b in subscriber.received] == [0, 1, 2]
