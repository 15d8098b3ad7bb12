"""`/v1/migration-queue` against the controller's OpenAPI document, by schemathesis (as
tests/unit/test_chain_migrations_schema.py does for `/v1/chain-migrations`): over a real facade
and fabric state and in-memory sites (tests/unit/test_migration_queue_api.py's world), every
answer is one the document describes, data it calls invalid is refused, and every bound is in
the document. Bounded: derandomized, at most 60 examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from controller.rest import create_app
from orchestration.api_models import MAX_BUDGET_MS
from orchestration.migration_queue import MAX_JOBS
from orchestration.queue_api import migration_queue_router
from tests.unit.fake_api import FakeAPI
from tests.unit.schema_cases import CHECKS, bounded
from tests.unit.test_migration_queue_api import ApiWorld


@pytest.fixture(scope="module")
def world() -> Iterator[ApiWorld]:
    w = ApiWorld()
    yield w
    w.shutdown()


DOCUMENT_APP = create_app(FakeAPI(), [migration_queue_router(object())])  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP).include(
    path_regex="^/v1/migration-queue"
)


@schema.parametrize()
@pytest.mark.timeout(60)
@bounded(60)
def test_every_answer_is_one_the_document_describes(case: Any, world: ApiWorld) -> None:
    case.call_and_validate(checks=CHECKS, app=world.http.app)


def test_the_document_gives_every_bound_and_every_answer(world: ApiWorld) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    request = schemas["QueueSubmitRequest"]
    assert request["additionalProperties"] is False and request["required"] == ["jobs"]
    jobs = request["properties"]["jobs"]
    assert (jobs["minItems"], jobs["maxItems"]) == (1, MAX_JOBS)
    for name, key in (("InstanceJob", "instance"), ("ChainJob", "chain")):
        job = schemas[name]
        assert job["additionalProperties"] is False
        assert set(job["required"]) == {key, "to"}
        for field in (key, "to"):
            assert (
                job["properties"][field]["maxLength"] == 9 and job["properties"][field]["pattern"]
            )
        budget = job["properties"]["budget_ms"]
        assert (budget["exclusiveMinimum"], budget["maximum"]) == (0, MAX_BUDGET_MS)
    assert schemas["Policy"]["enum"] == ["best-effort", "one-per-link", "network-aware"]
    post = doc["paths"]["/v1/migration-queue"]["post"]["responses"]
    assert {"202", "400", "404", "409", "413", "422", "500", "503"} <= set(post)
    assert "200" in doc["paths"]["/v1/migration-queue"]["get"]["responses"]
