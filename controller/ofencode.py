"""The IR of `controller.ofmsg` turned into os-ken OpenFlow 1.3 messages for one datapath."""

from __future__ import annotations

import functools
from typing import Any

from os_ken.ofproto import ofproto_v1_3_parser

from controller.ofmsg import (
    METADATA_ALL,
    Barrier,
    FlowMod,
    Match,
    Message,
    MeterMod,
    Output,
    PacketOut,
    SetField,
)

_FLOW_COMMANDS = {
    "add": "OFPFC_ADD",
    "delete": "OFPFC_DELETE",
    "delete_strict": "OFPFC_DELETE_STRICT",
}
_METER_COMMANDS = {"add": "OFPMC_ADD", "modify": "OFPMC_MODIFY", "delete": "OFPMC_DELETE"}


def encode(dp: Any, msg: Message) -> Any:
    """An os-ken message for `dp` (a connected Datapath) carrying `msg`."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if isinstance(msg, FlowMod):
        return _flow_mod(dp, ofp, parser, msg)
    if isinstance(msg, MeterMod):
        bands = []
        flags = ofp.OFPMF_KBPS
        if msg.command != "delete":
            bands = [parser.OFPMeterBandDrop(rate=msg.rate_kbps, burst_size=msg.burst_kb)]
            if msg.burst_kb:
                flags |= ofp.OFPMF_BURST
        return parser.OFPMeterMod(
            dp,
            command=getattr(ofp, _METER_COMMANDS[msg.command]),
            flags=flags,
            meter_id=msg.meter_id,
            bands=bands,
        )
    if isinstance(msg, Barrier):
        return parser.OFPBarrierRequest(dp)
    if isinstance(msg, PacketOut):
        return parser.OFPPacketOut(
            dp,
            buffer_id=ofp.OFP_NO_BUFFER,
            in_port=ofp.OFPP_CONTROLLER,
            actions=[parser.OFPActionOutput(msg.port)],
            data=msg.data,
        )
    raise TypeError(f"cannot encode {msg!r}")


def _actions(parser: Any, msg: FlowMod) -> list[Any]:
    out = []
    for action in msg.actions:
        if isinstance(action, Output):
            out.append(parser.OFPActionOutput(action.port, action.max_len))
        elif isinstance(action, SetField):
            out.append(parser.OFPActionSetField(**{action.name: action.value}))
        else:  # never leave an action out silently: the flow would do something else
            raise TypeError(f"cannot encode action {action!r}")
    return out


def _flow_mod(dp: Any, ofp: Any, parser: Any, msg: FlowMod) -> Any:
    instructions = []
    if msg.meter is not None:
        instructions.append(parser.OFPInstructionMeter(msg.meter, ofp.OFPIT_METER))
    if msg.actions:
        instructions.append(
            parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, _actions(parser, msg))
        )
    if msg.metadata is not None:
        instructions.append(parser.OFPInstructionWriteMetadata(msg.metadata, METADATA_ALL))
    if msg.goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(msg.goto))
    return parser.OFPFlowMod(
        dp,
        cookie=msg.cookie,
        cookie_mask=msg.cookie_mask,
        table_id=msg.table,
        command=getattr(ofp, _FLOW_COMMANDS[msg.command]),
        priority=msg.priority,
        out_port=ofp.OFPP_ANY if msg.out_port is None else msg.out_port,
        out_group=ofp.OFPG_ANY,
        match=_match(parser, msg.match),
        instructions=instructions,
    )


class PackedMatch(ofproto_v1_3_parser.OFPMatch):  # type: ignore[misc]
    """An OpenFlow 1.3 match that os-ken encodes once: every flow mod that carries it copies
    the bytes. A reservation puts one match on every switch of its path (14 flow mods at 1,000
    sites), and os-ken parses each address again for every serialisation (~0.1 ms a flow mod)."""

    _packed: bytes | None = None

    def serialize(self, buf: bytearray, offset: int) -> int:
        packed = self._packed
        if packed is None:
            first = bytearray()
            size = super().serialize(first, 0)
            packed = self._packed = bytes(first[:size])
        end = offset + len(packed)
        if len(buf) < end:
            buf.extend(bytes(end - len(buf)))
        buf[offset:end] = packed
        return len(packed)


@functools.lru_cache(maxsize=4096)
def _match(parser: Any, match: Match) -> Any:
    """The os-ken match of `match` (immutable, so one object serves every flow mod)."""
    if parser is ofproto_v1_3_parser:
        return PackedMatch(**dict(match.fields))
    return parser.OFPMatch(**dict(match.fields))


# OpenFlow 1.3 bundles (the ONF extension OVS implements): flow mods committed together, in
# order, atomically: a packet meets the table as it was before the bundle or after it
BUNDLE_FLAGS = ("ONF_BF_ATOMIC", "ONF_BF_ORDERED")


def bundle_control(dp: Any, bundle_id: int, kind: str) -> Any:
    """A bundle's open (`kind` "OPEN") or commit ("COMMIT") request."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.ONFBundleCtrlMsg(
        dp, bundle_id, getattr(ofp, f"ONF_BCT_{kind}_REQUEST"), _bundle_flags(ofp), []
    )


def bundle_add(dp: Any, bundle_id: int, inner: Any) -> Any:
    """`inner` (an os-ken message without an xid) added to bundle `bundle_id`."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.ONFBundleAddMsg(dp, bundle_id, _bundle_flags(ofp), inner, [])


def _bundle_flags(ofp: Any) -> int:
    flags = 0
    for name in BUNDLE_FLAGS:
        flags |= getattr(ofp, name)
    return flags
