"""The migration queue drives real migrations (in-memory sites, a real northbound facade and
fabric state; tests/unit/queue_world.py): ten migrations over one 100 Mbit/s link under each
policy, positions and expected starts, what finishing starts, links never over-committed (by
the scheduler's grants nor by the controller's reservations), rerates resize live
reservations, deadlines order, a rollback frees the link, and a refused batch changes
nothing. The queue's clock and thread starter are the test's: deterministic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.api_models import Conflict
from orchestration.migration_queue import QueueBusy
from orchestration.orchestrator import NotServing, UnknownName
from orchestration.queue_jobs import QueueJob
from tests.unit.queue_world import CAPACITY_BPS, SINGLES, QueueWorld


@pytest.fixture
def world() -> Iterator[QueueWorld]:
    w = QueueWorld()
    yield w
    w.shutdown()


def ten(budget_ms: float = 2000.0) -> list[QueueJob]:
    return [QueueJob("instance", n, "mec2", strategy="cold", budget_ms=budget_ms) for n in SINGLES]


def test_ten_at_once_network_aware_run_one_after_another_at_the_full_link(
    world: QueueWorld,
) -> None:
    submitted = world.queue.submit(ten())
    assert [s.state for s in submitted] == ["started"] + ["queued"] * 9
    assert [s.position for s in submitted] == [None, *range(1, 10)]
    starts = [s.expected_start_in_s or 0.0 for s in submitted[1:]]
    assert starts == sorted(starts) and len(set(starts)) == 9 and starts[0] > 0
    state = world.queue.state()
    assert [r.name for r in state.running] == ["q0"]
    assert state.running[0].rate_bps == CAPACITY_BPS
    assert state.running[0].expected_finish_in_s == pytest.approx(starts[0])
    assert [q.position for q in state.queue] == list(range(1, 10))
    assert state.queue[0].waiting_for == (("s1", "core"), ("core", "s2"))
    # the others are claimed: /v1/migrations sees them busy
    with pytest.raises(Conflict, match="q5 is already being migrated"):
        world.service.claim("q5", "migrated")
    for i in range(10):
        assert len(world.pending) == 1  # one at a time: finishing starts the next
        world.run_next()
        state = world.queue.state()
        assert [e.name for e in state.ended] == list(SINGLES[: i + 1])
        assert all(e.state == "done" for e in state.ended)
        assert [r.name for r in state.running] == list(SINGLES[i + 1 : i + 2])
        assert [q.position for q in state.queue] == list(range(1, 9 - i))
    assert not world.pending
    assert all(world.where(n) == ["mec2"] for n in SINGLES)
    # a reservation was in force during every copy, the whole link, and none is left
    copies = [load for load in world.link_loads if load]
    assert len(copies) == 10
    assert all(
        load == {("s1", "core"): CAPACITY_BPS, ("core", "s2"): CAPACITY_BPS} for load in copies
    )
    assert world.nb.reservations() == []
    # every instance is free again
    world.service.claim("q5", "migrated")


def test_one_per_link_runs_one_per_link_and_reserves_nothing() -> None:
    w = QueueWorld("one-per-link")
    try:
        jobs = [*ten(), QueueJob("instance", "far", "mec1", strategy="cold")]
        submitted = w.queue.submit(jobs)
        started = [s.name for s in submitted if s.state == "started"]
        assert started == ["q0", "far"]  # disjoint links run in parallel
        state = w.queue.state()
        assert all(r.rate_bps is None and r.floor_bps is None for r in state.running)
        assert [q.name for q in state.queue] == list(SINGLES[1:])
        while w.pending:
            running = w.queue.state().running
            on_link = [r for r in running if ("s1", "core") in w.queue.entry(r.id).resolved.links]  # type: ignore[union-attr]
            assert len(on_link) <= 1
            w.run_next()
        assert all(w.where(n) == ["mec2"] for n in SINGLES) and w.where("far") == ["mec1"]
        assert not any(w.link_loads)  # nothing was ever reserved
    finally:
        w.shutdown()


def test_best_effort_starts_everything_at_once() -> None:
    w = QueueWorld("best-effort")
    try:
        submitted = w.queue.submit(ten())
        assert all(s.state == "started" and s.position is None for s in submitted)
        state = w.queue.state()
        assert state.queue == () and len(state.running) == 10
        assert {r.model_rate_bps for r in state.running} == {CAPACITY_BPS / 10}
        assert len(w.pending) == 10
        while w.pending:
            w.run_next(0.0)
        assert not any(w.link_loads)
        assert all(w.where(n) == ["mec2"] for n in SINGLES)
    finally:
        w.shutdown()


def test_the_earliest_deadline_goes_first(world: QueueWorld) -> None:
    jobs = [
        QueueJob("instance", "q0", "mec2", strategy="cold", budget_ms=2000),
        QueueJob("instance", "q1", "mec2", strategy="cold", budget_ms=2000, deadline_s=30),
        QueueJob("instance", "q2", "mec2", strategy="cold", budget_ms=2000, deadline_s=10),
    ]
    submitted = world.queue.submit(jobs)
    assert {s.name: (s.state, s.position) for s in submitted} == {
        "q2": ("started", None),
        "q1": ("queued", 1),
        "q0": ("queued", 2),
    }
    assert world.queue.state().queue[0].deadline_in_s == 30
    assert [world.queue.entry(world.run_next()).job.name for _ in range(3)] == ["q2", "q1", "q0"]  # type: ignore[union-attr]


def test_a_more_urgent_newcomer_shrinks_a_running_reservation_to_its_floor(
    world: QueueWorld,
) -> None:
    # budget 5 s: a floor of ~17 Mbit/s each, so two fit side by side
    first = world.queue.submit(
        [QueueJob("instance", "q0", "mec2", strategy="cold", budget_ms=5000)]
    )
    floor = world.queue.state().running[0].floor_bps
    assert floor is not None and floor < CAPACITY_BPS / 2
    seen: dict[str, object] = {}

    def urgent_arrives() -> None:  # during q0's copy, its reservation in force
        world.sites["mec1"].probe = world.check_links
        seen["before"] = [r.rate_bps for r in world.nb.reservations()]
        seen["submitted"] = world.queue.submit(
            [QueueJob("instance", "q1", "mec2", strategy="cold", budget_ms=5000, deadline_s=5)]
        )
        seen["after"] = sorted(r.rate_bps for r in world.nb.reservations())
        seen["running"] = {r.name: r.rate_bps for r in world.queue.state().running}

    world.sites["mec1"].probe = urgent_arrives
    world.run_next()
    assert seen["before"] == [CAPACITY_BPS]
    assert [s.state for s in seen["submitted"]] == ["started"]  # type: ignore[attr-defined]
    # q0 keeps its floor; the newcomer gets the rest (not yet reserved: its thread waits)
    assert seen["running"] == {"q0": floor, "q1": CAPACITY_BPS - floor}
    assert seen["after"] == [floor]
    assert world.queue.entry(first[0].id).state == "done"  # type: ignore[union-attr]
    # q0 ended: q1 takes the whole link again, and reserves it when it runs
    assert world.queue.state().running[0].rate_bps == CAPACITY_BPS
    world.run_next()
    assert world.link_loads[-2] == {("s1", "core"): CAPACITY_BPS, ("core", "s2"): CAPACITY_BPS}


def test_a_chain_job_splits_its_grant_among_its_functions(world: QueueWorld) -> None:
    submitted = world.queue.submit(
        [
            QueueJob("chain", "duo", "mec2", strategy="cold", budget_ms=4000, pattern="async"),
            QueueJob("instance", "q0", "mec2", strategy="cold", budget_ms=4000),
        ]
    )
    assert [(s.kind, s.state) for s in submitted] == [("chain", "started"), ("instance", "queued")]
    assert world.queue.state().running[0].members == ("cfw", "csrv")
    world.run_next()
    rates = [sum(load.values()) // 2 for load in world.link_loads if load]
    assert rates and max(rates) <= CAPACITY_BPS  # both functions' reservations within the grant
    assert world.where("cfw") == world.where("csrv") == ["mec2"]
    assert world.queue.state().ended[0].state == "done"
    world.run_next()
    assert world.where("q0") == ["mec2"] and world.nb.reservations() == []


def test_a_round_robin_chain_copies_each_turn_at_the_whole_grant(world: QueueWorld) -> None:
    """Its functions copy one at a time: each turn gets the job's grant (the other function
    keeps a trickle), where a split in proportion would leave half the link idle; the
    reservations on the link never sum above it."""
    world.queue.submit(
        [
            QueueJob(
                "chain", "duo", "mec2", strategy="precopy", budget_ms=4000, pattern="round-robin"
            )
        ]
    )
    world.run_next()
    assert world.where("cfw") == world.where("csrv") == ["mec2"]
    paces = [p for site in world.sites.values() for p in site.paces]
    rounds = [p for p in paces if p is not None]  # the frozen copies after them go unpaced
    assert len(rounds) >= 2 and len(paces) >= 4, paces  # a round and a final copy per function
    assert min(rounds) >= CAPACITY_BPS * 0.95, paces
    assert max(max(load.values(), default=0) for load in world.link_loads) <= CAPACITY_BPS


def test_a_rolled_back_migration_frees_its_link_for_the_next(world: QueueWorld) -> None:
    world.sites["mec2"].fail_at = {"restore"}
    world.queue.submit(ten()[:2])
    world.run_next()
    world.sites["mec2"].fail_at = set()
    state = world.queue.state()
    assert state.ended[0].state == "rolled_back" and "restore" in (state.ended[0].error or "")
    assert world.where("q0") == ["mec1"]
    assert [r.name for r in state.running] == ["q1"]
    world.run_next()
    assert world.where("q1") == ["mec2"] and world.nb.reservations() == []
    world.service.claim("q0", "migrated")  # released


@pytest.mark.parametrize(
    ("jobs", "error", "words"),
    [
        ([QueueJob("instance", "nope", "mec2")], UnknownName, "nope"),
        ([QueueJob("instance", "q0", "mec9")], UnknownName, "no site called 'mec9'"),
        ([QueueJob("chain", "nada", "mec2")], UnknownName, "no chain called 'nada'"),
        ([QueueJob("instance", "q0", "mec2", strategy="teleport")], UnknownName, "teleport"),
        ([QueueJob("instance", "q0", "mec1")], NotServing, "already runs at mec1"),
        (
            [QueueJob("instance", "q0", "mec2"), QueueJob("instance", "q0", "mec3")],
            Conflict,
            "q0 is already being migrated",
        ),
        (
            [QueueJob("instance", "q1", "mec2"), QueueJob("chain", "duo", "mec1")],
            NotServing,
            "already runs at mec1",
        ),
    ],
)
def test_a_refused_batch_changes_nothing(
    world: QueueWorld, jobs: list[QueueJob], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        world.queue.submit(jobs)
    state = world.queue.state()
    assert state.running == state.queue == state.ended == ()
    assert not world.pending and world.nb.reservations() == []
    for name in ("q0", "q1", "cfw", "csrv"):
        world.service.claim(name, "migrated")  # nothing stayed claimed


def test_the_policy_changes_only_while_the_queue_is_idle(world: QueueWorld) -> None:
    world.queue.submit(ten()[:2])
    with pytest.raises(QueueBusy, match="network-aware while jobs run or wait"):
        world.queue.submit([QueueJob("instance", "q5", "mec2")], policy="best-effort")
    world.run_next()
    world.run_next()
    submitted = world.queue.submit(ten()[2:5], policy="best-effort")
    assert world.queue.policy.value == "best-effort"
    assert all(s.state == "started" for s in submitted)
