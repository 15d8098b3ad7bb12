"""Proactive forwarding on the software fabric: every host reaches every other host, ARP goes to
the controller, broadcast is never flooded, link failures are routed around."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from controller.fabricsim import FabricSim
from controller.ofmsg import TABLE_ROUTE, CookieKind, FlowMod, cookie_kind
from tests.unit.controller_helpers import (
    BROADCAST,
    DEFAULT,
    THREE_SITES,
    Fabric,
    arp_request,
    assert_delivered_once,
    full_configs,
    ip_packet,
    make_state,
    switch_names,
    wiring,
)

SCENARIOS = [pytest.param(DEFAULT, id="default"), pytest.param(THREE_SITES, id="three-sites")]


@pytest.mark.parametrize("path", SCENARIOS)
def test_every_host_reaches_every_other_host_by_unicast(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    for src in state.hosts:
        for dst in state.hosts:
            if src == dst:
                continue
            for proto in ("tcp", "udp", "icmp"):
                trace = fabric.send(src, ip_packet(state, src, dst, proto=proto))
                assert_delivered_once(trace, dst)
                assert not trace.packet_ins and not trace.meters and not trace.dropped


@pytest.mark.parametrize("path", SCENARIOS)
def test_unicast_follows_a_shortest_path(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    graph = state.topo.graph
    for src, a in state.hosts.items():
        for dst, b in state.hosts.items():
            if src != dst:
                trace = fabric.send(src, ip_packet(state, src, dst))
                hops = nx.shortest_path_length(graph, a.switch, b.switch)
                assert len(trace.switches) == hops + 1
                assert trace.switches[0] == a.switch and trace.switches[-1] == b.switch


@pytest.mark.parametrize("path", SCENARIOS)
def test_arp_goes_to_the_controller_and_is_never_flooded(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    for src, att in state.hosts.items():
        for target in state.hosts.values():
            trace = fabric.send(src, arp_request(state, src, str(target.ip)))
            assert trace.switches == (att.switch,)
            assert [sw for sw, _ in trace.packet_ins] == [att.switch]
            assert trace.delivered_to == () and trace.dropped == ()
        # an ARP reply addressed to a known MAC is not forwarded by the switches either
        reply = {**arp_request(state, src, "10.0.0.1"), "eth_dst": state.hosts["ue1"].mac}
        trace = fabric.send(src, reply)
        assert trace.delivered_to == () and len(trace.packet_ins) == 1


@pytest.mark.parametrize("path", SCENARIOS)
@pytest.mark.parametrize(
    ("eth_dst", "eth_type"),
    [
        (BROADCAST, 0x0800),  # IP broadcast
        ("01:00:5e:00:00:fb", 0x0800),  # mDNS over IPv4 multicast
        ("33:33:00:00:00:01", 0x86DD),  # IPv6 all-nodes (neighbour discovery)
        ("01:80:c2:00:00:00", 0x0800),
    ],
)
def test_broadcast_and_multicast_other_than_arp_are_dropped(
    path: Path, eth_dst: str, eth_type: int
) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    for src, att in state.hosts.items():
        pkt = {**ip_packet(state, src, "ue1" if src != "ue1" else "fw"), "eth_dst": eth_dst}
        pkt["eth_type"] = eth_type
        trace = fabric.send(src, pkt)
        assert trace.switches == (att.switch,)
        assert trace.delivered_to == () and trace.packet_ins == () and trace.dropped == ()


@pytest.mark.parametrize("path", SCENARIOS)
def test_unknown_unicast_is_dropped_at_the_first_core_switch(path: Path) -> None:
    """A site sends what its own hosts' entries do not take up its one link (one entry, not
    one per host); the first core switch has no entry for an unknown MAC: dropped there."""
    state = make_state(path)
    fabric = Fabric(state)
    pkt = ip_packet(state, "ue1", "video", eth_dst="02:00:0a:00:00:99")
    trace = fabric.send("ue1", pkt)
    first = state.hosts["ue1"].switch
    cores = state._index.cores
    assert trace.switches == ((first,) if first in cores else (first, state._index.anchors[first]))
    assert trace.switches[-1] in cores
    assert trace.delivered_to == () and trace.packet_ins == ()


@pytest.mark.parametrize("path", SCENARIOS)
def test_full_config_applied_twice_changes_nothing(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)  # applies every switch's full config twice, checking the snapshot
    once = fabric.snapshot()
    fabric.apply(full_configs(state))
    assert fabric.snapshot() == once


@pytest.mark.parametrize("path", SCENARIOS)
def test_every_flow_carries_one_of_our_cookies(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    kinds = {cookie_kind(e.cookie) for _, e in fabric.all_flows()}
    # routes: between core switches (table 2), and a site's one entry up its link
    assert kinds == {CookieKind.BASE, CookieKind.HOST, CookieKind.CHAIN, CookieKind.ROUTE}


@pytest.mark.parametrize("path", SCENARIOS)
def test_full_config_replaces_flows_left_over_from_an_earlier_life(path: Path) -> None:
    """A switch that reconnects may hold anything of ours: its full config cleans it up."""
    state = make_state(path)
    fresh = Fabric(state)
    stale = make_state(path)
    stale.relocate("video", switch_names(stale)[1])
    stale.reserve("ue1", "hmec2", 10 * 1_000_000, dst_port=7000)
    fabric = Fabric(stale)
    fabric.apply(full_configs(state))
    # Flows are ours by cookie; meters the state never knew of are left alone (see full_config).
    for sw in switch_names(state):
        assert set(fabric.flows(sw)) == set(fresh.flows(sw)), sw


def _every_pair_delivered_avoiding(fabric: Fabric, dead: tuple[str, str]) -> None:
    state = fabric.state
    for src in state.hosts:
        for dst in state.hosts:
            if src != dst:
                trace = fabric.send(src, ip_packet(state, src, dst))
                assert_delivered_once(trace, dst)
                pairs = set(zip(trace.switches, trace.switches[1:], strict=False))
                assert not pairs & {dead, dead[::-1]}, trace


def test_link_down_reroutes_and_link_up_restores() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    before = fabric.snapshot()
    pkt = ip_packet(state, "ue1", "hmec3")
    assert fabric.send("ue1", pkt).switches == ("s1", "core", "s3")

    plan = state.link_down("s1", "core")
    assert plan, "a link on shortest paths went down: something must change"
    fabric.apply_plan(plan)
    trace = fabric.send("ue1", pkt)
    assert_delivered_once(trace, "hmec3")
    assert trace.switches == ("s1", "s2", "s3")
    # nobody uses the dead link in either direction any more
    _every_pair_delivered_avoiding(fabric, ("s1", "core"))

    assert state.link_down("s1", "core") == [], "a second down of the same link is a no-op"
    fabric.apply_plan(state.link_up("s1", "core"))
    assert fabric.send("ue1", pkt).switches == ("s1", "core", "s3")
    assert fabric.snapshot() == before
    assert state.link_up("s1", "core") == []


def test_link_down_of_an_undeclared_link_changes_nothing() -> None:
    state = make_state(THREE_SITES)
    assert state.link_down("s1", "s3") == []
    assert state.link_up("s1", "s3") == []


def test_partition_leaves_each_side_reachable_within_itself() -> None:
    state = make_state(DEFAULT)
    fabric = Fabric(state)
    fabric.apply_plan(state.link_down("s2", "core"))
    trace = fabric.send("ue1", ip_packet(state, "ue1", "hmec2"))
    assert trace.delivered_to == ()
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "hmec1")), "hmec1")
    fabric.apply_plan(state.link_up("s2", "core"))
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "hmec2")), "hmec2")


@pytest.mark.parametrize("path", SCENARIOS)
def test_full_config_after_changes_equals_the_incremental_result(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    others = switch_names(state)
    far = others[-2]  # a site switch other than the first one
    fabric.apply_plan(state.relocate("fw", far)[2])
    fabric.apply_plan(state.reserve("hmec1", "ue1", 5 * 1_000_000, dst_port=7000)[1])
    rec, plan = state.reserve("ue1", "fw", 5 * 1_000_000, dst_port=7001)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.resize(rec.id, 7 * 1_000_000)[1])
    if path == THREE_SITES:
        fabric.apply_plan(state.link_down("s1", "core"))
    fabric.apply_plan(state.relocate("video", far)[2])
    fabric.apply_plan(state.release(1))

    fresh = FabricSim(wiring(state))
    fresh.apply(full_configs(state))
    for sw in switch_names(state):
        assert fabric.table_snapshot(sw) == fresh.table(sw).snapshot(), sw
        # and re-applying the full config on top of the incremental state changes nothing
        fabric.apply({state.dpid(sw): state.switch_config(sw)})
        assert fabric.table_snapshot(sw) == fresh.table(sw).snapshot(), sw


GRID = """
name: grid
description: Six sites under four aggregation switches meshed in a square with a diagonal.
network: {subnet: 10.0.0.0/24}
sites: [{name: mec1}, {name: mec2}, {name: mec3}, {name: mec4}, {name: mec5}, {name: mec6}]
switches:
  - {name: agg1, dpid: 101}
  - {name: agg2, dpid: 102}
  - {name: agg3, dpid: 103}
  - {name: agg4, dpid: 104}
