"""Relocation of a host (same IP and MAC, new switch port): make-before-break stages that never
loop, persistence of the model, refused moves, and hosts learned from their traffic."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from controller.fabricsim import LoopError
from controller.ofmsg import TABLE_FORWARD, TABLE_ROUTE, FlowMod, Message, MeterMod, Output
from controller.plan import Plan, Stage
from controller.state import FabricState, StateError
from tests.unit.controller_helpers import (
    DEFAULT,
    THREE_SITES,
    Fabric,
    M,
    assert_delivered_once,
    forward,
    ip_packet,
    make_state,
    switch_names,
    to_batch,
)

NEW_MAC, NEW_IP = "02:00:0a:00:00:63", "10.0.0.99"


def is_removal(msg: Message) -> bool:
    if isinstance(msg, FlowMod):
        return msg.command != "add"
    return isinstance(msg, MeterMod) and msg.command == "delete"


def forward_port(fabric: Fabric, switch: str, mac: str) -> int:
    """Where `switch`'s forwarding table sends frames for `mac` (through its route to the
    host's anchor, on a core switch)."""
    (entry,) = [
        e
        for e in fabric.flows(switch)
        if e.table == TABLE_FORWARD and e.match.get("eth_dst") == mac
    ]
    if entry.metadata is not None:
        (entry,) = [
            e
            for e in fabric.flows(switch)
            if e.table == TABLE_ROUTE and e.match.get("metadata") == entry.metadata
        ]
    (action,) = entry.actions
    assert isinstance(action, Output)
    return action.port


def probes(state: FabricState, dst: str) -> Iterable[tuple[str, dict[str, object]]]:
    """Packets towards `dst` from every other host, plain and on the chain's port, and every
    leg of the chain ue1 -> fw -> video and back (steered by MAC, whoever moves)."""
    for src in state.hosts:
        if src != dst:
            yield src, ip_packet(state, src, dst, proto="icmp")
            yield src, ip_packet(state, src, dst, dport=8080)
    fw_mac, video_mac, ue_mac = (state.hosts[h].mac for h in ("fw", "video", "ue1"))
    assert fw_mac is not None and video_mac is not None and ue_mac is not None
    request = ip_packet(state, "ue1", "video", dport=8080)
    reply = ip_packet(state, "video", "ue1", sport=8080, dport=40000)
    yield "ue1", request
    yield "fw", forward(request, fw_mac, video_mac)
    yield "video", reply
    yield "fw", forward(reply, fw_mac, ue_mac)


def assert_never_loops(fabric: Fabric, dst: str) -> None:
    """Every probe towards `dst` is dropped or delivered, to at most one host, without a loop."""
    for src, pkt in probes(fabric.state, dst):
        try:
            trace = fabric.send(src, pkt)
        except LoopError as exc:
            pytest.fail(f"{src} -> {dst} loops: {exc}")
        assert len(trace.delivered_to) <= 1, trace
        assert len(set(trace.switches)) == len(trace.switches), f"revisited a switch: {trace}"


def stage_switches(plan: Plan) -> list[set[str]]:
    return [set(stage) for stage in plan]


# ------------------------------------------------------------------------------ staging


def test_relocation_stages_go_outwards_from_the_new_place_and_remove_last() -> None:
    state = make_state(THREE_SITES)
    old, new, plan = state.relocate("video", "s3")
    assert (old.switch, new.switch) == ("s1", "s3")
    assert (new.ip, new.mac) == (old.ip, old.mac)

    assert stage_switches(plan) == [{"s3"}, {"core", "s2"}, {"s1"}, {"s1"}]
    *additions, removals = plan
    for stage in additions:
        assert not any(is_removal(m) for msgs in stage.values() for m in msgs)
    assert all(is_removal(m) for msgs in removals.values() for m in msgs)


def test_relocation_never_loops_during_the_transition() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    _, new, plan = state.relocate("video", "s3")
    fabric.apply_plan(plan, after_stage=lambda i, stage: assert_never_loops(fabric, "video"))

    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", proto="icmp"))
    assert_delivered_once(trace, "video")
    assert trace.switches == ("s1", "core", "s3")
    assert trace.hops[-1].out_ports == (new.port,)
    assert forward_port(fabric, "s1", new.mac or "") == state.topo.port_to("s1", "core")


@pytest.mark.parametrize("reverse", [False, True], ids=["sorted", "reversed"])
def test_relocation_never_loops_whatever_order_the_switches_of_a_stage_take(
    reverse: bool,
) -> None:
    """Within a stage the switches are independent: any order of them is loop-free too."""
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    plan = state.relocate("video", "s3")[2]
    for stage in plan:
        for sw in sorted(stage, reverse=reverse):
            fabric.apply(to_batch(state, {sw: stage[sw]}))
            assert_never_loops(fabric, "video")
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "video")), "video")


