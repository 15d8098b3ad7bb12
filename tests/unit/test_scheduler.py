"""The concurrent-migration scheduler's pure logic: policies, queue, rates, estimates.

Rates are chosen so that times come out exact: a 100 Mbit/s link moves 12.5 MB per second.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migration.stoprule import final_rate_bps
from orchestration.schedule_models import (
    Decisions,
    DirectedLink,
    DuplicateMigrationError,
    Grant,
    InvalidRequestError,
    MigrationRequest,
    NeverFitsError,
    Policy,
    Prediction,
    SchedulerError,
    UnknownLinkInRequestError,
    UnknownMigrationError,
)
from orchestration.schedule_plan import Job, max_min_fair, new_job
from orchestration.scheduler import (
    Scheduler,
    capacities_of,
    estimate,
    links_of_path,
    min_rate_bps,
)
from topology.admission import LinkLoad
from topology.model import Link, Switch, Topology

M = 1_000_000
MB = 12_500_000  # bytes a 100 Mbit/s link moves in one second
AB: DirectedLink = ("a", "b")
BA: DirectedLink = ("b", "a")
CD: DirectedLink = ("c", "d")
BC: DirectedLink = ("b", "c")


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def req(
    id: str,
    links: tuple[DirectedLink, ...] = (AB,),
    seconds: float = 1.0,
    min_rate: int = 60 * M,
    deadline: float | None = None,
    submitted: float | None = None,
    kind: str = "instance",
) -> MigrationRequest:
    """A request moving `seconds` worth of a 100 Mbit/s link."""
    return MigrationRequest(
        id=id,
        kind="chain" if kind == "chain" else "instance",
        links=links,
        predicted_bytes=round(seconds * MB),
        budget_ms=300.0,
        min_rate_bps=min_rate,
        deadline_s=deadline,
        submitted_s=submitted,
    )


def sched(
    policy: Policy | str, caps: dict[DirectedLink, int] | None = None
) -> tuple[Scheduler, Clock]:
    clock = Clock()
    caps = caps if caps is not None else {AB: 100 * M, BA: 100 * M, CD: 100 * M}
    return Scheduler(caps, policy, clock), clock


def ids(grants: tuple[Grant, ...]) -> list[str]:
    return [g.id for g in grants]


def starts(s: Scheduler) -> dict[str, float | None]:
    return {e.id: e.expected_start_s for e in s.status().queue}


# network-aware: order, admission, rates


def test_network_aware_orders_the_queue_earliest_deadline_first_none_last_ties_by_submission() -> (
    None
):
    s, clock = sched("network-aware")
    assert ids(s.submit(req("x")).started) == ["x"]  # alone: starts
    for r in (
        req("late", deadline=100.0),
        req("none"),
        req("early", deadline=50.0),
        req("early2", deadline=50.0),
    ):
        clock.t += 0.0
        d = s.submit(r)
        assert d.started == () and d.queued == (r.id,)
    q = s.status().queue
    assert [(e.id, e.position) for e in q] == [
        ("early", 1),
        ("early2", 2),
        ("late", 3),
        ("none", 4),
    ]


def test_queue_positions_and_expected_starts_are_exact_on_a_worked_example() -> None:
    # one 100 Mbit/s link; each request needs 60 Mbit/s, so one runs at a time, at 100 Mbit/s
    # (its floor plus all the spare). x: 1 s, then early (2 s), then late (0.5 s), then none.
    s, clock = sched("network-aware")
    s.submit(req("x", seconds=1.0))
    s.submit(req("late", seconds=0.5, deadline=100.0))
    s.submit(req("none", seconds=1.0))
    s.submit(req("early", seconds=2.0, deadline=50.0))
    status = s.status()
    assert [(r.id, r.rate_bps, r.floor_bps) for r in status.running] == [("x", 100 * M, 60 * M)]
    assert status.running[0].expected_finish_s == pytest.approx(1.0)
    got = [(e.id, e.position, e.expected_start_s, e.expected_finish_s) for e in status.queue]
    assert got == [
        ("early", 1, pytest.approx(1.0), pytest.approx(3.0)),
        ("late", 2, pytest.approx(3.0), pytest.approx(3.5)),
        ("none", 3, pytest.approx(3.5), pytest.approx(4.5)),
    ]
    assert status.queue[0].waiting_for == (AB,)
    # half a second later x has moved half its bytes: the estimates do not move
    clock.t = 0.5
    status = s.status()
    assert status.running[0].remaining_bytes == pytest.approx(MB / 2)
    assert starts(s) == {
        "early": pytest.approx(1.0),
        "late": pytest.approx(3.0),
        "none": pytest.approx(3.5),
    }


def test_finished_starts_the_next_ones_with_their_rates() -> None:
    s, clock = sched("network-aware")
    s.submit(req("x", min_rate=80 * M))
    s.submit(req("y", min_rate=30 * M, deadline=10.0))
    s.submit(req("z", min_rate=30 * M, deadline=20.0))
    assert [e.id for e in s.status().queue] == ["y", "z"]
    clock.t = 1.0
    d = s.finished("x")
    assert d.at_s == 1.0
    # y (earlier deadline) starts with the whole link; z would have to take y's spare: waits
    assert d.started == (Grant("y", 100 * M, 30 * M),)
    assert d.rerated == () and d.queued == ()
    assert [(e.id, e.waiting_for, e.expected_start_s) for e in s.status().queue] == [
        ("z", (AB,), pytest.approx(2.0))
    ]
    clock.t = 2.0
    assert s.finished("y").started == (Grant("z", 100 * M, 30 * M),)


def test_spare_capacity_goes_to_the_earliest_deadline_and_is_reclaimed_for_a_newcomer() -> None:
    s, clock = sched("network-aware")
    d = s.submit(req("x", min_rate=20 * M, deadline=100.0))
    assert d.started == (Grant("x", 100 * M, 20 * M),)
    clock.t = 0.25
    d = s.submit(req("y", min_rate=30 * M, deadline=5.0))
    # y is more urgent: its floor plus all the spare; x keeps exactly its floor
    assert d.started == (Grant("y", 80 * M, 30 * M),)
    assert d.rerated == (Grant("x", 20 * M, 20 * M),)
    clock.t = 0.5
    d = s.finished("y")
    assert d.rerated == (Grant("x", 100 * M, 20 * M),)


def test_a_request_whose_min_rate_exceeds_a_link_capacity_is_refused_not_queued() -> None:
    s, _ = sched("network-aware", {AB: 100 * M, BC: 50 * M})
    with pytest.raises(NeverFitsError) as err:
        s.submit(req("big", links=(AB, BC), min_rate=60 * M))
    assert (err.value.id, err.value.link, err.value.min_rate_bps, err.value.capacity_bps) == (
        "big",
        BC,
        60 * M,
        50 * M,
    )
    assert "can never meet its downtime budget" in str(err.value)
    assert s.status().queue == () and s.status().running == ()
    # the baselines check no rates: they run it (and it misses its budget)
    for policy in ("best-effort", "one-per-link"):
        b, _ = sched(policy, {AB: 100 * M, BC: 50 * M})
        assert ids(b.submit(req("big", links=(AB, BC), min_rate=60 * M)).started) == ["big"]


def test_backfill_runs_a_later_request_on_a_disjoint_link_while_the_head_waits() -> None:
    s, _ = sched("network-aware")
    s.submit(req("x", seconds=2.0))
    s.submit(req("head", seconds=1.0, deadline=5.0))
    d = s.submit(req("other", links=(CD,), seconds=1.0, deadline=50.0))
    assert d.started == (Grant("other", 100 * M, 60 * M),)
    assert starts(s) == {"head": pytest.approx(2.0)}


def test_backfill_is_refused_when_it_would_delay_the_head() -> None:
    # c fits beside x's floor (60 + 30 <= 100) but would take x's spare, so x (and the head
    # behind it) would finish later: c waits, although no link is short for it now.
    s, _ = sched("network-aware")
    s.submit(req("x", seconds=1.0))
    s.submit(req("head", seconds=1.0, deadline=5.0))
    d = s.submit(req("c", seconds=0.1, min_rate=30 * M, deadline=50.0))
    assert d.started == () and d.queued == ("c",)
    q = {e.id: e for e in s.status().queue}
    assert q["c"].waiting_for == ()
    assert q["head"].expected_start_s == pytest.approx(1.0)
    # head (1 s at 100) from 1 to 2, then c: 0.1 s at 100 Mbit/s
    assert q["c"].expected_start_s == pytest.approx(2.0)
    assert q["c"].expected_finish_s == pytest.approx(2.1)


def test_backfill_uses_capacity_left_idle_when_it_delays_no_one() -> None:
    # x crosses a->b and b->c (60 Mbit/s): it cannot use more than 60 on a->b, 40 lie idle.
    caps = {AB: 100 * M, BC: 60 * M}
    s, _ = sched("network-aware", caps)
    s.submit(req("x", links=(AB, BC), seconds=1.2))  # 15 MB at 60 Mbit/s: 2 s
    s.submit(req("head", links=(AB, BC), min_rate=50 * M, deadline=5.0))
    d = s.submit(req("c", min_rate=30 * M, seconds=0.3, deadline=50.0))
    assert d.started == (Grant("c", 40 * M, 30 * M),)
    assert starts(s) == {"head": pytest.approx(2.0)}


def test_request_boost_grants_what_fits_without_over_committing() -> None:
    s, _ = sched("network-aware")
    s.submit(req("y", min_rate=50 * M, deadline=2.0))
    s.submit(req("x", min_rate=20 * M, deadline=1.0))  # more urgent: takes y's spare
    assert s.grant_of("x") == Grant("x", 50 * M, 20 * M)
    d = s.request_boost("y", 70 * M)  # 100 - x's floor 20 = 80 >= 70: all of it
    assert d.rerated == (Grant("x", 30 * M, 20 * M), Grant("y", 70 * M, 70 * M))
    d = s.request_boost("x", 90 * M)  # only 100 - 70 = 30 is left beside y's floor
    assert s.grant_of("x") == Grant("x", 30 * M, 30 * M)
    assert d.rerated == (Grant("x", 30 * M, 30 * M),)
    s.request_boost("x", 10 * M)  # a boost never lowers the floor
    assert s.grant_of("x").floor_bps == 30 * M
    with pytest.raises(UnknownMigrationError):
        s.request_boost("nope", M)
    b, _ = sched("best-effort")
    b.submit(req("x"))
    assert b.request_boost("x", 90 * M) == Decisions(0.0)


def test_a_request_crossing_no_link_starts_at_once_with_nothing_reserved() -> None:
    for policy in Policy:
        s, _ = sched(policy)
        s.submit(req("x", seconds=5.0, min_rate=100 * M))
        d = s.submit(req("local", links=()))
        assert d.started == (Grant("local", None, None),)


# one-per-link


def test_one_per_link_serialises_a_link_and_runs_disjoint_links_in_parallel() -> None:
    s, clock = sched("one-per-link")
    assert s.submit(req("x", seconds=1.0)).started == (Grant("x", None, None),)
    assert s.submit(req("y", seconds=2.0, deadline=0.5)).queued == ("y",)  # FIFO: no EDF
    assert s.submit(req("z", seconds=0.5)).queued == ("z",)
    assert ids(s.submit(req("w", links=(CD,))).started) == ["w"]
    assert ids(s.submit(req("back", links=(BA,))).started) == ["back"]  # the other direction
    status = s.status()
    assert [r.id for r in status.running] == ["x", "w", "back"]
    assert [r.model_rate_bps for r in status.running] == [100 * M] * 3
    assert [(e.id, e.position, e.expected_start_s) for e in status.queue] == [
        ("y", 1, pytest.approx(1.0)),
        ("z", 2, pytest.approx(3.0)),
    ]
    clock.t = 1.0
    assert ids(s.finished("x").started) == ["y"]
    assert ids(s.finished("y").started) == ["z"]


def test_one_per_link_never_lets_a_later_request_overtake_on_a_shared_link() -> None:
    s, _ = sched("one-per-link")
    s.submit(req("x", links=(AB,)))
    s.submit(req("head", links=(AB, CD)))  # a->b busy
    d = s.submit(req("later", links=(CD,)))  # c->d is free, but head waits for it
    assert d.started == () and d.queued == ("later",)
    assert s.status().queue[1].waiting_for == ()
    assert ids(s.finished("x").started) == ["head"]


# best-effort


def test_best_effort_starts_everything_at_once_without_reservations() -> None:
    s, _ = sched("best-effort")
    for i in range(5):
        d = s.submit(req(f"m{i}", min_rate=90 * M))
        assert d.started == (Grant(f"m{i}", None, None),)
    status = s.status()
    assert status.queue == ()
    assert [r.model_rate_bps for r in status.running] == [pytest.approx(20 * M)] * 5
    assert [r.expected_finish_s for r in status.running] == [pytest.approx(5.0)] * 5


def test_best_effort_shares_links_max_min_fair() -> None:
    caps = {AB: 100 * M, BC: 20 * M}
    jobs = [
        new_job(req(i, links=links), n, 0.0)
        for n, (i, links) in enumerate([("p", (AB,)), ("q", (AB, BC)), ("r", (AB,))])
    ]
    # q is held to 20 by b->c; p and r share the 80 that a->b has left
    assert max_min_fair(caps, jobs) == {"q": 20 * M, "p": 40 * M, "r": 40 * M}
    assert max_min_fair(caps, jobs[:1]) == {"p": 100 * M}
    assert max_min_fair(caps, []) == {}


def test_best_effort_estimate_shares_equally_then_gives_the_rest_to_the_survivor() -> None:
    got = estimate(
        "best-effort", {AB: 100 * M}, [req("small", seconds=1.0), req("big", seconds=2.0)]
    )
    # both at 50 until small is done at 2 s (12.5 MB each); big's last 12.5 MB at 100: 3 s
    assert [(p.id, p.start_s, p.finish_s, p.final_rate_bps) for p in got] == [
        ("small", 0.0, pytest.approx(2.0), pytest.approx(50 * M)),
        ("big", 0.0, pytest.approx(3.0), pytest.approx(100 * M)),
    ]


# estimates: the three policies compared


def ten_users() -> list[MigrationRequest]:
    """Ten users' 1-second migrations asked for at once over one link; the later in the list,
    the sooner its user leaves coverage (m9 at 1.5 s, m0 at 10.5 s)."""
    return [
        req(f"m{i}", seconds=1.0, min_rate=20 * M, deadline=10.5 - i, submitted=0.0)
        for i in range(10)
    ]


def mean_finish(ps: tuple[Prediction, ...]) -> float:
    finishes = [p.finish_s for p in ps if p.finish_s is not None]
    assert len(finishes) == len(ps)
    return sum(finishes) / len(finishes)


def test_estimate_compares_the_policies_on_ten_migrations_over_one_link() -> None:
    caps = {AB: 100 * M}
    be = estimate("best-effort", caps, ten_users())
    opl = estimate("one-per-link", caps, ten_users())
    na = estimate("network-aware", caps, ten_users())
    # best-effort: ten equal shares of 10 Mbit/s, below each one's 20: no budget met, all end
    # at 10 s, only m0's deadline met
    assert [p.finish_s for p in be] == [pytest.approx(10.0)] * 10
    assert [p.final_rate_bps for p in be] == [pytest.approx(10 * M)] * 10
    assert not any(p.budget_met for p in be)
    assert [p.deadline_met for p in be] == [True] + [False] * 9
    # one-per-link: one after the other at the full link, in submission order: m5..m9 late
    assert [p.finish_s for p in opl] == [pytest.approx(i) for i in range(1, 11)]
    assert [p.deadline_met for p in opl] == [True] * 5 + [False] * 5
    assert all(p.budget_met for p in opl)
    # network-aware: one after the other at the full link, most urgent first: all met
    assert [p.finish_s for p in na] == [pytest.approx(10 - i) for i in range(10)]
    assert all(p.budget_met and p.deadline_met for p in na)
    assert mean_finish(na) == pytest.approx(5.5) and mean_finish(be) == pytest.approx(10.0)


def test_network_aware_urgent_arrivals_one_by_one_share_the_link_at_their_floors() -> None:
    # the same ten, each arriving 1 ms after the previous and more urgent than all before:
    # each takes the spare of the ones before, until five floors of 20 fill the link; the
    # price of the floors is documented, the budgets still hold
    staggered = [replace(r, submitted_s=i * 0.001) for i, r in enumerate(ten_users())]
    na = estimate("network-aware", {AB: 100 * M}, staggered)
    assert [p.start_s for p in na[:5]] == [pytest.approx(i * 0.001) for i in range(5)]
    assert all(p.start_s is not None and p.start_s > 4.9 for p in na[5:])
    assert all(p.budget_met for p in na)


def test_submit_many_orders_requests_that_arrive_together_before_starting_any() -> None:
    s, _ = sched("network-aware")
    d = s.submit_many(ten_users())
    assert d.started == (Grant("m9", 100 * M, 20 * M),)
    assert d.queued == tuple(f"m{i}" for i in range(9))
    assert [e.id for e in s.status().queue] == [f"m{i}" for i in range(8, -1, -1)]
    assert starts(s)["m0"] == pytest.approx(9.0)
    with pytest.raises(DuplicateMigrationError):
        s.submit_many([req("new"), req("new")])
    assert "new" not in starts(s)  # all or nothing


def test_estimate_refuses_what_submit_refuses() -> None:
    with pytest.raises(NeverFitsError):
        estimate("network-aware", {AB: 10 * M}, [req("x", min_rate=20 * M)])
    with pytest.raises(DuplicateMigrationError):
        estimate("best-effort", {AB: 10 * M}, [req("x"), req("x")])
    with pytest.raises(UnknownLinkInRequestError):
        estimate("best-effort", {AB: 10 * M}, [req("x", links=(CD,))])
    assert estimate("one-per-link", {AB: 10 * M}, []) == ()


def test_estimate_waits_for_submission_times() -> None:
    got = estimate(
        "one-per-link",
        {AB: 100 * M},
        [req("late", submitted=5.0), req("early", submitted=1.0, deadline=2.5)],
    )
    assert [(p.id, p.start_s, p.finish_s, p.deadline_met) for p in got] == [
        ("late", 5.0, 6.0, None),
        ("early", 1.0, 2.0, True),
    ]


# cancel, failures, progress, errors


def test_cancel_of_a_queued_entry_renumbers_the_queue_and_moves_its_followers_up() -> None:
    s, _ = sched("network-aware")
    s.submit(req("x"))
    s.submit(req("a", seconds=2.0, deadline=1.0))
    s.submit(req("b", seconds=1.0, deadline=2.0))
    assert starts(s) == {"a": pytest.approx(1.0), "b": pytest.approx(3.0)}
    d = s.cancel("a")
    assert d.started == () and d.rerated == ()
    assert [(e.id, e.position, e.expected_start_s) for e in s.status().queue] == [
        ("b", 1, pytest.approx(1.0))
    ]
    with pytest.raises(UnknownMigrationError):
        s.cancel("a")


def test_cancel_or_failure_of_a_running_migration_frees_its_links() -> None:
    for end in ("cancel", "failed"):
        s, _ = sched("one-per-link")
        s.submit(req("x"))
        s.submit(req("y"))
        d = getattr(s, end)("x")
        assert ids(d.started) == ["y"]


def test_progress_reports_correct_the_expected_finish() -> None:
    s, clock = sched("network-aware")
    s.submit(req("x", seconds=1.0))
    s.submit(req("y"))
    clock.t = 0.5
    s.progress("x", 2 * MB)  # it turns out to have 2 s worth left
    assert s.status().running[0].expected_finish_s == pytest.approx(2.5)
    assert starts(s) == {"y": pytest.approx(2.5)}
    with pytest.raises(UnknownMigrationError):
        s.progress("y", 0)  # queued, not running


def test_errors_carry_their_context() -> None:
    s, _ = sched("network-aware")
    s.submit(req("x"))
    s.submit(req("y"))
    with pytest.raises(DuplicateMigrationError, match="'x' is already running") as dup:
        s.submit(req("x"))
    assert dup.value.state == "running"
    with pytest.raises(DuplicateMigrationError, match="queued"):
        s.submit(req("y"))
    with pytest.raises(UnknownLinkInRequestError) as unk:
        s.submit(req("z", links=(("a", "z"),)))
    assert (unk.value.id, unk.value.link) == ("z", ("a", "z"))
    with pytest.raises(UnknownMigrationError, match="no running migration 'y'"):
        s.finished("y")
    with pytest.raises(UnknownMigrationError):
        s.grant_of("nope")
    with pytest.raises(InvalidRequestError, match="listed twice"):
        req("w", links=(AB, AB))
    with pytest.raises(InvalidRequestError, match="min_rate_bps"):
        req("w", min_rate=0)
    with pytest.raises(InvalidRequestError, match="predicted_bytes"):
        req("w", seconds=-1.0)
    for err in (dup.value, unk.value, NeverFitsError("a", AB, 2, 1)):
        again = pickle.loads(pickle.dumps(err))
        assert isinstance(again, SchedulerError) and str(again) == str(err)
    # a finished id may be used again
    s.finished("x")
    s.finished("y")
    assert ids(s.submit(req("x")).started) == ["x"]


def test_submit_stamps_the_submission_time_from_the_clock() -> None:
    s, clock = sched("one-per-link")
    s.submit(req("x"))
    clock.t = 7.0
    s.submit(req("y"))
    assert s.status().queue[0].submitted_s == 7.0


def test_helpers_build_the_inputs_from_the_topology_and_the_stop_rule() -> None:
    topo = Topology.build(
        [Switch("a", 1), Switch("b", 2), Switch("c", 3)],
        [Link("a", "b", 100 * M), Link("b", "c", 50 * M)],
    )
    assert capacities_of(topo) == {AB: 100 * M, BA: 100 * M, BC: 50 * M, ("c", "b"): 50 * M}
    load = LinkLoad(topo)
    load.add(("a", "b"), 30 * M)
    assert capacities_of(load)[AB] == 70 * M and capacities_of(load)[BA] == 100 * M
    assert links_of_path(("a", "b", "c")) == (AB, BC)
    s = Scheduler.from_topology(topo, "network-aware", Clock())
    assert s.capacities[BC] == 50 * M
    expected = final_rate_bps(4_000_000, 300.0, 0.05, 0.05, 0.0)
    assert min_rate_bps(4_000_000, 300.0, 0.05, 0.05) == int(expected) + (expected % 1 > 0)
    with pytest.raises(ValueError):
        Scheduler({AB: -1}, "best-effort", Clock())
    with pytest.raises(ValueError):
        Scheduler({AB: 1}, "fastest", Clock())


# properties over random event sequences

LINKS: tuple[DirectedLink, ...] = (AB, BA, BC, CD)
CAPS = {AB: 100 * M, BA: 80 * M, BC: 50 * M, CD: 30 * M}

op = st.one_of(
    st.tuples(
        st.just("submit"),
        st.lists(st.sampled_from(LINKS), min_size=0, max_size=3, unique=True),
        st.integers(1, 30),  # min rate, Mbit/s (at most the smallest capacity)
        st.integers(0, 40 * MB),
        st.one_of(st.none(), st.floats(0, 20)),
    ),
    st.tuples(st.just("finish"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("boost"), st.integers(0, 50), st.integers(1, 120)),
    st.tuples(st.just("tick"), st.floats(0, 3)),
)


def check_invariants(s: Scheduler) -> None:
    status = s.status()
    on_link: dict[DirectedLink, int] = {}
    floors: dict[DirectedLink, int] = {}
    users: dict[DirectedLink, int] = {}
    for r in status.running:
        job: Job = s._running[r.id]
        for link in job.links:
            users[link] = users.get(link, 0) + 1
        if s.policy is Policy.NETWORK_AWARE and job.links:
            assert r.rate_bps is not None and r.floor_bps is not None
            assert job.req.min_rate_bps <= r.floor_bps <= r.rate_bps
            for link in job.links:
                on_link[link] = on_link.get(link, 0) + r.rate_bps
                floors[link] = floors.get(link, 0) + r.floor_bps
        else:
            assert r.rate_bps is None
    for link, total in on_link.items():
        assert floors[link] <= total <= CAPS[link], (link, total)
    if s.policy is Policy.ONE_PER_LINK:
        assert all(n == 1 for n in users.values()), users
    if s.policy is Policy.BEST_EFFORT:
        assert status.queue == ()
    assert [e.position for e in status.queue] == list(range(1, len(status.queue) + 1))
    for e in status.queue:
        assert e.expected_start_s is None or e.expected_start_s >= status.at_s - 1e-9


def run_ops(policy: Policy, ops: list[tuple[object, ...]]) -> None:
    clock = Clock()
    s = Scheduler(CAPS, policy, clock)
    n = 0
    for o in ops:
        name = o[0]
        live = sorted(s._running) + [j.id for j in s._queue]
        if name == "submit":
            _, links, rate, size, deadline = o
            assert isinstance(links, list) and isinstance(rate, int) and isinstance(size, int)
            r = MigrationRequest(
                f"m{n}",
                "chain" if n % 2 else "instance",
                tuple(links),
                size,
                300.0,
                rate * M,
                None if deadline is None else clock.t + float(deadline),  # type: ignore[arg-type]
            )
            n += 1
            d = s.submit(r)
            for g in d.started:
                if policy is Policy.NETWORK_AWARE and s._running[g.id].links:
                    assert g.rate_bps is not None and g.rate_bps >= s._running[g.id].floor
        elif name in ("finish", "cancel") and live:
            i = o[1]
            assert isinstance(i, int)
            target = live[i % len(live)]
            if name == "cancel":
                s.cancel(target)
            elif target in s._running:
                s.finished(target)
        elif name == "boost" and s._running:
            _, i, rate = o
            assert isinstance(i, int) and isinstance(rate, int)
            target = sorted(s._running)[i % len(s._running)]
            s.request_boost(target, rate * M)
        elif name == "tick":
            t = o[1]
            assert isinstance(t, float)
            clock.t += t
        check_invariants(s)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=30))
def test_network_aware_never_over_commits_a_link(ops: list[tuple[object, ...]]) -> None:
    run_ops(Policy.NETWORK_AWARE, ops)


@settings(max_examples=60, deadline=None)
@given(st.lists(op, max_size=30))
def test_one_per_link_never_runs_two_on_a_link(ops: list[tuple[object, ...]]) -> None:
    run_ops(Policy.ONE_PER_LINK, ops)


@settings(max_examples=30, deadline=None)
@given(st.lists(op, max_size=20))
def test_best_effort_never_queues(ops: list[tuple[object, ...]]) -> None:
    run_ops(Policy.BEST_EFFORT, ops)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(LINKS), min_size=1, max_size=2, unique=True),
            st.integers(1, 30),
            st.integers(1, 20 * MB),
            st.one_of(st.none(), st.floats(0, 20)),
            st.floats(0, 5),
        ),
        max_size=8,
    )
)
def test_estimate_finishes_everything_and_network_aware_meets_every_budget(
    specs: list[tuple[list[DirectedLink], int, int, float | None, float]],
) -> None:
    reqs = [
        MigrationRequest(f"m{i}", "instance", tuple(links), size, 300.0, rate * M, dl, sub)
        for i, (links, rate, size, dl, sub) in enumerate(specs)
    ]
    for policy in Policy:
        got = estimate(policy, CAPS, reqs)
        for p, r in zip(got, reqs, strict=True):
            assert p.start_s is not None and p.finish_s is not None
            assert r.submitted_s is not None and p.start_s >= r.submitted_s - 1e-9
            assert p.finish_s >= p.start_s
        if policy is Policy.NETWORK_AWARE:
            assert all(p.budget_met for p in got)
