"""`/v1/chain-migrations` as the controller serves it, over a real northbound facade and fabric
state (scenarios/chains.yaml, no switches connected) and in-memory sites: a chain moves whole
and the controller places every function at the destination, its functions count as busy for
other migrations, and a bad request gets its 4xx and changes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.facade import Northbound
from controller.rest import create_app
from controller.runtime import Runtime
from controller.state import FabricState
from controller.store import StateStore
from orchestration.chain_api import ChainMigrationService, chain_migrations_router
from orchestration.links import FacadeLink
from orchestration.service import MigrationService, migrations_router
from tests.unit.migration_fakes import FakeClock, FakeSite, connect, join_migration_threads
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("fw", "video", "fw3", "ids3", "counter3")


class GatedSite(FakeSite):
    """A fake site whose final dumps can be made to wait (to keep a chain migration busy)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gate = threading.Event()
        self.gate.set()
        self.in_dump = threading.Event()

    def checkpoint(self, instance: str, **kw: Any) -> Any:
        info = super().checkpoint(instance, **kw)
        self.in_dump.set()
        assert self.gate.wait(10)
        return info


class World:
    def __init__(self) -> None:
        scenario = load_scenario(ROOT / "scenarios" / "chains.yaml")
        self.runtime = Runtime(FabricState(scenario), StateStore(None))
        self.nb = Northbound(self.runtime)
        clock = FakeClock()
        self.sites = {
            name: GatedSite(name, f"192.168.0.{i}", clock)
            for i, name in enumerate(("mec1", "mec2", "mec3"), start=1)
        }
        connect(*self.sites.values())
        self.service = MigrationService(scenario, FacadeLink(self.nb), self.sites)
        for fn in FUNCTIONS:
            self.service.orch.deploy(fn)
        routers = [
            migrations_router(self.service),
            chain_migrations_router(ChainMigrationService(self.service)),
        ]
        self.http = TestClient(create_app(self.nb, routers))

    def wait_done(self, path: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view: dict[str, Any] = self.http.get(path).json()
            if view["outcome"] != "running":
                return view
            time.sleep(0.01)
        raise AssertionError(f"{path} still running")

    def placement(self) -> dict[str, Any]:
        return {
            "sites": {n: sorted(s.instances) for n, s in self.sites.items()},
            "controller": {i["name"]: i["switch"] for i in self.http.get("/v1/instances").json()},
        }


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    join_migration_threads()
    w.runtime.shutdown()


@pytest.mark.parametrize("pattern", ["async", "wait-for-me", "round-robin"])
def test_a_chain_moves_whole_and_the_controller_places_every_function(
    world: World, pattern: str
) -> None:
    body = {"chain": "triple", "to": "mec2", "pattern": pattern, "strategy": "cold"}
    resp = world.http.post("/v1/chain-migrations", json=body)
    assert resp.status_code == 202, resp.text
    start = resp.json()
    assert start["functions"] == ["fw3", "ids3", "counter3"] and start["pattern"] == pattern
    view = world.wait_done(f"/v1/chain-migrations/{start['id']}")
    assert view["outcome"] == "done", view["error"]
    assert [p["name"] for p in view["phases"]] == ["switch"]
    assert view["metrics"]["switchover_ms"] >= 0
    assert set(view["members"]) == {"fw3", "ids3", "counter3"}
    assert all(m["outcome"] == "done" for m in view["members"].values())
    where = world.placement()["controller"]
    assert where["fw3"] == where["ids3"] == where["counter3"] == "s2"
    assert where["fw"] == where["video"] == "s1"  # the other chain stays
    assert world.nb.holds.held == {}
    assert [c["id"] for c in world.http.get("/v1/chain-migrations").json()] == [start["id"]]


def test_a_function_being_migrated_makes_its_chain_busy_and_the_other_way_round(
    world: World,
) -> None:
    src = world.sites["mec1"]
    src.gate.clear()
    first = world.http.post(
        "/v1/migrations", json={"instance": "video", "to": "mec2", "strategy": "cold"}
    )
    assert first.status_code == 202
    assert src.in_dump.wait(5)
    before = world.placement()
    busy = world.http.post("/v1/chain-migrations", json={"chain": "pair", "to": "mec2"})
    assert busy.status_code == 409 and "video is already being migrated" in busy.json()["error"]
    assert world.placement() == before
    src.gate.set()
    assert world.wait_done(f"/v1/migrations/{first.json()['id']}")["outcome"] == "done"
    # fw was released by the refused chain migration: it can move alone
    src.in_dump.clear()
    src.gate.clear()
    chain = world.http.post(
        "/v1/chain-migrations", json={"chain": "triple", "to": "mec3", "strategy": "cold"}
    )
    assert chain.status_code == 202
    assert src.in_dump.wait(5)
    single = world.http.post("/v1/migrations", json={"instance": "ids3", "to": "mec2"})
    assert single.status_code == 409 and "already being migrated" in single.json()["error"]
    src.gate.set()
    assert world.wait_done(f"/v1/chain-migrations/{chain.json()['id']}")["outcome"] == "done"
    alone = world.http.post("/v1/migrations", json={"instance": "fw", "to": "mec2"})
    assert alone.status_code == 202


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"chain": "nope", "to": "mec2"}, 404, "no chain called 'nope'"),
        ({"chain": "pair", "to": "mec9"}, 404, "no site called 'mec9'"),
        ({"chain": "pair", "to": "mec1"}, 409, "already runs at mec1"),
        ({"chain": "pair", "to": "mec2", "pattern": "sideways"}, 422, "pattern"),
        ({"chain": "pair", "to": "mec2", "strategy": "teleport"}, 422, "strategy"),
        ({"chain": "pair", "to": "mec2", "budget_ms": 0}, 422, "budget_ms"),
        ({"chain": "pair", "to": "mec2", "network_aware": "yes"}, 422, "network_aware"),
        ({"chain": "pair", "to": "mec2", "extra": 1}, 422, "extra"),
        ({"chain": "x" * 10, "to": "mec2"}, 422, "chain"),
    ],
)
def test_a_bad_chain_migration_gets_its_4xx_and_changes_nothing(
    world: World, body: dict[str, Any], status: int, words: str
) -> None:
    before = world.placement()
    resp = world.http.post("/v1/chain-migrations", json=body)
    assert resp.status_code == status, resp.text
    assert words in resp.text
    assert world.placement() == before
    assert world.http.get("/v1/chain-migrations").json() == []
    # nothing stays claimed: the chain can move now
    ok = world.http.post("/v1/chain-migrations", json={"chain": "pair", "to": "mec2"})
    assert ok.status_code == 202, ok.text


def test_an_unknown_chain_migration_is_404(world: World) -> None:
    resp = world.http.get("/v1/chain-migrations/mig-20261201-000000-0000000000")
    assert resp.status_code == 404 and "no chain migration" in resp.json()["error"]
