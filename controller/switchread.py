"""Reading what a switch holds: its flows and meters, as `controller.flowtable` entries.

A switch that (re)connects may hold anything: the flows and meters of an earlier controller
life, of reservations released while it was away, of a hold that ended meanwhile. To make it hold
exactly the model (`FabricState.resync`), the controller first asks it (OpenFlow 1.3 multipart
flow-stats and meter-config requests) and turns the answers into the same plain data the
software switch uses: `Entry` per flow, `rate_kbps, burst_kb` per meter id. Counters and
durations are left out; they are not what the switch is configured to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.flowtable import Entry
from controller.ofmsg import METADATA_ALL, Action, Match, Output, SetField


class UnreadableEntry(ValueError):
    """A flow the controller cannot represent (an instruction or action it never installs)."""


def flow_stats_request(dp: Any) -> Any:
    """Every flow of every table (filtered to ours by cookie afterwards: one request)."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    return parser.OFPFlowStatsRequest(
        dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch()
    )


def meter_config_request(dp: Any) -> Any:
    """The configuration of every meter."""
    return dp.ofproto_parser.OFPMeterConfigStatsRequest(dp, 0, dp.ofproto.OFPM_ALL)


def decode_flow(stats: Any) -> Entry:
    """One OFPFlowStats as an Entry (UnreadableEntry: it uses what mecmig never installs)."""
    meter = goto = metadata = None
    actions: tuple[Action, ...] = ()
    for inst in stats.instructions:
        if isinstance(inst, parser.OFPInstructionMeter):
            meter = int(inst.meter_id)
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            if int(inst.metadata_mask) != METADATA_ALL:
                raise UnreadableEntry(f"write-metadata with mask {int(inst.metadata_mask):#x}")
            metadata = int(inst.metadata)
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = int(inst.table_id)
        elif (
            isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS
        ):
            actions = tuple(_decode_action(a) for a in inst.actions)
        else:
            raise UnreadableEntry(f"instruction {type(inst).__name__} (type {inst.type})")
    return Entry(
        table=int(stats.table_id),
        priority=int(stats.priority),
        match=_match(stats),
        actions=actions,
        goto=goto,
        meter=meter,
        cookie=int(stats.cookie),
        metadata=metadata,
    )


def _match(stats: Any) -> Match:
    return Match.of(**dict(stats.match.items()))


def _decode_action(action: Any) -> Action:
    if isinstance(action, parser.OFPActionOutput):
        return Output(int(action.port), int(action.max_len))
    if isinstance(action, parser.OFPActionSetField):
        return SetField(str(action.key), action.value)
    raise UnreadableEntry(f"action {type(action).__name__}")


def decode_flows(bodies: Iterable[Any]) -> tuple[list[Entry], list[Entry]]:
    """The flows of flow-stats replies' bodies; and, apart, the ones whose instructions could
    not be read (given with their table, priority, match and cookie only: no flow of the model
    is like them)."""
    entries: list[Entry] = []
    unreadable: list[Entry] = []
    for stats in bodies:
        try:
            entries.append(decode_flow(stats))
        except UnreadableEntry:
            unreadable.append(
                Entry(int(stats.table_id), int(stats.priority), _match(stats), cookie=stats.cookie)
            )
    return entries, unreadable


def decode_meters(bodies: Iterable[Any]) -> dict[int, tuple[int, int]]:
    """Meter id -> (rate kbit/s, burst kbit) of meter-config replies' bodies (the first drop
    band; (0, 0) for a meter without one: never what mecmig installs, so it differs)."""
    meters: dict[int, tuple[int, int]] = {}
    for cfg in bodies:
        drops = [b for b in cfg.bands if isinstance(b, parser.OFPMeterBandDrop)]
        band = drops[0] if len(drops) == 1 and len(cfg.bands) == 1 else None
        meters[int(cfg.meter_id)] = (int(band.rate), int(band.burst_size)) if band else (0, 0)
    return meters
