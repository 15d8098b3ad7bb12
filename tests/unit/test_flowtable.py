"""The software switch and fabric: OpenFlow 1.3 semantics of flow mods, meters and pipelines."""

from __future__ import annotations

import pickle

import pytest

from controller.fabricsim import FabricSim, Hop, LoopError, Trace
from controller.flowtable import (
    IN_PORT,
    Entry,
    FlowTableError,
    SwitchTable,
    Verdict,
    match_key,
)
from controller.ofmsg import (
    CONTROLLER_PORT,
    COOKIE_ALL,
    COOKIE_KIND_SHIFT,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    TABLE_ALL,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    Barrier,
    CookieKind,
    FlowMod,
    Match,
    Message,
    MeterMod,
    Output,
    PacketOut,
    SetField,
    cookie,
    merge,
)
from topology.errors import UnknownNodeError
from topology.model import HostSpec, Link, Switch, Topology

M = 1_000_000
KIND_MASK = 0xFF << COOKIE_KIND_SHIFT
MAC1, MAC2, MAC3 = "02:00:0a:00:00:01", "02:00:0a:00:00:02", "02:00:0a:00:00:03"
IP1, IP2, IP3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def udp(src: str = IP1, dst: str = IP2, dport: int = 5001, **extra: object) -> dict[str, object]:
    pkt: dict[str, object] = {
        "eth_src": MAC1,
        "eth_dst": MAC2,
        "eth_type": ETH_TYPE_IP,
        "ip_proto": 17,
        "ipv4_src": src,
        "ipv4_dst": dst,
        "udp_src": 40000,
        "udp_dst": dport,
    }
    pkt.update(extra)
    return pkt


def arp_request(tpa: str = IP2) -> dict[str, object]:
    return {
        "eth_src": MAC1,
        "eth_dst": "ff:ff:ff:ff:ff:ff",
        "eth_type": ETH_TYPE_ARP,
        "arp_op": 1,
        "arp_tpa": tpa,
    }


def add(
    priority: int,
    match: Match,
    *actions: Output | SetField,
    table: int = TABLE_CLASSIFY,
    goto: int | None = None,
    meter: int | None = None,
    ck: int = 0,
) -> FlowMod:
    return FlowMod(
        "add",
        table=table,
        priority=priority,
        match=match,
        actions=tuple(actions),
        goto=goto,
        meter=meter,
        cookie=ck,
    )


def meter_add(mid: int, rate_kbps: int = 10_000, burst_kb: int = 1_000) -> MeterMod:
    return MeterMod("add", mid, rate_kbps, burst_kb)


def table_with(*msgs: Message) -> SwitchTable:
    sw = SwitchTable("s1")
    sw.apply(msgs)
    return sw


# ------------------------------------------------------------------------------ flow add


def test_add_inserts_and_same_table_priority_match_replaces() -> None:
    sw = table_with(add(10, Match.of(eth_dst=MAC2), Output(1), ck=1))
    sw.apply([add(10, Match.of(eth_dst=MAC2), Output(2), ck=2)])
    (entry,) = sw.flows()
    assert entry.cookie == 2
    assert entry.actions == (Output(2),)
    assert sw.lookup(udp(), 5).ports == (2,)


def test_replace_compares_matches_not_their_spelling() -> None:
    sw = table_with(add(10, Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=IP2), Output(1)))
    # Same fields in another order, and a fully masked value equals the exact one.
    unsorted = Match((("ipv4_dst", (IP2, "255.255.255.255")), ("eth_type", ETH_TYPE_IP)))
    sw.apply([add(10, unsorted, Output(2))])
    assert len(sw.flows()) == 1
    assert sw.lookup(udp(), 5).ports == (2,)
    # Bits outside the mask do not count either.
    subnet = Match.of(ipv4_dst=("10.0.0.77", "255.255.255.0"))
    sw.apply([add(10, subnet, Output(3))])
    sw.apply([add(10, Match.of(ipv4_dst=("10.0.0.0", "255.255.255.0")), Output(4))])
    assert [e.actions for e in sw.flows()] == [(Output(2),), (Output(4),)]


