"""Holding an instance's traffic at the controller while the instance is frozen.

During a migration's frozen window the network lock drops the client's packets, and the client's
TCP retransmits them only after its retransmission timeout (200 ms, then 400, 800 ...): the
client sees the service again at the first retransmission after the restore, not when the
restore completes. A hold instead sends every IPv4 packet for the instance to the controller
where it would leave the fabric: flows above all others on the switch the instance is attached
to, which every path to it ends at (`hold_flows`: by its address, and by its MAC once a chain
has steered its frames there). Relocated while held, the instance gets them at its new switch
and its old switch keeps its own until the release: a packet already on its way there is
caught, not sent back the way it came (which OpenFlow drops). The controller keeps them in
order; releasing the hold removes the flows and sends the packets back into the switch that
caught them, through its tables, on to the instance at its new place, where the restored
socket takes them at once. One switch, not every one: a hold is two flow-mods and one barrier
at any size of the network (it was one per switch: ~50 ms through REST at 1,000 sites).

Pure: the flow, and a bounded buffer (beyond its limits packets are dropped, as the lock would:
TCP retransmits them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.ofmsg import (
    CONTROLLER_PORT,
    COOKIE_KIND_SHIFT,
    ETH_TYPE_IP,
    PRIO_HOLD,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    CookieKind,
    FlowMod,
    Match,
    Output,
    cookie,
    cookie_kind,
)
from topology.model import Attachment

MAX_HELD_PACKETS = 20_000
MAX_HELD_BYTES = 32 * 2**20


def hold_flows(host: Attachment, host_id: int) -> tuple[FlowMod, ...]:
    """The flows (on the switch `host` is attached to) that send its IPv4 traffic to the
    controller, above everything else in both tables:

    - table 0: IPv4 to its address, before anything else decides (a reservation's flow sends
      its traffic out of a port from table 0);
    - table 1: IPv4 frames addressed to its MAC, once table 0 has steered them: a chain's frames
      reach a function by its MAC, addressed to the chain's server (a firewall frozen while the
      server was not held lost the chain's frames to its network lock, and the client waited
      for a retransmission, ~0.9 s, in about one chain migration in twelve).
    """
    if host.ip is None:
        raise ValueError(f"{host.host} has no IP address: its traffic cannot be held")

    def up(table: int, match: Match) -> FlowMod:
        return FlowMod(
            "add",
            table=table,
            priority=PRIO_HOLD,
            match=match,
            actions=(Output(CONTROLLER_PORT),),
            cookie=cookie(CookieKind.HOLD, host_id),
        )

    by_ip = up(TABLE_CLASSIFY, Match.of(eth_type=ETH_TYPE_IP, ipv4_dst=host.ip))
    if host.mac is None:
        return (by_ip,)
    return (by_ip, up(TABLE_FORWARD, Match.of(eth_type=ETH_TYPE_IP, eth_dst=host.mac)))


def held_host_id(flow_cookie: int) -> int | None:
    """The host id a packet-in's cookie names, if it comes from a hold flow."""
    if cookie_kind(flow_cookie) is not CookieKind.HOLD:
        return None
    return flow_cookie & ((1 << COOKIE_KIND_SHIFT) - 1)


@dataclass
class HeldPackets:
    """The packets held for one instance, in arrival order, within limits."""

    max_packets: int = MAX_HELD_PACKETS
    max_bytes: int = MAX_HELD_BYTES
    packets: list[bytes] = field(default_factory=list)
    size: int = 0
    dropped: int = 0

    def add(self, frame: bytes) -> bool:
        """Keep `frame` (False: over a limit, dropped)."""
        if len(self.packets) >= self.max_packets or self.size + len(frame) > self.max_bytes:
            self.dropped += 1
            return False
        self.packets.append(frame)
        self.size += len(frame)
        return True

    def drain(self) -> list[bytes]:
        """Every held packet, oldest first; the buffer is empty afterwards."""
        out, self.packets, self.size = self.packets, [], 0
        return out
