"""The immutable network model: switches, MEC sites, full-duplex links, attached hosts.

Port numbers are assigned here, deterministically, so that Mininet and the controller derive the
same numbers from the same scenario (see `Topology.build`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx

from topology.errors import DuplicateError, TopologyError, UnknownLinkError, UnknownNodeError

HOST_KINDS = frozenset({"instance", "ue", "agent"})
# OpenFlow 1.3 OFPP_MAX: higher numbers are reserved ports (IN_PORT, CONTROLLER, ...).
MAX_PORT = 0xFFFFFF00


@dataclass(frozen=True, slots=True)
class Switch:
    """An OpenFlow switch, known by its name and datapath id."""

    name: str
    dpid: int


@dataclass(frozen=True, slots=True)
class Site:
    """A MEC host site; `switch` is the name of the switch it hangs off."""

    name: str
    switch: str
    cpus: float
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class Link:
    """A full-duplex switch-to-switch link; `capacity_bps` applies to EACH direction.

    Port 0 means "not yet assigned" (`Topology.build` fills it in).
    """

    a: str
    b: str
    capacity_bps: int
    latency_ms: float | None = None
    a_port: int = 0
    b_port: int = 0

    def port_on(self, switch: str) -> int:
        """The port of this link on `switch` (one of its two ends)."""
        if switch == self.a:
            return self.a_port
        if switch == self.b:
            return self.b_port
        raise UnknownNodeError(switch, f"end of link {self.a}-{self.b}")

    def other(self, switch: str) -> str:
        """The end of this link that is not `switch`."""
        if switch == self.a:
            return self.b
        if switch == self.b:
            return self.a
        raise UnknownNodeError(switch, f"end of link {self.a}-{self.b}")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A host (service instance, UE or site agent) plugged into a switch port."""

    host: str
    switch: str
    port: int
    ip: str | None = None
    mac: str | None = None
    kind: str = "instance"


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A host to attach when building a topology; port 0 means "assign the next free port"."""

    host: str
    switch: str
    ip: str | None = None
    mac: str | None = None
    kind: str = "instance"
    port: int = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    """`rate_bps` reserved on every directed link path[i]->path[i+1] (switch names)."""

    id: int
    src: str
    dst: str
    path: tuple[str, ...]
    rate_bps: int


def _pair(u: str, v: str) -> tuple[str, str]:
    return (u, v) if u <= v else (v, u)


class _Ports:
    """Per-switch port allocator: explicit ports are claimed first, then 1, 2, 3, ... fill gaps."""

    def __init__(self) -> None:
        self._used: dict[str, dict[int, str]] = {}
        self._next: dict[str, int] = {}

    def claim(self, switch: str, port: int, owner: str) -> None:
        if not 1 <= port <= MAX_PORT:
            raise TopologyError(f"port {port} of {owner} on {switch} is outside 1..{MAX_PORT}")
        used = self._used.setdefault(switch, {})
        if port in used:
            raise DuplicateError(f"port {port} on {switch} is used by {used[port]} and {owner}")
        used[port] = owner

    def assign(self, switch: str, owner: str) -> int:
        used = self._used.setdefault(switch, {})
        port = self._next.get(switch, 1)
        while port in used:
            port += 1
        used[port] = owner
        self._next[switch] = port + 1
        return port


class Topology:
    """An immutable network: switches, sites, links (ports assigned) and host attachments."""

    __slots__ = (
        "_switches",
        "_by_name",
        "_by_dpid",
        "_sites",
        "_site_by_name",
        "_links",
        "_link_by_pair",
        "_links_by_switch",
        "_adj",
        "_attachments",
        "_att_by_host",
        "_att_by_switch",
    )

    def __init__(
        self,
        switches: Sequence[Switch],
        links: Sequence[Link],
        sites: Sequence[Site] = (),
        hosts: Sequence[HostSpec | Attachment] = (),
    ) -> None:
        self._switches = tuple(switches)
        self._by_name: dict[str, Switch] = {}
        self._by_dpid: dict[int, Switch] = {}
        for sw in self._switches:
            if not 0 <= sw.dpid < 2**64:
                raise TopologyError(f"dpid {sw.dpid} of {sw.name!r} is not a 64-bit value")
            if sw.name in self._by_name:
                raise DuplicateError(f"switch name {sw.name!r} declared twice")
            if sw.dpid in self._by_dpid:
                other = self._by_dpid[sw.dpid].name
                raise DuplicateError(f"dpid {sw.dpid:#x} used by both {other!r} and {sw.name!r}")
            self._by_name[sw.name] = sw
            self._by_dpid[sw.dpid] = sw
        self._sites = tuple(sites)
        self._site_by_name = self._index_sites()
        # Every explicit port is claimed before any is assigned, so assignment never takes one.
        ports = _Ports()
        self._check_links(links, ports)
        self._check_hosts(hosts, ports)
        self._links = tuple(
            replace(
                ln,
                a_port=ln.a_port or ports.assign(ln.a, f"link {ln.a}-{ln.b}"),
                b_port=ln.b_port or ports.assign(ln.b, f"link {ln.a}-{ln.b}"),
            )
            for ln in links
        )
        self._link_by_pair = {_pair(ln.a, ln.b): ln for ln in self._links}
        adj: dict[str, list[str]] = {name: [] for name in self._by_name}
        incident: dict[str, list[Link]] = {name: [] for name in self._by_name}
        for ln in self._links:
            adj[ln.a].append(ln.b)
            adj[ln.b].append(ln.a)
            incident[ln.a].append(ln)
            incident[ln.b].append(ln)
        self._links_by_switch = {name: tuple(lns) for name, lns in incident.items()}
        self._adj = {name: tuple(sorted(nbrs)) for name, nbrs in adj.items()}
        self._attachments = tuple(
            Attachment(
                host=h.host,
                switch=h.switch,
                port=h.port or ports.assign(h.switch, f"host {h.host!r}"),
                ip=h.ip,
                mac=h.mac,
                kind=h.kind,
            )
            for h in hosts
        )
        self._att_by_host = {att.host: att for att in self._attachments}
        by_switch: dict[str, list[Attachment]] = {}
        for att in self._attachments:
            by_switch.setdefault(att.switch, []).append(att)
        self._att_by_switch = {
            sw: tuple(sorted(atts, key=lambda a: a.port)) for sw, atts in by_switch.items()
        }

    @classmethod
    def build(
        cls,
        switches: Sequence[Switch],
        links: Sequence[Link],
        sites: Sequence[Site] = (),
        hosts: Sequence[HostSpec | Attachment] = (),
    ) -> Topology:
        """Validate and build a topology, assigning every port left at 0.

        On each switch, ports explicitly given are reserved first; the others are numbered with
        the lowest free numbers from 1, first for links in the order given (for a link a-b, the
        next free port on a, then on b), then for hosts in the order given.
        """
        return cls(switches, links, sites, hosts)

    def _require_switch(self, name: str, owner: str) -> None:
        if name not in self._by_name:
            raise UnknownNodeError(name, f"switch (referenced by {owner})")

    def _index_sites(self) -> dict[str, Site]:
        out: dict[str, Site] = {}
        for site in self._sites:
            self._require_switch(site.switch, f"site {site.name!r}")
            if site.name in out:
                raise DuplicateError(f"site name {site.name!r} declared twice")
            # A site may share its own switch's name, but must not shadow another switch.
            if site.name in self._by_name and site.name != site.switch:
                raise DuplicateError(f"site {site.name!r} has the name of another switch")
            if site.cpus <= 0 or site.memory_bytes <= 0:
                raise TopologyError(f"site {site.name!r} needs cpus > 0 and memory_bytes > 0")
            out[site.name] = site
        return out

    def _check_links(self, links: Sequence[Link], ports: _Ports) -> None:
        seen: set[tuple[str, str]] = set()
        for ln in links:
            name = f"link {ln.a}-{ln.b}"
            self._require_switch(ln.a, name)
            self._require_switch(ln.b, name)
            if ln.a == ln.b:
                raise TopologyError(f"{name} is a self-loop")
            if _pair(ln.a, ln.b) in seen:
                raise DuplicateError(f"{name} declared twice (links are full-duplex)")
            seen.add(_pair(ln.a, ln.b))
            if ln.capacity_bps <= 0:
                raise TopologyError(f"{name} needs capacity_bps > 0, got {ln.capacity_bps}")
            if ln.latency_ms is not None and ln.latency_ms < 0:
                raise TopologyError(f"{name} needs latency_ms >= 0, got {ln.latency_ms}")
            for sw, port in ((ln.a, ln.a_port), (ln.b, ln.b_port)):
                if port:
                    ports.claim(sw, port, name)

    def _check_hosts(self, hosts: Sequence[HostSpec | Attachment], ports: _Ports) -> None:
        names: set[str] = set()
        for h in hosts:
            self._require_switch(h.switch, f"host {h.host!r}")
            if h.host in names:
                raise DuplicateError(f"host name {h.host!r} declared twice")
            names.add(h.host)
            if h.kind not in HOST_KINDS:
                raise TopologyError(
                    f"host {h.host!r} has kind {h.kind!r}, not {sorted(HOST_KINDS)}"
                )
            # A host named like a switch or site would make resolve() ambiguous.
            if h.host in self._by_name or h.host in self._site_by_name:
                raise DuplicateError(f"host name {h.host!r} is already a switch or site name")
            if h.port:
                ports.claim(h.switch, h.port, f"host {h.host!r}")

    # ------------------------------------------------------------------------------ accessors

    @property
    def switches(self) -> tuple[Switch, ...]:
        """All switches, in declaration order."""
        return self._switches

    @property
    def sites(self) -> tuple[Site, ...]:
        """All MEC sites, in declaration order."""
        return self._sites

    @property
    def links(self) -> tuple[Link, ...]:
        """All links (ports assigned), in declaration order."""
        return self._links

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        """All host attachments (ports assigned), in declaration order."""
        return self._attachments

    def switch(self, name: str) -> Switch:
        """The switch called `name`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownNodeError(name, "switch") from None

    def switch_by_dpid(self, dpid: int) -> Switch:
        """The switch whose datapath id is `dpid`."""
        try:
            return self._by_dpid[dpid]
        except KeyError:
            raise UnknownNodeError(f"{dpid:#x}", "dpid") from None

    def site(self, name: str) -> Site:
        """The MEC site called `name`."""
        try:
            return self._site_by_name[name]
        except KeyError:
            raise UnknownNodeError(name, "site") from None

    def has_link(self, u: str, v: str) -> bool:
        """Whether switches `u` and `v` are joined by a link (in either order)."""
        return _pair(u, v) in self._link_by_pair

    def link(self, u: str, v: str) -> Link:
        """The link joining switches `u` and `v` (in either order)."""
        try:
            return self._link_by_pair[_pair(u, v)]
        except KeyError:
            raise UnknownLinkError(u, v) from None

    def links_of(self, switch: str) -> tuple[Link, ...]:
        """The links with an end at `switch`, in declaration order."""
        try:
            return self._links_by_switch[switch]
        except KeyError:
            raise UnknownNodeError(switch, "switch") from None

    def attachment(self, host: str) -> Attachment:
        """Where host `host` is plugged in."""
        try:
            return self._att_by_host[host]
        except KeyError:
            raise UnknownNodeError(host, "host") from None

    def attachments_on(self, switch: str) -> tuple[Attachment, ...]:
        """The hosts plugged into `switch`, by port number."""
        self.switch(switch)
        return self._att_by_switch.get(switch, ())

    def port_to(self, u: str, v: str) -> int:
        """The port on switch `u` that leads to neighbour switch `v`."""
        return self.link(u, v).port_on(u)

    def neighbors(self, switch: str) -> tuple[str, ...]:
        """The switches adjacent to `switch`, sorted by name."""
        try:
            return self._adj[switch]
        except KeyError:
            raise UnknownNodeError(switch, "switch") from None

    def resolve(self, name: str) -> str:
        """The switch a switch, site or host name stands for."""
        if name in self._by_name:
            return name
        if name in self._site_by_name:
            return self._site_by_name[name].switch
        if name in self._att_by_host:
            return self._att_by_host[name].switch
        raise UnknownNodeError(name, "switch, site or host")

    @property
    def graph(self) -> Any:
        """A fresh networkx Graph copy: nodes are switch names (attr ``dpid``), edges carry
        ``capacity_bps``, ``latency_ms`` and ``ports`` ({switch: port}). Mutating it is harmless.
        """
        g = nx.Graph()
        for sw in self._switches:
            g.add_node(sw.name, dpid=sw.dpid)
        for ln in self._links:
            ports = {ln.a: ln.a_port, ln.b: ln.b_port}
            g.add_edge(
                ln.a, ln.b, capacity_bps=ln.capacity_bps, latency_ms=ln.latency_ms, ports=ports
            )
        return g

    # ------------------------------------------------------------------------------ failures

    def without_links(self, pairs: Iterable[tuple[str, str]]) -> Topology:
        """A copy without the given links (either order); every port number stays unchanged."""
        drop = set()
        for u, v in pairs:
            self.link(u, v)
            drop.add(_pair(u, v))
        links = [ln for ln in self._links if _pair(ln.a, ln.b) not in drop]
        return Topology(self._switches, links, self._sites, self._attachments)

    def with_link_down(self, u: str, v: str) -> Topology:
        """A copy without the link u-v (for failure handling); ports stay unchanged."""
        return self.without_links([(u, v)])

    def __repr__(self) -> str:
        return (
            f"Topology({len(self._switches)} switches, {len(self._links)} links, "
            f"{len(self._sites)} sites, {len(self._attachments)} hosts)"
        )
