"""`/v1/follow-me` against the controller's OpenAPI document, by schemathesis (as the queue's
and the chain migrations' schema tests do): over in-memory sites (tests/unit/
test_follow_service.py's world), every answer is one the document describes, data it calls
invalid is refused, and the request's bounds are in the document. Bounded: derandomized, at most
40 examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from controller.rest import create_app
from orchestration.api_models import MAX_BUDGET_MS
from orchestration.follow_api import follow_router
from tests.unit.fake_api import FakeAPI
from tests.unit.migration_fakes import join_migration_threads
from tests.unit.schema_cases import CHECKS, bounded
from tests.unit.test_follow_service import World
from topology.scenario import MAX_FOLLOWED


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    w.follow.close()
    join_migration_threads()


DOCUMENT_APP = create_app(FakeAPI(), [follow_router(object())])  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP).include(
    path_regex="^/v1/follow-me"
)


@schema.parametrize()
@pytest.mark.timeout(60)
@bounded(40)
def test_every_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    case.call_and_validate(checks=CHECKS, app=world.http.app)


def test_the_document_gives_every_bound(world: World) -> None:
    doc = world.http.get("/v1/openapi.json").json()
    request = doc["components"]["schemas"]["FollowRequest"]
    assert request["additionalProperties"] is False and request["required"] == ["ue"]
    props = request["properties"]
    assert props["ue"]["maxLength"] == 9 and props["ue"]["pattern"]
    assert props["services"]["maxItems"] == MAX_FOLLOWED
    assert props["services"]["items"]["maxLength"] == 9
    assert (props["budget_ms"]["exclusiveMinimum"], props["budget_ms"]["maximum"]) == (
        0,
        MAX_BUDGET_MS,
    )
    assert props["predictor"]["enum"] == ["known-path", "straight-ahead"]
    post = doc["paths"]["/v1/follow-me"]["post"]["responses"]
    assert {"201", "404", "409", "422", "500"} <= set(post)
