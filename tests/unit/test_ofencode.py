"""controller.ofencode over the wire: every kind of ofmsg message is encoded for a datapath,
serialised by os-ken, read back by os-ken's parser and compared with what it was.

The examples are checked against ofmsg itself (every message kind, every command, every action
kind, every field set to something other than its default in at least one example), so a kind
or a field added to ofmsg later fails here until it is encoded and checked. Then every message
the controller really produces for the shipped scenarios takes the same round trip.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from controller import flowtable
from controller.ofencode import PackedMatch, bundle_add, encode
from controller.ofmsg import (
    CONTROLLER_PORT,
    COOKIE_ALL,
    COOKIE_KIND_SHIFT,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IN_PORT,
    MAX_METER_ID,
    PRIO_BOUNCE,
    PRIO_CHAIN,
    PRIO_HOST,
    PRIO_RESERVATION,
    PRIO_ROUTE,
    TABLE_ALL,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    TABLE_ROUTE,
    Action,
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
)
from controller.state import FabricState
from tests.unit.controller_helpers import (
    OFP,
    OFP_PARSER,
    SCENARIOS,
    SwitchStub,
    arp_request_frame,
    canonical,
    decode,
    make_state,
    switch_names,
)

ARP_FRAME = arp_request_frame("02:00:0a:00:00:64", "10.0.0.100", "10.0.0.12")

# Every OXM field the software switch (controller.flowtable) models, across plausible packets.
MATCHES = [
    Match.of(
        in_port=5,
        in_phy_port=5,
        eth_src="02:00:0a:00:00:64",
        eth_dst="02:00:0a:00:00:0c",
        eth_type=ETH_TYPE_IP,
        vlan_vid=0x1000 | 42,
        vlan_pcp=3,
        ip_dscp=46,
        ip_ecn=1,
        ip_proto=6,
        ipv4_src="10.0.0.100",
        ipv4_dst=("10.0.0.0", "255.255.255.0"),
        tcp_src=40000,
        tcp_dst=8080,
    ),
    Match.of(
        eth_type=ETH_TYPE_IP,
        ip_proto=17,
        ipv4_src=("10.0.0.0", "255.255.0.0"),
        udp_src=5000,
        udp_dst=5001,
    ),
    Match.of(eth_type=ETH_TYPE_IP, ip_proto=132, sctp_src=7, sctp_dst=9),
    Match.of(eth_type=ETH_TYPE_IP, ip_proto=1, icmpv4_type=8, icmpv4_code=0),
    Match.of(
        eth_type=ETH_TYPE_ARP,
        arp_op=1,
        arp_spa="10.0.0.100",
        arp_tpa=("10.0.0.0", "255.255.255.0"),
        arp_sha="02:00:0a:00:00:64",
        arp_tha="00:00:00:00:00:00",
    ),
    Match.of(
        eth_type=0x86DD,
        ipv6_src="fe80::1",
        ipv6_dst=("2001:db8::", "ffff:ffff::"),
        ipv6_flabel=0x12345,
        ip_proto=58,
        icmpv6_type=135,
        icmpv6_code=0,
    ),
    Match.of(eth_type=0x8847, mpls_label=0xABCDE, mpls_tc=5),
    Match.of(eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00")),
]

SET_FIELDS = (
    SetField("eth_dst", "02:00:0a:00:00:0b"),
    SetField("eth_src", "02:00:0a:00:00:0c"),
    SetField("vlan_vid", 0x1000 | 7),
    SetField("ipv4_src", "10.0.0.1"),
    SetField("ipv4_dst", "10.0.0.12"),
    SetField("tcp_dst", 8080),
    SetField("udp_src", 5353),
)

HOLD = cookie(CookieKind.HOLD, 3)
RESERVATION = cookie(CookieKind.RESERVATION, 7)

EXAMPLES: list[Message] = [
    # adds: every match, every instruction combination, every action kind
    *(
        FlowMod("add", table=TABLE_CLASSIFY, priority=100 + i, match=m, cookie=HOLD)
        for i, m in enumerate(MATCHES)
    ),
    FlowMod(
        "add",
        table=TABLE_CLASSIFY,
        priority=PRIO_RESERVATION,
        match=MATCHES[0],
        actions=(Output(3),),
        meter=7,
        cookie=RESERVATION,
    ),
    FlowMod(
        "add",
        table=TABLE_CLASSIFY,
        priority=PRIO_CHAIN,
        match=MATCHES[1],
        actions=(*SET_FIELDS, Output(CONTROLLER_PORT), Output(4, max_len=128)),
        goto=TABLE_FORWARD,
        meter=MAX_METER_ID,
        cookie=cookie(CookieKind.CHAIN, 2),
    ),
    FlowMod("add", table=TABLE_CLASSIFY, priority=0, goto=TABLE_FORWARD),
    # a core switch's entry for a host far away, and its route (controller.forwarding)
    FlowMod(
        "add",
        table=TABLE_FORWARD,
        priority=PRIO_HOST,
        match=Match.of(eth_dst="02:00:0a:00:00:0b"),
        metadata=0xFEDCBA9876543210,
        goto=TABLE_ROUTE,
        cookie=cookie(CookieKind.HOST, 3),
    ),
    FlowMod(
        "add",
        table=TABLE_ROUTE,
        priority=PRIO_ROUTE,
        match=Match.of(metadata=0xFEDCBA9876543210),
        actions=(Output(2),),
        cookie=cookie(CookieKind.ROUTE, 9),
    ),
    FlowMod("add", table=TABLE_FORWARD, priority=65535, match=MATCHES[-1]),  # a drop
    FlowMod("add", table=TABLE_CLASSIFY, priority=1, meter=1, goto=TABLE_FORWARD),
    # deletes: by cookie kind in every table, by match and out_port, strict
    FlowMod(
        "delete",
        table=TABLE_ALL,
        cookie=int(CookieKind.RESERVATION) << COOKIE_KIND_SHIFT,
        cookie_mask=0xFF << COOKIE_KIND_SHIFT,
    ),
    FlowMod("delete", table=TABLE_FORWARD, match=MATCHES[0], out_port=3),
    FlowMod(
        "delete_strict",
        table=TABLE_CLASSIFY,
        priority=PRIO_RESERVATION,
        match=MATCHES[2],
        cookie=RESERVATION,
        cookie_mask=COOKIE_ALL,
    ),
    # meters: drop bands with and without burst, the largest id and rate
    MeterMod("add", 7, rate_kbps=40_000, burst_kb=12_000),
    MeterMod("add", MAX_METER_ID, rate_kbps=100_000_000),
    MeterMod("modify", 7, rate_kbps=80_000, burst_kb=24_000),
    MeterMod("modify", 8, rate_kbps=1),
    MeterMod("delete", 7),
    Barrier(),
    PacketOut(5, ARP_FRAME),
    PacketOut(0xFFFFFF00, bytes(range(256)) * 6),  # OFPP_MAX, a full-size frame
]


def round_trip(msg: Message, dp: SwitchStub | None = None) -> Any:
    """`msg` encoded, sent (serialised by os-ken) and parsed back by os-ken."""
    dp = dp or SwitchStub(0x1)
    dp.clear()
    wire = encode(dp, msg)
    assert isinstance(wire, OFP_PARSER.MsgBase)
    dp.set_xid(wire)
    dp.send_msg(wire)
    (parsed,) = dp.parsed()
    assert (parsed.msg_type, parsed.xid) == (wire.msg_type, wire.xid)
    return parsed


# ------------------------------------------------------------------------------ coverage of ofmsg


def _fields_of(cls: type) -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(cls))


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def test_the_examples_cover_every_message_kind_and_command() -> None:
    kinds = set(get_args(Message))
    assert {type(m) for m in EXAMPLES} == kinds
    for kind in kinds:
        hints = get_type_hints(kind)
        if "command" in hints:
            commands = set(get_args(hints["command"]))
            seen = {m.command for m in EXAMPLES if isinstance(m, kind)}
            assert seen == commands, f"{kind.__name__}: no example of {commands - seen}"


def test_the_examples_set_every_field_of_every_message_and_action() -> None:
    actions = [a for m in EXAMPLES if isinstance(m, FlowMod) for a in m.actions]
    assert {type(a) for a in actions} == set(get_args(Action))
    for kind in [*get_args(Message), *get_args(Action)]:
        instances = [x for x in [*EXAMPLES, *actions] if isinstance(x, kind)]
        for f in _fields_of(kind):
            default = _default(f)
            assert any(getattr(x, f.name) != default for x in instances), (
                f"no example sets {kind.__name__}.{f.name}: add one, and check it on the wire"
            )


def test_the_examples_match_on_every_field_the_software_switch_models() -> None:
    used = {name for m in MATCHES for name, _ in m.fields}
    assert set(flowtable._WIDTHS) <= used, set(flowtable._WIDTHS) - used
    masked = {name for m in MATCHES for name, v in m.fields if isinstance(v, tuple)}
    assert {"eth_dst", "ipv4_src", "ipv4_dst", "ipv6_dst", "arp_tpa"} <= masked


# ------------------------------------------------------------------------------ the round trip


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_example_survives_os_kens_serialiser_and_parser(msg: Message) -> None:
    assert decode(round_trip(msg)) == canonical(msg)


def test_a_reservation_flow_on_the_wire() -> None:
    msg = FlowMod(
        "add",
        table=TABLE_CLASSIFY,
        priority=PRIO_RESERVATION,
        match=Match.of(eth_type=ETH_TYPE_IP, ipv4_dst="10.0.0.12", ip_proto=6, tcp_dst=7100),
        actions=(SetField("eth_dst", "02:00:0a:00:00:0c"), Output(3)),
        goto=TABLE_FORWARD,
        meter=7,
        cookie=RESERVATION,
    )
    parsed = round_trip(msg)
    assert isinstance(parsed, OFP_PARSER.OFPFlowMod)
    assert (parsed.command, parsed.table_id, parsed.priority) == (OFP.OFPFC_ADD, 0, 3000)
    assert (parsed.cookie, parsed.cookie_mask) == (0x04 << 56 | 7, 0)
    assert dict(parsed.match.items()) == {
        "eth_type": 0x0800,
        "ipv4_dst": "10.0.0.12",
        "ip_proto": 6,
        "tcp_dst": 7100,
    }
    meter, apply, goto = parsed.instructions
    assert meter.meter_id == 7 and goto.table_id == TABLE_FORWARD
    set_dst, out = apply.actions
    assert (set_dst.key, set_dst.value) == ("eth_dst", "02:00:0a:00:00:0c")
    assert out.port == 3


def test_a_meter_on_the_wire() -> None:
    parsed = round_trip(MeterMod("add", 7, rate_kbps=40_000, burst_kb=12_000))
    assert isinstance(parsed, OFP_PARSER.OFPMeterMod)
    assert (parsed.command, parsed.meter_id) == (OFP.OFPMC_ADD, 7)
    assert parsed.flags == OFP.OFPMF_KBPS | OFP.OFPMF_BURST
    (band,) = parsed.bands
    assert (band.type, band.rate, band.burst_size) == (OFP.OFPMBT_DROP, 40_000, 12_000)
    deleted = round_trip(MeterMod("delete", 7))
    assert (deleted.command, deleted.meter_id, deleted.bands) == (OFP.OFPMC_DELETE, 7, [])


def test_a_packet_out_on_the_wire() -> None:
    parsed = round_trip(PacketOut(5, ARP_FRAME))
    assert (parsed.buffer_id, parsed.in_port) == (OFP.OFP_NO_BUFFER, OFP.OFPP_CONTROLLER)
    (out,) = parsed.actions
    assert out.port == 5 and parsed.data == ARP_FRAME


def test_something_that_is_not_a_message_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode"):
        encode(SwitchStub(1), "flow please")  # type: ignore[arg-type]


def test_an_action_it_cannot_encode_is_refused_not_dropped() -> None:
    @dataclasses.dataclass(frozen=True)
    class PushVlan:
        ethertype: int = 0x8100

    odd = FlowMod("add", actions=(PushVlan(), Output(1)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PushVlan"):
        encode(SwitchStub(1), odd)


# ------------------------------------------------------------------------ what the controller sends


def _busy(path: Path) -> FabricState:
    """A scenario's state with a reservation of every protocol, a hold, a move and a link down."""
    state = make_state(path)
    hosts = list(state.hosts)
    src, dst = hosts[0], hosts[-1]
    state.reserve(src, dst, 2_000_000, proto="tcp", dst_port=7100, src_port=40000)
    state.reserve(dst, src, 1_000_000, proto="udp", dst_port=5001)
    state.reserve(src, dst, 500_000, proto="any")
    state.hold(dst)
    link = state.declared.links[0]
    state.link_down(link.a, link.b)
    return state


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_everything_a_connecting_switch_gets_survives_the_wire(path: Path) -> None:
    for state in (make_state(path), _busy(path)):
        for sw in switch_names(state):
            dp = SwitchStub(state.dpid(sw))
            for msg in state.switch_config(sw):
                assert decode(round_trip(msg, dp)) == canonical(msg), f"{sw}: {msg}"