links:
  - {between: [mec1, agg1], capacity: 1Gbit}
  - {between: [mec2, agg1], capacity: 1Gbit}
  - {between: [mec3, agg2], capacity: 1Gbit}
  - {between: [mec4, agg3], capacity: 1Gbit}
  - {between: [mec5, agg4], capacity: 1Gbit}
  - {between: [mec6, agg4], capacity: 1Gbit}
  - {between: [agg1, agg2], capacity: 1Gbit}
  - {between: [agg2, agg4], capacity: 1Gbit}
  - {between: [agg4, agg3], capacity: 1Gbit}
  - {between: [agg3, agg1], capacity: 1Gbit}
  - {between: [agg1, agg4], capacity: 500Mbit}
ues: [{name: ue1, attach: mec6, ip: 10.0.0.100}]
"""
AGG_LINKS = [
    ("agg1", "agg2"),
    ("agg2", "agg4"),
    ("agg4", "agg3"),
    ("agg3", "agg1"),
    ("agg1", "agg4"),
]


@pytest.mark.parametrize("link", AGG_LINKS, ids=["-".join(p) for p in AGG_LINKS])
def test_a_link_between_aggregation_switches_changes_their_routes_only(
    tmp_path: Path, link: tuple[str, str]
) -> None:
    """Forwarding in two steps (controller.forwarding): on a mesh of aggregation switches a
    link between two of them changes table-2 routes and nothing else; every host still reaches
    every other, around it; up again, the tables are as before."""
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    state = make_state(path)
    fabric = Fabric(state)
    before = fabric.snapshot()
    plan = state.link_down(*link)
    msgs = [m for stage in plan for ms in stage.values() for m in ms]
    assert msgs, "a link on shortest paths between aggregation switches went down"
    assert all(isinstance(m, FlowMod) and m.table == TABLE_ROUTE for m in msgs), msgs
    fabric.apply_plan(plan)
    _every_pair_delivered_avoiding(fabric, link)
    fabric.apply_plan(state.link_up(*link))
    assert fabric.snapshot() == before


def test_a_sites_uplink_changes_no_flow(tmp_path: Path) -> None:
    """A host's entries follow from the declared topology: a site cut off changes no flow
    (what is sent out of its dead uplink is dropped there), the others still reach each
    other, and the site is back when its link is."""
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    state = make_state(path)
    fabric = Fabric(state)
    before = fabric.snapshot()
    plan = state.link_down("s5", "agg4")
    assert not [m for stage in plan for ms in stage.values() for m in ms]
    fabric.apply({})  # nothing to send; the software fabric's cable is cut
    cut = fabric.send("ue1", ip_packet(state, "ue1", "hmec5"))
    assert cut.delivered_to == ()
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "hmec1")), "hmec1")
    assert not [m for stage in state.link_up("s5", "agg4") for ms in stage.values() for m in ms]
    fabric.apply({})
    assert_delivered_once(fabric.send("ue1", ip_packet(state, "ue1", "hmec5")), "hmec5")
    assert fabric.snapshot() == before