def test_other_priority_or_table_is_another_entry() -> None:
    match = Match.of(eth_dst=MAC2)
    sw = table_with(
        add(10, match, Output(1)),
        add(20, match, Output(2)),
        add(10, match, Output(3), table=TABLE_FORWARD),
    )
    assert len(sw.flows()) == 3
    assert len(sw.flows(TABLE_CLASSIFY)) == 2
    assert [e.priority for e in sw.flows(TABLE_CLASSIFY)] == [20, 10]
    assert sw.flows(TABLE_FORWARD)[0].actions == (Output(3),)
    assert sw.flows(7) == ()


def test_highest_priority_wins_and_ties_go_to_the_first_inserted() -> None:
    sw = table_with(
        add(5, Match(), Output(9)),
        add(10, Match.of(eth_type=ETH_TYPE_IP), Output(1)),
        add(10, Match.of(ip_proto=17), Output(2)),
        add(1, Match.of(eth_dst=MAC2), Output(3)),
    )
    verdict = sw.lookup(udp(), 5)
    assert verdict.ports == (1,)
    assert verdict.entries == (sw.flows()[0],)
    assert sw.lookup(arp_request(), 5).ports == (9,)


def test_flow_with_unknown_meter_is_refused_and_not_installed() -> None:
    sw = SwitchTable("s1")
    with pytest.raises(FlowTableError) as err:
        sw.apply([add(10, Match(), Output(1), meter=7)])
    assert err.value.code == "OFPMMFC_UNKNOWN_METER"
    assert err.value.switch == "s1"
    assert sw.flows() == ()


def test_messages_before_a_refused_one_stay_applied() -> None:
    sw = SwitchTable()
    with pytest.raises(FlowTableError):
        sw.apply([add(1, Match(), Output(1)), add(2, Match(), Output(2), meter=3), meter_add(4)])
    assert [e.priority for e in sw.flows()] == [1]
    assert sw.meters == {}


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        (add(1, Match(), goto=0), "OFPBIC_BAD_TABLE_ID"),
        (add(1, Match(), table=1, goto=1), "OFPBIC_BAD_TABLE_ID"),
        (add(1, Match(), table=TABLE_ALL), "OFPFMFC_BAD_TABLE_ID"),
        (add(70_000, Match()), "OFPFMFC_BAD_PRIORITY"),
        (add(1, Match.of(ipv4_dst="10.0.0.300")), "OFPBMC_BAD_VALUE"),
        (add(1, Match.of(eth_type=0x1_0000)), "OFPBMC_BAD_VALUE"),
        (add(1, Match.of(ipv4_dst=(IP1, "255.255.255.255.0"))), "OFPBMC_BAD_VALUE"),
        (add(1, Match((("eth_type", 0x800), ("eth_type", 0x806)))), "OFPBMC_DUP_FIELD"),
        (add(1, Match(), SetField("eth_dst", "nonsense")), "OFPBAC_BAD_SET_ARGUMENT"),
    ],
)
def test_malformed_flow_mods_are_refused(msg: FlowMod, code: str) -> None:
    sw = SwitchTable()
    with pytest.raises(FlowTableError) as err:
        sw.apply([msg])
    assert err.value.code == code
    assert sw.flows() == ()


def test_errors_pickle() -> None:
    err = FlowTableError("OFPMMFC_UNKNOWN_METER", "meter 7", "s2")
    back = pickle.loads(pickle.dumps(err))
    assert (back.code, back.detail, back.switch, str(back)) == (
        err.code,
        err.detail,
        err.switch,
        str(err),
    )
    loop = pickle.loads(pickle.dumps(LoopError(64, ("s1", "s2"))))
    assert loop.switches == ("s1", "s2")


# ------------------------------------------------------------------------------ flow delete


