"""Bandwidth reservations: one OpenFlow meter at the path's first switch, flows along the path.

A reservation carries only the traffic its match selects (e.g. one migration's TCP port between two
site agents). At the first switch that traffic goes through the reservation's meter (drop band at
the reserved rate), then out along the admitted path, which need not be the shortest one; every
other switch of the path forwards it on, and the last one delivers it to the destination host.
All its flows carry cookie(RESERVATION, id), and the meter id is the reservation id, so
`ovs-ofctl -O OpenFlow13 dump-flows/dump-meters` trace back to it. Reservations that select the
same packets share the oldest one's meter and flows at their summed rate (`shared_meters`).

The first switch also marks the traffic it metered DSCP 46 (EF, `RESERVED_DSCP`): an emulated
link's shaper (mininet_scenarios.shaping) sends that first, so a reservation keeps its rate while
best-effort traffic saturates the link; the mark stays on the packet along its path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from controller.limits import MAX_OF_UINT32
from controller.ofmsg import (
    ETH_TYPE_IP,
    IP_PROTO,
    PRIO_RESERVATION,
    TABLE_CLASSIFY,
    CookieKind,
    FlowMod,
    Match,
    MeterMod,
    Output,
    SetField,
    cookie,
)
from ground.defaults import RESERVED_DSCP
from topology.model import Attachment, Reservation, Topology

# Meter burst: OVS's userspace meter is a token bucket that a TCP sender at line rate overruns in
# one window. Measured here (5-50 Mbit/s, 5 s transfers): a bucket of 50 ms held TCP to 0.1-0.3 of
# the rate, 200 ms to 0.92-0.96, 500 ms to 1.01-1.05; a sender pacing at the rate got 0.99-1.01
# with any of them. `mecmig bench reservation` measures it again: see the README.
BURST_SECONDS = 0.3
MIN_BURST_KB = 64


def default_burst_kb(rate_bps: int) -> int:
    """The meter burst (kbit) used when a reservation does not name one."""
    return max(MIN_BURST_KB, int(rate_bps * BURST_SECONDS / 1000))


@dataclass(frozen=True)
class ReservationRecord:
    """A reservation in force: who, how much, for which packets, on which path."""

    id: int
    src: str  # host names (agent or instance)
    dst: str
    rate_bps: int
    burst_kb: int
    path: tuple[str, ...]
    ip_src: str
    ip_dst: str
    proto: str = "tcp"
    dst_port: int | None = None
    src_port: int | None = None
    owner: str | None = None

    @property
    def meter_id(self) -> int:
        return self.id

    @property
    def cookie(self) -> int:
        return cookie(CookieKind.RESERVATION, self.id)

    def as_model(self) -> Reservation:
        """The topology model's view (for admission arithmetic)."""
        return Reservation(self.id, self.src, self.dst, self.path, self.rate_bps)

    def match(self) -> Match:
        l4: dict[str, int | None] = {}
        if self.proto != "any":
            l4["ip_proto"] = IP_PROTO[self.proto]
            l4[f"{self.proto}_dst"] = self.dst_port
            l4[f"{self.proto}_src"] = self.src_port
        return Match.of(eth_type=ETH_TYPE_IP, ipv4_src=self.ip_src, ipv4_dst=self.ip_dst, **l4)


def shared_meters(records: Iterable[ReservationRecord]) -> list[ReservationRecord]:
    """What to install for `records`: reservations that select the same packets (the same
    match, e.g. two migrations between the same two agents) share one meter and one set of
    flows, the oldest's, at their summed rate and burst, on its path; each keeps its own
    admission. When the oldest is released the next one's meter takes over. The sums are capped
    at what a meter's 32-bit fields hold (kbit/s, kbit): each member is bounded, their sum is
    not, and a meter the switch cannot encode would fail every later change of that switch."""
    groups: dict[Match, list[ReservationRecord]] = {}
    for rec in sorted(records, key=lambda r: r.id):
        groups.setdefault(rec.match(), []).append(rec)
    out = []
    for members in groups.values():
        lead = members[0]
        if len(members) > 1:
            lead = replace(
                lead,
                rate_bps=min(sum(m.rate_bps for m in members), MAX_OF_UINT32 * 1000),
                burst_kb=min(sum(m.burst_kb for m in members), MAX_OF_UINT32),
            )
        out.append(lead)
    return out


def reservation_flows(
    topo: Topology, res: ReservationRecord, dst: Attachment
) -> tuple[str, MeterMod, list[tuple[str, FlowMod]]]:
    """(first switch, its meter, [(switch, flow)]) that enforce `res` along its path to `dst`:
    the first switch meters the traffic and marks it DSCP `RESERVED_DSCP`, every switch sends it
    on along the path."""
    path = res.path
    meter = MeterMod(
        "add", res.meter_id, rate_kbps=max(1, res.rate_bps // 1000), burst_kb=res.burst_kb
    )
    flows: list[tuple[str, FlowMod]] = []
    for i, sw in enumerate(path):
        port = topo.port_to(sw, path[i + 1]) if i + 1 < len(path) else dst.port
        flows.append(
            (
                sw,
                FlowMod(
                    "add",
                    table=TABLE_CLASSIFY,
                    priority=PRIO_RESERVATION,
                    match=res.match(),
                    actions=(SetField("ip_dscp", RESERVED_DSCP), Output(port))
                    if i == 0
                    else (Output(port),),
                    meter=res.meter_id if i == 0 else None,
                    cookie=res.cookie,
                ),
            )
        )
    return path[0], meter, flows
