"""Mobility-procedure notifications to a real HTTP subscriber (a ThreadingHTTPServer on
127.0.0.1, tests/unit/location_world.py's): the REST app built from `orchestration.service.mount`
as `mecmig controller` builds it (`/v1/migrations` and `/amsi/v1`, the real webhook sender) over
a real northbound facade and in-memory sites (tests/unit/test_migrations_api.py's world). A
registered instance that migrates through `/v1/migrations` is announced INTERHOST_MOVEOUT_TRIGGERED
then INTERHOST_MOVEOUT_COMPLETED, in order, with its appInstanceId, its UE and where it went; one
that rolls back, TRIGGERED then FAILED with the site it serves at."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import orchestration.service
from controller.rest import create_app
from ground.token import AGENT_TOKEN_ENV, CONTROLLER_TOKEN_ENV
from tests.unit.location_world import Subscriber
from tests.unit.migration_fakes import join_migration_threads
from tests.unit.test_migrations_api import REST_URL, World

UE = {"type": 1, "value": "10.0.0.100"}
COUNTER = {"host": "10.0.0.21", "port": 7000}  # edge.yaml's counter


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv(AGENT_TOKEN_ENV, raising=False)
    monkeypatch.delenv(CONTROLLER_TOKEN_ENV, raising=False)
    w = World(rest_url=None)
    monkeypatch.setattr(orchestration.service, "site_clients", lambda *a, **kw: w.sites)
    router = orchestration.service.mount(w.nb, w.scenario, REST_URL)
    w.http = TestClient(create_app(w.nb, [router]))
    yield w
    join_migration_threads()
    w.runtime.shutdown()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    s = Subscriber()
    yield s
    s.close()


def subscribe(w: World, url: str, statuses: list[int]) -> None:
    body = {
        "subscriptionType": "MobilityProcedureSubscription",
        "callbackReference": url,
        "filterCriteria": {"appInstanceId": "counter", "mobilityStatus": statuses},
    }
    assert w.http.post("/amsi/v1/subscriptions", json=body).status_code == 201


def migrate(w: World, to: str) -> str:
    resp = w.http.post("/v1/migrations", json={"instance": "counter", "to": to})
    assert resp.status_code == 202, resp.text
    outcome: str = w.wait_done(resp.json()["id"])["outcome"]
    return outcome


def on(s: Subscriber, path: str) -> list[dict[str, Any]]:
    return [body for p, body in s.received if p == path]


def test_a_migration_and_a_rollback_reach_the_subscriber_in_order(
    world: World, subscriber: Subscriber
) -> None:
    reg = {
        "serviceConsumerId": {"appInstanceId": "counter"},
        "deviceInformation": [{"associateId": UE, "appMobilityServiceLevel": 3}],
    }
    assert world.http.post("/amsi/v1/app_mobility_services", json=reg).status_code == 201
    subscribe(world, f"{subscriber.url}/all", [1, 2, 3])
    subscribe(world, f"{subscriber.url}/done", [2])

    assert migrate(world, "mec2") == "done"
    subscriber.wait(3)
    world.sites["mec1"].fail_at = {"restore"}  # the way back fails at its destination
    assert migrate(world, "mec1") == "rolled_back"
    subscriber.wait(5)

    every = on(subscriber, "/all")
    assert [n["mobilityStatus"] for n in every] == [1, 2, 1, 3]
    for note in every:
        assert note["notificationType"] == "MobilityProcedureNotification"
        assert note["associateId"] == [UE]
        assert note["targetAppInfo"]["appInstanceId"] == "counter"
        assert note["targetAppInfo"]["commInterface"] == {"ipAddresses": [COUNTER]}
        assert note["_links"]["subscription"]["href"].endswith("/amsi/v1/subscriptions/1")
        assert set(note["timeStamp"]) == {"seconds", "nanoSeconds"}
    sites = [n["targetAppInfo"]["mecHostInformation"]["hostName"] for n in every]
    # to mec2 (triggered, completed); back to mec1 triggered, failed: it serves at mec2
    assert sites == ["mec2", "mec2", "mec1", "mec2"]
    stamps = [(n["timeStamp"]["seconds"], n["timeStamp"]["nanoSeconds"]) for n in every]
    assert stamps == sorted(stamps)
    done = on(subscriber, "/done")
    assert [n["mobilityStatus"] for n in done] == [2]
    assert done[0]["_links"]["subscription"]["href"].endswith("/subscriptions/2")
    assert world.service.orch.where("counter") == "mec2"