def reservation_and_host_flows() -> SwitchTable:
    return table_with(
        meter_add(7),
        meter_add(8),
        add(
            3000,
            Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=IP2, udp_dst=5001),
            Output(1),
            meter=7,
            ck=cookie(CookieKind.RESERVATION, 7),
        ),
        add(
            3000,
            Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=IP3),
            Output(2),
            meter=8,
            ck=cookie(CookieKind.RESERVATION, 8),
        ),
        add(
            100,
            Match.of(eth_dst=MAC2),
            Output(1),
            table=TABLE_FORWARD,
            ck=cookie(CookieKind.HOST, 2),
        ),
        add(
            100,
            Match.of(eth_dst=MAC3),
            Output(2),
            table=TABLE_FORWARD,
            ck=cookie(CookieKind.HOST, 3),
        ),
        add(0, Match(), goto=TABLE_FORWARD, ck=cookie(CookieKind.BASE)),
    )


def test_loose_delete_by_exact_cookie_removes_only_that_reservation() -> None:
    sw = reservation_and_host_flows()
    ck = cookie(CookieKind.RESERVATION, 7)
    sw.apply([FlowMod("delete", table=TABLE_ALL, cookie=ck, cookie_mask=COOKIE_ALL)])
    cookies = {e.cookie for e in sw.flows()}
    assert ck not in cookies
    assert cookie(CookieKind.RESERVATION, 8) in cookies
    assert len(sw.flows()) == 4
    assert sw.meters.keys() == {7, 8}  # deleting flows leaves meters alone


def test_loose_delete_by_cookie_kind_mask_removes_every_flow_of_that_kind() -> None:
    sw = reservation_and_host_flows()
    kind = cookie(CookieKind.RESERVATION)
    sw.apply([FlowMod("delete", table=TABLE_ALL, cookie=kind, cookie_mask=KIND_MASK)])
    assert {e.cookie >> COOKIE_KIND_SHIFT for e in sw.flows()} == {CookieKind.HOST, CookieKind.BASE}


def test_loose_delete_in_one_table_leaves_the_other_tables() -> None:
    sw = reservation_and_host_flows()
    sw.apply([FlowMod("delete", table=TABLE_FORWARD)])  # empty match, no cookie mask: all of t1
    assert sw.flows(TABLE_FORWARD) == ()
    assert len(sw.flows(TABLE_CLASSIFY)) == 3


def test_delete_in_table_all_with_empty_match_clears_every_table() -> None:
    sw = reservation_and_host_flows()
    sw.apply([FlowMod("delete", table=TABLE_ALL)])
    assert sw.flows() == ()
    assert sw.meters.keys() == {7, 8}


def test_loose_delete_removes_flows_at_least_as_specific_as_the_match() -> None:
    sw = reservation_and_host_flows()
    sw.apply([add(1000, Match.of(eth_type=ETH_TYPE_ARP), Output(CONTROLLER_PORT))])
    sw.apply([FlowMod("delete", table=TABLE_CLASSIFY, match=Match.of(eth_type=ETH_TYPE_IP))])
    left = sw.flows(TABLE_CLASSIFY)
    assert [e.match for e in left] == [Match.of(eth_type=ETH_TYPE_ARP), Match()]
    sw.apply([FlowMod("delete", table=TABLE_FORWARD, match=Match.of(eth_dst=MAC2))])
    assert [e.match for e in sw.flows(TABLE_FORWARD)] == [Match.of(eth_dst=MAC3)]


def test_loose_delete_with_a_masked_match_takes_the_narrower_flows() -> None:
    sw = table_with(
        add(10, Match.of(ipv4_dst=IP2), Output(1)),
        add(10, Match.of(ipv4_dst=("10.0.0.0", "255.255.255.0")), Output(2)),
        add(10, Match.of(ipv4_dst=("10.0.0.0", "255.255.0.0")), Output(3)),
        add(10, Match.of(ipv4_dst="10.1.0.1"), Output(4)),
    )
    sw.apply([FlowMod("delete", match=Match.of(ipv4_dst=("10.0.0.0", "255.255.255.0")))])
    assert [e.actions for e in sw.flows()] == [(Output(3),), (Output(4),)]


