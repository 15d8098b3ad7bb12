"""`/v1/migrations` against the controller's OpenAPI document, by schemathesis (as the rest of the
controller's API, in tests/unit/test_api_schema.py).

The orchestration layer's router is mounted into the controller's REST app as `mecmig
controller` does, over a real northbound facade and fabric state and in-memory sites
(tests/unit/test_migrations_api.py's world): a case the API accepts starts a real migration of
`counter` between the fake sites, in its thread (the document's examples are such migrations;
while one runs, the next is refused with 409). Only the migrations' operations are sent. Each
answer must be no server error, have a documented status and the documented body and content
type; data the document calls invalid must be refused (4xx); a method a path does not have
gets 405 with the path's methods in `Allow`.

Bounded: derandomized, at most 60 generated examples per operation, no shrinking, no example
database; about 3 s here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from controller.rest import create_app
from orchestration.api_models import MAX_BUDGET_MS
from orchestration.service import migrations_router
from tests.unit.fake_api import FakeAPI
from tests.unit.schema_cases import CHECKS, bounded
from tests.unit.test_migrations_api import World


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World(rest_url=None)
    yield w
    w.runtime.shutdown()


# the document comes from the routes alone: read at import, from a world of fakes
DOCUMENT_APP = create_app(FakeAPI(), [migrations_router(object())])  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP).include(
    path_regex="^/v1/migrations"
)


@schema.parametrize()
@pytest.mark.timeout(60)
@bounded(60)
def test_every_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    case.call_and_validate(checks=CHECKS, app=world.http.app)


def test_the_document_gives_every_bound_and_every_answer(world: World) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    request = doc["components"]["schemas"]["MigrationRequest"]
    fields = request["properties"]
    assert request["additionalProperties"] is False
    assert set(request["required"]) == {"instance", "to"}
    for name in ("instance", "to"):
        assert fields[name]["maxLength"] == 9 and fields[name]["pattern"] == "^[a-z][a-z0-9]{0,8}$"
    budget = fields["budget_ms"]
    assert (budget["exclusiveMinimum"], budget["maximum"]) == (0, MAX_BUDGET_MS)
    assert fields["rate"]["anyOf"][0]["maximum"] == 100 * 10**9
    schemas = doc["components"]["schemas"]
    assert schemas["StrategyName"]["enum"] == [
        "cold",
        "precopy",
        "postcopy",
        "hybrid",
        "restart",
        "filesystem",
    ]
    assert schemas["HoldMode"]["enum"] == ["auto", "always", "never"]
    start = doc["paths"]["/v1/migrations"]["post"]["responses"]
    assert {"202", "400", "404", "409", "413", "422", "500", "503"} <= set(start)
    one = doc["paths"]["/v1/migrations/{mid}"]["get"]
    assert {"200", "404", "422"} <= set(one["responses"])
    assert one["parameters"][0]["schema"]["maxLength"] == 64
