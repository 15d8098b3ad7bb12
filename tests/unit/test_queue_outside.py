"""What others hold on the links is not granted by the migration queue: an operator's
reservation (or a migration started on its own) shrinks what the scheduler grants on its
links; a request whose floor does not fit beside it waits, and starts when it is released (at
the next submission or end, or by the queue's poll); the queue's own reservations, a chain's
members' too, are never counted as outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from controller.api_models import ReservationRequest, ReservationView, TrafficMatch
from orchestration.migration_queue import MigrationQueue
from orchestration.queue_jobs import QueueJob
from orchestration.queue_outside import outside_usage, owned_by_queue
from orchestration.schedule_models import DirectedLink, MigrationRequest, NeverFitsError
from orchestration.scheduler import Scheduler
from tests.unit.queue_world import CAPACITY_BPS, QueueWorld

M = 1_000_000
AB: DirectedLink = ("a", "b")
BC: DirectedLink = ("b", "c")
UPLINK = {("s1", "core"), ("core", "s2")}  # mec1 -> mec2 in the queue world


def view(owner: str | None, path: list[str], rate_bps: int, rid: int = 1) -> ReservationView:
    return ReservationView(
        id=rid,
        src=path[0],
        dst=path[-1],
        rate_bps=rate_bps,
        burst_kb=0,
        path=path,
        match=TrafficMatch(),
        meter_id=rid,
        cookie="0x1",
        owner=owner,
    )


def request(id: str, min_rate: int, links: tuple[DirectedLink, ...] = (AB,)) -> MigrationRequest:
    return MigrationRequest(id, "instance", links, 12_500_000, 300.0, min_rate)


# pure: whose reservation is outside, and what it holds per link


def test_a_jobs_and_its_chain_members_reservations_are_the_queues() -> None:
    ids = {"mig-1", "job.x"}
    assert owned_by_queue("mig-1", ids)
    assert owned_by_queue("mig-1.0", ids) and owned_by_queue("mig-1.2", ids)
    assert owned_by_queue("job.x", ids) and owned_by_queue("job.x.1", ids)
    assert not owned_by_queue("mig-10", ids)
    assert not owned_by_queue("operator", ids)
    assert not owned_by_queue(None, ids)


def test_outside_usage_sums_the_others_per_directed_link() -> None:
    views = [
        view("operator", ["a", "b", "c"], 30 * M, 1),
        view(None, ["a", "b"], 5 * M, 2),
        view("mig-1.1", ["a", "b", "c"], 50 * M, 3),  # the queue's: not counted
        view("mig-2", ["c", "b"], 7 * M, 4),
    ]
    assert outside_usage(views, {"mig-1"}) == {AB: 35 * M, BC: 30 * M, ("c", "b"): 7 * M}


# the scheduler: capacities less the outside


def test_the_scheduler_grants_what_the_outside_leaves_and_takes_it_back_when_released() -> None:
    s = Scheduler({AB: 100 * M, BC: 100 * M}, "network-aware", lambda: 0.0)
    assert s.set_outside({AB: 60 * M}).started == ()  # nothing to start: no decision
    d = s.submit(request("x", 20 * M))
    assert [(g.id, g.rate_bps) for g in d.started] == [("x", 40 * M)]
    d = s.set_outside({})
    assert [(g.id, g.rate_bps) for g in d.rerated] == [("x", 100 * M)]
    # the outside takes room the grant held (a grant is not all reserved): the grant shrinks,
    # never below its floor
    d = s.set_outside({AB: 95 * M})
    assert [(g.id, g.rate_bps, g.floor_bps) for g in d.rerated] == [("x", 20 * M, 20 * M)]
    assert s.set_outside({AB: 95 * M}).rerated == ()  # the same outside: nothing changes


def test_a_request_waits_while_its_floor_does_not_fit_beside_the_outside() -> None:
    s = Scheduler({AB: 100 * M, BC: 100 * M}, "network-aware", lambda: 0.0)
    s.set_outside({AB: 90 * M, ("x", "y"): 10 * M})  # an unknown link is ignored
    assert s.outside == {AB: 90 * M}
    d = s.submit(request("x", 20 * M))
    assert d.started == () and d.queued == ("x",)
    assert s.status().queue[0].waiting_for == (AB,)
    d = s.set_outside({AB: 70 * M})
    assert [(g.id, g.rate_bps) for g in d.started] == [("x", 30 * M)]


def test_only_the_whole_capacity_refuses_a_request() -> None:
    s = Scheduler({AB: 100 * M}, "network-aware", lambda: 0.0)
    s.set_outside({AB: 100 * M})
    assert s.submit(request("x", 100 * M)).queued == ("x",)  # waits, not refused
    with pytest.raises(NeverFitsError):
        s.submit(request("y", 101 * M))


# the queue, over the real facade


@pytest.fixture
def world() -> Iterator[QueueWorld]:
    w = QueueWorld()
    yield w
    w.shutdown()


def operator_reserves(world: QueueWorld, rate_bps: int) -> int:
    req = ReservationRequest(
        src="mec1", dst="mec2", rate=rate_bps, match=TrafficMatch(proto="udp"), owner="operator"
    )
    return world.nb.reserve(req).id


def test_the_queue_grants_only_what_an_operators_reservation_leaves(world: QueueWorld) -> None:
    rid = operator_reserves(world, 60 * M)
    jobs = [QueueJob("instance", n, "mec2", strategy="cold", budget_ms=4000) for n in ("q0", "q1")]
    submitted = world.queue.submit(jobs)
    assert [s.state for s in submitted] == ["started", "queued"]
    assert world.queue.state().running[0].rate_bps == CAPACITY_BPS - 60 * M
    world.run_next()  # q0's copy: its reservation beside the operator's fills the link
    during = world.link_loads[0]
    assert {link: during[link] for link in UPLINK} == dict.fromkeys(UPLINK, CAPACITY_BPS)
    # q1 started at q0's end, still beside the operator's
    assert world.queue.state().running[0].rate_bps == CAPACITY_BPS - 60 * M
    world.nb.release(rid, owner="operator")
    world.run_next()  # its end reads the outside again: nothing is held any more
    assert world.queue.entry(submitted[1].id).rate_bps == CAPACITY_BPS  # type: ignore[union-attr]
    assert world.nb.reservations() == []


def test_a_job_that_does_not_fit_beside_the_outside_starts_once_it_is_released(
    world: QueueWorld,
) -> None:
    rid = operator_reserves(world, 95 * M)
    [s] = world.queue.submit([QueueJob("instance", "q0", "mec2", strategy="cold", budget_ms=1000)])
    assert s.state == "queued" and not world.pending
    assert set(world.queue.state().queue[0].waiting_for) == UPLINK
    world.nb.release(rid, owner="operator")
    world.queue.refresh_outside()
    assert [name for name, _ in world.pending] == [f"queue-{s.id}"]
    assert world.queue.state().running[0].rate_bps == CAPACITY_BPS


def test_the_queue_polls_the_outside_while_a_job_waits(world: QueueWorld) -> None:
    started = threading.Event()

    def start(fn: object, name: str) -> None:
        started.set()

    queue = MigrationQueue(
        world.service.orch,
        "network-aware",
        clock=lambda: world.now,
        start_thread=start,
        claims=world.service,
        outside_poll_s=0.01,
    )
    try:
        rid = operator_reserves(world, 95 * M)
        [s] = queue.submit([QueueJob("instance", "q0", "mec2", strategy="cold", budget_ms=1000)])
        assert s.state == "queued"
        time.sleep(0.1)
        assert not started.is_set()
        world.nb.release(rid, owner="operator")  # no submission, no end: only the poll sees it
        assert started.wait(5.0)
        assert queue.entry(s.id).state == "running"  # type: ignore[union-attr]
    finally:
        queue.close()
    assert queue._watcher is None
