"""OpenFlow 1.3 messages as plain, immutable data.

Decision code (forwarding, chains, reservations, relocation) returns these per switch; only the
os-ken app turns them into wire messages (`controller.ofencode`) and sends them. Tests run them on a
software flow table (`controller.flowtable`) that models meters. Field names are OpenFlow's OXM
names (in_port, eth_dst, eth_type, ipv4_src, tcp_dst, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

# Tables: 0 classifies (reservations, chain steering, ARP/LLDP to the controller), 1 forwards by
# destination MAC along a shortest-path tree per host, 2 routes between core switches: a core
# switch's entry for a host far away writes the host's anchor (its core switch) into the
# metadata, and table 2 sends it on towards that anchor (see controller.forwarding).
TABLE_CLASSIFY = 0
TABLE_FORWARD = 1
TABLE_ROUTE = 2
TABLE_ALL = 0xFF  # OFPTT_ALL: a delete in every table

# Priorities within table 0.
PRIO_STANDBY = 5000  # frames from a warm replica's port (a standby): dropped there
PRIO_HOLD = 4000  # an instance's traffic held at the controller while it is frozen
PRIO_DRAIN = 3500  # what still reaches a drained promotion's old place: out of its old port
PRIO_RESERVATION = 3000
PRIO_CHAIN = 2000
PRIO_CONTROL = 1000  # ARP to the controller
PRIO_DEFAULT = 0
# Priorities within table 1.
PRIO_HOST = 100
PRIO_BOUNCE = 90  # what comes down a site's uplink for a replica that left it: back up
PRIO_DROP_MULTICAST = 50
PRIO_UPLINK = 10  # a site's one link to its aggregation switch: every other unicast goes up it
# Priority within table 2.
PRIO_ROUTE = 100

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_LLDP = 0x88CC
IP_PROTO = {"icmp": 1, "tcp": 6, "udp": 17}

CONTROLLER_PORT = 0xFFFFFFFD  # OFPP_CONTROLLER
IN_PORT = 0xFFFFFFF8  # OFPP_IN_PORT: back out of the ingress port (a plain Output to it is dropped)
TABLE_PORT = 0xFFFFFFF9  # OFPP_TABLE: a packet-out through the switch's own tables
MAX_METER_ID = 0xFFFF0000  # OFPM_MAX
METADATA_ALL = 0xFFFFFFFFFFFFFFFF  # the mask of a write-metadata that writes every bit


class CookieKind(IntEnum):
    """The top byte of every cookie says what a flow belongs to; the rest says which one."""

    BASE = 0x01
    HOST = 0x02
    CHAIN = 0x03
    RESERVATION = 0x04
    HOLD = 0x05
    ROUTE = 0x06


COOKIE_KIND_SHIFT = 56
COOKIE_ALL = 0xFFFFFFFFFFFFFFFF


def cookie(kind: CookieKind, ident: int = 0) -> int:
    """The cookie of one thing's flows: `cookie(RESERVATION, 7)` marks reservation 7's flows."""
    if not 0 <= ident < (1 << COOKIE_KIND_SHIFT):
        raise ValueError(f"cookie id {ident} out of range")
    return (int(kind) << COOKIE_KIND_SHIFT) | ident


def cookie_kind(value: int) -> CookieKind | None:
    """Which kind of thing a cookie marks (None for flows that are not ours)."""
    try:
        return CookieKind(value >> COOKIE_KIND_SHIFT)
    except ValueError:
        return None


MatchValue = int | str | tuple[int, int] | tuple[str, str]


@dataclass(frozen=True)
class Match:
    """An OXM match: field -> value, or (value, mask) for masked fields."""

    fields: tuple[tuple[str, MatchValue], ...] = ()

    @staticmethod
    def of(**fields: MatchValue | None) -> Match:
        """`Match.of(eth_type=0x800, ipv4_dst="10.0.0.2")`; None values are left out."""
        return Match(tuple(sorted((k, v) for k, v in fields.items() if v is not None)))

    def as_dict(self) -> dict[str, MatchValue]:
        return dict(self.fields)

    def get(self, name: str) -> MatchValue | None:
        return self.as_dict().get(name)

    def __str__(self) -> str:
        return ",".join(f"{k}={_show(v)}" for k, v in self.fields) or "*"


def _show(value: MatchValue) -> str:
    if isinstance(value, tuple):
        return f"{value[0]}/{value[1]}"
    return str(value)


@dataclass(frozen=True)
class Output:
    """Send out of `port` (CONTROLLER_PORT sends a packet-in)."""

    port: int
    max_len: int = 0xFFFF


@dataclass(frozen=True)
class SetField:
    """Rewrite one header field, e.g. SetField("eth_dst", "02:00:0a:00:00:0b")."""

    name: str
    value: int | str


Action = Output | SetField


@dataclass(frozen=True)
class FlowMod:
    """Add or delete flows.

    `add` replaces a flow with the same table, priority and match. `delete` removes every flow of
    `table` (TABLE_ALL: of every table) whose match is at least as specific as `match`, whose
    cookie agrees with `cookie` on the bits of `cookie_mask` and, if `out_port` is set, that
    outputs to it; `delete_strict` also needs the same priority and exactly the same match.
    """

    command: Literal["add", "delete", "delete_strict"]
    table: int = TABLE_CLASSIFY
    priority: int = 0
    match: Match = field(default_factory=Match)
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    meter: int | None = None
    cookie: int = 0
    cookie_mask: int = 0
    out_port: int | None = None
    metadata: int | None = None  # a write-metadata instruction (every bit), before the goto

    def describe(self) -> str:
        """One line for logs and error messages."""
        parts = [f"{self.command} t{self.table} p{self.priority} cookie={self.cookie:#x}"]
        parts.append(f"match[{self.match}]")
        if self.meter is not None:
            parts.append(f"meter:{self.meter}")
        if self.actions:
            parts.append("actions:" + ",".join(_act(a) for a in self.actions))
        if self.metadata is not None:
            parts.append(f"write_metadata:{self.metadata:#x}")
        if self.goto is not None:
            parts.append(f"goto:{self.goto}")
        return " ".join(parts)


def _act(action: Action) -> str:
    if isinstance(action, Output):
        named = {CONTROLLER_PORT: "CONTROLLER", IN_PORT: "IN_PORT"}
        return named.get(action.port, f"output:{action.port}")
    return f"set_{action.name}:{action.value}"


@dataclass(frozen=True)
class MeterMod:
    """Add, modify or delete a meter with one drop band (rate in kbit/s, burst in kbit)."""

    command: Literal["add", "modify", "delete"]
    meter_id: int
    rate_kbps: int = 0
    burst_kb: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.meter_id <= MAX_METER_ID:
            raise ValueError(f"meter id {self.meter_id} out of range")


@dataclass(frozen=True)
class Barrier:
    """Ask the switch to finish everything before; its reply confirms it."""


@dataclass(frozen=True)
class PacketOut:
    """Send `data` (an Ethernet frame) out of `port`."""

    port: int
    data: bytes


Message = FlowMod | MeterMod | Barrier | PacketOut
Batch = dict[int, list[Message]]  # dpid -> messages, in the order they must be sent


def ordered(msgs: Iterable[Message]) -> list[Message]:
    """Make-before-break order for one switch: meter adds/modifies, flow adds, flow deletes,
    meter deletes, then barriers and packet-outs.

    A flow is added only after the meter it uses exists; a meter is deleted only after the flows
    that used it; new paths are in place before old ones go. The order within a rank is kept.
    """

    def rank(m: Message) -> int:
        if isinstance(m, MeterMod):
            return 0 if m.command != "delete" else 3
        if isinstance(m, FlowMod):
            return 1 if m.command == "add" else 2
        return 4

    return sorted(msgs, key=rank)  # sorted() is stable


def merge(*batches: Mapping[int, Iterable[Message]]) -> Batch:
    """Concatenate batches switch by switch."""
    out: Batch = {}
    for batch in batches:
        for dpid, msgs in batch.items():
            out.setdefault(dpid, []).extend(msgs)
    return out
