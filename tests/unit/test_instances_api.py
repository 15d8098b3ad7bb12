"""`/v1/status` and `/v1/instances/{name}` (status, deploy, stop) as `mecmig controller` serves
them: `orchestration.service.mount`'s router in the controller's REST app, over a real
northbound facade and in-memory sites (tests/unit/test_migrations_api.py's world, where `counter`
runs at mec1). Each answer is checked, bad input changes nothing, the token guards these routes
like the rest, and the OpenAPI document gives every bound and every answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import orchestration.service
from controller.limits import MAX_BODY_BYTES
from controller.rest import create_app
from ground.token import AGENT_TOKEN_ENV, CONTROLLER_TOKEN_ENV
from tests.unit.test_migrations_api import REST_URL, World

TOKEN = "s3cret-token-of-the-controller"


def _world(monkeypatch: pytest.MonkeyPatch, token: str | None = None) -> World:
    """The migrations world, its REST app built from `mount` (both routers) over its sites."""
    monkeypatch.delenv(AGENT_TOKEN_ENV, raising=False)
    monkeypatch.delenv(CONTROLLER_TOKEN_ENV, raising=False)
    w = World(rest_url=None)
    monkeypatch.setattr(orchestration.service, "site_clients", lambda *a, **kw: w.sites)
    router = orchestration.service.mount(w.nb, w.scenario, REST_URL)
    w.http = TestClient(create_app(w.nb, [router], token=token))
    return w


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = _world(monkeypatch)
    yield w
    w.runtime.shutdown()


def observe(w: World) -> dict[str, Any]:
    """What a refused request must leave alone: each site's instances, the calls that change
    them, where the controller sends their traffic, the migrations."""
    return {
        "sites": {n: {i: x.status for i, x in s.instances.items()} for n, s in w.sites.items()},
        "changes": {n: len(s.ops("create")) + len(s.ops("destroy")) for n, s in w.sites.items()},
        "hosts": [v.model_dump() for v in w.nb.instances()],
        "migrations": w.http.get("/v1/migrations").json(),
    }


def refused(w: World, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
    before = observe(w)
    resp = w.http.request(method, path, **kw)
    assert resp.status_code == status, resp.text
    assert observe(w) == before
    body: dict[str, Any] = resp.json()
    assert isinstance(body["error"], str)
    return body


# ---------------------------------------------------------------------------------- status


def test_status_lists_every_instance_where_it_runs(world: World) -> None:
    rows = {r["name"]: r for r in world.http.get("/v1/status").json()}
    assert list(rows) == ["counter", "web", "cache"]
    counter = rows["counter"]
    assert (counter["site"], counter["status"], counter["home"]) == ("mec1", "running", "mec1")
    assert counter["sites"] == {"mec1": "running", "mec2": "absent"}
    assert counter["unreachable"] == {} and counter["last_migration"] is None
    assert (rows["web"]["site"], rows["web"]["status"]) == (None, "absent")
    assert world.http.get("/v1/instances/counter").json() == counter


def test_the_last_migration_is_the_last_one_started_here(world: World) -> None:
    resp = world.http.post(
        "/v1/migrations", json={"instance": "counter", "to": "mec2", "strategy": "cold"}
    )
    view = world.wait_done(resp.json()["id"])
    one = world.http.get("/v1/instances/counter").json()
    assert (one["site"], one["status"]) == ("mec2", "running")
    last = one["last_migration"]
    assert (last["id"], last["outcome"], last["strategy"]) == (view["id"], "done", "cold")
    assert (last["source"], last["destination"]) == ("mec1", "mec2")
    assert last["frozen_ms"] == view["metrics"]["frozen_ms"] and last["frozen_ms"] > 0
    rows = {r["name"]: r for r in world.http.get("/v1/status").json()}
    assert rows["counter"]["last_migration"] == last and rows["web"]["last_migration"] is None


def test_an_unreachable_agent_is_named_in_the_status(world: World) -> None:
    world.sites["mec2"].unreachable = True
    rows = {r["name"]: r for r in world.http.get("/v1/status").json()}
    assert rows["counter"]["status"] == "running" and rows["web"]["status"] == "unknown"
    assert "site mec2: agent at unix:/nowhere unreachable" in rows["web"]["unreachable"]["mec2"]
    assert rows["web"]["sites"] == {"mec1": "absent"}


# ---------------------------------------------------------------------------------- deploy


def test_deploy_starts_it_at_home_or_at_the_site_asked(world: World) -> None:
    resp = world.http.post("/v1/instances/web/deploy")
    assert resp.status_code == 201, resp.text
    assert (resp.json()["site"], resp.json()["status"]) == ("mec1", "running")
    resp = world.http.post("/v1/instances/cache/deploy", json={"site": "mec2"})
    assert resp.status_code == 201 and resp.json()["site"] == "mec2"
    assert world.sites["mec2"].instances["cache"].status == "running"
    hosts = {h.name: h for h in world.nb.instances()}
    assert hosts["cache"].site == "mec2", "its traffic is pointed at mec2"
    assert world.http.post("/v1/instances/web/deploy", json={}).status_code == 409


def test_a_second_deploy_gets_409_and_changes_nothing(world: World) -> None:
    for body in (None, {"site": "mec2"}, {"site": "mec1"}):
        answer = refused(world, "POST", "/v1/instances/counter/deploy", 409, json=body)
        assert "counter already runs at mec1: stop it first" in answer["error"]


def test_a_deploy_while_it_migrates_gets_409(world: World) -> None:
    src = world.sites["mec1"]
    src.gate.clear()
    started = world.http.post(
        "/v1/migrations", json={"instance": "counter", "to": "mec2", "strategy": "cold"}
    )
    assert src.in_dump.wait(5)
    for method, path in (
        ("POST", "/v1/instances/counter/deploy"),
        ("DELETE", "/v1/instances/counter"),
    ):
        resp = world.http.request(method, path)
        assert resp.status_code == 409 and "already being migrated" in resp.json()["error"]
    src.gate.set()
    assert world.wait_done(started.json()["id"])["outcome"] == "done"


def test_a_service_that_does_not_start_gets_502_with_the_agents_message(world: World) -> None:
    world.sites["mec1"].fail_at = {"create"}
    world.sites["mec1"].fail_on = None
    resp = world.http.post("/v1/instances/web/deploy")
    assert resp.status_code == 502
    assert "site mec1: injected failure in create" in resp.json()["error"]
    hosts = {h.name: h for h in world.nb.instances()}
    assert hosts["web"].site == "mec1" and hosts["web"].port == world.service.orch.port_at(
        "web", "mec1"
    ), "a service that did not start gets no relocation"


def test_deploy_with_an_agent_that_cannot_say_gets_503(world: World) -> None:
    world.sites["mec2"].unreachable = True
    answer = refused(world, "POST", "/v1/instances/web/deploy", 503)
    assert "site mec2" in answer["error"] and "unreachable" in answer["error"]


# ---------------------------------------------------------------------------------- stop


def test_stop_removes_it_everywhere_and_says_what_was_where(world: World) -> None:
    world.sites["mec2"].create(world.service.orch.spec_at("counter", "mec2"))
    world.sites["mec2"].instances["counter"].status = "stopped"
    resp = world.http.delete("/v1/instances/counter")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"name": "counter", "removed": {"mec1": "running", "mec2": "stopped"}}
    assert all("counter" not in s.instances for s in world.sites.values())
    assert world.http.get("/v1/instances/counter").json()["status"] == "absent"
    again = world.http.delete("/v1/instances/counter")
    assert again.status_code == 200 and again.json()["removed"] == {}
    assert world.http.post("/v1/instances/counter/deploy").status_code == 201


def test_a_stop_that_cannot_ask_a_site_gets_503_with_what_it_did(world: World) -> None:
    world.sites["mec2"].unreachable = True
    resp = world.http.delete("/v1/instances/counter")
    assert resp.status_code == 503
    body = resp.json()
    assert "counter may still be at a site: mec2" in body["error"]
    assert body["context"]["removed"] == {"mec1": "running"}
    assert set(body["context"]["unreachable"]) == {"mec2"}


def test_a_stop_a_site_fails_gets_502(world: World) -> None:
    world.sites["mec1"].fail_at = {"destroy"}
    world.sites["mec1"].fail_on = None
    resp = world.http.delete("/v1/instances/counter")
    assert resp.status_code == 502 and "injected failure in destroy" in resp.json()["error"]
    assert resp.json()["context"]["failed"].keys() == {"mec1"}


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/instances/nope"),
        ("POST", "/v1/instances/nope/deploy"),
        ("DELETE", "/v1/instances/nope"),
    ],
)
def test_unknown_instances_get_404(world: World, method: str, path: str) -> None:
    answer = refused(world, method, path, 404)
    assert "no instance called 'nope' in scenario edge" in answer["error"]


def test_an_unknown_site_gets_404(world: World) -> None:
    answer = refused(world, "POST", "/v1/instances/web/deploy", 404, json={"site": "mars"})
    assert "mars" in answer["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/instances/" + "c" * 10 + "/deploy", None),
        ("/v1/instances/Counter/deploy", None),
        ("/v1/instances/count.er/deploy", None),
        ("/v1/instances/counter%0A/deploy", None),
        ("/v1/instances/web/deploy", {"site": 2}),
        ("/v1/instances/web/deploy", {"site": "MEC2"}),
        ("/v1/instances/web/deploy", {"site": "m" * 10}),
        ("/v1/instances/web/deploy", {"site": "mec2", "extra": 1}),
        ("/v1/instances/web/deploy", ["mec2"]),
    ],
)
def test_bad_input_gets_422_and_changes_nothing(
    world: World, path: str, body: dict[str, Any] | None
) -> None:
    answer = refused(world, "POST", path, 422, json=body)
    assert answer["problems"]


def test_malformed_and_oversized_bodies(world: World) -> None:
    headers = {"content-type": "application/json"}
    path = "/v1/instances/web/deploy"
    refused(world, "POST", path, 400, content=b'{"site": ', headers=headers)
    big = json.dumps({"site": "mec2", "x": "y" * MAX_BODY_BYTES}).encode()
    refused(world, "POST", path, 413, content=big, headers=headers)
    refused(world, "DELETE", "/v1/instances/" + "x" * 64, 422)
    refused(world, "GET", "/v1/instances/%20", 422)


def test_the_token_guards_these_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    w = _world(monkeypatch, token=TOKEN)
    try:
        for method, path in (
            ("GET", "/v1/status"),
            ("GET", "/v1/instances/counter"),
            ("POST", "/v1/instances/web/deploy"),
            ("DELETE", "/v1/instances/counter"),
        ):
            before = {n: dict(s.instances) for n, s in w.sites.items()}
            resp = w.http.request(method, path)
            assert resp.status_code == 401 and "X-Mecmig-Token" in resp.json()["error"]
            assert {n: dict(s.instances) for n, s in w.sites.items()} == before
        ok = w.http.get("/v1/status", headers={"X-Mecmig-Token": TOKEN})
        assert ok.status_code == 200
        doc = w.http.get("/v1/openapi.json", headers={"X-Mecmig-Token": TOKEN}).json()
        assert "401" in doc["paths"]["/v1/instances/{name}/deploy"]["post"]["responses"]
    finally:
        w.runtime.shutdown()


def test_the_document_gives_every_bound_and_every_answer(world: World) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    paths = doc["paths"]
    deploy = paths["/v1/instances/{name}/deploy"]["post"]
    assert {"201", "400", "404", "409", "413", "422", "500", "502", "503"} <= set(
        deploy["responses"]
    )
    stop = paths["/v1/instances/{name}"]["delete"]
    assert {"200", "404", "409", "422", "500", "502", "503"} <= set(stop["responses"])
    assert {"200", "404", "422"} <= set(paths["/v1/instances/{name}"]["get"]["responses"])
    assert "200" in paths["/v1/status"]["get"]["responses"]
    for operation in (deploy, stop):
        name = operation["parameters"][0]["schema"]
        assert (name["maxLength"], name["pattern"]) == (9, "^[a-z][a-z0-9]{0,8}$")
    request = doc["components"]["schemas"]["DeployRequest"]
    assert request["additionalProperties"] is False
    site = request["properties"]["site"]["anyOf"][0]
    assert (site["maxLength"], site["pattern"]) == (9, "^[a-z][a-z0-9]{0,8}$")
    # the controller's own host list keeps its path
    assert paths["/v1/instances"]["get"]["operationId"] == "instances_v1_instances_get"


def test_logs_through_the_rest_api_come_from_where_it_runs(world: World) -> None:
    assert world.http.post("/v1/instances/web/deploy", json={"site": "mec2"}).status_code == 201
    r = world.http.get("/v1/instances/web/logs", params={"lines": 2})
    assert r.status_code == 200, r.text
    lines = ["web at mec2: line 0", "web at mec2: line 1"]  # FakeSite.logs
    assert r.json() == {"instance": "web", "site": "mec2", "lines": lines}
    assert world.http.get("/v1/instances/cache/logs").status_code == 404  # runs nowhere
    assert world.http.get("/v1/instances/nosuch/logs").status_code == 404
    for bad in (0, 10_001):
        assert world.http.get("/v1/instances/web/logs", params={"lines": bad}).status_code == 422
