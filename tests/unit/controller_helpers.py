"""Shared helpers for the controller's decision tests: a `FabricState` from a scenario file, and a
software fabric (`FabricSim`) that runs what the state tells the switches.

`Fabric` boots every switch with its full config (what a connecting switch gets), applies plans
stage by stage, applying every batch twice and checking that the second time changed nothing,
and keeps the simulated wiring (links up, where every host is plugged in) in line with the
state's model, so that a relocated host is found at its new port and a link that is down carries
nothing.

For the tests of the os-ken shim (`ofencode`, `runtime`, `app`), the last part has what the wire
needs: a switch stub that os-ken serialises to, a parser back, and what switches send.
"""

from __future__ import annotations

import copy
import queue
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from os_ken.lib.packet import arp, ether_types, ethernet, packet
from os_ken.ofproto import ofproto_parser, ofproto_protocol, ofproto_v1_3, ofproto_v1_3_parser
from os_ken.ofproto.ofproto_common import ONF_EXPERIMENTER_ID

from controller.fabricsim import FabricSim, FabricSnapshot, Trace
from controller.flowtable import Entry, FlowTableError, SwitchTable, TableSnapshot
from controller.ofmsg import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IP_PROTO,
    METADATA_ALL,
    Action,
    Barrier,
    Batch,
    FlowMod,
    Match,
    Message,
    MeterMod,
    Output,
    PacketOut,
    SetField,
)
from controller.plan import Plan, Stage
from controller.state import FabricState
from topology.model import Topology
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
DEFAULT = SCENARIOS / "default.yaml"
THREE_SITES = SCENARIOS / "three-sites.yaml"
BROADCAST = "ff:ff:ff:ff:ff:ff"
M = 1_000_000


def make_state(path: Path = THREE_SITES) -> FabricState:
    """A fresh controller model of the scenario in `path`."""
    return FabricState(load_scenario(path))


def switch_names(state: FabricState) -> list[str]:
    return [sw.name for sw in state.declared.switches]


def to_batch(state: FabricState, stage: Mapping[str, Iterable[Message]]) -> Batch:
    """One stage of a plan (switch names) as a batch keyed by dpid."""
    return {state.dpid(sw): list(msgs) for sw, msgs in stage.items()}


def full_configs(state: FabricState) -> Batch:
    """What every switch gets when it connects."""
    return {state.dpid(sw): state.switch_config(sw) for sw in switch_names(state)}


def wiring(state: FabricState) -> Topology:
    """The physical world as the state models it: links that are up, hosts where they are now."""
    return Topology(
        state.declared.switches,
        state.topo.links,
        state.declared.sites,
        list(state.hosts.values()),
    )


def _wiring_key(topo: Topology) -> tuple[Any, ...]:
    return (topo.links, frozenset(topo.attachments))


class Fabric:
    """A `FabricSim` driven by a `FabricState`: boot, apply plans, send packets."""

    def __init__(self, state: FabricState, *, boot: bool = True) -> None:
        self.state = state
        self._history: list[Batch] = []
        self._key: tuple[Any, ...] = ()
        self.sim = self._new_sim()
        if boot:
            self.apply(full_configs(state))

    def _new_sim(self) -> FabricSim:
        topo = wiring(self.state)
        self._key = _wiring_key(topo)
        sim = FabricSim(topo)
        for batch in self._history:
            sim.apply(batch)
        return sim

    def _sync_wiring(self) -> None:
        # The tables stay what they are; only the cables move (replayed onto a new fabric).
        if _wiring_key(wiring(self.state)) != self._key:
            self.sim = self._new_sim()

    def apply(self, batch: Batch, *, twice: bool = True) -> None:
        """Apply one batch; with `twice`, apply it again and insist that nothing changed."""
        self._sync_wiring()
        self.sim.apply(batch)
        self._history.append(batch)
        if twice:
            before = self.sim.snapshot()
            self.sim.apply(batch)
            self._history.append(batch)
            after = self.sim.snapshot()
            assert after == before, "a batch applied twice changed the tables:\n" + self.dump()

    def apply_plan(
        self,
        plan: Plan,
        *,
        twice: bool = True,
        after_stage: Callable[[int, Stage], None] | None = None,
    ) -> None:
        """Apply a plan's stages in order; `after_stage(i, stage)` runs after each one."""
        for i, stage in enumerate(plan):
            self.apply(to_batch(self.state, stage), twice=twice)
            if after_stage is not None:
                after_stage(i, stage)

    def send(self, host: str, packet: Mapping[str, object]) -> Trace:
        """Send `packet` from `host` (at its current place)."""
        self._sync_wiring()
        return self.sim.send(host, packet)

    def snapshot(self) -> FabricSnapshot:
        return self.sim.snapshot()

    def table_snapshot(self, switch: str) -> TableSnapshot:
        return self.sim.table(switch).snapshot()

    def flows(self, switch: str) -> tuple[Entry, ...]:
        return self.sim.table(switch).flows()

    def all_flows(self) -> list[tuple[str, Entry]]:
        return [(sw, e) for sw in switch_names(self.state) for e in self.flows(sw)]

    def meters(self, switch: str) -> dict[int, tuple[int, int]]:
        return self.sim.table(switch).meters

    def dump(self) -> str:
        return "\n".join(self.sim.table(sw).dump() for sw in switch_names(self.state))


