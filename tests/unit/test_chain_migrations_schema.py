"""`/v1/chain-migrations` against the controller's OpenAPI document, by schemathesis (as
tests/unit/test_migrations_schema.py does for `/v1/migrations`): over a real facade and fabric
state and in-memory sites (tests/unit/test_chain_migrations_api.py's world), every answer is one
the document describes, data it calls invalid is refused, and every bound is in the document.
Bounded: derandomized, at most 60 examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from controller.rest import create_app
from orchestration.api_models import MAX_BUDGET_MS
from orchestration.chain_api import chain_migrations_router
from tests.unit.fake_api import FakeAPI
from tests.unit.migration_fakes import join_migration_threads
from tests.unit.schema_cases import CHECKS, bounded
from tests.unit.test_chain_migrations_api import World


@pytest.fixture(autouse=True)
def _migrations_end_with_their_test() -> Iterator[None]:
    """The migrations a case started end before its test does (they log into its capture)."""
    yield
    join_migration_threads()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    join_migration_threads()
    w.runtime.shutdown()


DOCUMENT_APP = create_app(FakeAPI(), [chain_migrations_router(object())])  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP).include(
    path_regex="^/v1/chain-migrations"
)


@schema.parametrize()
@pytest.mark.timeout(60)
@bounded(60)
def test_every_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    case.call_and_validate(checks=CHECKS, app=world.http.app)


def test_the_document_gives_every_bound_and_every_answer(world: World) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    request = doc["components"]["schemas"]["ChainMigrationRequest"]
    fields = request["properties"]
    assert request["additionalProperties"] is False
    assert set(request["required"]) == {"chain", "to"}
    for name in ("chain", "to"):
        assert fields[name]["maxLength"] == 9 and fields[name]["pattern"]
    budget = fields["budget_ms"]
    assert (budget["exclusiveMinimum"], budget["maximum"]) == (0, MAX_BUDGET_MS)
    assert doc["components"]["schemas"]["PatternName"]["enum"] == [
        "async",
        "wait-for-me",
        "round-robin",
    ]
    start = doc["paths"]["/v1/chain-migrations"]["post"]["responses"]
    assert {"202", "400", "404", "409", "413", "422", "500", "503"} <= set(start)
    one = doc["paths"]["/v1/chain-migrations/{mid}"]["get"]
    assert {"200", "404", "422"} <= set(one["responses"])
