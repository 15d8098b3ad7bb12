"""`/v1/follow-me` over an orchestrator with in-memory sites (orchestration.follow_service,
follow_api): a followed UE that drives through takes its service along (a speculation started by
the ticker at the mobility's time, committed at the handover the location service hears), the
service claimed meanwhile and released after; refusals are 404/409/422 and change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.rest import create_app
from orchestration.follow_api import follow_router
from orchestration.follow_service import FollowService
from orchestration.orchestrator import Orchestrator
from tests.unit.fake_api import FakeAPI
from tests.unit.migration_fakes import MB, FakeClock, FakeSite, connect, join_migration_threads
from tests.unit.test_follow_me import BACK, THROUGH, scenario
from topology.mobility_events import ue_mobility


class Claims:
    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.log: list[tuple[str, str]] = []

    def claim(self, instance: str, doing: str) -> None:
        assert instance not in self.busy
        self.busy.add(instance)
        self.log.append(("claim", instance))

    def release(self, instance: str) -> None:
        self.busy.discard(instance)
        self.log.append(("release", instance))

    def started(self, record: Any) -> None:
        self.log.append(("started", record.instance))


class World:
    def __init__(self) -> None:
        sc = scenario({"car": THROUGH, "back": BACK})
        car = sc.ue("car").model_copy(update={"follow": ("svc",)})
        self.sc = sc.model_copy(update={"ues": (car, sc.ue("back"))})
        clock = FakeClock()
        sites = {
            name: FakeSite(name, f"192.168.0.{i}", clock, send_bytes=(8 * MB, 1 * MB))
            for i, name in enumerate(("mec1", "mec2"), start=1)
        }
        connect(*sites.values())
        self.sites = sites
        self.orch = Orchestrator(self.sc, sites)
        self.orch.deploy("svc")
        self.t: float | None = None
        self.claims = Claims()
        self.kept: list[Any] = []
        self.follow = FollowService(
            self.orch, self.sc, lambda: self.t, tick_s=0.01, claims=self.claims,
            keep=self.kept.append,
        )  # fmt: skip
        self.http = TestClient(create_app(FakeAPI(), [follow_router(self.follow)]))

    def until(self, check: Any, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.01)
        raise AssertionError("not in time")


@pytest.fixture
def w() -> Iterator[World]:
    world = World()
    yield world
    world.follow.close()
    join_migration_threads()


def test_a_followed_ue_takes_its_service_along(w: World) -> None:
    r = w.http.post("/v1/follow-me", json={"ue": "car"})  # services: the UE's follow:
    assert r.status_code == 201, r.text
    view = r.json()
    assert [(s["name"], s["site"], s["target"]) for s in view["services"]] == [
        ("svc", "mec1", None)
    ]
    w.t = 10.0
    time.sleep(0.05)
    assert w.http.get("/v1/follow-me/car").json()["history"] == []  # too early
    w.t = 24.9  # the ticker: lead within T_pre + margin: a speculation towards mec2
    svc = w.until(
        lambda: (
            (s := w.http.get("/v1/follow-me/car").json()["services"][0])["speculation"] == "ready"
            and s
        )
    )
    assert svc["target"] == "mec2" and w.claims.busy == {"svc"}
    [handover] = [h for h in ue_mobility(w.sc, "car", until=200).handovers if h.to_cell == "b"]
    w.t = handover.t_s
    w.follow.handover(handover)  # what the location service's listener calls
    done = w.until(lambda: (v := w.http.get("/v1/follow-me/car").json())["moves_done"] and v)
    assert w.orch.where("svc") == "mec2"
    assert [(a["action"], a["target"], a["result"]) for a in done["history"]] == [
        ("start", "mec2", "started"),
        ("commit", "mec2", "requested"),
    ]
    w.until(lambda: not w.claims.busy)
    assert w.claims.log == [("claim", "svc"), ("started", "svc"), ("release", "svc")]
    assert [r.instance for r in w.kept] == ["svc"]
    r = w.http.delete("/v1/follow-me/car")
    assert r.status_code == 200 and w.http.get("/v1/follow-me").json() == []


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"ue": "nobody"}, 404, "no UE called 'nobody'"),
        ({"ue": "car", "services": ["ghost"]}, 404, "ghost"),
        ({"ue": "back"}, 409, "nothing follows back"),
        ({"ue": "car", "predictor": "oracle"}, 422, "predictor"),
        ({"ue": "car", "budget_ms": 0}, 422, "budget_ms"),
        ({"ue": "car", "services": ["svc"] * 17}, 422, "services"),
        ({"ue": "car", "extra": 1}, 422, "extra"),
    ],
)
def test_refusals_change_nothing(w: World, body: dict[str, Any], status: int, words: str) -> None:
    r = w.http.post("/v1/follow-me", json=body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert w.http.get("/v1/follow-me").json() == []


def test_a_ue_is_followed_once_and_a_service_follows_one_ue(w: World) -> None:
    assert w.http.post("/v1/follow-me", json={"ue": "car"}).status_code == 201
    r = w.http.post("/v1/follow-me", json={"ue": "car"})
    assert r.status_code == 409 and "followed already" in r.text
    r = w.http.post("/v1/follow-me", json={"ue": "back", "services": ["svc"]})
    assert r.status_code == 409 and "svc follows car already" in r.text
    assert [v["ue"] for v in w.http.get("/v1/follow-me").json()] == ["car"]
    assert w.http.delete("/v1/follow-me/back").status_code == 404
    assert w.http.get("/v1/follow-me/back").status_code == 404
