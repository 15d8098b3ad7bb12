"""A software OpenFlow 1.3 switch (flow tables and meters) that runs `controller.ofmsg` messages.

Tests check behaviour on it ("traffic of migration 7 leaves port 3 through meter 7") instead of
comparing messages. `SwitchTable.apply` follows what Open vSwitch does with each message and raises
`FlowTableError` (carrying the OpenFlow error code) where OVS would answer with an error; the
messages before the failing one stay applied, as on a real switch. `SwitchTable.lookup` runs a
packet (a dict of OXM fields) through the pipeline from table 0.

Not modelled: counters, timeouts, groups, write-actions, match prerequisites, and rate enforcement
(a meter is recorded as passed, it never drops). Metadata is: it starts at 0 for every packet,
a write-metadata instruction sets it, a later table matches it, and it never leaves the switch.
Whole networks: `controller.fabricsim`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.ofmsg import (
    CONTROLLER_PORT,
    IN_PORT,
    TABLE_ALL,
    Action,
    Barrier,
    FlowMod,
    Match,
    MatchValue,
    Message,
    MeterMod,
    Output,
    PacketOut,
    SetField,
)

ANY_PORT = 0xFFFFFFFF  # OFPP_ANY: as a delete's out_port, the same as None (no restriction)
MAX_TABLE = 0xFE  # OFPTT_MAX

Packet = dict[str, object]
Key = dict[str, tuple[int, int]]  # a match in canonical form: field -> (value & mask, mask)
TableSnapshot = tuple[frozenset["Entry"], frozenset[tuple[int, int, int]]]

# Bit widths of integer OXM fields, so that an exact value equals a fully masked one; other
# integer fields count as 64 bits. MACs are 48 bits, IPv4 32, IPv6 128.
_WIDTHS = {
    name: width
    for width, names in (
        (32, "in_port in_phy_port"),
        (20, "ipv6_flabel mpls_label"),
        (16, "eth_type tcp_src tcp_dst udp_src udp_dst sctp_src sctp_dst arp_op"),
        (13, "vlan_vid"),
        (8, "ip_proto icmpv4_type icmpv4_code icmpv6_type icmpv6_code"),
        (6, "ip_dscp"),
        (3, "vlan_pcp mpls_tc"),
        (2, "ip_ecn"),
    )
    for name in names.split()
}
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", re.IGNORECASE)


class FlowSimError(Exception):
    """Base class of the errors raised by the software switch and the software fabric."""


class FlowTableError(FlowSimError):
    """A message the switch refuses (`code`: the OpenFlow error OVS answers), or a bad packet."""

    def __init__(self, code: str, detail: str, switch: str = "") -> None:
        self.code = code
        self.detail = detail
        self.switch = switch
        where = f"{switch}: " if switch else ""
        super().__init__(f"{where}{code}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.code, self.detail, self.switch))


@dataclass(frozen=True)
class Entry:
    """One flow entry, as installed (the match as it was sent)."""

    table: int
    priority: int
    match: Match
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    meter: int | None = None
    cookie: int = 0
    metadata: int | None = None  # what its write-metadata instruction writes

    def outputs_to(self, port: int) -> bool:
        """Whether one of the actions outputs to `port`."""
        return any(isinstance(a, Output) and a.port == port for a in self.actions)

    def describe(self) -> str:
        """One line, in the style of `FlowMod.describe`."""
        e = self
        mod = FlowMod(
            "add", e.table, e.priority, e.match, e.actions, e.goto, e.meter, e.cookie,
            metadata=e.metadata,
        )  # fmt: skip
        return mod.describe().removeprefix("add ")


@dataclass(frozen=True)
class Verdict:
    """What one switch does with one packet.

    `outputs`: (port, packet as it left) in action order; `meters`: the meters passed; `entries`:
    the flow entries hit, table by table; `to_controller`: whether one output is a packet-in.
    """

    outputs: tuple[tuple[int, Packet], ...] = ()
    meters: tuple[int, ...] = ()
    entries: tuple[Entry, ...] = ()
    to_controller: bool = False

    @property
    def dropped(self) -> bool:
        """No output at all (not even to the controller)."""
        return not self.outputs

    @property
    def ports(self) -> tuple[int, ...]:
        """The output ports, in action order."""
        return tuple(port for port, _ in self.outputs)


def _scalar(name: str, value: object) -> tuple[int, int] | None:
    """A field value as (integer, bit width), or None if it is not an int, MAC or IP address."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        width = _WIDTHS.get(name, 64)
        return (value, width) if 0 <= value < (1 << width) else None
    if isinstance(value, str):
        if _MAC.fullmatch(value):
            return int(value.replace(":", ""), 16), 48
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            return None
        return int(addr), addr.max_prefixlen
    return None