def test_delete_by_out_port() -> None:
    sw = reservation_and_host_flows()
    sw.apply([FlowMod("delete", table=TABLE_ALL, out_port=1)])
    assert all(not e.outputs_to(1) for e in sw.flows())
    assert len(sw.flows()) == 3  # the goto-only default flow has no output and stays


def test_strict_delete_needs_same_priority_and_identical_match() -> None:
    match = Match.of(eth_type=ETH_TYPE_IP)
    sw = table_with(
        add(10, match, Output(1)),
        add(20, match, Output(2)),
        add(10, Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=IP2), Output(3)),
    )
    sw.apply([FlowMod("delete_strict", priority=10, match=match)])
    assert [(e.priority, e.actions) for e in sw.flows()] == [(20, (Output(2),)), (10, (Output(3),))]
    sw.apply([FlowMod("delete_strict", priority=99, match=match)])
    assert len(sw.flows()) == 2


def test_strict_delete_respects_the_cookie_mask() -> None:
    match = Match.of(eth_dst=MAC2)
    sw = table_with(add(10, match, Output(1), ck=5))
    sw.apply([FlowMod("delete_strict", priority=10, match=match, cookie=6, cookie_mask=0xF)])
    assert len(sw.flows()) == 1
    sw.apply([FlowMod("delete_strict", priority=10, match=match, cookie=5, cookie_mask=0xF)])
    assert sw.flows() == ()


def test_deleting_nothing_is_fine() -> None:
    sw = SwitchTable()
    sw.apply([FlowMod("delete", table=TABLE_ALL), FlowMod("delete_strict", table=3)])
    assert sw.flows() == ()


# ------------------------------------------------------------------------------ meters


def test_meter_add_twice_is_refused() -> None:
    sw = table_with(meter_add(7, 5_000, 500))
    assert sw.meters == {7: (5_000, 500)}
    with pytest.raises(FlowTableError) as err:
        sw.apply([meter_add(7, 9_000)])
    assert err.value.code == "OFPMMFC_METER_EXISTS"
    assert sw.meters == {7: (5_000, 500)}


def test_meter_modify_changes_rate_and_keeps_flows() -> None:
    sw = table_with(meter_add(7, 5_000, 500), add(10, Match(), Output(1), meter=7))
    sw.apply([MeterMod("modify", 7, 20_000, 2_000)])
    assert sw.meters == {7: (20_000, 2_000)}
    assert sw.lookup(udp(), 2).meters == (7,)


def test_meter_modify_of_a_missing_meter_is_refused() -> None:
    sw = SwitchTable()
    with pytest.raises(FlowTableError) as err:
        sw.apply([MeterMod("modify", 7, 20_000, 2_000)])
    assert err.value.code == "OFPMMFC_UNKNOWN_METER"
    assert sw.meters == {}


def test_meter_delete_removes_the_flows_that_use_it() -> None:
    sw = reservation_and_host_flows()
    sw.apply([MeterMod("delete", 7)])
    assert sw.meters.keys() == {8}
    assert all(e.meter != 7 for e in sw.flows())
    assert len(sw.flows()) == 4
    assert sw.lookup(udp(), 2).meters == ()  # now forwarded without the reservation


def test_deleting_a_missing_meter_is_a_no_op() -> None:
    sw = reservation_and_host_flows()
    before = sw.snapshot()
    sw.apply([MeterMod("delete", 99)])
    assert sw.snapshot() == before


def test_meters_property_is_a_copy() -> None:
    sw = table_with(meter_add(7))
    sw.meters[8] = (1, 1)
    assert sw.meters.keys() == {7}


# ------------------------------------------------------------------------------ lookup