@pytest.mark.parametrize(
    ("host", "target"),
    [("video", "s2"), ("fw", "s3"), ("ue1", "s3"), ("hmec1", "core"), ("video", "core")],
)
def test_any_relocation_never_loops_and_ends_delivered(host: str, target: str) -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    plan = state.relocate(host, target)[2]
    assert set(plan[0]) == {target}
    fabric.apply_plan(plan, after_stage=lambda i, stage: assert_never_loops(fabric, host))
    for src in state.hosts:
        if src != host:
            assert_delivered_once(fabric.send(src, ip_packet(state, src, host)), host)


def test_relocation_in_the_default_scenario() -> None:
    state = make_state(DEFAULT)
    fabric = Fabric(state)
    _, new, plan = state.relocate("video", "mec2")
    assert new.switch == "s2"
    assert stage_switches(plan)[0] == {"s2"}
    fabric.apply_plan(plan, after_stage=lambda i, stage: assert_never_loops(fabric, "video"))
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video"))
    assert_delivered_once(trace, "video")
    assert trace.switches == ("s1", "core", "s2")


def test_relocation_back_restores_the_original_tables() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    before = fabric.snapshot()
    declared = state.hosts["video"]
    fabric.apply_plan(state.relocate("video", "s3")[2])
    _, back, plan = state.relocate("video", "mec1")
    assert back == declared  # the declared port is taken again
    fabric.apply_plan(plan)
    assert fabric.snapshot() == before


def test_relocation_to_where_it_is_changes_nothing() -> None:
    state = make_state(THREE_SITES)
    old, new, plan = state.relocate("video", "s1")
    assert old == new and plan == []


def test_relocation_to_a_named_port() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    _, new, plan = state.relocate("video", "s3", 42)
    assert (new.switch, new.port) == ("s3", 42)
    fabric.apply_plan(plan)
    trace = fabric.send("hmec3", ip_packet(state, "hmec3", "video"))
    assert_delivered_once(trace, "video")
    assert trace.hops[-1].out_ports == (42,)


# ------------------------------------------------------------------------------ refused moves


def test_relocation_to_a_link_port_or_a_taken_port_is_refused() -> None:
    state = make_state(THREE_SITES)
    hosts, configs = dict(state.hosts), {sw: state.switch_config(sw) for sw in switch_names(state)}
    link_port = state.topo.port_to("s3", "core")
    with pytest.raises(StateError, match="link port"):
        state.relocate("video", "s3", link_port)
    with pytest.raises(StateError, match="hmec3"):
        state.relocate("video", "s3", state.hosts["hmec3"].port)
    with pytest.raises(StateError, match="no host"):
        state.relocate("nobody", "s3")
    with pytest.raises(StateError, match="no site or switch"):
        state.relocate("video", "s9")
    assert state.hosts == hosts
    assert {sw: state.switch_config(sw) for sw in switch_names(state)} == configs


def test_a_host_cannot_take_the_port_another_host_moved_to() -> None:
    state = make_state(THREE_SITES)
    _, new, _ = state.relocate("video", "s3")
    with pytest.raises(StateError, match="video"):
        state.relocate("fw", "s3", new.port)
    _, fw, _ = state.relocate("fw", "s3")
    assert fw.port not in (new.port, state.hosts["hmec3"].port)


def test_a_host_that_moved_away_can_come_back_to_its_declared_port() -> None:
    """A declared port stays its host's (its cable may still be plugged in): a stranger moved
    to that switch gets another port, and the host finds its own free when it comes back."""
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    home = state.hosts["hmec3"]
    fabric.apply_plan(state.relocate("hmec3", "s2")[2])
    _, video, plan = state.relocate("video", "s3")
    assert video.port != home.port
    fabric.apply_plan(plan)
    _, back, plan = state.relocate("hmec3", "mec3")
    assert back == home
    fabric.apply_plan(plan)
    for host in ("hmec3", "video"):
        assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", host)), host)


# ------------------------------------------------------------------------------ persistence


def busy_state() -> FabricState:
    state = make_state(THREE_SITES)
    state.relocate("video", "s3")
    state.reserve("hmec1", "hmec3", 60 * M, dst_port=7000)
    state.reserve("hmec1", "hmec3", 20 * M, dst_port=7001, owner="mig-1")
    rec, _ = state.reserve("ue1", "video", 10 * M, proto="udp", dst_port=9000)
    state.resize(rec.id, 15 * M)
    state.release(1)
    state.learn_host(NEW_MAC, NEW_IP, "s2", 10)
    return state


