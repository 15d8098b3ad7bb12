"""Nothing in a request reaches another tenant's reservation (issue 10): a reservation made with
an owner (a migration reserves with its id) is resized or released only by a request that names
that owner (`?owner=`); any other gets 403 and changes nothing. One reserved without an owner
is changed by requests that name none. Over the real facade, model and software switches.

An owner is not a secret (GET /v1/reservations lists them all): it keeps one tenant's client
from changing another's reservation by a wrong or stale id. Who may call the API at all is the
token's business (tests/unit/test_controller_token.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.api_models import Forbidden, ReservationRequest
from controller.facade import Northbound
from controller.rest import create_app
from orchestration.links import FacadeLink
from tests.unit.controller_helpers import THREE_SITES, SwitchedRuntime, make_state


class World:
    def __init__(self) -> None:
        self.fabric = SwitchedRuntime(make_state(THREE_SITES))
        self.nb = Northbound(self.fabric.rt)
        self.http = TestClient(create_app(self.nb))

    def observe(self) -> tuple[Any, ...]:
        return (
            self.http.get("/v1/reservations").json(),
            self.fabric.tables(),
            self.fabric.rt.call(self.fabric.state.to_dict),
        )


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.fabric.close()


def _reserve(world: World, owner: str | None) -> int:
    body: dict[str, Any] = {"src": "mec1", "dst": "mec3", "rate": "10Mbit"}
    if owner is not None:
        body["owner"] = owner
    resp = world.http.post("/v1/reservations", json=body)
    assert resp.status_code == 201, resp.text
    rid: int = resp.json()["id"]
    return rid


@pytest.mark.parametrize(
    ("held_by", "named"),
    [
        ("mig-a", None),
        ("mig-a", "mig-b"),
        ("mig-a", "mig-a "),
        ("mig-a", "MIG-A"),
        ("mig-a", ""),
        (None, "mig-b"),
        (None, ""),
    ],
)
def test_another_owner_gets_403_and_nothing_changes(
    world: World, held_by: str | None, named: str | None
) -> None:
    rid = _reserve(world, held_by)
    params = {"owner": named} if named is not None else {}
    before = world.observe()
    for resp in (
        world.http.patch(f"/v1/reservations/{rid}", json={"rate": "20Mbit"}, params=params),
        world.http.delete(f"/v1/reservations/{rid}", params=params),
    ):
        assert resp.status_code == 403, resp.text
        assert resp.json()["context"] == {"id": rid, "owner": held_by}
    assert world.observe() == before


@pytest.mark.parametrize("held_by", ["mig-a", None])
def test_the_owner_changes_it(world: World, held_by: str | None) -> None:
    rid = _reserve(world, held_by)
    params = {"owner": held_by} if held_by is not None else {}
    resp = world.http.patch(f"/v1/reservations/{rid}", json={"rate": "20Mbit"}, params=params)
    assert resp.status_code == 200 and resp.json()["rate_bps"] == 20_000_000
    assert world.http.delete(f"/v1/reservations/{rid}", params=params).status_code == 204
    assert world.http.get("/v1/reservations").json() == []


def test_an_unknown_reservation_is_404_whoever_asks(world: World) -> None:
    for params in ({}, {"owner": "mig-a"}):
        assert world.http.delete("/v1/reservations/99", params=params).status_code == 404


def test_a_bad_owner_is_422(world: World) -> None:
    rid = _reserve(world, "mig-a")
    before = world.observe()
    for bad in ("x" * 129, "mig-\u00e9", "a\x00b"):
        resp = world.http.delete(f"/v1/reservations/{rid}", params={"owner": bad})
        assert resp.status_code == 422 and resp.json()["problems"][0]["path"] == "owner"
    assert world.observe() == before


def test_the_document_says_so(world: World) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    for method in ("patch", "delete"):
        operation = doc["paths"]["/v1/reservations/{rid}"][method]
        assert "403" in operation["responses"], method
        owner = next(p for p in operation["parameters"] if p["name"] == "owner")
        assert owner["in"] == "query" and owner["schema"]["anyOf"][0]["maxLength"] == 128
    assert "403" not in doc["paths"]["/v1/reservations/{rid}"]["get"]["responses"]


def test_a_migrations_link_names_its_owner_and_another_cannot(world: World) -> None:
    mine, theirs = FacadeLink(world.nb), FacadeLink(world.nb)
    grant = mine.reserve("mec1", "mec3", 10_000_000, 7100, "mig-a")
    assert grant is not None
    other = theirs.reserve("mec1", "mec3", 5_000_000, 7200, "mig-b")
    assert other is not None
    with pytest.raises(Forbidden):
        theirs.release(grant)  # another migration's link does not hold this reservation
    with pytest.raises(Forbidden):
        world.nb.resize(grant.id, 1_000_000)
    grown = mine.resize(grant, 20_000_000)
    assert grown.rate_bps == 20_000_000
    mine.release(grant)
    theirs.release(other)
    assert world.nb.reservations() == []


def test_the_facade_checks_on_its_worker(world: World) -> None:
    view = world.nb.reserve(
        ReservationRequest(src="mec1", dst="mec3", rate=1_000_000, owner="mig-a")
    )
    with pytest.raises(Forbidden, match="belongs to 'mig-a'"):
        world.nb.release(view.id, owner="mig-b")
    world.nb.release(view.id, owner="mig-a")