def _canon(name: str, value: MatchValue) -> tuple[int, int] | None:
    """A match value as (value & mask, mask); an exact value has every bit of the mask set."""
    raw, raw_mask = value if isinstance(value, tuple) else (value, None)
    parsed = _scalar(name, raw)
    if parsed is None:
        return None
    number, width = parsed
    full = (1 << width) - 1
    if raw_mask is None:
        return number, full
    mask = _scalar(name, raw_mask)
    if mask is None or mask[0] > full:
        return None
    return number & mask[0], mask[0]


def canonical_value(name: str, value: MatchValue) -> tuple[int, int] | None:
    """A field's value as (value & mask, mask), as the switch compares it; None if it is not
    an integer, MAC or IP address (or a masked one)."""
    return _canon(name, value)


def match_key(match: Match, switch: str = "") -> Key:
    """`match` in canonical form (masked values normalised); FlowTableError if malformed."""
    key: Key = {}
    for name, value in match.fields:
        if name in key:
            raise FlowTableError("OFPBMC_DUP_FIELD", f"{name} twice in [{match}]", switch)
        canon = _canon(name, value)
        if canon is None:
            raise FlowTableError("OFPBMC_BAD_VALUE", f"{name}={value!r} in [{match}]", switch)
        key[name] = canon
    return key


def _covers(entry: Key, query: Key) -> bool:
    """Whether a flow matching `entry` is at least as specific as `query` (loose delete)."""
    for name, (value, mask) in query.items():
        if name not in entry:
            return False
        e_value, e_mask = entry[name]
        if e_mask & mask != mask or e_value & mask != value:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Row:
    entry: Entry
    key: Key