def test_every_message_of_reserve_hold_relocate_and_release_survives_the_wire() -> None:
    state = make_state(SCENARIOS / "default.yaml")
    rec, reserve = state.reserve("ue1", "video", 40_000_000, proto="tcp", dst_port=8080)
    plans = [
        reserve,
        state.resize(rec.id, 80_000_000)[1],
        state.hold("video"),
        state.relocate("video", "s2")[2],
        state.unhold("video"),
        state.link_down("s1", "core"),
        state.link_up("s1", "core"),
        state.release(rec.id),
    ]
    sent = [m for plan in plans for stage in plan for msgs in stage.values() for m in msgs]
    assert {type(m) for m in sent} >= {FlowMod, MeterMod}
    dp = SwitchStub(1)
    for msg in sent:
        assert decode(round_trip(msg, dp)) == canonical(msg), msg


def test_every_message_of_a_drained_replica_promotion_survives_the_wire() -> None:
    """The bounce of a drained promotion's old place outputs to OFPP_IN_PORT (a plain output
    to the in-port would be dropped): promotion, seal, and the old place's config meanwhile."""
    state = make_state(SCENARIOS / "replicas.yaml")
    _, add = state.add_standby("web", "mec3")
    old, _, promote = state.promote("web", "mec3", drain=True)
    sent = [m for plan in (add, promote) for stage in plan for msgs in stage.values() for m in msgs]
    sent += state.switch_config(old.switch)
    sent += [m for stage in state.seal_standby("web", old) for msgs in stage.values() for m in msgs]
    bounce = [m for m in sent if isinstance(m, FlowMod) and m.priority == PRIO_BOUNCE]
    assert [m.command for m in bounce] == ["add", "add", "delete_strict"], bounce
    assert bounce[0].actions == (Output(IN_PORT),)
    dp = SwitchStub(state.dpid(old.switch))
    for msg in sent:
        assert decode(round_trip(msg, dp)) == canonical(msg), msg