# ------------------------------------------------------------------------------------ packets


def ip_packet(
    state: FabricState,
    src: str,
    dst: str,
    *,
    proto: str = "tcp",
    dport: int | None = None,
    sport: int | None = None,
    eth_src: str | None = None,
    eth_dst: str | None = None,
) -> dict[str, object]:
    """An IPv4 packet from host `src` to host `dst`, addressed as their kernels would."""
    a, b = state.hosts[src], state.hosts[dst]
    pkt: dict[str, object] = {
        "eth_src": eth_src or a.mac,
        "eth_dst": eth_dst or b.mac,
        "eth_type": ETH_TYPE_IP,
        "ipv4_src": a.ip,
        "ipv4_dst": b.ip,
        "ip_proto": IP_PROTO[proto],
    }
    if proto in ("tcp", "udp"):
        pkt[f"{proto}_src"] = 40000 if sport is None else sport
        pkt[f"{proto}_dst"] = 5001 if dport is None else dport
    return pkt


def forward(pkt: Mapping[str, object], via_mac: str, next_mac: str) -> dict[str, object]:
    """`pkt` as a routing function re-sends it: own MAC as source, the next hop's as destination."""
    return {**pkt, "eth_src": via_mac, "eth_dst": next_mac}


def arp_request(state: FabricState, src: str, target_ip: str) -> dict[str, object]:
    a = state.hosts[src]
    return {
        "eth_src": a.mac,
        "eth_dst": BROADCAST,
        "eth_type": ETH_TYPE_ARP,
        "arp_op": 1,
        "arp_spa": a.ip,
        "arp_tpa": target_ip,
    }


def assert_delivered_once(trace: Trace, host: str) -> None:
    """Delivered to exactly `host`, once, visiting no switch twice."""
    assert trace.delivered_to == (host,), trace
    assert len(set(trace.switches)) == len(trace.switches), f"revisited a switch: {trace}"


# ------------------------------------------------------------------------------ the OpenFlow wire
#
# For the tests of the os-ken shim (ofencode, runtime, app): a stand-in for os-ken's `Datapath`
# that really serialises what it is sent, a parser that reads those bytes back with os-ken, the
# inverse of `controller.ofencode` (os-ken message -> ofmsg), and switch-to-controller messages
# built as bytes and parsed by os-ken, as a connected OVS would deliver them.

OFP = ofproto_v1_3
OFP_PARSER = ofproto_v1_3_parser


