"""A site agent's API against its own OpenAPI document, by schemathesis (as the controller's, in
tests/unit/test_api_schema.py).

Schemathesis reads `/v1/openapi.json` from the agent's app and sends every operation examples
and generated cases, in process (ASGI, no socket), to the real `SiteService` over a site whose
runc and CRIU are a recording fake and whose transfers and lazy pages move nothing
(tests/unit/agent_fakes.py): nothing starts, nothing leaves the test's directory. Before each
case the site runs `counter` (the name the document gives as example, with an example body for
each step), so that the explicit cases reach a real instance: checkpoints, pre-dumps, sends,
lazy dumps, restores, stops and starts all run against the fakes. Each answer must have a
documented status, the documented body and content type; data the document calls invalid must
be refused (4xx; 413 for a body too large to read); a method a path does not have gets 405
with the path's methods in `Allow`.

No internal error: a 500 is allowed only as the documented failure of a step, which names the
site (`StepFailed`): steps asked out of order fail as runc and CRIU would (a restore without
images, a pre-dump round without the one before), see the report of issue 10.

Bounded: derandomized, at most 25 generated examples per operation (about 600 cases in all),
no shrinking, no database; about 6 s here for the 21 operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from agent.api import create_agent_app
from agent.service import SiteService
from tests.unit.agent_fakes import SiteRunner, fake_site, no_transfers
from tests.unit.migration_fakes import make_spec
from tests.unit.schema_cases import CONFORMANCE, bounded


@schemathesis.check
def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 500 only as a failed step that says which site (never `internal error: ...`)."""
    if response.status_code >= 500:
        error = str(response.json().get("error", ""))
        assert response.status_code == 500 and error.startswith("site mec1: "), (
            f"{case.method} {case.formatted_path}: {response.status_code} {error}"
        )
    return None


CHECKS = [no_internal_error, *CONFORMANCE]


class World:
    """Site mec1 with `counter` running, every command faked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.service: SiteService
        self.service, self.runner = fake_site(root)
        self.app = create_agent_app(self.service)
        self.ensure_counter()

    def ensure_counter(self) -> None:
        """`counter` runs here again (a case before may have stopped, dumped or removed it)."""
        if self.service.status("counter") != "running":
            self.service.destroy("counter")
            self.service.create(make_spec("counter"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        no_transfers(mp)
        yield World(tmp_path_factory.mktemp("agent-schema"))


# the document comes from the routes alone (any site gives the same one): read at import
DOCUMENT_APP = create_agent_app(fake_site(Path("/nonexistent-mecmig-site"))[0])
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", DOCUMENT_APP)
# a body too large for the agent (257 arguments of 4 KiB: the document's bounds allow no body
# that large) is refused as such, before it is read: a rejection, like a 422
_rejects = schema.config.checks.negative_data_rejection
_rejects.expected_statuses = [*_rejects.expected_statuses, "413"]


@schema.parametrize()
@pytest.mark.timeout(60)
@bounded(25)
def test_every_answer_is_one_the_document_describes(case: Any, world: World) -> None:
    world.ensure_counter()
    case.call_and_validate(checks=CHECKS, app=world.app)


def test_nothing_started_and_nothing_left_the_test_directory(world: World) -> None:
    runner: SiteRunner = world.runner
    assert runner.calls, "the cases reached the fake runc"
    for argv in runner.calls:
        paths = [a for a in argv if a.startswith("/") and a not in ("/opt/criu",)]
        outside = [p for p in paths if not Path(p).resolve().is_relative_to(world.root.resolve())]
        assert not [p for p in outside if not p.startswith(("/var/run/netns", "/mecmig"))], argv


def test_the_document_is_the_same_for_every_site(world: World) -> None:
    assert world.app.openapi()["paths"] == DOCUMENT_APP.openapi()["paths"]
