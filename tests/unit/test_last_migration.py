"""`mecmig status` shows an instance's last migration whoever started it: the orchestrator
leaves each finished migration's summary with the site the instance is at, whose agent keeps it
(bounded like every input) beside the instance; a later record from the controller wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.api import create_agent_app
from agent.service import SiteService
from orchestration.orchestrator import Orchestrator
from orchestration.placement import LastMigration
from tests.unit.migration_fakes import FakeClock, FakeNetwork, FakeSite, connect, make_spec
from tests.unit.test_site_service import _service
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
NOTE = {
    "id": "mig-20261201-062552-28b8b6aee3",
    "outcome": "done",
    "strategy": "cold",
    "source": "mec1",
    "destination": "mec2",
    "frozen_ms": 480.5,
    "total_ms": 2100.0,
    "error": None,
}


@pytest.fixture()
def http(tmp_path: Path) -> Iterator[TestClient]:
    s: SiteService = _service(tmp_path)
    s.create(make_spec("svc"))
    with TestClient(create_agent_app(s), raise_server_exceptions=False) as client:
        yield client


def test_a_site_keeps_the_note_beside_the_instance(http: TestClient) -> None:
    assert http.get("/v1/instances/svc").json()["last_migration"] is None
    assert http.put("/v1/instances/svc/last-migration", json=NOTE).status_code == 200
    assert http.get("/v1/instances/svc").json()["last_migration"] == NOTE


@pytest.mark.parametrize(
    "bad",
    [
        {"outcome": "great"},
        {"frozen_ms": -1.0},
        {"total_ms": 1e12},
        {"error": "x" * 2001},
        {"id": "a/b"},
        {"source": ""},
        {"extra": 1},
    ],
)
def test_a_bad_note_is_refused_and_changes_nothing(http: TestClient, bad: dict[str, Any]) -> None:
    assert http.put("/v1/instances/svc/last-migration", json=NOTE).status_code == 200
    resp = http.put("/v1/instances/svc/last-migration", json={**NOTE, **bad})
    assert resp.status_code == 422, resp.text
    assert http.get("/v1/instances/svc").json()["last_migration"] == NOTE


def test_a_note_for_an_instance_the_site_does_not_hold_is_404(http: TestClient) -> None:
    assert http.put("/v1/instances/other/last-migration", json=NOTE).status_code == 404


class NotingSite(FakeSite):
    """A fake site that keeps notes as an agent does."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.notes: dict[str, dict[str, Any]] = {}

    def note_migration(self, instance: str, note: dict[str, Any]) -> None:
        self.notes[instance] = note

    def last_migration(self, instance: str) -> dict[str, Any] | None:
        return self.notes.get(instance)


def test_status_shows_a_migration_no_controller_recorded() -> None:
    clock = FakeClock()
    sites = {n: NotingSite(n, f"192.168.0.{i}", clock) for i, n in enumerate(["mec1", "mec2"])}
    connect(*sites.values())
    edge = load_scenario(ROOT / "scenarios" / "edge.yaml")
    orch = Orchestrator(edge, sites, FakeNetwork(clock=clock))
    orch.deploy("counter")
    record = orch.migrate("counter", "mec2", strategy="cold")
    assert sites["mec2"].notes["counter"]["id"] == record.id  # left where it runs now
    assert "counter" not in sites["mec1"].notes

    def last(known: dict[str, LastMigration] | None) -> LastMigration | None:
        return {r.name: r for r in orch.status(known)}["counter"].last_migration

    row_last = last(None)
    assert row_last is not None and row_last.id == record.id
    assert row_last.outcome == "done" and row_last.destination == "mec2"
    assert row_last.frozen_ms == pytest.approx(record.metrics["frozen_ms"], abs=0.01)
    # the controller's record of an older migration loses; of a later one, wins
    older = LastMigration("mig-20200101-000000-0", "done", "cold", "mec2", "mec1")
    assert last({"counter": older}) == row_last
    later = LastMigration("mig-29990101-000000-0", "done", "cold", "mec1", "mec2")
    assert last({"counter": later}) == later
