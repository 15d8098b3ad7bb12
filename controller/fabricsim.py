"""A software fabric: one `SwitchTable` per switch of a `Topology`, wired by its links.

`FabricSim.send` follows a packet from a host through every switch it reaches and reports where
it was delivered, which meters it passed and what reached the controller. It knows nothing of our
forwarding scheme: it only runs the flow tables it was given.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.flowtable import FlowSimError, Packet, SwitchTable, TableSnapshot
from controller.ofmsg import CONTROLLER_PORT, Message
from topology.model import Topology

FabricSnapshot = tuple[tuple[int, TableSnapshot], ...]  # (dpid, table snapshot), by dpid
MAX_VISITS = 64


class LoopError(FlowSimError):
    """A packet visited switches more than `limit` times: the flows make it loop."""

    def __init__(self, limit: int, switches: tuple[str, ...]) -> None:
        self.limit = limit
        self.switches = switches
        tail = " -> ".join(switches[-12:])
        super().__init__(f"packet visited more than {limit} switches (last: ... {tail})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.limit, self.switches))


@dataclass(frozen=True)
class Hop:
    """One switch visit: where the packet came in, where copies went out, the meters passed."""

    switch: str
    in_port: int
    out_ports: tuple[int, ...]
    meters: tuple[int, ...]


@dataclass(frozen=True)
class Trace:
    """Everything that happened to one packet in the fabric.

    `hops` in visit order (breadth first when copies fork); `delivered`: (host, packet as it
    arrived); `packet_ins`: (switch, packet as sent to the controller); `dropped`: outputs to a
    port that leads nowhere, as "dropped at <switch>:<port>". A switch with no matching flow
    shows as a hop without out_ports.
    """

    hops: tuple[Hop, ...] = ()
    delivered: tuple[tuple[str, Packet], ...] = ()
    packet_ins: tuple[tuple[str, Packet], ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def delivered_to(self) -> tuple[str, ...]:
        """The hosts that received a copy, in delivery order."""
        return tuple(host for host, _ in self.delivered)

    @property
    def switches(self) -> tuple[str, ...]:
        """The switches visited, in order (the path, when the packet does not fork)."""
        return tuple(hop.switch for hop in self.hops)

    @property
    def meters(self) -> set[int]:
        """Every meter passed, on any switch."""
        return {m for hop in self.hops for m in hop.meters}

    @property
    def table_misses(self) -> tuple[str, ...]:
        """The switches where the packet matched nothing that outputs it."""
        return tuple(hop.switch for hop in self.hops if not hop.out_ports)


class FabricSim:
    """Every switch of `topo` as a `SwitchTable`, keyed by dpid, connected by the topology."""

    def __init__(self, topo: Topology, max_visits: int = MAX_VISITS) -> None:
        self.topo = topo
        self.max_visits = max_visits
        self._tables = {sw.dpid: SwitchTable(sw.name) for sw in topo.switches}
        # switch -> port -> (neighbour switch, its port) / host name
        self._links: dict[str, dict[int, tuple[str, int]]] = {sw.name: {} for sw in topo.switches}
        self._hosts: dict[str, dict[int, str]] = {sw.name: {} for sw in topo.switches}
        for ln in topo.links:
            self._links[ln.a][ln.a_port] = (ln.b, ln.b_port)
            self._links[ln.b][ln.b_port] = (ln.a, ln.a_port)
        for att in topo.attachments:
            self._hosts[att.switch][att.port] = att.host

    def table(self, switch: str | int) -> SwitchTable:
        """The flow table of a switch, by name or dpid (UnknownNodeError if there is none)."""
        sw = (
            self.topo.switch(switch)
            if isinstance(switch, str)
            else self.topo.switch_by_dpid(switch)
        )
        return self._tables[sw.dpid]

    def apply(self, batch: Mapping[int, Iterable[Message]]) -> None:
        """Apply each switch's messages, in order (see `SwitchTable.apply`)."""
        for dpid, msgs in batch.items():
            self.table(dpid).apply(msgs)

    def snapshot(self) -> FabricSnapshot:
        """Every switch's `SwitchTable.snapshot`, by dpid: hashable, comparable."""
        return tuple((dpid, self._tables[dpid].snapshot()) for dpid in sorted(self._tables))

    def send(self, src_host: str, packet: Mapping[str, object]) -> Trace:
        """Send `packet` from host `src_host`: it enters its switch at the host's port."""
        att = self.topo.attachment(src_host)
        return self.inject(att.switch, att.port, packet)

    def inject(self, switch: str, in_port: int, packet: Mapping[str, object]) -> Trace:
        """Follow `packet` arriving at `switch` on `in_port` through the fabric.

        Every output is followed: a link port continues at the neighbour (on its end of the
        link), a host port delivers to the host, CONTROLLER_PORT is a packet-in, any other port
        drops. LoopError after more than `max_visits` switch visits.
        """
        self.topo.switch(switch)
        hops: list[Hop] = []
        delivered: list[tuple[str, Packet]] = []
        packet_ins: list[tuple[str, Packet]] = []
        dropped: list[str] = []
        todo: deque[tuple[str, int, Packet]] = deque([(switch, in_port, dict(packet))])
        while todo:
            name, port_in, pkt = todo.popleft()
            if len(hops) >= self.max_visits:
                raise LoopError(self.max_visits, tuple(h.switch for h in hops) + (name,))
            verdict = self._tables[self.topo.switch(name).dpid].lookup(pkt, port_in)
            hops.append(Hop(name, port_in, verdict.ports, verdict.meters))
            for port, out in verdict.outputs:
                if port == CONTROLLER_PORT:
                    packet_ins.append((name, out))
                elif port in self._links[name]:
                    todo.append((*self._links[name][port], out))
                elif port in self._hosts[name]:
                    delivered.append((self._hosts[name][port], out))
                else:
                    dropped.append(f"dropped at {name}:{port}")
        return Trace(tuple(hops), tuple(delivered), tuple(packet_ins), tuple(dropped))
