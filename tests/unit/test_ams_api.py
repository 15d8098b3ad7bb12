"""The application-mobility service's REST API (`/amsi/v1`, MEC021's shape) as the controller
serves it: `/v1/migrations` and `/amsi/v1` in the controller's REST app over a real northbound
facade and in-memory sites (tests/unit/test_migrations_api.py's world: `counter` runs at mec1,
ue1 is 10.0.0.100), its notifications kept in the process. Registrations and subscriptions are
made, read, replaced and deleted; refusals change nothing; and a registered instance's migrations
through `/v1/migrations`, `/v1/chain-migrations` and the migration queue notify as they start
and end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.rest import create_app
from orchestration import ams
from orchestration.ams_api import ams_router
from orchestration.ams_service import AmsService
from orchestration.chain_api import ChainMigrationService, chain_migrations_router
from orchestration.migration_queue import MigrationQueue
from orchestration.queue_jobs import QueueJob
from orchestration.service import keep_in, migrations_router
from tests.unit import test_chain_migrations_api as chains_api
from tests.unit.location_world import Kept
from tests.unit.migration_fakes import join_migration_threads
from tests.unit.queue_world import QueueWorld
from tests.unit.test_migrations_api import World

REGISTRATIONS = "/amsi/v1/app_mobility_services"
SUBSCRIPTIONS = "/amsi/v1/subscriptions"
UE = {"type": 1, "value": "10.0.0.100"}


def statuses(kept: Kept) -> list[tuple[str, object]]:
    """(appInstanceId, mobilityStatus) of each notification kept, in order."""
    return [
        (n.body["targetAppInfo"]["appInstanceId"], n.body["mobilityStatus"])  # type: ignore[index]
        for n in kept.notes
    ]


def registration(app: str, *ues: dict[str, Any], **extra: Any) -> dict[str, Any]:
    devices = [{"associateId": ue} for ue in ues]
    return {"serviceConsumerId": {"appInstanceId": app}, "deviceInformation": devices, **extra}


def subscription(url: str = "http://127.0.0.1:9/n", **criteria: Any) -> dict[str, Any]:
    return {
        "subscriptionType": "MobilityProcedureSubscription",
        "callbackReference": url,
        "filterCriteria": criteria,
    }


class AmsWorld(World):
    def __init__(self) -> None:
        super().__init__(rest_url=None)
        self.kept = Kept()
        self.ams = AmsService(self.scenario, self.kept)
        self.service.listen(self.ams.on_record)
        routers = [migrations_router(self.service), ams_router(self.ams)]
        self.http = TestClient(create_app(self.nb, routers))

    def observe(self) -> dict[str, Any]:
        return {
            "registrations": self.http.get(REGISTRATIONS).json(),
            "subscriptions": self.http.get(SUBSCRIPTIONS).json(),
            "notes": list(self.kept.notes),
        }


@pytest.fixture
def world() -> Iterator[AmsWorld]:
    w = AmsWorld()
    yield w
    join_migration_threads()
    w.runtime.shutdown()


def created(w: AmsWorld, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = w.http.post(path, json=body)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


# ------------------------------------------------------------------ registrations


def test_registrations_are_made_read_replaced_and_deleted(world: AmsWorld) -> None:
    http = world.http
    resp = http.post(REGISTRATIONS, json=registration("counter", UE, expiryTime=0))
    assert resp.status_code == 201, resp.text
    reg = resp.json()
    assert reg == {
        "appMobilityServiceId": "1",
        "serviceConsumerId": {"appInstanceId": "counter"},
        "deviceInformation": [{"associateId": UE}],
        "expiryTime": 0,
    }
    assert resp.headers["location"] == f"http://testserver{REGISTRATIONS}/1"
    assert http.get(f"{REGISTRATIONS}/1").json() == reg
    assert http.get(REGISTRATIONS).json() == [reg]
    level = {"associateId": UE, "appMobilityServiceLevel": 3, "contextTransferState": 1}
    put = http.put(
        f"{REGISTRATIONS}/1",
        json={"appMobilityServiceId": "1", **registration("web"), "deviceInformation": [level]},
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "appMobilityServiceId": "1",
        "serviceConsumerId": {"appInstanceId": "web"},
        "deviceInformation": [level],
    }
    assert http.delete(f"{REGISTRATIONS}/1").status_code == 204
    assert http.get(f"{REGISTRATIONS}/1").status_code == 404
    assert http.delete(f"{REGISTRATIONS}/1").status_code == 404
    assert http.put(f"{REGISTRATIONS}/1", json=registration("web")).status_code == 404
    assert http.get(REGISTRATIONS).json() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (registration("nope", UE), 404, "no application instance 'nope'"),
        (registration("counter", {"type": 1, "value": "10.0.0.77"}), 404, "10.0.0.77"),
        (registration("counter", {"type": 2, "value": "10.0.0.100"}), 422, "type"),
        (registration("counter", {"type": 1, "value": "10.0.0.300"}), 422, "value"),
        (registration("counter", {"type": "1", "value": "10.0.0.100"}), 422, "type"),
        (registration("counter", UE, appMobilityServiceId="7"), 422, "set by the service"),
        (registration("counter", UE, expiryTime=-1), 422, "expiryTime"),
        (registration("counter", UE, extra=1), 422, "extra"),
        (registration("counter", *[UE] * 17), 422, "deviceInformation"),
        (registration("x" * 10, UE), 422, "appInstanceId"),
        ({"deviceInformation": []}, 422, "serviceConsumerId"),
    ],
)
def test_a_bad_registration_gets_4xx_and_changes_nothing(
    world: AmsWorld, body: dict[str, Any], status: int, says: str
) -> None:
    created(world, REGISTRATIONS, registration("counter", UE))
    before = world.observe()
    resp = world.http.post(REGISTRATIONS, json=body)
    assert resp.status_code == status, resp.text
    assert says in resp.text
    put = world.http.put(f"{REGISTRATIONS}/1", json=body)  # the same body replaces nothing
    assert put.status_code == status, put.text
    assert world.observe() == before


def test_a_put_naming_another_id_is_refused(world: AmsWorld) -> None:
    created(world, REGISTRATIONS, registration("counter", UE))
    before = world.observe()
    body = {**registration("web"), "appMobilityServiceId": "2"}
    resp = world.http.put(f"{REGISTRATIONS}/1", json=body)
    assert resp.status_code == 422 and "not the path's" in resp.json()["error"]
    assert world.observe() == before


def test_malformed_json_and_bad_ids(world: AmsWorld) -> None:
    resp = world.http.post(
        REGISTRATIONS, content=b"{", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert world.http.get(f"{REGISTRATIONS}/abc").status_code == 422
    assert world.http.get(f"{SUBSCRIPTIONS}/12345678901").status_code == 422


def test_at_most_256_registrations_and_256_subscriptions(world: AmsWorld) -> None:
    for _ in range(ams.MAX_REGISTRATIONS):
        created(world, REGISTRATIONS, registration("counter"))
    for _ in range(ams.MAX_SUBSCRIPTIONS):
        created(world, SUBSCRIPTIONS, subscription())
    before = world.observe()
    for path, body in ((REGISTRATIONS, registration("counter")), (SUBSCRIPTIONS, subscription())):
        resp = world.http.post(path, json=body)
        assert resp.status_code == 409 and "its most" in resp.json()["error"]
    assert world.observe() == before


# ------------------------------------------------------------------ subscriptions


def test_subscriptions_are_made_listed_read_and_deleted(world: AmsWorld) -> None:
    http = world.http
    resp = http.post(SUBSCRIPTIONS, json=subscription(appInstanceId="counter"))
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    assert sub == {
        "subscriptionType": "MobilityProcedureSubscription",
        "callbackReference": "http://127.0.0.1:9/n",
        "filterCriteria": {"appInstanceId": "counter", "mobilityStatus": [1]},  # the default
        "_links": {"self": {"href": f"http://testserver{SUBSCRIPTIONS}/1"}},
    }
    assert resp.headers["location"] == sub["_links"]["self"]["href"]
    second = created(world, SUBSCRIPTIONS, subscription(associateId=[UE], mobilityStatus=[2, 3]))
    assert second["filterCriteria"] == {"associateId": [UE], "mobilityStatus": [2, 3]}
    assert http.get(f"{SUBSCRIPTIONS}/1").json() == sub
    assert http.get(SUBSCRIPTIONS).json() == {
        "_links": {"self": {"href": f"http://testserver{SUBSCRIPTIONS}"}},
        "subscription": [
            {"href": f"http://testserver{SUBSCRIPTIONS}/1", "subscriptionType": 1},
            {"href": f"http://testserver{SUBSCRIPTIONS}/2", "subscriptionType": 1},
        ],
    }
    assert http.delete(f"{SUBSCRIPTIONS}/1").status_code == 204
    assert world.kept.forgotten == ["1"]
    assert http.get(f"{SUBSCRIPTIONS}/1").status_code == 404
    assert http.delete(f"{SUBSCRIPTIONS}/1").status_code == 404
    assert [s["href"][-1] for s in http.get(SUBSCRIPTIONS).json()["subscription"]] == ["2"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (subscription(appInstanceId="nope"), 404, "nope"),
        (subscription(associateId=[{"type": 1, "value": "10.0.0.77"}]), 404, "10.0.0.77"),
        (subscription(mobilityStatus=[4]), 422, "mobilityStatus"),
        (subscription(mobilityStatus=[]), 422, "mobilityStatus"),
        (subscription(mobilityStatus=["1"]), 422, "mobilityStatus"),
        (subscription("ftp://127.0.0.1/n"), 422, "callbackReference"),
        (subscription("http://127.0.0.1:99999/n"), 422, "port"),
        (subscription("http://" + "a" * 2048), 422, "callbackReference"),
        ({**subscription(), "subscriptionType": "AdjacentAppInfoSubscription"}, 422, "Type"),
        ({k: v for k, v in subscription().items() if k != "filterCriteria"}, 422, "filter"),
        ({**subscription(), "expiryDeadline": {"seconds": 1}}, 422, "expiryDeadline"),
    ],
)
def test_a_bad_subscription_gets_4xx_and_changes_nothing(
    world: AmsWorld, body: dict[str, Any], status: int, says: str
) -> None:
    before = world.observe()
    resp = world.http.post(SUBSCRIPTIONS, json=body)
    assert resp.status_code == status, resp.text
    assert says in resp.text
    assert world.observe() == before


def test_the_amsi_routes_are_in_the_openapi_document(world: AmsWorld) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    paths = doc["paths"]
    assert {"get", "post"} <= set(paths[REGISTRATIONS])
    assert {"get", "put", "delete"} <= set(paths[f"{REGISTRATIONS}/{{appMobilityServiceId}}"])
    assert {"get", "post"} <= set(paths[SUBSCRIPTIONS])
    assert {"get", "delete"} <= set(paths[f"{SUBSCRIPTIONS}/{{subscriptionId}}"])
    post = paths[SUBSCRIPTIONS]["post"]
    assert {"201", "400", "404", "409", "413", "422"} <= set(post["responses"])
    assert "callbacks" in post  # the notification's body is documented
    schemas = doc["components"]["schemas"]
    aid = schemas["AssociateId"]["properties"]
    assert aid["value"]["maxLength"] == 15 and aid["value"]["pattern"]
    criteria = schemas["FilterCriteria"]["properties"]
    assert criteria["associateId"]["anyOf"][0]["maxItems"] == ams.MAX_FILTER_IDS
    assert "MobilityProcedureNotification" in schemas


# ------------------------------------------------------------------ migrations notify


def migrate(w: World, instance: str, to: str) -> dict[str, Any]:
    resp = w.http.post("/v1/migrations", json={"instance": instance, "to": to, "strategy": "cold"})
    assert resp.status_code == 202, resp.text
    return w.wait_done(resp.json()["id"])


def test_a_registered_instance_s_migration_notifies_as_it_starts_and_ends(world: AmsWorld) -> None:
    created(world, SUBSCRIPTIONS, subscription(mobilityStatus=[1, 2, 3]))
    assert migrate(world, "counter", "mec2")["outcome"] == "done"
    assert world.kept.notes == [], "nothing registered: nothing notified"
    created(world, REGISTRATIONS, registration("counter", UE))
    assert migrate(world, "counter", "mec1")["outcome"] == "done"
    assert statuses(world.kept) == [("counter", 1), ("counter", 2)]
    host = world.kept.notes[-1].body["targetAppInfo"]["mecHostInformation"]  # type: ignore[index]
    assert host["hostName"] == "mec1"


def test_a_rolled_back_migration_notifies_failed_with_the_source(world: AmsWorld) -> None:
    created(world, REGISTRATIONS, registration("counter", UE))
    created(world, SUBSCRIPTIONS, subscription(mobilityStatus=[1, 2, 3]))
    world.sites["mec2"].fail_at = {"restore"}
    assert migrate(world, "counter", "mec2")["outcome"] == "rolled_back"
    assert statuses(world.kept) == [("counter", 1), ("counter", 3)]
    host = world.kept.notes[-1].body["targetAppInfo"]["mecHostInformation"]  # type: ignore[index]
    assert host["hostName"] == "mec1"
    # the instance is free again: the next migration notifies anew
    world.sites["mec2"].fail_at = set()
    assert migrate(world, "counter", "mec2")["outcome"] == "done"
    assert statuses(world.kept)[2:] == [("counter", 1), ("counter", 2)]


def test_a_refused_migration_notifies_nothing(world: AmsWorld) -> None:
    created(world, REGISTRATIONS, registration("counter", UE))
    created(world, SUBSCRIPTIONS, subscription(mobilityStatus=[1, 2, 3]))
    resp = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec1"})
    assert resp.status_code == 409
    assert world.kept.notes == []


def test_a_chain_migration_notifies_the_chain_and_its_registered_functions() -> None:
    w = chains_api.World()
    kept = Kept()
    service = AmsService(w.service.orch.sc, kept)
    w.service.listen(service.on_record)
    chains = ChainMigrationService(w.service)
    w.http = TestClient(create_app(w.nb, [chain_migrations_router(chains), ams_router(service)]))
    try:
        created(w, REGISTRATIONS, registration("pair", UE))  # type: ignore[arg-type]
        created(w, REGISTRATIONS, registration("video"))  # type: ignore[arg-type]
        created(w, SUBSCRIPTIONS, subscription(mobilityStatus=[1, 2, 3]))  # type: ignore[arg-type]
        resp = w.http.post("/v1/chain-migrations", json={"chain": "pair", "to": "mec2"})
        assert resp.status_code == 202, resp.text
        view = w.wait_done(f"/v1/chain-migrations/{resp.json()['id']}")
        assert view["outcome"] == "done", view
        assert statuses(kept) == [("pair", 1), ("video", 1), ("pair", 2), ("video", 2)]
        pair = kept.notes[0].body["targetAppInfo"]["commInterface"]["ipAddresses"]  # type: ignore[index]
        assert len(pair) >= 2, "the chain is reached at each of its functions"
    finally:
        join_migration_threads()
        w.runtime.shutdown()


def test_the_queue_s_migrations_notify_as_they_start_and_end() -> None:
    w = QueueWorld()
    kept = Kept()
    service = AmsService(w.scenario, kept)
    w.service.listen(service.on_record)
    chains = ChainMigrationService(w.service)
    w.queue = MigrationQueue(
        w.service.orch,
        "network-aware",
        clock=lambda: w.now,
        start_thread=lambda fn, name: w.pending.append((name, fn)),
        claims=w.service,
        keep=keep_in(w.service, chains),
        outside_poll_s=None,
    )
    try:
        reg = ams.Device(ams.AssociateId(1, "10.0.0.100"))
        service.register("q0", [reg], lambda i: i)
        service.register("duo", [reg], lambda i: i)
        service.subscribe("http://127.0.0.1:9/n", lambda i: i, statuses=list(ams.MobilityStatus))
        w.queue.submit(
            [QueueJob("instance", "q0", "mec2"), QueueJob("instance", "q1", "mec2")]
            + [QueueJob("chain", "duo", "mec3")]
        )
        assert kept.notes == [], "queued or granted: nothing runs yet"
        while w.pending:
            w.run_next()
        assert sorted(statuses(kept)) == [("duo", 1), ("duo", 2), ("q0", 1), ("q0", 2)]
        assert statuses(kept).index(("q0", 1)) < statuses(kept).index(("q0", 2))
        assert w.where("q0") == ["mec2"]
    finally:
        w.shutdown()
