"""`/v1/migration-queue` as the controller serves it (tests/unit/queue_world.py's world: a real
facade and fabric state, in-memory sites, the queue's clock and threads in the test's hands):
a batch answers each job's id, state and position; GET shows the running jobs and the queue
with the documented shapes; the queue's jobs are busy for /v1/migrations and their records
are there; a bad batch gets its 4xx and changes nothing; the policy comes from
MECMIG_MIGRATION_POLICY."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.rest import create_app
from orchestration.chain_api import ChainMigrationService, chain_migrations_router
from orchestration.queue_api import migration_queue_router
from orchestration.schedule_models import Policy
from orchestration.service import keep_in, migrations_router, queue_policy
from tests.unit.queue_world import CAPACITY_BPS, SINGLES, QueueWorld


class ApiWorld(QueueWorld):
    def __init__(self) -> None:
        super().__init__()
        chains = ChainMigrationService(self.service)
        self.queue._keep = keep_in(self.service, chains)
        routers = [
            migrations_router(self.service),
            chain_migrations_router(chains),
            migration_queue_router(self.queue),
        ]
        self.http = TestClient(create_app(self.nb, routers))


@pytest.fixture
def world() -> Iterator[ApiWorld]:
    w = ApiWorld()
    yield w
    w.shutdown()


def batch(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"instance": name, "to": "mec2", "strategy": "cold", "budget_ms": 2000, **extra}
        for name in SINGLES[:n]
    ]


def test_a_batch_answers_each_jobs_state_and_the_queue_shows_them(world: ApiWorld) -> None:
    jobs = [*batch(3), {"chain": "duo", "to": "mec2", "pattern": "async", "strategy": "cold"}]
    resp = world.http.post("/v1/migration-queue", json={"jobs": jobs})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["policy"] == "network-aware"
    assert [(j["kind"], j["name"], j["state"], j["position"]) for j in body["jobs"]] == [
        ("instance", "q0", "started", None),
        ("instance", "q1", "queued", 1),
        ("instance", "q2", "queued", 2),
        ("chain", "duo", "queued", 3),
    ]
    assert body["jobs"][0]["expected_start_in_s"] == 0
    assert 0 < body["jobs"][1]["expected_start_in_s"] < body["jobs"][2]["expected_start_in_s"]
    view = world.http.get("/v1/migration-queue").json()
    assert set(view) == {"policy", "running", "queue", "ended"}
    (running,) = view["running"]
    assert running["name"] == "q0" and running["rate_bps"] == CAPACITY_BPS
    assert running["floor_bps"] <= CAPACITY_BPS and running["expected_finish_in_s"] > 0
    assert [q["position"] for q in view["queue"]] == [1, 2, 3]
    assert view["queue"][2]["members"] == ["cfw", "csrv"]
    assert view["queue"][0]["waiting_for"] == [["s1", "core"], ["core", "s2"]]
    assert view["queue"][0]["expected_start_in_s"] == body["jobs"][1]["expected_start_in_s"]
    # queued or running, their instances are busy for /v1/migrations and /v1/chain-migrations
    busy = world.http.post("/v1/migrations", json={"instance": "q2", "to": "mec3"})
    assert busy.status_code == 409 and "q2 is already being migrated" in busy.json()["error"]
    busy = world.http.post("/v1/chain-migrations", json={"chain": "duo", "to": "mec3"})
    assert busy.status_code == 409
    first = body["jobs"][0]["id"]
    world.run_next()
    record = world.http.get(f"/v1/migrations/{first}").json()
    assert record["outcome"] == "done" and record["instance"] == "q0"
    while world.pending:
        world.run_next()
    view = world.http.get("/v1/migration-queue").json()
    assert view["running"] == view["queue"] == []
    assert [e["state"] for e in view["ended"]] == ["done"] * 4
    chain_id = body["jobs"][3]["id"]
    assert world.http.get(f"/v1/chain-migrations/{chain_id}").json()["outcome"] == "done"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"jobs": [{"instance": "nope", "to": "mec2"}]}, 404, "nope"),
        ({"jobs": [{"instance": "q0", "to": "mec9"}]}, 404, "no site called 'mec9'"),
        ({"jobs": [{"chain": "nada", "to": "mec2"}]}, 404, "no chain called 'nada'"),
        ({"jobs": [{"instance": "q0", "to": "mec1"}]}, 409, "already runs at mec1"),
        ({"jobs": [*batch(1), *batch(1)]}, 409, "q0 is already being migrated"),
        ({"jobs": []}, 422, "jobs"),
        ({"jobs": batch(1) * 65}, 422, "jobs"),
        ({"jobs": batch(1), "policy": "fastest"}, 422, "policy"),
        ({"jobs": [{"instance": "q0", "chain": "duo", "to": "mec2"}]}, 422, "Extra inputs"),
        ({"jobs": [{"instance": "q0", "to": "mec2", "pattern": "async"}]}, 422, "pattern"),
        ({"jobs": batch(1, budget_ms=0)}, 422, "budget_ms"),
        ({"jobs": batch(1, budget_ms=3_600_001)}, 422, "budget_ms"),
        ({"jobs": batch(1, deadline_s=-1)}, 422, "deadline_s"),
        ({"jobs": batch(1, strategy="teleport")}, 422, "strategy"),
        ({"jobs": [{"instance": "Q0", "to": "mec2"}]}, 422, "instance"),
        ({"jobs": [{"to": "mec2"}]}, 422, "instance"),
    ],
)
def test_a_bad_batch_gets_its_4xx_and_changes_nothing(
    world: ApiWorld, body: dict[str, Any], status: int, words: str
) -> None:
    resp = world.http.post("/v1/migration-queue", json=body)
    assert resp.status_code == status, resp.text
    assert words in resp.text
    view = world.http.get("/v1/migration-queue").json()
    assert view["running"] == view["queue"] == view["ended"] == []
    assert not world.pending and world.nb.reservations() == []
    ok = world.http.post("/v1/migration-queue", json={"jobs": batch(2)})
    assert ok.status_code == 202, ok.text  # nothing stayed claimed


def test_the_policy_changes_only_while_idle(world: ApiWorld) -> None:
    assert world.http.post("/v1/migration-queue", json={"jobs": batch(1)}).status_code == 202
    refused = world.http.post(
        "/v1/migration-queue", json={"policy": "one-per-link", "jobs": batch(2)[1:]}
    )
    assert refused.status_code == 409 and "once the queue is idle" in refused.json()["error"]
    assert len(world.http.get("/v1/migration-queue").json()["running"]) == 1
    world.run_next()
    resp = world.http.post(
        "/v1/migration-queue", json={"policy": "best-effort", "jobs": batch(3)[1:]}
    )
    assert resp.status_code == 202 and resp.json()["policy"] == "best-effort"
    assert [j["state"] for j in resp.json()["jobs"]] == ["started", "started"]


def test_the_controllers_policy_comes_from_the_environment() -> None:
    assert queue_policy({}) is Policy.NETWORK_AWARE
    assert queue_policy({"MECMIG_MIGRATION_POLICY": "one-per-link"}) is Policy.ONE_PER_LINK
    with pytest.raises(ValueError, match="known: best-effort, one-per-link, network-aware"):
        queue_policy({"MECMIG_MIGRATION_POLICY": "fifo"})
