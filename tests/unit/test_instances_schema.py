"""`/v1/status` and `/v1/instances/{name}` (status, deploy, stop) against the controller's OpenAPI
document, by schemathesis (as /v1/migrations in tests/unit/test_migrations_schema.py).

Mounted as `mecmig controller` does (orchestration.service.mount) over a real northbound facade
and in-memory sites (tests/unit/test_instances_api.py's world): a case the API accepts really
deploys or stops an instance at the fake sites (the document's example name is `counter`, which
runs at mec1: a deploy of it gets 409 until a stop removed it). Only these operations are sent;
the controller's own `GET /v1/instances` and `/v1/instances/{name}/hold` are tested with the
rest of its API. Each answer must be no server error, have a documented status, body and
content type; data the document calls invalid must be refused (4xx); a method a path does not
have gets 405 with the path's methods in `Allow`.

Bounded: derandomized, at most 60 generated examples per operation, no shrinking, no example
database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from controller.rest import create_app
from orchestration.instances_api import instances_router
from tests.unit.fake_api import FakeAPI
from tests.unit.schema_cases import CHECKS, bounded
from tests.unit.test_instances_api import _world
from tests.unit.test_migrations_api import World


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        w = _world(monkeypatch)
        yield w
        w.runtime.shutdown()


# the document comes from the routes alone: read at import, from a world of fakes
DOCUMENT_APP = create_app(FakeAPI(), [instances_router(object())])  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP).include(
    path_regex=r"^/v1/(status|instances/\{name\}(/deploy)?)$"
)


@schema.parametrize()
@pytest.mark.timeout(60)
@bounded(60)
def test_every_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    case.call_and_validate(checks=CHECKS, app=world.http.app)


def test_only_the_new_operations_are_sent() -> None:
    operations = {(op.method.upper(), op.path) for op in _operations()}
    assert operations == {
        ("GET", "/v1/status"),
        ("GET", "/v1/instances/{name}"),
        ("DELETE", "/v1/instances/{name}"),
        ("POST", "/v1/instances/{name}/deploy"),
    }


def _operations() -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