def test_masked_mac_matches_multicast_destinations_only() -> None:
    sw = table_with(
        add(50, Match.of(eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00"))),  # drop
        add(10, Match(), Output(1)),
    )
    assert sw.lookup(arp_request(), 2).dropped
    assert sw.lookup(udp(eth_dst="33:33:00:00:00:01"), 2).dropped
    assert sw.lookup(udp(), 2).ports == (1,)


def test_mac_matching_ignores_case() -> None:
    sw = table_with(add(10, Match.of(eth_dst=MAC2.upper()), Output(1)))
    assert sw.lookup(udp(), 2).ports == (1,)


def test_masked_ipv4_and_masked_int() -> None:
    sw = table_with(
        add(20, Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=("10.0.0.0", "255.255.255.0")), Output(1)),
        add(10, Match.of(udp_dst=(5000, 0xFFF0)), Output(2)),
    )
    assert sw.lookup(udp(dst="10.0.0.200"), 3).ports == (1,)
    assert sw.lookup(udp(dst="10.0.1.2", dport=5007), 3).ports == (2,)
    assert sw.lookup(udp(dst="10.0.1.2", dport=5016), 3).dropped


def test_a_field_the_packet_lacks_does_not_match() -> None:
    sw = table_with(add(10, Match.of(tcp_dst=80), Output(1)))
    assert sw.lookup(udp(), 2).dropped
    assert sw.lookup(udp(tcp_dst=80), 2).ports == (1,)


def test_in_port_comes_from_the_argument() -> None:
    sw = table_with(add(10, Match.of(in_port=3), Output(1)))
    assert sw.lookup(udp(), 3).ports == (1,)
    assert sw.lookup(udp(in_port=3), 4).dropped


def test_a_bad_packet_value_is_an_error() -> None:
    sw = table_with(add(10, Match.of(ipv4_dst=IP2), Output(1)))
    with pytest.raises(FlowTableError) as err:
        sw.lookup(udp(dst="not-an-ip"), 2)
    assert err.value.code == "BAD_PACKET"


def test_no_flow_means_drop() -> None:
    verdict = SwitchTable().lookup(udp(), 1)
    assert verdict == Verdict()
    assert verdict.dropped
    assert not verdict.to_controller


def test_goto_pipeline_with_set_field() -> None:
    sw = table_with(
        meter_add(7),
        add(
            3000,
            Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=IP2),
            SetField("eth_dst", MAC3),
            SetField("ipv4_dst", IP3),
            goto=TABLE_FORWARD,
            meter=7,
        ),
        add(100, Match.of(eth_dst=MAC2), Output(1), table=TABLE_FORWARD),
        add(100, Match.of(eth_dst=MAC3), Output(2), table=TABLE_FORWARD),
    )
    verdict = sw.lookup(udp(), 5)
    assert verdict.meters == (7,)
    assert [e.table for e in verdict.entries] == [0, 1]
    ((port, out),) = verdict.outputs
    assert port == 2
    assert out == udp(dst=IP3, eth_dst=MAC3)


def test_output_copies_the_packet_as_it_is_at_that_moment() -> None:
    original = udp()
    sw = table_with(add(10, Match(), Output(1), SetField("eth_dst", MAC3), Output(2)))
    verdict = sw.lookup(original, 5)
    assert verdict.outputs == ((1, original), (2, udp(eth_dst=MAC3)))
    assert original == udp()  # the caller's packet is never touched


def test_goto_without_a_match_in_the_next_table_keeps_earlier_outputs() -> None:
    sw = table_with(add(10, Match(), Output(1), goto=TABLE_FORWARD))
    verdict = sw.lookup(udp(), 5)
    assert verdict.ports == (1,)
    assert len(verdict.entries) == 1


def test_output_to_the_ingress_port_is_not_sent_but_in_port_is() -> None:
    sw = table_with(add(10, Match(), Output(3), Output(4)))
    assert sw.lookup(udp(), 3).ports == (4,)
    sw.apply([add(10, Match(), Output(IN_PORT))])
    assert sw.lookup(udp(), 3).ports == (3,)


def test_to_controller() -> None:
    sw = table_with(add(1000, Match.of(eth_type=ETH_TYPE_ARP), Output(CONTROLLER_PORT)))
    verdict = sw.lookup(arp_request(), 2)
    assert verdict.to_controller
    assert not verdict.dropped
    assert verdict.outputs == ((CONTROLLER_PORT, arp_request()),)
    assert not sw.lookup(udp(), 2).to_controller


