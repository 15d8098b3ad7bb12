"""Desired switch state, and the messages that take a switch from one desired state to the next.

The controller never edits flows one by one: it computes what every switch should hold (a
`SwitchConfig` per switch) and sends the difference. Re-sending a difference that was already
applied changes nothing, and a switch that reconnects simply gets its whole config again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.flowtable import Entry, FlowTableError, canonical_value, match_key
from controller.ofmsg import (
    CONTROLLER_PORT,
    COOKIE_ALL,
    COOKIE_KIND_SHIFT,
    TABLE_ALL,
    Action,
    Barrier,
    CookieKind,
    FlowMod,
    Match,
    Message,
    MeterMod,
    Output,
    SetField,
    cookie_kind,
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


def diff_switch(
    old: SwitchConfig | None,
    new: SwitchConfig,
    head_adds: Sequence[FlowMod] = (),
    head_deletes: Sequence[FlowMod] = (),
) -> list[Message]:
    """The messages that turn `old` into `new` on one switch, make-before-break ordered.

    `head_adds` and `head_deletes`: flow adds and deletes made already (of flows that come
    before all of `old`'s and `new`'s in their order), sent first among their kind."""
    old = old or SwitchConfig()
    fresh: list[Message] = []
    msgs: list[Message] = [*head_adds]
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
    msgs += head_deletes
    msgs += [delete_strict(flow) for key, flow in old.flows.items() if key not in new.flows]
    msgs += [MeterMod("delete", mid) for mid in old.meters if mid not in new.meters]
    return fresh + ordered(msgs)


def delete_strict(flow: FlowMod | Entry) -> FlowMod:
    """The delete of exactly this flow (its table, priority, match and cookie)."""
    return FlowMod(
        "delete_strict",
        table=flow.table,
        priority=flow.priority,
        match=flow.match,
        cookie=flow.cookie,
        cookie_mask=COOKIE_ALL,
    )


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


def reconcile(
    config: SwitchConfig,
    flows: Iterable[Entry],
    meters: Mapping[int, tuple[int, int]],
    owned_meter: Callable[[int], bool],
    unreadable: Iterable[Entry] = (),
) -> list[Message]:
    """The messages that make a switch holding `flows` and `meters` (read from it) hold
    exactly `config`, as far as mecmig's part goes; none when it already does.

    Flows are mecmig's by their cookie's kind (others' flows are left alone); meters carry no
    owner, so `owned_meter` says which ids are mecmig's. What is missing or differs is added
    (an add replaces a flow of the same table, priority and match in place: no gap), what is
    mecmig's and not in `config` is deleted, make-before-break ordered. `unreadable`: flows of
    the switch whose instructions could not be read; they count as different from every flow.
    """
    want = {_flow_key(f.table, f.priority, f.match): f for f in config.flows.values()}
    good: set[Hashable] = set()
    msgs: list[Message] = []
    readable = [(e, True) for e in flows] + [(e, False) for e in unreadable]
    for entry, read in readable:
        if cookie_kind(entry.cookie) is None:
            continue
        key = _flow_key(entry.table, entry.priority, entry.match)
        flow = want.get(key)
        if flow is None:
            msgs.append(delete_strict(entry))
        elif read and _same_flow(flow, entry):
            good.add(key)
    msgs += [flow for key, flow in want.items() if key not in good]
    for mid, meter in config.meters.items():
        present = meters.get(mid)
        if present is None:
            msgs.append(meter)
        elif present != (meter.rate_kbps, meter.burst_kb):
            msgs.append(MeterMod("modify", mid, meter.rate_kbps, meter.burst_kb))
    msgs += [
        MeterMod("delete", mid)
        for mid in sorted(meters)
        if mid not in config.meters and owned_meter(mid)
    ]
    return ordered(msgs)


def _flow_key(table: int, priority: int, match: Match) -> Hashable:
    """What identifies a flow to the switch, with its match canonical (masked values
    normalised, fields in any order, MACs in any case)."""
    try:
        return table, priority, frozenset(match_key(match).items())
    except FlowTableError:  # not a match mecmig makes: compared as it is
        return table, priority, match


def _same_flow(flow: FlowMod, entry: Entry) -> bool:
    mine = (flow.cookie, flow.goto, flow.meter, flow.metadata)
    return mine == (entry.cookie, entry.goto, entry.meter, entry.metadata) and [
        _action_key(a) for a in flow.actions
    ] == [_action_key(a) for a in entry.actions]


def _action_key(action: Action) -> Hashable:
    if isinstance(action, Output):
        # max_len only means something for packet-ins; a switch may report it as it likes else
        return ("output", action.port, action.max_len if action.port == CONTROLLER_PORT else 0)
    if isinstance(action, SetField):
        return ("set", action.name, canonical_value(action.name, action.value) or action.value)
    return action


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
