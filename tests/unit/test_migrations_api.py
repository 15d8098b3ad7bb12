"""`/v1/migrations` as the controller serves it (the orchestration layer's router mounted into the
controller's REST app), over a real northbound facade and fabric state (no switches connected)
and in-memory sites: a migration started there holds the instance's traffic like one started
from the CLI, a second migration of a busy instance is refused, bad requests change nothing, and
the records fill in."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.client import ControllerClient
from controller.facade import Northbound
from controller.rest import create_app
from controller.runtime import Runtime
from controller.state import FabricState
from controller.store import StateStore
from migration.network import ControllerLink, NoNetwork
from migration.site import SiteUnreachable
from orchestration.links import FacadeLink, RestControllerLink
from orchestration.service import MigrationService, migrations_router
from tests.unit.migration_fakes import (
    FakeClock,
    FakeNetwork,
    FakeSite,
    connect,
    join_migration_threads,
)
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
REST_URL = "http://127.0.0.1:18080"


class WatchedSite(FakeSite):
    """A fake site that notes whether the controller held the instance's traffic at each dump,
    and can be made to wait inside the freeze (to keep a migration busy)."""

    def __init__(self, *args: Any, nb: Northbound, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.nb = nb
        self.held_at_dump: list[bool] = []
        self.gate = threading.Event()
        self.gate.set()
        self.in_dump = threading.Event()
        self.unreachable = False

    def status(self, instance: str) -> str:
        if self.unreachable:
            raise SiteUnreachable(f"site {self.name}: agent at unix:/nowhere unreachable")
        return super().status(instance)

    def checkpoint(self, instance: str, **kw: Any) -> Any:
        info = super().checkpoint(instance, **kw)
        self.held_at_dump.append(instance in self.nb.holds.held)
        self.in_dump.set()
        assert self.gate.wait(10)
        return info


class World:
    def __init__(self, rest_url: str | None) -> None:
        self.scenario: Scenario = load_scenario(ROOT / "scenarios" / "edge.yaml")
        self.runtime = Runtime(FabricState(self.scenario), StateStore(None))
        self.nb = Northbound(self.runtime)
        clock = FakeClock()
        self.sites = {
            name: WatchedSite(name, f"192.168.0.{i}", clock, nb=self.nb)
            for i, name in enumerate(("mec1", "mec2"), start=1)
        }
        connect(*self.sites.values())
        self.link = FacadeLink(self.nb, rest_url)
        self.service = MigrationService(self.scenario, self.link, self.sites)
        self.service.orch.deploy("counter")
        self.http = TestClient(create_app(self.nb, [migrations_router(self.service)]))

    def wait_done(self, mid: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view: dict[str, Any] = self.http.get(f"/v1/migrations/{mid}").json()
            if view["outcome"] != "running":
                return view
            time.sleep(0.01)
        raise AssertionError(f"{mid} still running")


@pytest.fixture
def world() -> Iterator[World]:
    w = World(rest_url=None)
    yield w
    join_migration_threads()
    w.runtime.shutdown()


def test_a_migration_started_over_rest_holds_traffic_from_the_engine(world: World) -> None:
    resp = world.http.post(
        "/v1/migrations", json={"instance": "counter", "to": "mec2", "strategy": "cold"}
    )
    assert resp.status_code == 202, resp.text
    view = world.wait_done(resp.json()["id"])
    assert view["outcome"] == "done", view
    names = [p["name"] for p in view["phases"]]
    freeze = next(p for p in view["phases"] if p["name"] == "freeze_dump")
    # held by the controller while frozen (no URL for CRIU here: the engine asked, before)
    assert freeze["detail"]["held"] is True and freeze["detail"]["held_at_freeze"] is False
    assert world.sites["mec1"].held_at_dump == [True]
    assert "deliver" in names and names.index("deliver") > names.index("restore")
    assert world.nb.holds.held == {}, "the hold is released after the restore"
    assert world.service.orch.where("counter") == "mec2"


def test_with_its_rest_url_the_source_agent_asks_for_the_hold_at_the_freeze() -> None:
    w = World(rest_url=REST_URL)
    try:
        resp = w.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"})
        view = w.wait_done(resp.json()["id"])
        assert view["outcome"] == "done" and view["strategy"] == "precopy"
        url = f"{REST_URL}/v1/instances/counter/hold"
        # the same URL a CLI migration's RestControllerLink gives the source agent's CRIU
        assert RestControllerLink(ControllerClient(REST_URL)).hold_url("counter") == url
        assert w.sites["mec1"].hold_urls[-1] == url
    finally:
        join_migration_threads()
        w.runtime.shutdown()


def test_a_busy_instance_gets_409_and_the_running_migration_goes_on(world: World) -> None:
    src = world.sites["mec1"]
    src.gate.clear()
    first = world.http.post(
        "/v1/migrations", json={"instance": "counter", "to": "mec2", "strategy": "cold"}
    )
    assert first.status_code == 202
    assert src.in_dump.wait(5)
    second = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"})
    assert second.status_code == 409 and "already being migrated" in second.json()["error"]
    src.gate.set()
    assert world.wait_done(first.json()["id"])["outcome"] == "done"
    assert len(world.http.get("/v1/migrations").json()) == 1


def test_records_fill_in_and_ids_differ(world: World) -> None:
    a = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"}).json()
    assert a["instance"] == "counter" and a["destination"] == "mec2"
    done_a = world.wait_done(a["id"])
    assert done_a["total_ms"] is not None and done_a["phases"] and done_a["metrics"]["rounds"] >= 1
    b = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec1"}).json()
    world.wait_done(b["id"])
    assert a["id"] != b["id"] and a["id"].startswith("mig-")
    assert {m["id"] for m in world.http.get("/v1/migrations").json()} == {a["id"], b["id"]}
    assert world.http.get("/v1/migrations/mig-nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"instance": "nope", "to": "mec2"}, 404, "nope"),
        ({"instance": "counter", "to": "mars"}, 404, "mars"),
        ({"instance": "counter", "to": "mec1"}, 409, "already runs at mec1"),
        ({"instance": "web", "to": "mec2"}, 409, "not running"),
        ({"instance": "counter", "to": "mec2", "strategy": "teleport"}, 422, "strategy"),
        ({"instance": "counter", "to": "mec2", "budget_ms": 0}, 422, "budget_ms"),
        ({"instance": "counter", "to": "mec2", "budget_ms": 1e9}, 422, "budget_ms"),
        ({"instance": "counter", "to": "mec2", "rate": "1Tbit"}, 422, "rate"),
        ({"instance": "counter", "to": "mec2", "hold": "maybe"}, 422, "hold"),
        ({"instance": "x" * 65, "to": "mec2"}, 422, "instance"),
        ({"instance": "counter", "to": "mec2", "extra": 1}, 422, "extra"),
    ],
)
def test_bad_requests_get_4xx_and_change_nothing(
    world: World, body: dict[str, Any], status: int, says: str
) -> None:
    resp = world.http.post("/v1/migrations", json=body)
    assert resp.status_code == status, resp.text
    assert says in resp.text
    assert world.http.get("/v1/migrations").json() == []
    assert world.service.orch.where("counter") == "mec1"
    assert world.nb.reservations() == [] and world.nb.holds.held == {}
    # and the instance is not left marked busy
    ok = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"})
    assert ok.status_code == 202


def test_an_unreachable_agent_is_named_with_503(world: World) -> None:
    world.sites["mec1"].unreachable = True
    resp = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"})
    assert resp.status_code == 503
    assert "mec1" in resp.json()["error"] and "unreachable" in resp.json()["error"]
    world.sites["mec1"].unreachable = False
    again = world.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"})
    assert again.status_code == 202


def test_the_openapi_document_lists_the_registry_strategies(world: World) -> None:
    spec = world.http.get("/v1/openapi.json").json()
    names = spec["components"]["schemas"]["StrategyName"]["enum"]
    assert names == ["cold", "precopy", "postcopy", "hybrid", "restart", "filesystem"]


# ------------------------------------------------------------------ every link is a ControllerLink


def _protocol_methods(proto: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(proto).items()
        if callable(fn) and not name.startswith("_")
    }


@pytest.mark.parametrize("link", [NoNetwork, RestControllerLink, FacadeLink, FakeNetwork])
def test_every_controller_link_satisfies_the_protocol(link: type) -> None:
    wanted = _protocol_methods(ControllerLink)
    assert set(wanted) == {
        "reserve",
        "resize",
        "release",
        "relocate",
        "relocate_many",
        "hold",
        "release_hold",
        "hold_url",
    }
    for name, sig in wanted.items():
        have = getattr(link, name, None)
        assert callable(have), f"{link.__name__} lacks {name}"
        assert list(inspect.signature(have).parameters) == list(sig.parameters), (
            f"{link.__name__}.{name}{inspect.signature(have)} differs from the protocol's {sig}"
        )