class SwitchStub(ofproto_protocol.ProtocolDesc):  # type: ignore[misc]
    """What the controller uses of os-ken's `Datapath`: `id`, `ofproto`, `ofproto_parser`,
    `set_xid`, `send_msg`. Every message is serialised by os-ken on send and kept as bytes.

    With `events`, the switch answers like OVS, on that thread: a barrier request with a barrier
    reply (unless `answer_barriers` is off), a message that `refuse` rejects with an error (before
    the reply to the barrier that follows it).
    """

    def __init__(
        self,
        dpid: int,
        events: EventThread | None = None,
        *,
        answer_barriers: bool = True,
        refuse: Callable[[Message], bool] | None = None,
    ) -> None:
        super().__init__(OFP.OFP_VERSION)
        self.id = dpid
        self.xid = 0
        self.events = events
        self.answer_barriers = answer_barriers
        self.refuse = refuse
        self.wire: list[bytes] = []
        self._lock = threading.Lock()

    def set_xid(self, msg: Any) -> int:
        with self._lock:  # as Datapath.set_xid, from the worker and the event thread alike
            self.xid = (self.xid + 1) & OFP.MAX_XID
            xid = self.xid
        msg.set_xid(xid)
        return xid

    def send_msg(self, msg: Any, close_socket: bool = False) -> None:
        assert isinstance(msg, OFP_PARSER.MsgBase), msg
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()
        buf = bytes(msg.buf)
        with self._lock:
            self.wire.append(buf)
        if self.events is not None:
            self._answer(buf)

    def contents(self) -> tuple[list[Entry], dict[int, tuple[int, int]]]:
        """What the switch holds, as it answers the controller's reads (a stub: nothing)."""
        return [], {}

    def _answer_read(self, parsed: Any) -> bool:
        """Answer a flow-stats or meter-config request from `contents` (False: not one)."""
        assert self.events is not None
        flows, meters = self.contents()
        if isinstance(parsed, OFP_PARSER.OFPFlowStatsRequest):
            self.events.post(flow_stats_reply(self, parsed.xid, flows))
        elif isinstance(parsed, OFP_PARSER.OFPMeterConfigStatsRequest):
            self.events.post(meter_config_reply(self, parsed.xid, meters))
        else:
            return False
        return True

    def _answer(self, buf: bytes) -> None:
        assert self.events is not None
        parsed = parse_wire(self, buf)
        if self._answer_read(parsed) or isinstance(parsed, BUNDLE_CONTROL):
            return
        msg = decode(parsed)
        if self.refuse is not None and self.refuse(msg):
            self.events.post(
                error_msg(self, parsed.xid, OFP.OFPET_METER_MOD_FAILED, OFP.OFPMMFC_METER_EXISTS)
            )
        if isinstance(msg, Barrier) and self.answer_barriers:
            self.events.post(barrier_reply(self, parsed.xid))

    def parsed(self) -> list[Any]:
        """Everything sent so far, read back by os-ken's parser."""
        with self._lock:
            wire = list(self.wire)
        return [parse_wire(self, buf) for buf in wire]

    def messages(self, since: int = 0) -> list[Message]:
        """Everything sent so far (from the `since`-th message on the wire) but reads, as ofmsg
        messages (bundled ones in their place, the bundles' open and commit left out)."""
        parsed = self.parsed()[since:]
        return [decode(m) for m in parsed if not isinstance(m, (*READS, BUNDLE_CONTROL))]

    def bundles(self) -> list[list[Message]]:
        """The messages of each bundle committed so far, in order."""
        out: list[list[Message]] = []
        open_: dict[int, list[Message]] = {}
        for m in self.parsed():
            if isinstance(m, BundleAdd):
                open_.setdefault(m.bundle_id, []).append(decode(m))
            elif isinstance(m, BUNDLE_CONTROL) and m.type == OFP.ONF_BCT_COMMIT_REQUEST:
                out.append(open_.pop(m.bundle_id, []))
        return out

    def reads(self) -> list[str]:
        """The reads (multipart requests) sent so far, by os-ken class name."""
        return [type(m).__name__ for m in self.parsed() if isinstance(m, READS)]

    def clear(self) -> None:
        with self._lock:
            self.wire.clear()


