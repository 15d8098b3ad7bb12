"""The REST layer: routes, status codes and error bodies, over an in-memory facade."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.api_models import ApiError, Invalid
from controller.rest import create_app
from ground.webapi import loc_path
from tests.unit.fake_api import LINK_BPS, FakeAPI

RES = {"src": "ue1", "dst": "edge2", "rate": "40Mbit", "match": {"proto": "udp", "dst_port": 5001}}


@pytest.fixture
def fake() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def client(fake: FakeAPI) -> TestClient:
    return TestClient(create_app(fake))


def _reserve(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/reservations", json={**RES, **changes})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# ------------------------------------------------------------------------------ read-only views


def test_health(client: TestClient) -> None:
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "scenario": "fake",
        "switches_connected": 2,
        "switches_expected": 2,
    }


def test_topology_shows_reserved_rate(client: TestClient) -> None:
    _reserve(client)
    body = client.get("/v1/topology").json()
    assert [s["name"] for s in body["sites"]] == ["edge1", "edge2"]
    assert [s["name"] for s in body["switches"]] == ["s1", "s2"]
    (link,) = body["links"]
    forward = link["directions"][0]
    assert forward["reserved_bps"] == 40_000_000
    assert forward["residual_bps"] == LINK_BPS - 40_000_000


def test_instances_and_chains(client: TestClient) -> None:
    instances = client.get("/v1/instances").json()
    assert {i["name"]: i["kind"] for i in instances} == {"ue1": "ue", "app1": "instance"}
    chains = client.get("/v1/chains").json()
    assert chains == [
        {"name": "video", "ue": "ue1", "functions": ["app1"], "proto": "udp", "port": 5004}
    ]


# ------------------------------------------------------------------------------ reservations


def test_reserve_returns_201_with_location(client: TestClient) -> None:
    response = client.post("/v1/reservations", json=RES)
    assert response.status_code == 201
    body = response.json()
    assert body["rate_bps"] == 40_000_000
    assert body["path"] == ["s1", "s2"]
    assert body["match"]["dst_port"] == 5001
    assert body["match"]["proto"] == "udp"
    assert response.headers["location"].endswith(f"/v1/reservations/{body['id']}")
    assert client.get(response.headers["location"]).json() == body


def test_list_get_resize_release(client: TestClient) -> None:
    assert client.get("/v1/reservations").json() == []
    rid = _reserve(client, owner="mig=7")["id"]
    assert [r["id"] for r in client.get("/v1/reservations").json()] == [rid]
    assert client.get(f"/v1/reservations/{rid}").json()["owner"] == "mig=7"

    # its owner must be named to change it (403 otherwise, and nothing changes)
    for changed in (
        client.patch(f"/v1/reservations/{rid}", json={"rate": 60_000_000}),
        client.delete(f"/v1/reservations/{rid}", params={"owner": "mig=8"}),
    ):
        assert changed.status_code == 403, changed.text
        assert changed.json()["context"] == {"id": rid, "owner": "mig=7"}
    assert client.get(f"/v1/reservations/{rid}").json()["rate_bps"] == 40_000_000

    resized = client.patch(
        f"/v1/reservations/{rid}", json={"rate": 60_000_000}, params={"owner": "mig=7"}
    )
    assert resized.status_code == 200
    assert resized.json()["rate_bps"] == 60_000_000

    deleted = client.delete(f"/v1/reservations/{rid}", params={"owner": "mig=7"})
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(f"/v1/reservations/{rid}").status_code == 404
    assert client.get("/v1/reservations").json() == []


@pytest.mark.parametrize(
    ("method", "json"),
    [("GET", None), ("PATCH", {"rate": "1Mbit"}), ("DELETE", None)],
)
def test_unknown_reservation_is_404(client: TestClient, method: str, json: Any) -> None:
    response = client.request(method, "/v1/reservations/99", json=json)
    assert response.status_code == 404
    assert response.json() == {"error": "no reservation 99", "context": {"id": 99}}


def test_reserve_unknown_host_is_404(client: TestClient) -> None:
    response = client.post("/v1/reservations", json={**RES, "dst": "nowhere"})
    assert response.status_code == 404
    assert response.json()["context"] == {"name": "nowhere"}


def test_admission_refused_is_409(client: TestClient) -> None:
    _reserve(client, rate="80Mbit")
    response = client.post("/v1/reservations", json={**RES, "rate": "30Mbit"})
    assert response.status_code == 409
    assert response.json() == {
        "error": "not enough bandwidth on s1-s2",
        "context": {"requested_bps": 30_000_000, "residual_bps": 20_000_000},
    }


def test_resize_refused_is_409(client: TestClient) -> None:
    rid = _reserve(client)["id"]
    response = client.patch(f"/v1/reservations/{rid}", json={"rate": "101Mbit"})
    assert response.status_code == 409
    assert client.get(f"/v1/reservations/{rid}").json()["rate_bps"] == 40_000_000


# ------------------------------------------------------------------------------ relocations


def test_relocate(client: TestClient) -> None:
    response = client.post("/v1/relocations", json={"instance": "app1", "to": "edge2"})
    assert response.status_code == 200
    body = response.json()
    assert (body["old_switch"], body["new_switch"], body["new_port"]) == ("s1", "s2", 2)
    moved = {i["name"]: i for i in client.get("/v1/instances").json()}["app1"]
    assert moved["switch"] == "s2"


def test_relocate_unknown_instance_is_404(client: TestClient) -> None:
    response = client.post("/v1/relocations", json={"instance": "ghost", "to": "edge2"})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown instance 'ghost'"


# ------------------------------------------------------------------------------ bad requests


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"rate": "fast"}, "rate", "cannot read 'fast' as a bit rate"),
        ({"rate": 0}, "rate", "must be positive"),
        ({"match": {"dst_port": 70000}}, "match.dst_port", "less than or equal to 65535"),
        ({"match": {"proto": "sctp"}}, "match.proto", "'tcp', 'udp' or 'any'"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"src": None}, "src", "valid string"),
    ],
)
def test_invalid_body_is_422_with_problem_path(
    client: TestClient, changes: dict[str, Any], path: str, words: str
) -> None:
    response = client.post("/v1/reservations", json={**RES, **changes})
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error", "problems"}
    assert [p["path"] for p in body["problems"]] == [path]
    assert words in body["problems"][0]["message"]
    assert body["error"].startswith(f"invalid request: {path}: ")


def test_all_problems_are_listed(client: TestClient) -> None:
    bad = {**RES, "rate": "fast", "match": {"dst_port": 70000}, "colour": "red"}
    del bad["dst"]
    response = client.post("/v1/reservations", json=bad)
    assert response.status_code == 422
    paths = sorted(p["path"] for p in response.json()["problems"])
    assert paths == ["colour", "dst", "match.dst_port", "rate"]


def test_missing_field_and_bad_path_parameter(client: TestClient) -> None:
    response = client.patch("/v1/reservations/1", json={})
    assert response.status_code == 422
    assert response.json()["problems"] == [{"path": "rate", "message": "Field required"}]
    response = client.get("/v1/reservations/abc")
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "rid"


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/reservations", content=b'{"src": "ue1",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON body: ")


@pytest.mark.parametrize("content", [b"[1, 2]", b'"text"', b""])
def test_body_that_is_not_an_object_is_422(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/reservations", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "(body)"


def test_problem_path_names_list_items() -> None:
    assert loc_path(("body", "chains", 0, "functions", 2)) == "chains[0].functions[2]"
    assert loc_path(("query", "limit")) == "limit"
    assert loc_path(("body",)) == "(body)"


# ------------------------------------------------------------------------------ other errors


def test_unknown_route_is_404_json(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found: GET /v1/nothing-here"}
    assert client.get("/health").status_code == 404  # only under /v1


def test_wrong_method_is_405_json(client: TestClient) -> None:
    response = client.put("/v1/health")
    assert response.status_code == 405
    assert response.json()["error"].startswith("Method Not Allowed")
    assert "GET" in response.headers["allow"]


def test_facade_invalid_and_odd_context(client: TestClient, fake: FakeAPI) -> None:
    fake.fail = Invalid("port 9 is not an access port", switch="s2", obj=object())
    response = client.post("/v1/relocations", json={"instance": "app1", "to": "s2", "port": 9})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "port 9 is not an access port"
    assert body["context"]["switch"] == "s2"
    assert body["context"]["obj"].startswith("<object object")


def test_base_api_error_is_400(client: TestClient, fake: FakeAPI) -> None:
    fake.fail = ApiError("bad idea")
    response = client.get("/v1/health")
    assert response.status_code == 400
    assert response.json() == {"error": "bad idea", "context": {}}


def test_unexpected_exception_is_500_without_traceback(
    client: TestClient, fake: FakeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail = RuntimeError("switch table exploded")
    with caplog.at_level(logging.ERROR, logger="controller.rest"):
        response = client.get("/v1/reservations")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError: switch table exploded"}
    assert "Traceback" not in response.text
    (record,) = [r for r in caplog.records if r.name == "controller.rest"]
    assert record.exc_info is not None
    assert "GET /v1/reservations" in record.getMessage()


# ------------------------------------------------------------------------------ documentation


def test_openapi_lists_paths_and_shapes(client: TestClient) -> None:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["info"]["title"] == "mecmig controller"
    assert doc["info"]["version"]
    assert set(doc["paths"]) == {
        "/v1/health",
        "/v1/topology",
        "/v1/instances",
        "/v1/chains",
        "/v1/reservations",
        "/v1/reservations/{rid}",
        "/v1/relocations",
        "/v1/relocations/batch",
        "/v1/instances/{name}/hold",
        "/v1/instances/{name}/standbys",
        "/v1/instances/{name}/standbys/{place}",
        "/v1/instances/{name}/promote",
    }
    reservations = doc["paths"]["/v1/reservations"]
    assert set(reservations) == {"get", "post"}
    assert set(doc["paths"]["/v1/reservations/{rid}"]) == {"get", "patch", "delete"}
    post = reservations["post"]
    assert {"201", "404", "409", "422"} <= set(post["responses"])
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ValidationErrorBody"
    )
    assert "204" in doc["paths"]["/v1/reservations/{rid}"]["delete"]["responses"]
    assert {"ReservationRequest", "ReservationView", "TopologyView"} <= set(
        doc["components"]["schemas"]
    )


def test_swagger_ui_under_v1(client: TestClient) -> None:
    response = client.get("/v1/docs")
    assert response.status_code == 200
    assert "/v1/openapi.json" in response.text
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 404


# ------------------------------------------------------------------------------ held traffic


def test_hold_and_release(client: TestClient) -> None:
    response = client.post("/v1/instances/app1/hold", json={"timeout_s": 30})
    assert response.status_code == 200
    assert response.json() == {"instance": "app1", "held": True, "timeout_s": 30.0}
    response = client.delete("/v1/instances/app1/hold")
    assert response.status_code == 200
    body = response.json()
    assert body["instance"] == "app1" and body["released_packets"] == 0
    assert set(body) == {"instance", "released_packets", "dropped_packets", "held_ms"}


def test_hold_defaults_and_bad_timeouts(client: TestClient) -> None:
    assert client.post("/v1/instances/app1/hold").json()["timeout_s"] == 60.0
    for bad in (0, -1, 10_000, "soon"):
        response = client.post("/v1/instances/app1/hold", json={"timeout_s": bad})
        assert response.status_code == 422, bad
        assert "timeout_s" in response.text


def test_hold_of_an_unknown_instance_is_404(client: TestClient) -> None:
    assert client.post("/v1/instances/ghost/hold", json={}).status_code == 404
    assert client.delete("/v1/instances/ghost/hold").status_code == 404
