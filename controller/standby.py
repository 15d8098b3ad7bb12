"""Standby attachments: the ports of an instance's warm replicas (seed 002, issue 12 part 4).

A replica of a stateless instance runs at another site with the instance's IP and MAC, plugged
into a port the controller knows as the instance's standby there. Nothing is steered to it, and
every frame it sends is dropped at that port by one table-0 flow (`standby_flow`, above every
other table-0 flow): its ARP requests and gratuitous ARPs never reach the controller (whose
learning would otherwise move the instance's traffic to the replica) and its packets reach no
one. `FabricState.learn_host` ignores a standby port too, for what arrives before that flow is
in place. A promotion moves the instance's traffic to a standby in one make-before-break change
(`with_standby_flows`): the standby's drop goes first, with the new place's forwarding; the old
place's drop (when it becomes a standby) goes last, after its forwarding is gone.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from controller.forwarding import host_flow
from controller.ofmsg import (
    IN_PORT,
    PRIO_BOUNCE,
    PRIO_DRAIN,
    PRIO_STANDBY,
    TABLE_CLASSIFY,
    CookieKind,
    FlowMod,
    Match,
    cookie,
)
from controller.plan import Plan, Stage, delete_strict
from topology.model import Attachment

Standbys = Mapping[str, Mapping[str, Attachment]]  # host -> switch -> its standby there


def standby_flow(att: Attachment, host_id: int) -> FlowMod:
    """The flow that drops every frame arriving at standby `att`'s port (a host flow's cookie:
    a connecting switch's full config clears and re-adds it with the rest)."""
    return FlowMod(
        "add",
        table=TABLE_CLASSIFY,
        priority=PRIO_STANDBY,
        match=Match.of(in_port=att.port),
        cookie=cookie(CookieKind.HOST, host_id),
    )


def drain_flow(att: Attachment, host_id: int) -> FlowMod:
    """While a drained promotion's old place `att` drains, what still arrives at its switch for
    the host leaves by its old port, above every forwarding flow.

    Make-before-break changes the switches outwards from the new place, each stage confirmed by
    barriers, yet a packet already on its way to the old place (queued on a link, or sent by a
    switch whose datapath has not yet revalidated its cached flows) arrives after the old
    place's forwarding points back the way it came, and OpenFlow drops a packet output to its
    in-port. Live, one move in ~25 lost a SYN-ACK so (the client waited 1 s). Delivered by the
    old port instead, it reaches the host, whose old link is still up while it drains.
    """
    return _for_host(att, host_id, PRIO_DRAIN, att.port)


def bounce_flow(att: Attachment, host_id: int, uplink: int) -> FlowMod:
    """While a drained promotion's old place `att` drains, at a site switch whose one link goes
    up by port `uplink`: a frame for the host that comes down that link goes back up it, to
    where the host is now.

    The same late packet as `drain_flow`'s, for replicas: the old place is another process,
    which never saw the new connection a SYN opens, so the frame goes on to the new primary
    instead. Without it the site's uplink entry sends the frame out of the port it came in on,
    where OpenFlow drops it: live, a SYN lost in ~1 promotion of 25 (the client waits 1 s; CI
    saw a failover's client gap of 1.28 s against 0.6). It sits below the host's own entry (a
    host at that switch is still delivered to) and above the uplink's, so it does nothing
    until the site's forwarding has let go of the host, by when the switches above it already
    point at the new place (make-before-break changes them first): the frame goes up once and
    on.
    """
    return _for_host(att, host_id, PRIO_BOUNCE, IN_PORT, in_port=uplink)


def _for_host(
    att: Attachment, host_id: int, priority: int, out: int, in_port: int | None = None
) -> FlowMod:
    """`host_flow` for `att`'s MAC (from `in_port`, if given) out of `out`, at `priority`."""
    if att.mac is None:  # a standby's host has one (`FabricState._check_standby`)
        raise ValueError(f"{att.host} has no MAC address to forward to")
    match = Match.of(in_port=in_port, eth_dst=att.mac)
    return replace(host_flow(att.mac, host_id, out, match), priority=priority)


def standby_flows(standbys: Standbys, host_ids: Mapping[str, int]) -> dict[str, list[FlowMod]]:
    """Per switch, the drop flows of every standby there."""
    out: dict[str, list[FlowMod]] = {}
    for host, places in standbys.items():
        for att in places.values():
            out.setdefault(att.switch, []).append(standby_flow(att, host_ids[host]))
    return out


def flow_changes(
    before: Standbys,
    after: Standbys,
    ids_before: Mapping[str, int],
    ids_after: Mapping[str, int],
) -> tuple[Stage, Stage]:
    """(deletes, adds) of drop flows, per switch, from `before` to `after`."""

    def keyed(standbys: Standbys, ids: Mapping[str, int]) -> dict[tuple[str, object], FlowMod]:
        return {
            (sw, (f.table, f.priority, f.match)): f
            for sw, flows in standby_flows(standbys, ids).items()
            for f in flows
        }

    old, new = keyed(before, ids_before), keyed(after, ids_after)
    deletes: Stage = {}
    adds: Stage = {}
    for (sw, key), flow in old.items():
        if new.get((sw, key)) != flow:
            deletes.setdefault(sw, []).append(delete_strict(flow))
    for (sw, key), flow in new.items():
        if old.get((sw, key)) != flow:
            adds.setdefault(sw, []).append(flow)
    return deletes, adds


def with_standby_flows(plan: Plan, first: Stage, last: Stage) -> Plan:
    """`plan` with `first`'s messages before everything of the first stage (a switch there
    gets them ahead of its own) and `last`'s after everything of the last stage."""
    out = [dict(stage) for stage in plan]
    if first:
        if not out:
            out.append({})
        head = out[0]
        for sw, msgs in first.items():
            head[sw] = [*msgs, *head.get(sw, [])]
    if last:
        if not out:
            out.append({})
        tail = out[-1]
        for sw, msgs in last.items():
            tail[sw] = [*tail.get(sw, []), *msgs]
    return [stage for stage in out if stage]


def ports_of(standbys: Standbys, switch: str) -> Iterable[tuple[int, str]]:
    """(port, host) of every standby at `switch`."""
    for host, places in standbys.items():
        att = places.get(switch)
        if att is not None:
            yield att.port, host