def test_a_match_shared_by_flow_mods_is_encoded_as_os_ken_encodes_it_each_time() -> None:
    """One os-ken match object (encoded once, its bytes copied) serves every flow mod with the
    same match: each flow mod's bytes are those of a fresh os-ken match, also inside a bundle."""
    dp = SwitchStub(1)
    match = Match.of(eth_type=ETH_TYPE_IP, ipv4_dst="10.0.0.12", ipv4_src="10.0.0.1", tcp_dst=7)
    flows = [
        FlowMod("add", priority=PRIO_RESERVATION, match=match, actions=(Output(port),))
        for port in (1, 2, 3)
    ]

    def fresh(msg: FlowMod) -> bytes:
        wire = encode(dp, msg)
        wire.match = OFP_PARSER.OFPMatch(**match.as_dict())
        wire.serialize()
        return bytes(wire.buf)

    for msg in [*flows, *flows]:  # twice: the second time from the kept bytes
        wire = encode(dp, msg)
        assert isinstance(wire.match, PackedMatch)
        wire.serialize()
        assert bytes(wire.buf) == fresh(msg)
    inner = encode(dp, flows[0])
    bundled = bundle_add(dp, 1, inner)
    bundled.serialize()
    plain = bundle_add(dp, 1, OFP_PARSER.OFPFlowMod(
        dp, priority=PRIO_RESERVATION, match=OFP_PARSER.OFPMatch(**match.as_dict()),
        instructions=[OFP_PARSER.OFPInstructionActions(OFP.OFPIT_APPLY_ACTIONS, [
            OFP_PARSER.OFPActionOutput(1, 65535)])],
        cookie=0, cookie_mask=0, table_id=0, command=OFP.OFPFC_ADD,
        out_port=OFP.OFPP_ANY, out_group=OFP.OFPG_ANY,
    ))  # fmt: skip
    plain.serialize()
    assert bytes(bundled.buf) == bytes(plain.buf)
