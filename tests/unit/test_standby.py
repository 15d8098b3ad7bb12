"""Standby attachments (issue 12 part 4): the ports of an instance's warm replicas.

A standby's port drops every frame and is never learned from; a promotion moves the instance's
traffic there in one make-before-break change (the standby's drop goes first, the old place's
last); refusals change nothing; standbys survive a restart and a rolled-back change."""

from __future__ import annotations

import pytest

from controller.fabricsim import LoopError
from controller.ofmsg import IN_PORT, PRIO_BOUNCE, PRIO_DRAIN, PRIO_STANDBY, TABLE_CLASSIFY, FlowMod
from controller.state import FabricState, Occupied, StateError, UnknownName
from tests.unit.controller_helpers import (
    SCENARIOS,
    THREE_SITES,
    Fabric,
    arp_request,
    assert_delivered_once,
    ip_packet,
    make_state,
)

REPLICAS = SCENARIOS / "replicas.yaml"


def drops(fabric: Fabric, switch: str) -> set[int]:
    """The ports of `switch` whose frames a standby flow drops."""
    return {
        int(str(e.match.get("in_port")))
        for e in fabric.flows(switch)
        if e.table == TABLE_CLASSIFY and e.priority == PRIO_STANDBY and not e.actions
    }


def booted(state: FabricState) -> Fabric:
    """A fabric whose switches got their whole config from `state` as it is now."""
    return Fabric(state)


def assert_in_line(fabric: Fabric) -> None:
    """The tables the plans built are what a switch connecting now would get."""
    assert fabric.snapshot() == booted(fabric.state).snapshot(), fabric.dump()


def gratuitous_arp(state: FabricState, host: str) -> dict[str, object]:
    att = state.hosts[host]
    assert att.ip is not None
    return arp_request(state, host, att.ip)


def with_standby(site: str = "mec3") -> tuple[FabricState, Fabric, int]:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    att, plan = state.add_standby("video", site)
    fabric.apply_plan(plan)
    return state, fabric, att.port


# ------------------------------------------------------------------------------ a standby


def test_a_standby_drops_what_its_replica_sends_and_is_never_learned() -> None:
    state, fabric, port = with_standby()
    switch = state.standbys["video"]["s3"].switch
    assert switch == "s3" and drops(fabric, "s3") == {port}
    assert_in_line(fabric)
    video = state.hosts["video"]
    # the replica's gratuitous ARP and its packets reach no one, not even the controller
    for pkt in (gratuitous_arp(state, "video"), ip_packet(state, "video", "ue1")):
        trace = fabric.sim.inject("s3", port, pkt)
        assert trace.delivered_to == () and trace.packet_ins == (), trace
    # and a packet-in from that port (before the drop is there) is not learned
    assert state.learn_host(video.mac or "", video.ip, "s3", port) == []
    assert state.hosts["video"] == video
    # traffic for the instance still goes to the primary
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", proto="icmp"))
    assert_delivered_once(trace, "video")
    assert trace.hops[-1].switch == "s1"


def test_without_a_standby_the_same_frame_would_steal_the_traffic() -> None:
    state = make_state(THREE_SITES)
    port = state._free_port("s3", state.hosts["video"])
    video = state.hosts["video"]
    assert state.learn_host(video.mac or "", video.ip, "s3", port) != []
    assert state.hosts["video"].switch == "s3"


def test_a_standby_again_changes_nothing_and_its_port_is_not_handed_out() -> None:
    state, fabric, port = with_standby()
    att, plan = state.add_standby("video", "mec3")
    assert plan == [] and att.port == port
    assert state.add_standby("video", "s3", port)[1] == []
    assert state._free_port("s3", state.hosts["fw"]) != port
    assert state.standbys_of("video") == [att]
    assert state.standbys_of("fw") == []


def test_remove_standby_lifts_the_drop() -> None:
    state, fabric, port = with_standby()
    att, plan = state.remove_standby("video", "mec3")
    fabric.apply_plan(plan)
    assert att.port == port and drops(fabric, "s3") == set()
    assert "video" not in state.standbys
    assert_in_line(fabric)
    with pytest.raises(UnknownName):
        state.remove_standby("video", "mec3")


# ------------------------------------------------------------------------------ refusals


