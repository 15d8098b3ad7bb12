"""The standby endpoints of the controller's REST API (issue 12 part 4), over the real facade
and model with software switches: create, list, promote (with its switch-over time), delete;
404 for unknown names, 409 for conflicts, and nothing changed on a refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from controller.client import ConflictError, ControllerClient, NotFoundError
from controller.facade import Northbound
from controller.rest import create_app
from controller.rest_server import RestServer
from tests.unit.controller_helpers import THREE_SITES, SwitchedRuntime, make_state


@pytest.fixture()
def world() -> Iterator[tuple[TestClient, SwitchedRuntime, Northbound]]:
    switched = SwitchedRuntime(make_state(THREE_SITES))
    nb = Northbound(switched.rt)
    yield TestClient(create_app(nb)), switched, nb
    switched.close()


def test_create_list_promote_delete(world: tuple[TestClient, SwitchedRuntime, Northbound]) -> None:
    http, switched, _ = world
    r = http.post("/v1/instances/video/standbys", json={"to": "mec3"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["instance"] == "video" and made["switch"] == "s3" and made["site"] == "mec3"
    assert http.post("/v1/instances/video/standbys", json={"to": "s3"}).json() == made
    assert http.get("/v1/instances/video/standbys").json() == [made]
    r = http.post("/v1/instances/video/promote", json={"to": "mec3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["old_switch"], body["new_switch"], body["new_port"]) == ("s1", "s3", made["port"])
    assert body["switchover_ms"] >= 0 and body["flow_mods"] > 0 and body["old_place"] == "standby"
    assert body["switches_pending"] == [] and "s3" in body["switches_touched"]
    assert [s["site"] for s in http.get("/v1/instances/video/standbys").json()] == ["mec1"]
    assert switched.state.hosts["video"].switch == "s3"
    assert http.delete("/v1/instances/video/standbys/mec1").status_code == 204
    assert http.get("/v1/instances/video/standbys").json() == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/instances/nobody/standbys", None, 404),
        ("POST", "/v1/instances/nobody/standbys", {"to": "mec3"}, 404),
        ("POST", "/v1/instances/video/standbys", {"to": "mec9"}, 404),
        ("POST", "/v1/instances/video/standbys", {"to": "mec1"}, 409),  # it is there
        ("POST", "/v1/instances/fw/standbys", {"to": "mec3", "port": 50}, 409),  # video's
        ("POST", "/v1/instances/video/standbys", {"to": "mec3", "port": 51}, 409),  # has one
        ("POST", "/v1/instances/video/standbys", {"to": "s1", "port": 3}, 409),  # a host's
        ("POST", "/v1/instances/video/standbys", {"to": "mec3", "port": 0}, 422),
        ("POST", "/v1/instances/video/standbys", {"to": "mec3", "extra": 1}, 422),
        ("POST", "/v1/instances/video/promote", {"to": "mec2"}, 409),  # not a standby
        ("POST", "/v1/instances/fw/promote", {"to": "mec3"}, 409),
        ("POST", "/v1/instances/video/promote", {"to": "nowhere"}, 404),
        ("POST", "/v1/instances/video/promote", {}, 422),
        ("DELETE", "/v1/instances/video/standbys/mec2", None, 404),
        ("DELETE", "/v1/instances/nobody/standbys/mec3", None, 404),
    ],
)
def test_refusals_are_clear_and_change_nothing(
    world: tuple[TestClient, SwitchedRuntime, Northbound],
    method: str,
    path: str,
    body: object,
    status: int,
) -> None:
    http, switched, _ = world
    assert http.post("/v1/instances/video/standbys", json={"to": "mec3", "port": 50}).is_success
    fw_port = switched.state.hosts["fw"].port
    if body is not None and isinstance(body, dict) and body.get("port") == 3:
        body = {**body, "port": fw_port}
    saved, tables = switched.state.to_dict(), switched.tables()
    r = http.request(method, path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert switched.state.to_dict() == saved and switched.tables() == tables


def test_the_client_and_its_errors(world: tuple[TestClient, SwitchedRuntime, Northbound]) -> None:
    _, _, nb = world
    with RestServer(create_app(nb), port=0) as server:
        client = ControllerClient(server.url, timeout=5)
        made = client.add_standby("video", "mec2")
        assert client.standbys("video") == [made]
        with pytest.raises(ConflictError):
            client.promote("video", "mec3")
        view = client.promote("video", "mec2", keep_old=False)
        assert view.old_place == "forgotten" and client.standbys("video") == []
        with pytest.raises(NotFoundError):
            client.remove_standby("video", "mec2")


def test_a_drained_promotion_drops_the_old_place_after_drain_ms(
    world: tuple[TestClient, SwitchedRuntime, Northbound],
) -> None:
    import time

    from controller.ofmsg import PRIO_STANDBY

    http, switched, _ = world
    assert http.post("/v1/instances/video/standbys", json={"to": "mec3"}).status_code == 201
    r = http.post("/v1/instances/video/promote", json={"to": "mec3", "drain_ms": 200})
    assert r.status_code == 200, r.text
    old_port = r.json()["old_port"]

    def dropped() -> bool:
        return any(
            e.priority == PRIO_STANDBY and e.match.get("in_port") == old_port
            for e in switched.sim().table("s1").flows()
        )

    assert not dropped()  # the old primary's replies still get through
    time.sleep(0.5)
    assert dropped()
    for bad in (-1, 10_001, "soon"):
        r = http.post("/v1/instances/video/promote", json={"to": "mec1", "drain_ms": bad})
        assert r.status_code == 422, (bad, r.text)
