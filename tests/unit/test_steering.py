"""SFC steering on the software fabric: the chain ue1 -> fw -> video (tcp/8080) goes through fw
both ways, other traffic goes straight, and the chain follows its members when they move."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.ofmsg import CookieKind, cookie, cookie_kind
from controller.state import FabricState
from controller.steering import Chain, ChainError, chain_flows
from tests.unit.controller_helpers import (
    DEFAULT,
    THREE_SITES,
    Fabric,
    assert_delivered_once,
    forward,
    ip_packet,
    make_state,
)
from topology.scenario import parse_scenario

SCENARIOS = [pytest.param(DEFAULT, id="default"), pytest.param(THREE_SITES, id="three-sites")]
CHAIN_COOKIE = cookie(CookieKind.CHAIN, 1)


def mac(state: FabricState, host: str) -> str:
    value = state.hosts[host].mac
    assert value is not None
    return value


def assert_chain_works(state: FabricState, fabric: Fabric, sport: int = 41000) -> None:
    """A request and its reply each pass through fw, in both directions, exactly once."""
    syn = ip_packet(state, "ue1", "video", dport=8080, sport=sport)
    trace = fabric.send("ue1", syn)
    assert_delivered_once(trace, "fw")
    arrived = trace.delivered[0][1]
    assert arrived["eth_dst"] == mac(state, "fw")
    assert arrived["ipv4_dst"] == state.hosts["video"].ip  # only the MAC was rewritten

    # fw routes it on: its own MAC as source, video's as destination (its kernel's ARP answer)
    trace = fabric.send("fw", forward(arrived, mac(state, "fw"), mac(state, "video")))
    assert_delivered_once(trace, "video")
    assert trace.delivered[0][1]["eth_dst"] == mac(state, "video")

    # video answers the UE (its kernel addresses the UE's MAC): steered back to fw ...
    reply = ip_packet(state, "video", "ue1", dport=sport, sport=8080)
    trace = fabric.send("video", reply)
    assert_delivered_once(trace, "fw")
    arrived = trace.delivered[0][1]
    assert arrived["eth_dst"] == mac(state, "fw")

    # ... which routes it to the UE
    trace = fabric.send("fw", forward(arrived, mac(state, "fw"), mac(state, "ue1")))
    assert_delivered_once(trace, "ue1")
    assert trace.delivered[0][1]["eth_dst"] == mac(state, "ue1")


def assert_other_traffic_goes_straight(state: FabricState, fabric: Fabric) -> None:
    for pkt in (
        ip_packet(state, "ue1", "video", dport=22),
        ip_packet(state, "ue1", "video", proto="icmp"),
        ip_packet(state, "ue1", "video", proto="udp", dport=8080),
    ):
        assert_delivered_once(fabric.send("ue1", pkt), "video")
    for pkt in (
        ip_packet(state, "video", "ue1", sport=22),
        ip_packet(state, "video", "ue1", proto="icmp"),
    ):
        assert_delivered_once(fabric.send("video", pkt), "ue1")
    # another host talking to video on the chain's port is not the chain's UE
    assert_delivered_once(
        fabric.send("hmec2", ip_packet(state, "hmec2", "video", dport=8080)), "video"
    )
    # fw talking to video on its own account (its own IP as source) goes straight too
    assert_delivered_once(fabric.send("fw", ip_packet(state, "fw", "video", dport=8080)), "video")


def steering_flows_at(fabric: Fabric, switch: str, host_mac: str) -> list[object]:
    return [
        e
        for e in fabric.flows(switch)
        if cookie_kind(e.cookie) == CookieKind.CHAIN and e.match.get("eth_src") == host_mac
    ]


@pytest.mark.parametrize("path", SCENARIOS)
def test_chain_traffic_goes_through_fw_both_ways(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    assert_chain_works(state, fabric)


@pytest.mark.parametrize("path", SCENARIOS)
def test_traffic_outside_the_chain_goes_straight(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    assert_other_traffic_goes_straight(state, fabric)


@pytest.mark.parametrize("path", SCENARIOS)
def test_every_steering_flow_carries_the_chain_cookie(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    chain = [(sw, e) for sw, e in fabric.all_flows() if cookie_kind(e.cookie) == CookieKind.CHAIN]
    assert len(chain) == 4  # two hops each way
    assert {e.cookie for _, e in chain} == {CHAIN_COOKIE}


@pytest.mark.parametrize("path", SCENARIOS)
@pytest.mark.parametrize("where", ["mec2", "s2"])
def test_chain_follows_fw_when_it_moves(path: Path, where: str) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    fw_mac = mac(state, "fw")
    assert steering_flows_at(fabric, "s1", fw_mac)

    old, new, plan = state.relocate("fw", where)
    assert (old.switch, new.switch) == ("s1", "s2")
    fabric.apply_plan(plan)  # every stage applied twice: idempotent

    assert steering_flows_at(fabric, "s1", fw_mac) == []
    assert len(steering_flows_at(fabric, "s2", fw_mac)) == 2
    assert_chain_works(state, fabric)
    assert_other_traffic_goes_straight(state, fabric)

    # the request now crosses the network to reach fw, and back to reach video
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=8080))
    assert trace.switches[0] == "s1" and trace.switches[-1] == "s2"


@pytest.mark.parametrize("path", SCENARIOS)
def test_chain_follows_video_when_it_moves(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    video_mac = mac(state, "video")
    target = "s3" if path == THREE_SITES else "s2"
    fabric.apply_plan(state.relocate("video", target)[2])

    assert steering_flows_at(fabric, "s1", video_mac) == []
    assert len(steering_flows_at(fabric, target, video_mac)) == 1  # video only sends replies
    assert_chain_works(state, fabric)
    assert_other_traffic_goes_straight(state, fabric)


@pytest.mark.parametrize("path", SCENARIOS)
def test_chain_survives_every_member_moving_apart_and_back(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    before = fabric.snapshot()
    last = "s3" if path == THREE_SITES else "core"
    fabric.apply_plan(state.relocate("fw", "s2")[2])
    fabric.apply_plan(state.relocate("video", last)[2])
    assert_chain_works(state, fabric)
    fabric.apply_plan(state.relocate("fw", "s1")[2])
    fabric.apply_plan(state.relocate("video", "s1")[2])
    assert_chain_works(state, fabric)
    assert fabric.snapshot() == before  # back at their declared ports: the same tables


@pytest.mark.parametrize("path", SCENARIOS)
def test_chain_follows_the_ue_when_it_moves(path: Path) -> None:
    state = make_state(path)
    fabric = Fabric(state)
    fabric.apply_plan(state.relocate("ue1", "s2")[2])
    assert steering_flows_at(fabric, "s1", mac(state, "ue1")) == []
    assert_chain_works(state, fabric)
    assert_other_traffic_goes_straight(state, fabric)


def test_full_config_applied_twice_keeps_the_chain() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    fabric.apply_plan(state.relocate("fw", "s2")[2])
    once = fabric.snapshot()
    for sw in ("s1", "s2", "s3", "core"):
        fabric.apply({state.dpid(sw): state.switch_config(sw)})
    assert fabric.snapshot() == once
    assert_chain_works(state, fabric)


def test_chain_of_a_member_without_an_address_is_refused() -> None:
    state = make_state(DEFAULT)
    hosts = dict(state.hosts)
    with pytest.raises(ChainError, match="nobody"):
        chain_flows(Chain("c", ("ue1", "nobody", "video")), hosts, 1)


def test_chain_any_protocol_steers_everything_from_the_ue_to_the_server() -> None:
    text = DEFAULT.read_text().replace("{proto: tcp, port: 8080}", "{proto: any}")
    assert "{proto: any}" in text
    state = FabricState(parse_scenario(text))
    fabric = Fabric(state)
    for proto in ("tcp", "udp", "icmp"):
        trace = fabric.send("ue1", ip_packet(state, "ue1", "video", proto=proto))
        assert_delivered_once(trace, "fw")