def test_barrier_changes_nothing_and_packet_outs_are_recorded() -> None:
    sw = reservation_and_host_flows()
    before = sw.snapshot()
    out = PacketOut(2, b"\x00" * 60)
    sw.apply([Barrier(), out, Barrier()])
    assert sw.snapshot() == before
    assert sw.packet_outs == [out]


def test_dump_and_describe_are_readable() -> None:
    sw = reservation_and_host_flows()
    text = sw.dump()
    assert "meter 7: 10000 kbit/s" in text
    assert "meter:7" in text
    assert "goto:1" in text
    entry = Entry(1, 100, Match.of(eth_dst=MAC2), (Output(1),), cookie=2)
    assert entry.describe() == f"t1 p100 cookie=0x2 match[eth_dst={MAC2}] actions:output:1"
    assert repr(sw) == "SwitchTable('s1', 5 flows, 2 meters)"


def test_match_key_normalises_masks() -> None:
    assert match_key(Match.of(ipv4_dst=("10.0.0.9", "255.255.255.0"))) == {
        "ipv4_dst": (0x0A000000, 0xFFFFFF00)
    }
    assert match_key(Match.of(eth_type=ETH_TYPE_IP)) == {"eth_type": (0x800, 0xFFFF)}


# ------------------------------------------------------------------------------ snapshots


def reservation_batch(rate_kbps: int = 10_000) -> list[Message]:
    """(Re)install reservation 7 from scratch: clear its flows and meter, then add them."""
    ck = cookie(CookieKind.RESERVATION, 7)
    return [
        FlowMod("delete", table=TABLE_ALL, cookie=ck, cookie_mask=COOKIE_ALL),
        MeterMod("delete", 7),
        MeterMod("add", 7, rate_kbps, 1_000),
        add(3000, Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=IP2), Output(1), meter=7, ck=ck),
        Barrier(),
    ]


def test_applying_a_batch_twice_gives_the_same_snapshot() -> None:
    sw = table_with(add(0, Match(), goto=TABLE_FORWARD))
    sw.apply(reservation_batch())
    once = sw.snapshot()
    sw.apply(reservation_batch())
    assert sw.snapshot() == once
    assert hash(once) == hash(sw.snapshot())
    assert sw.meters == {7: (10_000, 1_000)}
    assert sw.lookup(udp(), 5).meters == (7,)
    sw.apply(reservation_batch(rate_kbps=20_000))
    assert sw.snapshot() != once


def test_order_matters_a_delete_after_an_add_removes_the_new_flow() -> None:
    ck = cookie(CookieKind.RESERVATION, 7)
    flow = add(3000, Match.of(ipv4_dst=IP2), Output(1), meter=7, ck=ck)
    sw = table_with(
        meter_add(7),
        flow,
        FlowMod("delete", table=TABLE_ALL, cookie=ck, cookie_mask=COOKIE_ALL),
    )
    assert sw.flows() == ()
    sw = table_with(meter_add(7), flow, MeterMod("delete", 7), meter_add(7))
    assert sw.flows() == ()  # the meter delete took the flow with it
    with pytest.raises(FlowTableError):
        table_with(meter_add(7), flow, meter_add(7))  # re-adding an existing meter fails


def test_snapshot_ignores_installation_order() -> None:
    msgs: list[Message] = [
        meter_add(7),
        add(10, Match.of(eth_dst=MAC2), Output(1), meter=7),
        add(10, Match.of(eth_dst=MAC3), Output(2)),
        add(0, Match(), table=TABLE_FORWARD),
    ]
    forward, backward = SwitchTable(), SwitchTable()
    forward.apply(msgs)
    backward.apply([msgs[0], *reversed(msgs[1:])])
    assert forward.snapshot() == backward.snapshot()


# ------------------------------------------------------------------------------ fabric


