"""The controller's REST API against its own OpenAPI document, by schemathesis.

Schemathesis reads `/v1/openapi.json` from the app itself and sends every operation examples,
boundary and negative cases (coverage) and generated ones (fuzzing), in process (ASGI, no
socket), to the real northbound facade over the real model, with every switch of the scenario
connected as a software switch (so whatever reaches OpenFlow encoding is encoded). Each answer
must be no server error, have a documented status, and have the documented body, headers and
content type; data the document calls invalid must be refused (4xx); a method a path does not
have must get 405 with exactly the path's methods in `Allow`.

Not checked: that everything the document calls valid is accepted (`positive_data_acceptance`).
Some rules cannot be written in JSON Schema and are answered with a documented 422: `src` and
`dst` naming the same host (a site stands for its agent's host), a rate as text above the
bound ('999Gbit' matches the pattern), ports with proto 'any', a port that is a link's.

The location service (`/location/v2`, MEC013's shape, and `/v1/ues/{name}/access-point`,
`/v1/mobility/playback`) is mounted as the controller mounts it, over scenarios/city.yaml's map,
its notifications kept in the process (a fuzzed notifyURL is never called); its operations get
at most 40 generated examples each. So does the application-mobility service (`/amsi/v1`,
MEC021's shape, orchestration.ams_api, which `mecmig controller` mounts with `/v1/migrations`),
over city.yaml's instances, chain and UEs, its notifications kept too (no migration runs here,
and none would reach a fuzzed callbackReference).

Bounded: derandomized (the same cases every run), at most 150 generated examples per operation,
no shrinking, no example database; about 10 s here for the 8 operations, 90 s at most each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient

from controller.facade import Northbound
from controller.limits import MAX_BODY_BYTES, MAX_RATE_BPS
from controller.location_api import location_routers
from controller.location_service import LocationService
from controller.rest import create_app
from orchestration.ams_api import ams_router
from orchestration.ams_service import AmsService
from tests.unit.controller_helpers import THREE_SITES, SwitchedRuntime, make_state
from tests.unit.fake_api import FakeAPI
from tests.unit.location_world import CITY, Kept
from tests.unit.schema_cases import CHECKS, bounded
from topology.scenario import load_scenario

LOCATION = r"^/location/v2/|^/v1/(ues/|mobility/)"
AMS = r"^/amsi/v1/"


def location() -> LocationService:
    return LocationService(load_scenario(CITY), Kept())


def mobility() -> AmsService:
    return AmsService(load_scenario(CITY), Kept())


class World:
    """The REST app over a facade, the model of three-sites.yaml and software switches, with
    one reservation in force (so that some generated ids find one)."""

    def __init__(self) -> None:
        self.fabric = SwitchedRuntime(make_state(THREE_SITES))
        self.nb = Northbound(self.fabric.rt)
        self.location = location()
        self.mobility = mobility()
        self.app = create_app(
            self.nb, [*location_routers(self.location), ams_router(self.mobility)]
        )
        http = TestClient(self.app)
        response = http.post(
            "/v1/reservations", json={"src": "mec1", "dst": "mec3", "rate": "1Mbit"}
        )
        assert response.status_code == 201, response.text

    def close(self) -> None:
        for timer in list(self.nb.holds._timers.values()):
            timer.cancel()
        self.location.close()
        self.fabric.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


# The document is built from the routes alone (any facade gives the same one: checked below), so
# it is read at import without a world; the cases are sent to the world's app.
DOCUMENT_APP = create_app(FakeAPI(), [*location_routers(location()), ams_router(mobility())])
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP)


@schema.exclude(path_regex=f"{LOCATION}|{AMS}").parametrize()
@pytest.mark.timeout(90)
@bounded(150)
def test_every_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    case.call_and_validate(checks=CHECKS, app=world.app)


@schema.include(path_regex=LOCATION).parametrize()
@pytest.mark.timeout(90)
@bounded(40)
def test_every_location_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    case.call_and_validate(checks=CHECKS, app=world.app)


@schema.include(path_regex=AMS).parametrize()
@pytest.mark.timeout(90)
@bounded(40)
def test_every_application_mobility_answer_is_one_the_document_describes(
    case: Any, world: World
) -> None:
    case.call_and_validate(checks=CHECKS, app=world.app)


# ------------------------------------------------------------------------------ what it says


def test_the_document_gives_every_bound_and_every_error_shape(world: World) -> None:
    doc = TestClient(world.app).get("/v1/openapi.json").json()
    assert doc == DOCUMENT_APP.openapi()
    schemas = doc["components"]["schemas"]
    request = schemas["ReservationRequest"]["properties"]
    integer, text = request["rate"]["anyOf"]
    assert (integer["type"], integer["minimum"], integer["maximum"]) == ("integer", 1, MAX_RATE_BPS)
    assert text["type"] == "string" and text["pattern"] and text["maxLength"] == 32
    assert request["burst_kb"]["anyOf"][0]["maximum"] > 0
    assert request["src"]["maxLength"] == 64 and request["src"]["pattern"]
    match = schemas["TrafficMatch"]["properties"]
    assert match["ip_src"]["anyOf"][0]["format"] == "ipv4"
    assert match["dst_port"]["anyOf"][0]["maximum"] == 65535
    port = schemas["RelocationRequest"]["properties"]["port"]["anyOf"][0]
    assert (port["minimum"], port["maximum"]) == (1, 0xFFFFFF00)
    hold = schemas["HoldRequest"]["properties"]["timeout_s"]
    assert (hold["exclusiveMinimum"], hold["maximum"]) == (0, 3600)
    assert set(schemas["ValidationErrorBody"]["required"]) == {"error", "problems"}
    assert schemas["ErrorBody"]["required"] == ["error"]

    paths = doc["paths"]
    for path, method, admitted in [
        ("/v1/reservations", "post", True),
        ("/v1/reservations/{rid}", "patch", True),
        ("/v1/relocations", "post", False),
        ("/v1/instances/{name}/hold", "post", False),
    ]:
        responses = paths[path][method]["responses"]
        assert {"400", "404", "413", "422", "502"} <= set(responses), (path, method)
        assert ("409" in responses) == admitted, (path, method)
        assert str(MAX_BODY_BYTES) in responses["413"]["description"]
    for path, method in [
        ("/v1/reservations/{rid}", "delete"),
        ("/v1/instances/{name}/hold", "delete"),
    ]:
        assert {"404", "422", "502"} <= set(paths[path][method]["responses"]), (path, method)
    standby = schemas["StandbyRequest"]["properties"]["port"]["anyOf"][0]
    assert (standby["minimum"], standby["maximum"]) == (1, 0xFFFFFF00)
    assert schemas["PromotionRequest"]["properties"]["to"]["maxLength"] == 64
    for path, method in [
        ("/v1/instances/{name}/standbys", "post"),
        ("/v1/instances/{name}/promote", "post"),
    ]:
        assert {"400", "404", "409", "413", "422", "502"} <= set(paths[path][method]["responses"])
    assert {"404", "422", "502"} <= set(
        paths["/v1/instances/{name}/standbys/{place}"]["delete"]["responses"]
    )
    rid = paths["/v1/reservations/{rid}"]["get"]["parameters"][0]["schema"]
    assert rid["minimum"] == 1 and rid["maximum"] == 0xFFFF0000


def test_a_method_a_path_does_not_have_gets_405_listing_every_method_it_has(world: World) -> None:
    http = TestClient(world.app)
    for path, allowed in [
        ("/v1/reservations", "GET, POST"),
        ("/v1/reservations/1", "DELETE, GET, PATCH"),
        ("/v1/instances/video/hold", "DELETE, POST"),
        ("/v1/instances/video/standbys", "GET, POST"),
        ("/v1/instances/video/standbys/mec3", "DELETE"),
        ("/v1/instances/video/promote", "POST"),
        ("/v1/health", "GET"),
    ]:
        for method in ("OPTIONS", "PUT"):
            response = http.request(method, path)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == allowed, (method, path)
            assert set(response.json()) == {"error"}
