"""Holding an instance's traffic at the controller while it is frozen (pure parts): the flow on
the switch where it leaves the fabric (moving with it), what reaches the controller then, the
buffer's limits, and the release."""

from __future__ import annotations

from typing import Any

import pytest

from controller.hold import HeldPackets, held_host_id, hold_flows
from controller.ofmsg import (
    CONTROLLER_PORT,
    PRIO_DRAIN,
    PRIO_HOLD,
    PRIO_RESERVATION,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    CookieKind,
    cookie,
)
from controller.plan import Plan
from controller.state import StateError
from tests.unit.controller_helpers import (
    DEFAULT,
    Fabric,
    assert_delivered_once,
    ip_packet,
    make_state,
    switch_names,
)


def test_the_flows_send_the_instance_s_ipv4_to_the_controller_above_all_else() -> None:
    """By its address in table 0 (before a reservation's flow sends it out of a port) and by
    its MAC in table 1 (a chain's frames, steered to a function's MAC in table 0)."""
    state = make_state(DEFAULT)
    video = state.hosts["video"]
    by_ip, by_mac = hold_flows(video, 7)
    assert (by_ip.table, by_mac.table) == (TABLE_CLASSIFY, TABLE_FORWARD)
    assert by_ip.match.as_dict() == {"eth_type": 0x0800, "ipv4_dst": "10.0.0.12"}
    assert by_mac.match.as_dict() == {"eth_type": 0x0800, "eth_dst": video.mac}
    for flow in (by_ip, by_mac):
        assert flow.priority > PRIO_DRAIN > PRIO_RESERVATION and flow.priority == PRIO_HOLD
        assert [a.port for a in flow.actions] == [CONTROLLER_PORT]  # type: ignore[union-attr]
        assert held_host_id(flow.cookie) == 7
    assert held_host_id(cookie(CookieKind.RESERVATION, 7)) is None


def test_a_chain_s_frames_for_a_held_function_are_caught_at_its_switch() -> None:
    """The firewall of a chain is held while its server is not: the chain's frames are
    addressed to the server, steered to the firewall's MAC, and caught before its port."""
    state = make_state(DEFAULT)
    fabric = Fabric(state)
    chain = state.chains[0]
    ue, fw = chain.members[0], chain.members[1]
    fabric.apply_plan(state.hold(fw))
    server = chain.members[-1]
    pkt = ip_packet(state, ue, server, dport=chain.port)
    trace = fabric.send(ue, pkt)
    assert trace.delivered_to == () and [sw for sw, _ in trace.packet_ins] == [
        state.hosts[fw].switch
    ], trace
    fabric.apply_plan(state.unhold(fw))
    assert fabric.send(ue, pkt).delivered_to == (fw,)  # on its way to the server, through fw


def test_held_traffic_reaches_the_controller_from_anywhere_and_flows_again_after() -> None:
    state = make_state(DEFAULT)
    fabric = Fabric(state)
    plan = state.hold("video")
    fabric.apply_plan(plan)
    # one flow, on the switch where video leaves the fabric: all its traffic passes there
    assert set(plan[0]) == {state.hosts["video"].switch} and len(switch_names(state)) > 1
    for src in ("ue1", "fw", "hmec2"):
        trace = fabric.send(src, ip_packet(state, src, "video"))
        assert trace.delivered_to == () and len(trace.packet_ins) == 1, (src, trace)
    # other hosts' traffic is not held
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "fw")), "fw")
    assert state.held_host(state.host_ids["video"]) == "video"
    fabric.apply_plan(state.unhold("video"))
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "video")), "video")
    assert state.held_host(state.host_ids["video"]) is None
    assert not any(e.priority == PRIO_HOLD for _, e in fabric.all_flows())


def test_a_hold_survives_a_relocation_and_a_reconnect() -> None:
    """The switch moves the instance under the hold; held packets still go to the controller.
    The old place keeps its hold flow until the hold ends: a packet already on its way there
    when the relocation went by (in a link's queue, or sent by a switch whose datapath still
    cached the old way) would meet the old place's forwarding pointing back the way it came,
    where OpenFlow drops it, and the client would wait for its retransmission; caught there,
    it is released through that switch's tables, on to the new place."""
    state = make_state(DEFAULT)
    fabric = Fabric(state)
    fabric.apply_plan(state.hold("video"))
    old = state.hosts["video"].switch
    _, _, plan = state.relocate("video", "s2", 7)
    assert not any(m.priority == PRIO_HOLD for m in plan_msgs(plan, old)), plan  # kept
    fabric.apply_plan(plan)
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video"))
    assert trace.delivered_to == () and trace.packet_ins
    uplink = next(ln.port_on(old) for ln in state.declared.links_of(old))
    late = fabric.sim.inject(old, uplink, ip_packet(state, "ue1", "video"))
    assert [sw for sw, _ in late.packet_ins] == [old], late  # caught, not dropped
    desired = state.desired()
    assert any(f.priority == PRIO_HOLD for f in desired["s2"].flows.values())
    held_at = [
        sw
        for sw, cfg in desired.items()
        if any(f.priority == PRIO_HOLD for f in cfg.flows.values())
    ]
    assert sorted(held_at) == sorted({"s2", old})  # where it is, and where it was
    fabric.apply_plan(state.unhold("video"))
    assert not any(e.priority == PRIO_HOLD for _, e in fabric.all_flows())
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "video")), "video")
    # released, the hold of a later move is where it then is only
    fabric.apply_plan(state.hold("video"))
    assert [sw for sw, cfg in state.desired().items()
            if any(f.priority == PRIO_HOLD for f in cfg.flows.values())] == ["s2"]  # fmt: skip


def plan_msgs(plan: Plan, switch: str) -> list[Any]:
    return [m for stage in plan for m in stage.get(switch, [])]


def test_unknown_hosts_and_idempotent_release() -> None:
    state = make_state(DEFAULT)
    with pytest.raises(StateError, match="ghost"):
        state.hold("ghost")
    with pytest.raises(StateError, match="ghost"):
        state.unhold("ghost")
    assert state.unhold("video") == [{}]  # nothing held: nothing to do


def test_the_buffer_keeps_order_within_its_limits() -> None:
    buf = HeldPackets(max_packets=3, max_bytes=10)
    assert buf.add(b"aaaa") and buf.add(b"bbbb")
    assert not buf.add(b"ccc")  # 11 bytes would be over
    assert buf.add(b"cc")
    assert not buf.add(b"")  # 4 packets would be over
    assert buf.dropped == 2
    assert buf.drain() == [b"aaaa", b"bbbb", b"cc"]
    assert buf.drain() == [] and buf.size == 0
