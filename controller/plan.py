"""Desired switch state, and the messages that take a switch from one desired state to the next.

The controller never edits flows one by one: it computes what every switch should hold (a
`SwitchConfig` per switch) and sends the difference. Re-sending a difference that was already
applied changes nothing, and a switch that reconnects simply gets its whole config again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.ofmsg import (
    COOKIE_ALL,
    COOKIE_KIND_SHIFT,
    TABLE_ALL,
    Barrier,
    CookieKind,
    FlowMod,
    Match,
    Message,
    MeterMod,
    ordered,
)

FlowKey = tuple[int, int, Match]  # table, priority, match: what identifies a flow to OpenFlow


@dataclass
class SwitchConfig:
    """Everything mecmig wants on one switch."""

    flows: dict[FlowKey, FlowMod] = field(default_factory=dict)
    meters: dict[int, MeterMod] = field(default_factory=dict)

    def add_flow(self, flow: FlowMod) -> None:
        self.flows[(flow.table, flow.priority, flow.match)] = flow

    def add_meter(self, meter: MeterMod) -> None:
        self.meters[meter.meter_id] = meter


Desired = dict[str, SwitchConfig]  # switch name -> config
Stage = dict[str, list[Message]]  # switch name -> messages; a plan's stages run one after another
Plan = list[Stage]


def diff_switch(old: SwitchConfig | None, new: SwitchConfig) -> list[Message]:
    """The messages that turn `old` into `new` on one switch, make-before-break ordered."""
    old = old or SwitchConfig()
    fresh: list[Message] = []
    msgs: list[Message] = []
    for mid, meter in new.meters.items():
        before = old.meters.get(mid)
        if before is None:
            # A meter add fails (OFPMMFC_METER_EXISTS) where the meter already is: a re-sent
            # difference, a meter left by an earlier life. Deleting it first keeps re-sending
            # harmless; the flows that use it come later in the batch.
            fresh += [MeterMod("delete", mid), meter]
        elif (before.rate_kbps, before.burst_kb) != (meter.rate_kbps, meter.burst_kb):
            msgs.append(MeterMod("modify", mid, meter.rate_kbps, meter.burst_kb))
    for key, flow in new.flows.items():
        if old.flows.get(key) != flow:
            msgs.append(flow)
    for key, flow in old.flows.items():
        if key not in new.flows:
            msgs.append(
                FlowMod(
                    "delete_strict",
                    table=flow.table,
                    priority=flow.priority,
                    match=flow.match,
                    cookie=flow.cookie,
                    cookie_mask=COOKIE_ALL,
                )
            )
    msgs += [MeterMod("delete", mid) for mid in old.meters if mid not in new.meters]
    return fresh + ordered(msgs)


def diff(old: Mapping[str, SwitchConfig], new: Mapping[str, SwitchConfig]) -> Stage:
    """Per switch, the messages from `old` to `new` (switches with nothing to do are left out)."""
    stage: Stage = {}
    for sw in sorted(set(old) | set(new)):
        msgs = diff_switch(old.get(sw), new.get(sw, SwitchConfig()))
        if msgs:
            stage[sw] = msgs
    return stage


def full_config(config: SwitchConfig, stale_meters: Iterable[int] = ()) -> list[Message]:
    """Everything for a switch that (re)connects: remove all of mecmig's flows, then install.

    Only flows carrying one of our cookie kinds are removed (other apps' flows stay), and only the
    meters we are about to install or know to be stale are deleted first.
    """
    kind_mask = 0xFF << COOKIE_KIND_SHIFT
    msgs: list[Message] = [
        FlowMod(
            "delete", table=TABLE_ALL, cookie=int(kind) << COOKIE_KIND_SHIFT, cookie_mask=kind_mask
        )
        for kind in CookieKind
    ]
    msgs += [MeterMod("delete", mid) for mid in sorted({*config.meters, *stale_meters})]
    msgs += list(config.meters.values())
    msgs += list(config.flows.values())
    msgs.append(Barrier())
    return msgs


def staged_by_distance(stage: Stage, distance: Mapping[str, int]) -> Plan:
    """Split one stage into make-before-break stages for a host that moved.

    Additions go out first at the switches nearest the host's new place, then ring by ring
    outwards (so no switch points towards a neighbour that still points back); removals go last.
    Switches not in `distance` (unreachable) get their additions with the farthest ring.
    """
    far = max(distance.values(), default=0) + 1
    rings: dict[int, Stage] = {}
    removals: Stage = {}
    for sw, msgs in stage.items():
        added = {m.meter_id for m in msgs if isinstance(m, MeterMod) and m.command == "add"}
        adds = [m for m in msgs if _is_addition(m, added)]
        dels = [m for m in msgs if not _is_addition(m, added)]
        if adds:
            rings.setdefault(distance.get(sw, far), {})[sw] = adds
        if dels:
            removals[sw] = dels
    plan = [rings[d] for d in sorted(rings)]
    if removals:
        plan.append(removals)
    return plan


def _is_addition(msg: Message, added_meters: set[int]) -> bool:
    if isinstance(msg, FlowMod):
        return msg.command == "add"
    if isinstance(msg, MeterMod):  # the delete that clears the way for an add goes with it
        return msg.command != "delete" or msg.meter_id in added_meters
    return True