class EventThread:
    """os-ken's event loop, as far as the shim sees it: what switches send is delivered one
    message at a time, in order, on a thread that is neither the caller's nor the worker."""

    def __init__(self, deliver: Callable[[Any], None]) -> None:
        self.deliver = deliver
        self._queue: queue.Queue[Any] = queue.Queue()
        self._open = threading.Event()
        self._open.set()
        self._thread = threading.Thread(target=self._run, name="fake-os-ken-events", daemon=True)
        self._thread.start()

    def post(self, msg: Any) -> None:
        self._queue.put(msg)

    def pause(self) -> None:
        """Hold back what switches say (it is delivered, in order, on `resume`)."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def drain(self) -> None:
        """Return once everything posted so far was delivered."""
        self._queue.join()

    def close(self) -> None:
        self._open.set()
        self._queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            msg = self._queue.get()
            self._open.wait()
            try:
                if msg is None:
                    return
                self.deliver(msg)
            finally:
                self._queue.task_done()


# os-ken 4.2.2 has parsers only for what switches send, and for flow-mods; these three messages
# are read back with its band and action parsers, its header layouts, and its own classes.
def _parse_meter_mod(dp: Any, buf: bytes, msg_len: int) -> Any:
    command, flags, meter_id = struct.unpack_from(
        OFP.OFP_METER_MOD_PACK_STR, buf, OFP.OFP_HEADER_SIZE
    )
    bands, offset = [], OFP.OFP_METER_MOD_SIZE
    while offset < msg_len:
        band = OFP_PARSER.OFPMeterBandHeader.parser(buf, offset)
        bands.append(band)
        offset += band.len
    return OFP_PARSER.OFPMeterMod(dp, command, flags, meter_id, bands)


def _parse_packet_out(dp: Any, buf: bytes, msg_len: int) -> Any:
    buffer_id, in_port, actions_len = struct.unpack_from(
        OFP.OFP_PACKET_OUT_PACK_STR, buf, OFP.OFP_HEADER_SIZE
    )
    actions, offset = [], OFP.OFP_PACKET_OUT_SIZE
    while offset < OFP.OFP_PACKET_OUT_SIZE + actions_len:
        action = OFP_PARSER.OFPAction.parser(buf, offset)
        actions.append(action)
        offset += action.len
    return OFP_PARSER.OFPPacketOut(dp, buffer_id, in_port, actions, bytes(buf[offset:msg_len]))


def _parse_barrier_request(dp: Any, buf: bytes, msg_len: int) -> Any:
    assert msg_len == OFP.OFP_HEADER_SIZE
    return OFP_PARSER.OFPBarrierRequest(dp)


def _parse_multipart_request(dp: Any, buf: bytes, msg_len: int) -> Any:
    """The two reads the controller makes of a switch (flow stats, meter config)."""
    kind, flags = struct.unpack_from(OFP.OFP_MULTIPART_REQUEST_PACK_STR, buf, OFP.OFP_HEADER_SIZE)
    offset = OFP.OFP_MULTIPART_REQUEST_SIZE
    if kind == OFP.OFPMP_FLOW:
        table, out_port, out_group, ck, mask = struct.unpack_from(
            OFP.OFP_FLOW_STATS_REQUEST_0_PACK_STR, buf, offset
        )
        match = OFP_PARSER.OFPMatch.parser(buf, offset + OFP.OFP_FLOW_STATS_REQUEST_0_SIZE)
        return OFP_PARSER.OFPFlowStatsRequest(
            dp, flags, table, out_port, out_group, ck, mask, match
        )
    if kind == OFP.OFPMP_METER_CONFIG:
        (meter_id,) = struct.unpack_from(OFP.OFP_METER_MULTIPART_REQUEST_PACK_STR, buf, offset)
        return OFP_PARSER.OFPMeterConfigStatsRequest(dp, flags, meter_id)
    raise AssertionError(f"not a multipart request the controller sends: type {kind}")


READS = (OFP_PARSER.OFPFlowStatsRequest, OFP_PARSER.OFPMeterConfigStatsRequest)
BUNDLE_CONTROL = OFP_PARSER.ONFBundleCtrlMsg
_OWN_PARSERS = {
    OFP.OFPT_METER_MOD: _parse_meter_mod,
    OFP.OFPT_PACKET_OUT: _parse_packet_out,
    OFP.OFPT_BARRIER_REQUEST: _parse_barrier_request,
    OFP.OFPT_MULTIPART_REQUEST: _parse_multipart_request,
}


@dataclass(frozen=True)
class BundleAdd:
    """A message added to a bundle (the ONF extension's bundle add), read back: its bundle,
    flags and the message it carries (parsed), whose xid must be the add's."""

    xid: int
    bundle_id: int
    flags: int
    inner: Any


def _parse_bundle_add(dp: Any, buf: bytes, xid: int) -> BundleAdd:
    bundle_id, flags = struct.unpack_from(OFP.ONF_BUNDLE_ADD_MSG_PACK_STR, buf, 16)
    start = 16 + OFP.ONF_BUNDLE_ADD_MSG_SIZE
    inner_len = ofproto_parser.header(buf[start:])[2]
    inner = parse_wire(dp, buf[start : start + inner_len])
    assert inner.xid == xid, (inner.xid, xid)
    return BundleAdd(xid, bundle_id, flags, inner)


def parse_wire(dp: Any, buf: bytes) -> Any:
    """One OpenFlow 1.3 message read back from its bytes (os-ken's parser where it has one;
    a bundle add as a `BundleAdd`)."""
    version, msg_type, msg_len, xid = ofproto_parser.header(buf)
    assert version == OFP.OFP_VERSION and msg_len == len(buf), (version, msg_len, len(buf))
    if msg_type == OFP.OFPT_EXPERIMENTER:
        experimenter, exp_type = struct.unpack_from("!II", buf, OFP.OFP_HEADER_SIZE)
        if (experimenter, exp_type) == (ONF_EXPERIMENTER_ID, OFP.ONF_ET_BUNDLE_ADD_MESSAGE):
            return _parse_bundle_add(dp, buf, xid)
    own = _OWN_PARSERS.get(msg_type)
    if own is None:
        msg = ofproto_parser.msg(dp, version, msg_type, msg_len, xid, buf)
        assert msg is not None, f"os-ken could not parse message type {msg_type}"
    else:
        msg = own(dp, buf, msg_len)
        msg.set_headers(version, msg_type, msg_len, xid)
    return msg


_FLOW_COMMANDS: dict[int, Literal["add", "delete", "delete_strict"]] = {
    OFP.OFPFC_ADD: "add",
    OFP.OFPFC_DELETE: "delete",
    OFP.OFPFC_DELETE_STRICT: "delete_strict",
}
_METER_COMMANDS: dict[int, Literal["add", "modify", "delete"]] = {
    OFP.OFPMC_ADD: "add",
    OFP.OFPMC_MODIFY: "modify",
    OFP.OFPMC_DELETE: "delete",
}
# OpenFlow 1.3 §5.9 and OVS: at most one of each, in this order.
_INSTRUCTION_ORDER = [
    OFP.OFPIT_METER,
    OFP.OFPIT_APPLY_ACTIONS,
    OFP.OFPIT_CLEAR_ACTIONS,
    OFP.OFPIT_WRITE_ACTIONS,
    OFP.OFPIT_WRITE_METADATA,
    OFP.OFPIT_GOTO_TABLE,
]


def decode(msg: Any) -> Message:
    """The ofmsg message that a parsed os-ken message carries: the inverse of ofencode.

    Also checks what ofmsg leaves implicit on the wire (no buffer, no timeouts or flags, any
    out_group, instructions in the order OVS insists on, a drop band in kbit/s).
    """
    if isinstance(msg, BundleAdd):
        assert msg.flags == OFP.ONF_BF_ATOMIC | OFP.ONF_BF_ORDERED, msg
        return decode(msg.inner)
    if isinstance(msg, OFP_PARSER.OFPFlowMod):
        return _decode_flow_mod(msg)
    if isinstance(msg, OFP_PARSER.OFPMeterMod):
        command = _METER_COMMANDS[msg.command]
        if command == "delete":
            assert msg.bands == [] and msg.flags == OFP.OFPMF_KBPS, msg
            return MeterMod("delete", msg.meter_id)
        (band,) = msg.bands
        assert isinstance(band, OFP_PARSER.OFPMeterBandDrop), band
        burst = OFP.OFPMF_BURST if band.burst_size else 0
        assert msg.flags == OFP.OFPMF_KBPS | burst, msg
        return MeterMod(command, msg.meter_id, band.rate, band.burst_size)
    if isinstance(msg, OFP_PARSER.OFPBarrierRequest):
        return Barrier()
    if isinstance(msg, OFP_PARSER.OFPPacketOut):
        assert (msg.buffer_id, msg.in_port) == (OFP.OFP_NO_BUFFER, OFP.OFPP_CONTROLLER), msg
        (action,) = msg.actions
        assert isinstance(action, OFP_PARSER.OFPActionOutput), action
        return PacketOut(action.port, bytes(msg.data))
    raise AssertionError(f"not a message the controller sends: {msg}")


def _decode_flow_mod(msg: Any) -> FlowMod:
    assert msg.buffer_id == OFP.OFP_NO_BUFFER and msg.out_group == OFP.OFPG_ANY, msg
    assert (msg.idle_timeout, msg.hard_timeout, msg.flags) == (0, 0, 0), msg
    kinds = [inst.type for inst in msg.instructions]
    assert kinds == sorted(kinds, key=_INSTRUCTION_ORDER.index), kinds
    assert len(set(kinds)) == len(kinds), kinds
    meter = goto = metadata = None
    actions: tuple[Action, ...] = ()
    for inst in msg.instructions:
        if isinstance(inst, OFP_PARSER.OFPInstructionMeter):
            meter = inst.meter_id
        elif isinstance(inst, OFP_PARSER.OFPInstructionWriteMetadata):
            assert inst.metadata_mask == METADATA_ALL, inst
            metadata = inst.metadata
        elif isinstance(inst, OFP_PARSER.OFPInstructionGotoTable):
            goto = inst.table_id
        elif isinstance(inst, OFP_PARSER.OFPInstructionActions):
            assert inst.type == OFP.OFPIT_APPLY_ACTIONS, inst
            actions = tuple(_decode_action(a) for a in inst.actions)
        else:
            raise AssertionError(f"unexpected instruction {inst}")
    return FlowMod(
        _FLOW_COMMANDS[msg.command],
        table=msg.table_id,
        priority=msg.priority,
        match=Match.of(**dict(msg.match.items())),
        actions=actions,
        goto=goto,
        meter=meter,
        cookie=msg.cookie,
        cookie_mask=msg.cookie_mask,
        out_port=None if msg.out_port == OFP.OFPP_ANY else msg.out_port,
        metadata=metadata,
    )


def _decode_action(action: Any) -> Action:
    if isinstance(action, OFP_PARSER.OFPActionOutput):
        return Output(action.port, action.max_len)
    if isinstance(action, OFP_PARSER.OFPActionSetField):
        return SetField(action.key, action.value)
    raise AssertionError(f"unexpected action {action}")


def canonical(msg: Message) -> Message:
    """`msg` with its match in `Match.of`'s order (what `decode` gives back)."""
    if isinstance(msg, FlowMod):
        return replace(msg, match=Match.of(**msg.match.as_dict()))
    return msg


# ---------------------------------------------------------------------------- switch to controller


def from_switch(dp: Any, msg_type: int, body: bytes = b"", xid: int = 0) -> Any:
    """A switch-to-controller message as os-ken's parser makes it from the bytes on the wire."""
    length = OFP.OFP_HEADER_SIZE + len(body)
    buf = struct.pack(OFP.OFP_HEADER_PACK_STR, OFP.OFP_VERSION, msg_type, length, xid) + body
    msg = ofproto_parser.msg(dp, *ofproto_parser.header(buf), buf)
    assert msg is not None, f"os-ken could not parse message type {msg_type}"
    return msg


def switch_features(dp: Any) -> Any:
    body = struct.pack(OFP.OFP_SWITCH_FEATURES_PACK_STR, dp.id, 0, 254, 0, 0, 0)
    return from_switch(dp, OFP.OFPT_FEATURES_REPLY, body)


def barrier_reply(dp: Any, xid: int) -> Any:
    return from_switch(dp, OFP.OFPT_BARRIER_REPLY, xid=xid)


def flow_stats_reply(dp: Any, xid: int, flows: Iterable[Entry], *, more: bool = False) -> Any:
    """A flow-stats reply holding `flows` (counters and durations made up), as OVS sends it."""
    from controller.ofencode import encode

    body = bytearray(struct.pack(OFP.OFP_MULTIPART_REPLY_PACK_STR, OFP.OFPMP_FLOW, int(more)))
    for e in flows:
        flow = FlowMod(
            "add", e.table, e.priority, e.match, e.actions, e.goto, e.meter, metadata=e.metadata
        )
        mod = encode(dp, flow)
        rest = bytearray()
        mod.match.serialize(rest, 0)
        for inst in mod.instructions:
            inst.serialize(rest, len(rest))
        length = OFP.OFP_FLOW_STATS_0_SIZE + len(rest)
        head = struct.pack(
            OFP.OFP_FLOW_STATS_0_PACK_STR, length, e.table, 7, 0, e.priority, 0, 0, 0,
            e.cookie, 12, 3400,
        )  # fmt: skip
        body += head + rest
    return from_switch(dp, OFP.OFPT_MULTIPART_REPLY, bytes(body), xid)


def meter_config_reply(dp: Any, xid: int, meters: Mapping[int, tuple[int, int]]) -> Any:
    """A meter-config reply: one drop band per meter (kbit/s, with a burst if it has one)."""
    body = bytearray(struct.pack(OFP.OFP_MULTIPART_REPLY_PACK_STR, OFP.OFPMP_METER_CONFIG, 0))
    for meter_id, (rate, burst) in sorted(meters.items()):
        band = bytearray()
        OFP_PARSER.OFPMeterBandDrop(rate=rate, burst_size=burst).serialize(band, 0)
        flags = OFP.OFPMF_KBPS | (OFP.OFPMF_BURST if burst else 0)
        length = OFP.OFP_METER_CONFIG_SIZE + len(band)
        body += struct.pack(OFP.OFP_METER_CONFIG_PACK_STR, length, flags, meter_id) + band
    return from_switch(dp, OFP.OFPT_MULTIPART_REPLY, bytes(body), xid)


def error_msg(dp: Any, xid: int, type_: int, code: int, data: bytes = b"") -> Any:
    return from_switch(
        dp, OFP.OFPT_ERROR, struct.pack(OFP.OFP_ERROR_MSG_PACK_STR, type_, code) + data, xid
    )


def packet_in(dp: Any, in_port: int, data: bytes, flow_cookie: int, table_id: int = 0) -> Any:
    """A packet a flow sent to the controller (OFPR_ACTION), as OVS sends it."""
    head = struct.pack(
        OFP.OFP_PACKET_IN_PACK_STR,
        OFP.OFP_NO_BUFFER,
        len(data),
        OFP.OFPR_ACTION,
        table_id,
        flow_cookie,
    )
    match = bytearray()
    OFP_PARSER.OFPMatch(in_port=in_port).serialize(match, 0)
    return from_switch(dp, OFP.OFPT_PACKET_IN, head + bytes(match) + b"\0\0" + data)


def port_status(dp: Any, port_no: int, *, reason: int, state: int) -> Any:
    """A port that changed (OFPPR_MODIFY with OFPPS_LINK_DOWN: its link went down)."""
    body = struct.pack(
        OFP.OFP_PORT_STATUS_PACK_STR,
        reason,
        port_no,
        b"\x02\0\0\0\0\x01",
        f"port{port_no}".encode(),
        0,
        state,
        0,
        0,
        0,
        0,
        0,
        0,
    )
    return from_switch(dp, OFP.OFPT_PORT_STATUS, body)


def arp_request_frame(sender_mac: str, sender_ip: str, target_ip: str) -> bytes:
    """An Ethernet broadcast ARP request, as a host's kernel sends it (built by os-ken)."""
    pkt = packet.Packet()
    pkt.add_protocol(
        ethernet.ethernet(dst=BROADCAST, src=sender_mac, ethertype=ether_types.ETH_TYPE_ARP)
    )
    pkt.add_protocol(
        arp.arp_ip(arp.ARP_REQUEST, sender_mac, sender_ip, "00:00:00:00:00:00", target_ip)
    )
    pkt.serialize()
    return bytes(pkt.data)


# ------------------------------------------------------------------- switches that keep a table
#
# For the tests of transactions and of bad input end to end (REST -> facade -> runtime -> os-ken
# bytes): every switch of a scenario as a `SimulatedSwitch` that runs what it is sent on a
# software flow table (meters modelled), refusing what OVS would refuse and chosen messages, and
# a `Runtime` connected to them as the os-ken app would be.


class SimulatedSwitch(SwitchStub):
    """A switch stub that applies what it is sent to its own `SwitchTable`.

    A message the table refuses (e.g. a meter that exists already), or one that `refuse`
    chooses, is not applied and answered with an OpenFlow error, before the reply to the
    barrier that follows it, as OVS does. `refuse` may be changed at any time.
    """

    def __init__(
        self,
        dpid: int,
        name: str,
        events: EventThread,
        *,
        refuse: Callable[[Message], bool] | None = None,
    ) -> None:
        super().__init__(dpid, events, refuse=refuse)
        self.name = name
        self.table = SwitchTable(name)
        self.refused: list[Message] = []
        self._bundles: dict[int, list[Message]] = {}  # open bundles' messages
        self._failed: set[int] = set()  # open bundles a message of which was refused

    def contents(self) -> tuple[list[Entry], dict[int, tuple[int, int]]]:
        return list(self.table.flows()), self.table.meters

    def _answer(self, buf: bytes) -> None:
        assert self.events is not None
        parsed = parse_wire(self, buf)
        if self._answer_read(parsed):
            return
        if isinstance(parsed, BUNDLE_CONTROL):
            self._bundle_control(parsed)
            return
        msg = decode(parsed)
        if isinstance(parsed, BundleAdd):  # kept until the commit, refused at once
            if self.refuse is not None and self.refuse(msg):
                with self._lock:
                    self.refused.append(msg)
                self._failed.add(parsed.bundle_id)
                self.events.post(
                    error_msg(self, parsed.xid, OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_EPERM)
                )
            else:
                self._bundles.setdefault(parsed.bundle_id, []).append(msg)
            return
        if isinstance(msg, Barrier):
            if self.answer_barriers:
                self.events.post(barrier_reply(self, parsed.xid))
            return
        code = (OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_EPERM)
        try:
            if self.refuse is not None and self.refuse(msg):
                raise FlowTableError("refused", msg.describe() if hasattr(msg, "describe") else "")
            self.table.apply([msg])
            return
        except FlowTableError:
            with self._lock:
                self.refused.append(msg)
        self.events.post(error_msg(self, parsed.xid, *code))

    def _bundle_control(self, parsed: Any) -> None:
        """Open a bundle, or commit it as OVS does: all its messages or, if one was refused
        or the table refuses one, none (an error for the commit)."""
        assert self.events is not None
        if parsed.type == OFP.ONF_BCT_OPEN_REQUEST:
            self._bundles[parsed.bundle_id] = []
            return
        assert parsed.type == OFP.ONF_BCT_COMMIT_REQUEST, parsed
        msgs = self._bundles.pop(parsed.bundle_id, [])
        if parsed.bundle_id not in self._failed:
            before = copy.deepcopy(self.table)
            try:
                self.table.apply(msgs)
                return
            except FlowTableError:
                self.table = before
                with self._lock:
                    self.refused.extend(msgs)
        self._failed.discard(parsed.bundle_id)
        self.events.post(error_msg(self, parsed.xid, OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_EPERM))


def refuse_first(pred: Callable[[Message], bool]) -> Callable[[Message], bool]:
    """A `refuse` predicate that refuses only the first message `pred` picks."""
    done = [False]

    def refuse(msg: Message) -> bool:
        if not done[0] and pred(msg):
            done[0] = True
            return True
        return False

    return refuse


class SwitchedRuntime:
    """A `Runtime` over `state` with every switch of the scenario connected as a
    `SimulatedSwitch`, booted with its whole config (what a connecting switch gets)."""

    def __init__(self, state: FabricState, store_path: Path | None = None) -> None:
        from controller.runtime import Runtime
        from controller.store import StateStore

        self.rt = Runtime(state, StateStore(store_path))
        self.events = EventThread(self._deliver)
        self.switches: dict[str, SimulatedSwitch] = {}
        for name in switch_names(state):
            sw = SimulatedSwitch(state.dpid(name), name, self.events)
            self.switches[name] = sw
            self.rt.register(sw)
        plan: Plan = [{name: state.switch_config(name) for name in self.switches}]
        self.rt.call(lambda: self.rt.execute(plan))
        assert not any(sw.refused for sw in self.switches.values())

    @property
    def state(self) -> FabricState:
        return self.rt.state

    def _deliver(self, msg: Any) -> None:
        if isinstance(msg, OFP_PARSER.OFPBarrierReply):
            self.rt.barrier_reply(msg.datapath.id, msg.xid)
        elif isinstance(msg, OFP_PARSER.OFPErrorMsg):
            self.rt.switch_error(msg.datapath.id, msg.xid, f"type={msg.type} code={msg.code}")
        elif isinstance(msg, OFP_PARSER.OFPMultipartReply):
            more = bool(msg.flags & OFP.OFPMPF_REPLY_MORE)
            self.rt.multipart_reply(msg.datapath.id, msg.xid, list(msg.body), more)

    def tables(self) -> dict[str, TableSnapshot]:
        """Every switch's flows and meters (order-independent, comparable)."""
        self.events.drain()
        return {name: sw.table.snapshot() for name, sw in self.switches.items()}

    def meters(self) -> dict[str, dict[int, tuple[int, int]]]:
        self.events.drain()
        return {
            name: dict(sw.table.meters) for name, sw in self.switches.items() if sw.table.meters
        }

    def sim(self) -> FabricSim:
        """A software fabric wired as the state models it, holding the switches' tables now:
        to send packets through what the switches really hold."""
        self.events.drain()
        fabric = FabricSim(wiring(self.state))
        for name, sw in self.switches.items():
            fabric._tables[self.state.dpid(name)] = sw.table
        return fabric

    def close(self) -> None:
        self.rt.shutdown()
        self.events.close()