@pytest.mark.parametrize("through_json", [False, True], ids=["dict", "json"])
def test_saved_state_restores_the_same_desired_config(through_json: bool) -> None:
    state = busy_state()
    saved = state.to_dict()
    if through_json:
        saved = json.loads(json.dumps(saved))
    again = FabricState(state.scenario)
    again.restore(saved)
    for sw in switch_names(state):
        assert again.switch_config(sw) == state.switch_config(sw), sw
    assert again.reservations == state.reservations
    assert again.hosts == state.hosts
    # and it goes on where the saved one stopped
    a, _ = state.reserve("hmec2", "hmec3", M, dst_port=7002)
    b, _ = again.reserve("hmec2", "hmec3", M, dst_port=7002)
    assert a == b
    assert again.desired() == state.desired()


def test_restored_state_works_on_the_fabric() -> None:
    state = busy_state()
    again = FabricState(state.scenario)
    again.restore(json.loads(json.dumps(state.to_dict())))
    fabric = Fabric(again)
    assert_delivered_once(
        fabric.send("ue1", ip_packet(again, "ue1", "video", proto="icmp")), "video"
    )
    learned = again.host_by_mac(NEW_MAC)
    assert learned is not None
    assert_delivered_once(fabric.send("ue1", ip_packet(again, "ue1", learned.host)), learned.host)
    trace = fabric.send("hmec1", ip_packet(again, "hmec1", "hmec3", dport=7001))
    assert trace.meters == {2}


def test_saved_state_of_another_scenario_is_refused() -> None:
    state = busy_state()
    other = make_state(DEFAULT)
    with pytest.raises(StateError, match="threesite"):
        other.restore(state.to_dict())


# ------------------------------------------------------------------------------ learned hosts


def test_a_new_mac_becomes_a_host_reachable_by_unicast() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    plan = state.learn_host(NEW_MAC, NEW_IP, "s2", 10)
    assert plan
    fabric.apply_plan(plan)
    learned = state.host_by_mac(NEW_MAC)
    assert learned is not None and (learned.switch, learned.port, learned.ip) == ("s2", 10, NEW_IP)
    assert state.host_by_ip(NEW_IP) == learned
    for src in ("ue1", "hmec1", "hmec3", "video"):
        assert_delivered_once(fabric.send(src, ip_packet(state, src, learned.host)), learned.host)
        assert_delivered_once(fabric.send(learned.host, ip_packet(state, learned.host, src)), src)
    assert state.learn_host(NEW_MAC, NEW_IP, "s2", 10) == []  # nothing new


def test_learned_hosts_get_distinct_ids() -> None:
    state = make_state(THREE_SITES)
    state.learn_host(NEW_MAC, NEW_IP, "s2", 10)
    state.learn_host("02:00:0a:00:00:62", "10.0.0.98", "s3", 10)
    assert len(set(state.host_ids.values())) == len(state.host_ids) == len(state.hosts)


def test_a_known_mac_at_another_edge_port_moves_its_host() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    ue = state.hosts["ue1"]
    plan = state.learn_host(ue.mac or "", None, "s3", 7)
    moved = state.hosts["ue1"]
    assert (moved.switch, moved.port, moved.ip, moved.mac) == ("s3", 7, ue.ip, ue.mac)
    assert state.host_by_mac(ue.mac or "") == moved
    assert len(state.hosts) == 6  # no new host

    # a handover is make-before-break like a relocation
    assert set(plan[0]) == {"s3"}
    fabric.apply_plan(plan, after_stage=lambda i, stage: assert_never_loops(fabric, "ue1"))
    for src in ("hmec1", "hmec3", "video", "fw"):
        assert_delivered_once(fabric.send(src, ip_packet(state, src, "ue1")), "ue1")
    # and the chain follows the UE
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=8080))
    assert_delivered_once(trace, "fw")


def test_a_known_mac_with_a_new_address_keeps_its_name() -> None:
    state = make_state(THREE_SITES)
    ue = state.hosts["ue1"]
    fabric = Fabric(state)
    fabric.apply_plan(state.learn_host(ue.mac or "", "10.0.0.101", ue.switch, ue.port))
    assert state.hosts["ue1"].ip == "10.0.0.101"
    assert_delivered_once(fabric.send("hmec3", ip_packet(state, "hmec3", "ue1")), "ue1")


def test_stages_are_data_without_side_effects() -> None:
    """The plan of one operation is fixed when it is returned: later operations do not touch it."""
    state = make_state(THREE_SITES)
    _, _, plan = state.relocate("video", "s3")
    copy: list[Stage] = [{sw: list(msgs) for sw, msgs in stage.items()} for stage in plan]
    state.relocate("fw", "s2")
    assert plan == copy