def refusals(state: FabricState, port: int) -> list[tuple[type[Exception], object]]:
    fw = state.hosts["fw"]
    return [
        (UnknownName, lambda: state.add_standby("nobody", "mec3")),
        (UnknownName, lambda: state.add_standby("video", "mec9")),
        (Occupied, lambda: state.add_standby("video", "mec1")),  # where it is itself
        (Occupied, lambda: state.add_standby("video", "s1", 7)),
        (Occupied, lambda: state.add_standby("video", "s3", port + 1)),  # has one there
        (Occupied, lambda: state.add_standby("fw", "s3", port)),  # video's standby
        (Occupied, lambda: state.add_standby("video", "s1", fw.port)),  # fw's port
        (StateError, lambda: state.add_standby("video", "s2", state.topo.port_to("s2", "core"))),
        (StateError, lambda: state.add_standby("video", "s2", 0)),
        (Occupied, lambda: state.promote("video", "mec2")),  # no standby there
        (Occupied, lambda: state.promote("fw", "mec3")),  # video's, not fw's
        (UnknownName, lambda: state.promote("video", "nowhere")),
        (UnknownName, lambda: state.remove_standby("video", "mec2")),
        (StateError, lambda: state.relocate("fw", "s3", port)),  # a standby's port
        (StateError, lambda: state.relocate("video", "s3")),  # it has a standby there
    ]


def test_refusals_say_why_and_change_nothing() -> None:
    state, fabric, port = with_standby()
    before = (state.to_dict(), state.desired())
    for kind, call in refusals(state, port):
        with pytest.raises(kind):
            call()  # type: ignore[operator]
        assert (state.to_dict(), state.desired()) == before, kind


# ------------------------------------------------------------------------------ promotion


def test_promotion_moves_the_traffic_in_one_make_before_break_plan() -> None:
    state, fabric, port = with_standby()
    old, new, plan = state.promote("video", "mec3")
    assert (old.switch, new.switch, new.port) == ("s1", "s3", port)
    assert (new.ip, new.mac) == (old.ip, old.mac)
    first = plan[0]["s3"]
    assert isinstance(first[0], FlowMod) and first[0].command == "delete_strict"
    assert first[0].priority == PRIO_STANDBY  # the standby's drop goes before its forwarding
    last = plan[-1]["s1"]
    assert isinstance(last[-1], FlowMod) and last[-1].command == "add"
    assert last[-1].priority == PRIO_STANDBY  # the old place's drop, after everything

    def never_loops(i: int, stage: object) -> None:
        for src in ("ue1", "fw"):
            try:
                trace = fabric.send(src, ip_packet(state, src, "video", proto="icmp"))
            except LoopError as exc:
                pytest.fail(f"stage {i}: {exc}")
            assert len(trace.delivered_to) <= 1

    fabric.apply_plan(plan, after_stage=never_loops)
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", proto="icmp"))
    assert_delivered_once(trace, "video")
    assert trace.hops[-1].switch == "s3" and trace.hops[-1].out_ports == (port,)
    # the new primary answers; the old one is a standby now, dropped and not learned
    reply = fabric.send("video", ip_packet(state, "video", "ue1", proto="icmp"))
    assert_delivered_once(reply, "ue1")
    assert drops(fabric, "s3") == set() and drops(fabric, "s1") == {old.port}
    assert state.standbys["video"] == {"s1": old}
    assert state.learn_host(old.mac or "", old.ip, "s1", old.port) == []
    assert_in_line(fabric)
    # and back again: a handover the other way is the same switch
    _, back, plan = state.promote("video", "mec1")
    fabric.apply_plan(plan)
    assert back == old and drops(fabric, "s3") == {port} and drops(fabric, "s1") == set()
    assert_in_line(fabric)


def test_promotion_that_forgets_the_old_place() -> None:
    state, fabric, port = with_standby()
    old, _, plan = state.promote("video", "s3", keep_old=False)
    fabric.apply_plan(plan)
    assert "video" not in state.standbys
    assert drops(fabric, "s1") == set() and drops(fabric, "s3") == set()
    assert_in_line(fabric)


def test_a_chain_function_promoted_keeps_its_chain() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    fabric.apply_plan(state.add_standby("fw", "mec2")[1])
    fabric.apply_plan(state.promote("fw", "mec2")[2])
    assert_in_line(fabric)
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=8080))
    assert trace.delivered_to == ("fw",) and trace.hops[-1].switch == "s2"


# ------------------------------------------------------------------------------ persistence, undo


