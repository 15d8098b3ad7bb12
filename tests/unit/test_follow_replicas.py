"""Follow-me for a stateless service (orchestration.follow_replicas over the replica world: a
real facade and software switches, in-memory sites): a mark towards a site places a replica
there ahead of the UE and retires the one behind; the UE's handover makes the replica there the
primary by a flow switch (traffic delivered there), the policy told; a handover to a site no
mark reached places it late; close leaves only the primary."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from orchestration.follow_me import Nothing
from orchestration.follow_replicas import ReplicaFollower
from orchestration.follower import Done
from orchestration.replicas import Replicas
from tests.unit.replica_world import ReplicaWorld
from topology.mobility_events import Handover


@pytest.fixture
def world() -> Iterator[ReplicaWorld]:
    w = ReplicaWorld()
    yield w
    w.switched.close()


def mark(site: str) -> Done:
    return Done(Nothing("web", "instance", site, 1.0, "stateless"), "marked")


def handover(site: str, t: float) -> Handover:
    return Handover(t, "ue1", "a", "b", "za", "zb", "x", site, 0.0, 0.0)


def follower(w: ReplicaWorld) -> tuple[ReplicaFollower, list[tuple[str, str, float | None]]]:
    settled: list[tuple[str, str, float | None]] = []

    def now(fn: Callable[[], None], name: str) -> None:
        fn()  # the placement thread, run at once

    reps = Replicas(w.orch, "web", clock=w.clock)
    rf = ReplicaFollower(lambda s, site, t: settled.append((s, site, t)), {"web": reps}, now)
    return rf, settled


def test_replicas_go_ahead_of_the_ue_and_the_primary_moves_by_a_flow_switch(
    world: ReplicaWorld,
) -> None:
    rf, settled = follower(world)
    rf.on_actions([mark("mec2")])
    assert rf.roles("web") == {"mec1": "primary", "mec2": "backup"}
    assert world.running("web") == ["mec1", "mec2"]
    assert world.ue_to("web").hops[-1].switch == world.state.hosts["web"].switch == "s1"
    rf.on_handover(handover("mec2", 10.0))
    assert rf.roles("web") == {"mec2": "primary", "mec1": "backup"}
    assert settled == [("web", "mec2", 10.0)]
    trace = world.ue_to("web")
    assert len(trace.delivered_to) == 1 and trace.hops[-1].switch == "s2"
    [(site, switch_ms)] = rf.served["web"].switches
    assert site == "mec2" and switch_ms >= 0
    rf.on_actions([mark("mec3")])  # the next site ahead: mec1, behind, goes
    assert rf.roles("web") == {"mec2": "primary", "mec3": "backup"}
    assert world.running("web") == ["mec2", "mec3"]
    rf.close()
    assert rf.roles("web") == {"mec2": "primary"} and world.running("web") == ["mec2"]


def test_a_handover_no_mark_reached_places_the_replica_late(world: ReplicaWorld) -> None:
    rf, settled = follower(world)
    rf.on_handover(handover("mec3", 5.0))
    assert rf.roles("web") == {"mec3": "primary", "mec1": "backup"}
    assert settled == [("web", "mec3", 5.0)]
    rf.on_handover(handover("mec3", 6.0))  # there already: nothing
    assert len(rf.served["web"].switches) == 1
    rf.on_handover(Handover(7.0, "ue1", "b", None, "zb", None, "mec3", None, 0.0, 0.0))
    assert rf.roles("web") == {"mec3": "primary", "mec1": "backup"}  # out of range: stays


def test_a_service_stopped_by_its_user_is_no_longer_served(world: ReplicaWorld) -> None:
    """`mecmig stop` of a followed stateless service: its probes fail and no replica is left;
    follow-me stops serving it (one warning), instead of an error at every tick."""
    rf, _ = follower(world)
    world.orch.stop("web")
    for _ in range(6):  # probes every 0.5 s, 3 misses
        world.clock.advance(0.6)
        rf.tick()
    assert "web" not in rf.served
    rf.on_actions([mark("mec2")])  # a late mark: nothing to place
    rf.tick()