class SwitchTable:
    """One switch's OpenFlow 1.3 state: flow entries per table, meters, packet-outs sent to it."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._tables: dict[int, list[_Row]] = {}
        self._meters: dict[int, tuple[int, int]] = {}
        self.packet_outs: list[PacketOut] = []

    def _error(self, code: str, detail: str) -> FlowTableError:
        return FlowTableError(code, detail, self.name)

    # ------------------------------------------------------------------------------ messages

    def apply(self, msgs: Iterable[Message]) -> None:
        """Apply messages in order, as the switch would; FlowTableError where it would refuse."""
        for msg in msgs:
            if isinstance(msg, FlowMod):
                if msg.command == "add":
                    self._add(msg)
                else:
                    self._delete(msg)
            elif isinstance(msg, MeterMod):
                self._meter_mod(msg)
            elif isinstance(msg, PacketOut):
                self.packet_outs.append(msg)
            elif not isinstance(msg, Barrier):
                raise self._error("OFPBRC_BAD_TYPE", f"not an OpenFlow message: {msg!r}")

    def _add(self, msg: FlowMod) -> None:
        what = msg.describe()
        if not 0 <= msg.table <= MAX_TABLE:
            raise self._error("OFPFMFC_BAD_TABLE_ID", what)
        if not 0 <= msg.priority <= 0xFFFF:
            raise self._error("OFPFMFC_BAD_PRIORITY", what)
        if msg.goto is not None and not msg.table < msg.goto <= MAX_TABLE:
            raise self._error("OFPBIC_BAD_TABLE_ID", f"goto must go forward: {what}")
        if msg.meter is not None and msg.meter not in self._meters:
            raise self._error("OFPMMFC_UNKNOWN_METER", what)
        if msg.metadata is not None and not 0 <= msg.metadata < 1 << 64:
            raise self._error("OFPBIC_BAD_METADATA", what)
        for action in msg.actions:
            if isinstance(action, SetField) and _canon(action.name, action.value) is None:
                raise self._error("OFPBAC_BAD_SET_ARGUMENT", what)
        key = match_key(msg.match, self.name)
        entry = Entry(
            msg.table, msg.priority, msg.match, msg.actions, msg.goto, msg.meter, msg.cookie,
            msg.metadata,
        )  # fmt: skip
        rows = self._tables.setdefault(msg.table, [])
        for i, row in enumerate(rows):
            if row.entry.priority == msg.priority and row.key == key:
                rows[i] = _Row(entry, key)  # same table, priority and match: replaced in place
                return
        rows.append(_Row(entry, key))

    def _delete(self, msg: FlowMod) -> None:
        if msg.table == TABLE_ALL:
            tables = list(self._tables)
        elif 0 <= msg.table <= MAX_TABLE:
            tables = [msg.table]
        else:
            raise self._error("OFPFMFC_BAD_TABLE_ID", msg.describe())
        key = match_key(msg.match, self.name)
        out_port = None if msg.out_port == ANY_PORT else msg.out_port
        strict = msg.command == "delete_strict"

        def doomed(row: _Row) -> bool:
            entry = row.entry
            if entry.cookie & msg.cookie_mask != msg.cookie & msg.cookie_mask:
                return False
            if out_port is not None and not entry.outputs_to(out_port):
                return False
            if strict:
                return entry.priority == msg.priority and row.key == key
            return _covers(row.key, key)

        for table in tables:
            self._tables[table] = [row for row in self._tables.get(table, []) if not doomed(row)]

    def _meter_mod(self, msg: MeterMod) -> None:
        mid = msg.meter_id
        if msg.command == "add":
            if mid in self._meters:
                raise self._error("OFPMMFC_METER_EXISTS", f"meter {mid}")
            self._meters[mid] = (msg.rate_kbps, msg.burst_kb)
        elif msg.command == "modify":
            if mid not in self._meters:
                raise self._error("OFPMMFC_UNKNOWN_METER", f"modify of missing meter {mid}")
            self._meters[mid] = (msg.rate_kbps, msg.burst_kb)
        elif self._meters.pop(mid, None) is not None:
            # OVS deletes the flows that use a meter together with it.
            for table, rows in self._tables.items():
                self._tables[table] = [row for row in rows if row.entry.meter != mid]

    # ------------------------------------------------------------------------------ lookups

    def _best(self, table: int, packet: Packet, in_port: int, metadata: int) -> Entry | None:
        best: Entry | None = None
        for row in self._tables.get(table, ()):
            if best is not None and row.entry.priority <= best.priority:
                continue  # ties go to the entry inserted first
            if all(
                self._field_matches(packet, in_port, metadata, f, v) for f, v in row.key.items()
            ):
                best = row.entry
        return best

    def _field_matches(
        self, packet: Packet, in_port: int, metadata: int, name: str, want: tuple[int, int]
    ) -> bool:
        if name == "in_port":
            have: object = in_port
        elif name == "metadata":
            have = metadata
        elif name in packet:
            have = packet[name]
        else:
            return False  # a field the packet does not have never matches
        parsed = _scalar(name, have)
        if parsed is None:
            raise self._error("BAD_PACKET", f"{name}={have!r} is not an int, MAC or IP address")
        value, mask = want
        return parsed[0] & mask == value

    def lookup(self, packet: Mapping[str, object], in_port: int) -> Verdict:
        """Run `packet` arriving on `in_port` through the pipeline from table 0.

        In each table the highest-priority matching entry wins (ties: the first inserted); its
        meter is recorded, its actions run in order (SetField rewrites the packet, Output emits a
        copy of the packet as it is then), its metadata is written, then its goto continues. No
        matching entry: stop. As on OVS, an Output to the ingress port itself is not sent (use
        IN_PORT for that). An `in_port` key in `packet` is ignored: the argument is the ingress
        port.
        """
        pkt: Packet = {k: v for k, v in packet.items() if k != "in_port"}
        outputs: list[tuple[int, Packet]] = []
        meters: list[int] = []
        hits: list[Entry] = []
        table: int | None = 0
        metadata = 0
        while table is not None:
            entry = self._best(table, pkt, in_port, metadata)
            if entry is None:
                break
            hits.append(entry)
            if entry.meter is not None:
                meters.append(entry.meter)
            for action in entry.actions:
                if isinstance(action, SetField):
                    pkt[action.name] = action.value
                elif action.port == IN_PORT:
                    outputs.append((in_port, dict(pkt)))
                elif action.port != in_port:
                    outputs.append((action.port, dict(pkt)))
            if entry.metadata is not None:
                metadata = entry.metadata
            table = entry.goto  # always a later table: apply() refuses backward gotos
        return Verdict(
            outputs=tuple(outputs),
            meters=tuple(meters),
            entries=tuple(hits),
            to_controller=any(port == CONTROLLER_PORT for port, _ in outputs),
        )

    # ------------------------------------------------------------------------------ state

    def flows(self, table: int | None = None) -> tuple[Entry, ...]:
        """The flow entries of `table` (None: all), by table, then priority high to low."""
        rows = (row.entry for t, rs in self._tables.items() if table in (None, t) for row in rs)
        return tuple(sorted(rows, key=lambda e: (e.table, -e.priority)))  # stable: insertion order

    @property
    def meters(self) -> dict[int, tuple[int, int]]:
        """A copy of the meters: meter_id -> (rate_kbps, burst_kb)."""
        return dict(self._meters)

    def snapshot(self) -> TableSnapshot:
        """All entries and meters, hashable and independent of the order they were installed."""
        meters = frozenset((mid, rate, burst) for mid, (rate, burst) in self._meters.items())
        return frozenset(self.flows()), meters

    def dump(self) -> str:
        """A readable listing (for assertion messages)."""
        lines = [f"switch {self.name or '?'}"]
        lines += [
            f"  meter {m}: {r} kbit/s, burst {b}" for m, (r, b) in sorted(self._meters.items())
        ]
        lines += [f"  {entry.describe()}" for entry in self.flows()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        n = sum(len(rows) for rows in self._tables.values())
        return f"SwitchTable({self.name!r}, {n} flows, {len(self._meters)} meters)"