def line() -> Topology:
    """h1 - s1 - s2 - s3 - h2, h3 (links take the low port numbers, hosts the next ones)."""
    return Topology.build(
        [Switch("s1", 1), Switch("s2", 2), Switch("s3", 3)],
        [Link("s1", "s2", 100 * M), Link("s2", "s3", 100 * M)],
        hosts=[
            HostSpec("h1", "s1", ip=IP1, mac=MAC1),
            HostSpec("h2", "s3", ip=IP2, mac=MAC2),
            HostSpec("h3", "s3", ip=IP3, mac=MAC3),
        ],
    )


def path_flows(
    topo: Topology, dst: str, path: list[str], meter: int | None = None, table: int = 0
) -> dict[int, list[Message]]:
    """Destination-MAC flows in `table` (metered, if `meter`) along `path` to host `dst`."""
    att = topo.attachment(dst)
    assert att.mac is not None
    batch: dict[int, list[Message]] = {}
    for here, nxt in zip(path, [*path[1:], None], strict=True):
        port = att.port if nxt is None else topo.port_to(here, nxt)
        msgs: list[Message] = [meter_add(meter)] if meter is not None else []
        msgs.append(add(100, Match.of(eth_dst=att.mac), Output(port), table=table, meter=meter))
        batch[topo.switch(here).dpid] = msgs
    return batch


def test_trace_crosses_switches_to_the_host_through_the_meter() -> None:
    topo = line()
    fab = FabricSim(topo)
    fab.apply(path_flows(topo, "h2", ["s1", "s2", "s3"], meter=7))
    trace = fab.send("h1", udp())
    assert trace.delivered_to == ("h2",)
    assert trace.switches == ("s1", "s2", "s3")
    assert trace.meters == {7}
    assert trace.hops[0] == Hop("s1", topo.attachment("h1").port, (topo.port_to("s1", "s2"),), (7,))
    assert trace.hops[1].in_port == topo.port_to("s2", "s1")
    assert trace.hops[2] == Hop("s3", topo.port_to("s3", "s2"), (topo.attachment("h2").port,), (7,))
    assert trace.delivered == (("h2", udp()),)
    assert trace.packet_ins == () and trace.dropped == () and trace.table_misses == ()


def test_trace_delivers_the_rewritten_packet() -> None:
    topo = line()
    fab = FabricSim(topo)
    fab.apply(path_flows(topo, "h3", ["s1", "s2", "s3"], table=TABLE_FORWARD))
    fab.apply({sw.dpid: [add(0, Match(), goto=TABLE_FORWARD)] for sw in topo.switches})
    to_h2 = Match.of(eth_dst=MAC2)
    redirect = add(3000, to_h2, SetField("eth_dst", MAC3), SetField("ipv4_dst", IP3), goto=1)
    fab.apply({1: [redirect]})
    trace = fab.send("h1", udp())
    assert trace.delivered == (("h3", udp(dst=IP3, eth_dst=MAC3)),)
    assert trace.switches == ("s1", "s2", "s3")


def test_trace_forks_to_several_hosts() -> None:
    topo = line()
    fab = FabricSim(topo)
    bcast = Match.of(eth_dst="ff:ff:ff:ff:ff:ff")
    fab.apply(
        {
            1: [add(10, bcast, Output(topo.port_to("s1", "s2")))],
            2: [add(10, bcast, Output(topo.port_to("s2", "s3")))],
            3: [add(10, bcast, *(Output(topo.attachment(h).port) for h in ("h2", "h3")))],
        }
    )
    trace = fab.send("h1", arp_request())
    assert trace.delivered_to == ("h2", "h3")


def test_packet_in_is_recorded_with_its_switch() -> None:
    topo = line()
    fab = FabricSim(topo)
    fab.apply({1: [add(1000, Match.of(eth_type=ETH_TYPE_ARP), Output(CONTROLLER_PORT))]})
    trace = fab.send("h1", arp_request())
    assert trace.packet_ins == (("s1", arp_request()),)
    assert trace.delivered == ()
    assert trace.switches == ("s1",)