def test_standbys_survive_a_restart() -> None:
    state, _, port = with_standby()
    state.add_standby("fw", "mec2")
    saved = state.to_dict()
    assert len(saved["standbys"]) == 2
    fresh = make_state(THREE_SITES)
    fresh.restore(saved)
    assert fresh.standbys == state.standbys
    assert fresh.desired() == state.desired()
    assert fresh.standby_at("s3", port) == "video"


def test_a_saved_standby_that_no_longer_fits_is_dropped() -> None:
    state, _, port = with_standby()
    saved = state.to_dict()
    saved["standbys"].append({**saved["standbys"][0], "switch": "nowhere"})
    saved["standbys"].append({**saved["standbys"][0], "host": "fw", "switch": "s1"})
    fresh = make_state(THREE_SITES)
    fresh.restore(saved)
    assert fresh.standbys == state.standbys


@pytest.mark.parametrize("op", ["add", "remove", "promote", "promote-forget"])
def test_a_rolled_back_change_puts_standbys_and_switches_back(op: str) -> None:
    state, fabric, _ = with_standby()
    snap = state.snapshot()
    before = (state.to_dict(), state.desired())
    if op == "add":
        plan = state.add_standby("fw", "mec3")[1]
    elif op == "remove":
        plan = state.remove_standby("video", "s3")[1]
    else:
        plan = state.promote("video", "mec3", keep_old=op == "promote")[2]
    fabric.apply_plan(plan)
    fabric.apply_plan(state.roll_back(snap))
    assert (state.to_dict(), state.desired()) == before
    assert_in_line(fabric)


def test_a_reconnecting_switch_gets_the_drop_and_resync_restores_it() -> None:
    state, fabric, port = with_standby()
    msgs = state.switch_config("s3")
    assert any(isinstance(m, FlowMod) and m.priority == PRIO_STANDBY for m in msgs)
    without = [e for e in fabric.flows("s3") if e.priority != PRIO_STANDBY]
    again = state.resync("s3", without, fabric.meters("s3"))
    assert [m for m in again if isinstance(m, FlowMod)] == [
        m for m in msgs if isinstance(m, FlowMod) and m.priority == PRIO_STANDBY
    ]
    assert state.resync("s3", fabric.flows("s3"), fabric.meters("s3")) == []


def test_a_drained_promotion_lets_the_old_place_through_until_it_is_sealed() -> None:
    """`drain`: the old place is a standby at once (never learned) but its drop comes later
    (`seal_standby`), so replies to what it took before the switch still get through; a seal
    for a place that moved on meanwhile does nothing."""
    state, fabric, port = with_standby()
    old, new, plan = state.promote("video", "mec3", drain=True)
    # replicas: the old one gets nothing more (a new connection would reach it, not the new)
    assert not [m for stage in plan for m in stage.get("s1", []) if m.priority == PRIO_DRAIN]
    assert all(
        not (isinstance(m, FlowMod) and m.command == "add" and m.priority == PRIO_STANDBY)
        for stage in plan
        for m in stage.get("s1", [])
    )
    fabric.apply_plan(plan)
    assert drops(fabric, "s1") == set() and state.standbys["video"] == {"s1": old}
    assert state.learn_host(old.mac or "", old.ip, "s1", old.port) == []
    reply = fabric.sim.inject("s1", old.port, ip_packet(state, "video", "ue1", proto="icmp"))
    assert_delivered_once(reply, "ue1")  # the old primary's late reply reaches its client
    fabric.apply_plan(state.seal_standby("video", old))
    assert drops(fabric, "s1") == {old.port}
    assert_in_line(fabric)
    # promoted back before its seal came: the seal of the old place does nothing
    _, _, back = state.promote("video", "mec1", drain=True)
    fabric.apply_plan(back)
    assert state.seal_standby("video", old) == []
    assert state.seal_standby("video", state.standbys["video"]["s3"]) != []


