"""Warm replicas of stateless services (issue 12 part 4): the roles' invariants (a property
test), the failure detector's timing, the volume sync's staleness accounting, and the driver
over a real facade and software switches: replicas placed ahead as standbys, a handover that
is a flow switch only, a failed primary replaced by its backup."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.orchestrator import (
    GUEST_PORT_BASE,
    AlreadyDeployed,
    NotServing,
    NotStateless,
)
from orchestration.replica_roles import (
    FailureDetector,
    NoReplicaLeft,
    ReplicaError,
    ReplicaSet,
    Role,
    SyncSchedule,
)
from orchestration.replicas import Replicas
from tests.unit.controller_helpers import assert_delivered_once
from tests.unit.replica_world import ReplicaWorld

# ------------------------------------------------------------------------------ roles


def test_roles_primary_then_backup_then_secondaries() -> None:
    rs = ReplicaSet("web", "a", max_replicas=4)
    assert [rs.add(s) for s in "bcd"] == [Role.BACKUP, Role.SECONDARY, Role.SECONDARY]
    with pytest.raises(ReplicaError, match="at most 4"):
        rs.add("e")
    assert (rs.primary, rs.backup, rs.secondaries) == ("a", "b", ["c", "d"])
    assert rs.remove("b") is Role.BACKUP and rs.backup == "c"  # the oldest secondary
    with pytest.raises(ReplicaError, match="hand over first"):
        rs.remove("a")
    assert rs.handover("d") == "a"
    assert (rs.primary, rs.backup, rs.secondaries) == ("d", "a", ["c"])
    assert rs.handover("c", old="secondary") == "d"
    assert (rs.primary, rs.backup, rs.secondaries) == ("c", "a", ["d"])
    assert rs.handover("d", old="retired") == "c"
    assert (rs.primary, rs.backup, rs.secondaries) == ("d", "a", [])
    assert rs.fail("d") == "a" and rs.roles == {"a": Role.PRIMARY}
    with pytest.raises(NoReplicaLeft):
        rs.fail("a")
    assert rs.roles == {"a": Role.PRIMARY}
    rs.check()


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "handover", "fail"]), st.sampled_from("abcdef")),
    max_size=40,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    max_replicas=st.integers(1, 5),
    old=st.sampled_from(["backup", "secondary", "retired"]),
    ops=OPS,
)
def test_any_sequence_keeps_one_primary_at_most_one_backup_and_the_bound(
    max_replicas: int, old: str, ops: list[tuple[str, str]]
) -> None:
    rs = ReplicaSet("web", "a", max_replicas)
    for op, site in ops:
        before = dict(rs.roles)
        try:
            if op == "add":
                rs.add(site)
            elif op == "remove":
                rs.remove(site)
            elif op == "handover":
                rs.handover(site, old)  # type: ignore[arg-type]
                assert rs.primary == site
            else:
                was_primary = rs.roles.get(site) is Role.PRIMARY
                backup = rs.backup
                new = rs.fail(site)
                assert site not in rs.roles
                assert new == (backup if was_primary else None)
        except ReplicaError:
            assert rs.roles == before  # a refusal changes nothing
        rs.check()
        roles = list(rs.roles.values())
        assert roles.count(Role.PRIMARY) == 1
        assert roles.count(Role.BACKUP) <= 1
        assert len(rs.roles) <= max_replicas
        assert len(set(rs.sites)) == len(rs.sites)


# ------------------------------------------------------------------------------ detection


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    interval=st.floats(0.01, 5.0),
    misses=st.integers(1, 6),
    fails_after=st.floats(0.0, 20.0),
    phase=st.floats(0.0, 1.0),
)
def test_a_failure_is_detected_within_interval_times_misses(
    interval: float, misses: int, fails_after: float, phase: float
) -> None:
    det = FailureDetector(interval, misses)
    start = 100.0 + phase * interval
    failed_at = start + fails_after
    now, failed_probes = start, 0
    while True:
        assert det.due(now)
        ok = now < failed_at
        failed_probes += not ok
        if det.record(now, ok):
            break
        assert now - failed_at <= det.bound_s + 1e-9
        now += interval
    assert failed_probes == misses and det.failed_at == now
    assert failed_at <= now <= failed_at + det.bound_s + 1e-9
    assert not det.due(now + 10 * interval)  # failed: not probed again
    assert not det.record(now + interval, False)  # and told once


def test_one_good_probe_resets_the_count() -> None:
    det = FailureDetector(1.0, 3)
    results = [False, False, True, False, False, True, False, False]
    assert not any(det.record(float(t), ok) for t, ok in enumerate(results))
    assert det.record(8.0, False) and det.failed_at == 8.0
    assert not det.due(7.5) and det.bound_s == 3.0
    with pytest.raises(ValueError):
        FailureDetector(0.0, 3)
    with pytest.raises(ValueError):
        FailureDetector(1.0, 0)


# ------------------------------------------------------------------------------ volume sync


def test_sync_schedule_staleness_and_bytes() -> None:
    sync = SyncSchedule(period_s=10.0)
    sync.made("b", 0.0)
    sync.made("c", 5.0)
    assert sync.due(5.0, ["b", "c"]) == ["b", "c"]  # a new replica is due at once
    rec = sync.synced("b", 5.0, 6.0, 1000)
    assert rec.staleness_before_s == 15.0 and sync.staleness("b", 12.0) == 7.0
    sync.synced("c", 6.0, 7.0, 3000)
    assert sync.due(14.0, ["b", "c"]) == [] and sync.due(15.0, ["b", "c"]) == ["b"]
    assert sync.due(16.0, ["b", "c"]) == ["b", "c"]
    assert sync.bytes_per_period() == 4000.0
    assert math.isinf(sync.staleness("z", 1.0))


# ------------------------------------------------------------------------------ the driver


@pytest.fixture()
def world() -> Iterator[ReplicaWorld]:
    w = ReplicaWorld()
    yield w
    w.close()


def guest_port(world: ReplicaWorld, instance: str) -> int:
    return GUEST_PORT_BASE + [i.name for i in world.scenario.instances].index(instance)


def test_replicas_are_placed_ahead_as_standbys_and_receive_nothing(world: ReplicaWorld) -> None:
    reps = Replicas(world.orch, "web", clock=world.clock)
    report = reps.place(["mec2", "mec3", "mec1"])
    assert report.created == ["mec2", "mec3"] and report.skipped == {}
    assert reps.roles() == {"mec1": Role.PRIMARY, "mec2": Role.BACKUP, "mec3": Role.SECONDARY}
    assert sorted(world.running("web")) == ["mec1", "mec2", "mec3"]
    port = guest_port(world, "web")
    views = world.nb.standbys("web")
    assert [(v.site, v.port) for v in views] == [("mec2", port), ("mec3", port)]
    # the replicas' specs are the primary's: same IP and MAC, at their own port
    primary = world.sites["mec1"].instances["web"].spec
    replica = world.sites["mec3"].instances["web"].spec
    assert (replica.ip, replica.mac, replica.port) == (primary.ip, primary.mac, port)
    trace = world.ue_to("web")
    assert_delivered_once(trace, "web")
    assert trace.hops[-1].switch == world.state.hosts["web"].switch == "s1"
    # bounded: a fourth site gets none
    more = reps.place(["mec9"])
    assert more.created == [] and "3 replicas at most" in more.skipped["mec9"]


def test_a_handover_is_a_flow_switch_only(world: ReplicaWorld) -> None:
    reps = Replicas(world.orch, "web", clock=world.clock)
    reps.place(["mec3", "mec2"])
    creates = {n: len(s.ops("create")) for n, s in world.sites.items()}
    switch_ms = reps.handover("mec3")
    assert switch_ms >= 0
    assert {n: len(s.ops("create")) for n, s in world.sites.items()} == creates  # none started
    assert reps.roles() == {"mec1": Role.BACKUP, "mec2": Role.SECONDARY, "mec3": Role.PRIMARY}
    trace = world.ue_to("web")
    assert_delivered_once(trace, "web")
    assert trace.hops[-1].switch == "s3"
    assert trace.hops[-1].out_ports == (guest_port(world, "web"),)
    assert {v.site for v in world.nb.standbys("web")} == {"mec1", "mec2"}
    (event,) = [e for e in reps.events if e.kind == "handover"]
    assert event.detail["from"] == "mec1" and "staleness_s" not in event.detail  # no sync


def test_where_is_the_primary_and_stop_leaves_no_standby_behind(world: ReplicaWorld) -> None:
    reps = Replicas(world.orch, "web", clock=world.clock)
    reps.place(["mec2", "mec3"])
    assert world.orch.where("web") == "mec1"  # it runs at three sites: the primary is mec1
    reps.handover("mec3")
    assert world.orch.where("web") == "mec3"
    report = world.orch.stop("web")
    assert sorted(report.removed) == ["mec1", "mec2", "mec3"]
    assert world.running("web") == [] and world.nb.standbys("web") == []
    assert world.orch.where("web") is None
    world.orch.deploy("web", "mec1")  # deployed afresh: nothing of the replicas in its way
    Replicas(world.orch, "web", clock=world.clock).place(["mec2"])
    world.orch.teardown("web")
    assert world.running("web") == [] and world.nb.standbys("web") == []


def test_follow_retires_behind_and_places_ahead(world: ReplicaWorld) -> None:
    reps = Replicas(world.orch, "web", clock=world.clock, old_primary="retired")
    reps.place(["mec2"])
    reps.handover("mec2")
    assert world.running("web") == ["mec2"] and reps.roles() == {"mec2": Role.PRIMARY}
    assert world.nb.standbys("web") == []
    reps.follow(["mec3"])
    assert sorted(world.running("web")) == ["mec2", "mec3"]
    reps.follow(["mec1"])
    assert sorted(world.running("web")) == ["mec1", "mec2"]
    assert [v.site for v in world.nb.standbys("web")] == ["mec1"]
    with pytest.raises(ReplicaError, match="hand over first"):
        reps.retire("mec2")


def test_a_failed_primary_is_replaced_by_its_backup_within_the_bound(
    world: ReplicaWorld,
) -> None:
    reps = Replicas(
        world.orch, "web", clock=world.clock, probe_interval_s=0.2, misses=3, sync_period_s=None
    )
    reps.place(["mec2", "mec3"])
    t = world.clock.now
    assert reps.tick(t) == []
    world.sites["mec1"].instances["web"].status = "stopped"  # it died between two probes
    died = t + 0.05
    events = []
    now = t
    while not events:
        now += 0.2
        events = [e for e in reps.tick(now) if e.kind == "failover"]
    (event,) = events
    assert now - died <= 0.2 * 3 and event.detail["bound_s"] == pytest.approx(0.6)
    assert event.site == "mec2" and event.detail["failed"] == "mec1"
    assert reps.roles() == {"mec2": Role.PRIMARY, "mec3": Role.BACKUP}
    trace = world.ue_to("web")
    assert_delivered_once(trace, "web")
    assert trace.hops[-1].switch == "s2"
    # the failed replica is removed, and its standby with it
    assert world.sites["mec1"].status("web") == "absent"
    assert {v.site for v in world.nb.standbys("web")} == {"mec3"}


def test_a_failed_primary_whose_agent_is_gone_keeps_its_standby_until_removed() -> None:
    world = ReplicaWorld(mec1={"fail_at": "destroy", "fail_on": None})
    try:
        reps = Replicas(world.orch, "web", clock=world.clock, misses=1)
        reps.place(["mec2"])
        reps.failed("mec1")
        assert reps.primary == "mec2" and "mec1" in reps.leftovers
        assert {v.site for v in world.nb.standbys("web")} == {"mec1"}  # its frames dropped
        world.sites["mec1"].fail_at = set()
        reps.tick(world.clock.now + 1)
        assert reps.leftovers == {} and world.nb.standbys("web") == []
        with pytest.raises(NoReplicaLeft):
            reps.failed("mec2")
    finally:
        world.close()


def test_volume_sync_runs_every_period_from_the_primary(world: ReplicaWorld) -> None:
    copies: list[tuple[str, str, bool]] = []

    def copy(src: str, dst: str, full: bool) -> int:
        copies.append((src, dst, full))
        return 4096

    reps = Replicas(world.orch, "web", clock=world.clock, sync_period_s=5.0, copy=copy)
    reps.place(["mec2"])
    t0 = world.clock.now
    reps.tick(t0)
    assert copies == [("mec1", "mec2", True)]  # a new replica: all of the volume
    reps.tick(t0 + 4.9)
    assert len(copies) == 1
    reps.tick(t0 + 5.0)
    assert copies[-1] == ("mec1", "mec2", False) and len(copies) == 2  # then what changed
    assert reps.sync is not None and reps.sync.staleness("mec2", t0 + 7.0) == 2.0
    reps.retire("mec2")
    reps.place(["mec2"])  # made anew: in full again
    reps.tick(t0 + 8.0)
    assert copies[-1] == ("mec1", "mec2", True)
    reps.tick(t0 + 13.0)
    assert copies[-1] == ("mec1", "mec2", False)
    reps.handover("mec2")  # the data flows the other way now: in full first
    reps.tick(t0 + 20.0)
    assert copies[-1] == ("mec2", "mec1", True)
    reps.tick(t0 + 25.0)
    assert copies[-1] == ("mec2", "mec1", False)


def test_the_default_copy_is_the_agents_volume_sync(world: ReplicaWorld) -> None:
    reps = Replicas(world.orch, "web", clock=world.clock, sync_period_s=5.0)
    reps.place(["mec3"])
    (event,) = [e for e in reps.tick(world.clock.now) if e.kind == "synced"]
    assert event.site == "mec3" and event.detail["bytes"] == 4096
    (sent,) = world.sites["mec1"].ops("send_volume")
    assert sent[1] == "web" and sent[2] == world.sites["mec3"].address and sent[4] is True
    assert world.sites["mec3"].ops("start_volume_receive")
    assert world.sites["mec3"].ops("finish_volume_receive")
    assert not world.sites["mec1"].ops("send")  # not the migration's copy of /data and images
    (event,) = [e for e in reps.tick(world.clock.now + 5.0) if e.kind == "synced"]
    assert event.detail["bytes"] == 512 and world.sites["mec1"].ops("send_volume")[-1][4] is False


# ------------------------------------------------------------------------------ refusals


def test_replicas_only_of_a_running_stateless_instance(world: ReplicaWorld) -> None:
    with pytest.raises(NotStateless):
        world.orch.deploy_replica("db", "mec2")
    with pytest.raises(NotStateless):
        Replicas(world.orch, "db")
    with pytest.raises(AlreadyDeployed):
        world.orch.deploy_replica("web", "mec1")
    world.orch.stop("web")
    with pytest.raises(NotServing):
        world.orch.deploy_replica("web", "mec2")
    assert world.nb.standbys("web") == []


def test_a_replica_that_does_not_start_leaves_no_standby() -> None:
    world = ReplicaWorld(mec2={"fail_at": "create"})
    try:
        reps = Replicas(world.orch, "web", clock=world.clock)
        report = reps.place(["mec2", "mec3"])
        assert report.created == ["mec3"] and "mec2" in report.skipped
        assert [v.site for v in world.nb.standbys("web")] == ["mec3"]
        assert reps.roles() == {"mec1": Role.PRIMARY, "mec3": Role.BACKUP}
    finally:
        world.close()


def test_a_handover_to_a_replica_never_synced_syncs_it_first(world: ReplicaWorld) -> None:
    """Placed at the handover itself (no mark came in time), a storage-dependent replica has
    none of the primary's volume: the handover syncs it first (seen trying follow-me as a new
    user: the counter went from 711 to 1). If that sync fails, no handover."""
    copies: list[tuple[str, str, bool]] = []
    fail = {"now": False}

    def copy(src: str, dst: str, full: bool) -> int:
        if fail["now"]:
            raise ReplicaError("the agent did not answer")
        copies.append((src, dst, full))
        return 4096

    reps = Replicas(world.orch, "web", clock=world.clock, sync_period_s=5.0, copy=copy)
    reps.place(["mec2", "mec3"])
    reps.handover("mec2")  # no tick since the placement: synced in the handover
    assert copies == [("mec1", "mec2", True)] and reps.primary == "mec2"
    fail["now"] = True
    with pytest.raises(ReplicaError, match="none of its data"):
        reps.handover("mec3")
    assert reps.primary == "mec2"  # nothing switched
    fail["now"] = False
    reps.tick(world.clock.now)  # mec3 (and mec1, the old primary) get the data
    assert ("mec2", "mec3", True) in copies
    reps.handover("mec3")
    assert reps.primary == "mec3"