def test_table_miss_and_unknown_port() -> None:
    topo = line()
    fab = FabricSim(topo)
    fab.apply({1: [add(10, Match(), Output(topo.port_to("s1", "s2")), Output(42))]})
    trace = fab.send("h1", udp())
    assert trace.dropped == ("dropped at s1:42",)
    assert trace.switches == ("s1", "s2")
    assert trace.table_misses == ("s2",)
    assert trace.delivered == ()


def test_forwarding_loop_is_detected() -> None:
    ring = Topology.build(
        [Switch("s1", 1), Switch("s2", 2), Switch("s3", 3)],
        [Link("s1", "s2", M), Link("s2", "s3", M), Link("s3", "s1", M)],
        hosts=[HostSpec("h1", "s1", ip=IP1, mac=MAC1)],
    )
    fab = FabricSim(ring)
    fab.apply(
        {
            ring.switch(here).dpid: [add(10, Match(), Output(ring.port_to(here, nxt)))]
            for here, nxt in (("s1", "s2"), ("s2", "s3"), ("s3", "s1"))
        }
    )
    with pytest.raises(LoopError) as err:
        fab.send("h1", udp())
    assert err.value.limit == 64
    assert len(err.value.switches) == 65  # the 65th visit is refused
    assert err.value.switches[:4] == ("s1", "s2", "s3", "s1")


def test_bouncing_back_needs_in_port() -> None:
    topo = line()
    fab = FabricSim(topo)
    fab.apply(
        {
            1: [add(10, Match(), Output(topo.port_to("s1", "s2")))],
            2: [add(10, Match(), Output(topo.port_to("s2", "s1")))],  # = its in_port: not sent
        }
    )
    trace = fab.send("h1", udp())
    assert trace.switches == ("s1", "s2")
    assert trace.table_misses == ("s2",)
    fab.apply({2: [add(10, Match(), Output(IN_PORT))]})
    trace = fab.send("h1", udp())  # back at s1, whose output to s2 is now its in_port
    assert trace.switches == ("s1", "s2", "s1")
    assert trace.hops[2] == Hop("s1", topo.port_to("s1", "s2"), (), ())


def test_loop_limit_is_configurable_and_exact() -> None:
    topo = line()
    fab = FabricSim(topo, max_visits=3)
    fab.apply(path_flows(topo, "h2", ["s1", "s2", "s3"]))
    assert fab.send("h1", udp()).delivered_to == ("h2",)  # exactly 3 visits is fine
    fab = FabricSim(topo, max_visits=2)
    fab.apply(path_flows(topo, "h2", ["s1", "s2", "s3"]))
    with pytest.raises(LoopError):
        fab.send("h1", udp())


def test_fabric_tables_by_name_or_dpid_and_unknown_ones() -> None:
    fab = FabricSim(line())
    assert fab.table("s2") is fab.table(2)
    assert fab.table("s2").name == "s2"
    with pytest.raises(UnknownNodeError):
        fab.table("s9")
    with pytest.raises(UnknownNodeError):
        fab.apply({99: [Barrier()]})
    with pytest.raises(UnknownNodeError):
        fab.send("nobody", udp())


def test_fabric_errors_name_the_switch() -> None:
    fab = FabricSim(line())
    with pytest.raises(FlowTableError) as err:
        fab.apply({2: [add(10, Match(), Output(1), meter=5)]})
    assert err.value.switch == "s2"


def test_fabric_snapshot_is_idempotent_under_a_repeated_batch() -> None:
    topo = line()
    fab = FabricSim(topo)
    batch = merge(path_flows(topo, "h2", ["s1", "s2", "s3"]), {1: reservation_batch()})
    fab.apply(batch)
    once = fab.snapshot()
    fab.apply(batch)
    assert fab.snapshot() == once
    assert [dpid for dpid, _ in once] == [1, 2, 3]
    assert FabricSim(topo).snapshot() != once


def test_trace_is_plain_data() -> None:
    trace = Trace()
    assert trace.delivered_to == () and trace.switches == () and trace.meters == set()