def test_a_drained_old_place_delivers_what_was_already_on_its_way_until_sealed() -> None:
    """A packet already on its way to the old place when the make-before-break change went by
    (in a link's queue, or sent by a switch whose datapath still cached the old way) arrives
    after the old place's forwarding points back the way it came, where OpenFlow drops it (the
    port it came in on). While the old place drains, it leaves by the old port instead (the
    host's old link is still up); the flow goes in the first stage, before the old place's
    forwarding changes, and with the seal; a connecting switch gets it meanwhile."""
    state, fabric, _ = with_standby()
    old, _, plan = state.promote("video", "mec3", drain=True, deliver_old=True)
    drain = [m for m in plan[0].get("s1", []) if m.priority == PRIO_DRAIN]
    assert len(drain) == 1 and drain[0].command == "add", plan
    fabric.apply_plan(plan)
    uplink = next(ln.port_on("s1") for ln in state.declared.links_of("s1"))
    late = fabric.sim.inject("s1", uplink, ip_packet(state, "ue1", "video"))
    assert len(late.hops) == 1, late
    assert late.hops[0].out_ports == (old.port,) and not late.dropped[1:], late  # the old link
    assert [m for m in state.switch_config("s1") if getattr(m, "priority", 0) == PRIO_DRAIN]
    fabric.apply_plan(state.seal_standby("video", old))
    assert not [e for e in fabric.flows("s1") if e.priority == PRIO_DRAIN]
    gone = fabric.sim.inject("s1", uplink, ip_packet(state, "ue1", "video"))
    assert old.port not in gone.hops[0].out_ports and not gone.delivered_to, gone
    assert_in_line(fabric)


def test_a_drained_replica_promotion_sends_what_reaches_the_old_place_on_to_the_new() -> None:
    """Replicas (no `deliver_old`): a frame already on its way down the old site's uplink when
    the change went by (a SYN, live: lost in ~1 promotion of 25, the client waiting 1 s) goes
    back up it to the new primary instead of out of the port it came in on (dropped). After
    every stage of the change, and until the seal, such a frame reaches one replica, once; the
    flow is in what a connecting switch gets meanwhile; the seal takes it away."""
    state = make_state(REPLICAS)  # sites hanging off one core switch, as at a MEC operator
    fabric = Fabric(state)
    fabric.apply_plan(state.add_standby("web", "mec3")[1])
    (link,) = state.declared.links_of("s1")
    uplink = link.port_on("s1")
    old, new, plan = state.promote("web", "mec3", drain=True)
    bounce = [m for m in plan[0].get("s1", []) if m.priority == PRIO_BOUNCE]
    assert len(bounce) == 1 and bounce[0].command == "add", plan
    assert bounce[0].actions[0].port == IN_PORT  # type: ignore[union-attr]
    reached: list[tuple[str, ...]] = []

    def late(i: int, stage: object) -> None:
        trace = fabric.sim.inject("s1", uplink, ip_packet(state, "phone", "web"))
        # the old replica's port (the simulator delivers to where the host is now only)
        at_old = [(h.switch, h.out_ports) for h in trace.hops] == [("s1", (old.port,))]
        assert (trace.delivered_to == ("web",)) != at_old and not trace.packet_ins, (i, trace)
        reached.append(tuple(h.switch for h in trace.hops))

    fabric.apply_plan(plan, after_stage=late)
    assert reached[0] == ("s1",) and reached[-1][-1] == new.switch == "s3", reached
    assert [m for m in state.switch_config("s1") if getattr(m, "priority", 0) == PRIO_BOUNCE]
    fabric.apply_plan(state.seal_standby("web", old))
    assert not [e for e in fabric.flows("s1") if e.priority == PRIO_BOUNCE]
    gone = fabric.sim.inject("s1", uplink, ip_packet(state, "phone", "web"))
    assert not gone.delivered_to, gone  # sealed: the uplink's entry, out of its in-port
    assert_in_line(fabric)


def test_a_second_drained_promotion_ends_the_first_ones_drain() -> None:
    state, fabric, _ = with_standby()
    fabric.apply_plan(state.add_standby("video", "mec2")[1])
    first, _, plan = state.promote("video", "mec3", drain=True, deliver_old=True)
    fabric.apply_plan(plan)
    # before the first one's seal:
    second, _, plan = state.promote("video", "mec2", drain=True, deliver_old=True)
    fabric.apply_plan(plan)
    draining = {sw for sw in ("s1", "s2", "s3") for e in fabric.flows(sw)
                if e.priority == PRIO_DRAIN}  # fmt: skip
    assert draining == {second.switch} == {"s3"}
    fabric.apply_plan(state.seal_standby("video", first))  # late: its drop only
    assert [sw for sw in ("s1", "s2", "s3") for e in fabric.flows(sw)
            if e.priority == PRIO_DRAIN] == ["s3"]  # fmt: skip
    fabric.apply_plan(state.seal_standby("video", second))
    assert not [
        e for sw in ("s1", "s2", "s3") for e in fabric.flows(sw) if e.priority == PRIO_DRAIN
    ]
    assert_in_line(fabric)
