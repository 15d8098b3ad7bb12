"""The test oracle of issue 15: `controller.state` as it was before decisions became incremental,
kept whole. `FullFabricState.desired()` rebuilds every switch's flows from scratch (every
host's entries, one networkx tree per core switch for the routes), and every operation diffs the
whole fabric; admission sums every reservation on every link. tests/unit/test_incremental.py
runs it beside `FabricState` on random topologies and operation sequences: both must decide the
same, and plan the same messages.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import networkx as nx

from controller.flowtable import Entry
from controller.forwarding import base_flows, host_flows, route_flows, uplink_flows
from controller.hold import hold_flows
from controller.limits import (
    MAX_OWNER_LENGTH,
)
from controller.ofmsg import COOKIE_KIND_SHIFT, CookieKind, cookie_kind
from controller.plan import (
    Desired,
    Plan,
    Stage,
    SwitchConfig,
    diff,
    full_config,
    reconcile,
    staged_by_distance,
)
from controller.reservations import (
    ReservationRecord,
    default_burst_kb,
    reservation_flows,
    shared_meters,
)
from controller.state import (
    StateError,
    UnknownName,
    _check_ipv4,
    _check_l4,
    check_burst,
    check_rate,
    check_switch_port,
)
from controller.steering import Chain, ChainError, chain_flows
from topology.admission import admit, resize_check
from topology.errors import TopologyError, UnknownNodeError
from topology.model import Attachment, Topology
from topology.scenario import Scenario
from topology.world import agent_host, topology_from_scenario

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Everything an operation can change, as it was: `FullFabricState.roll_back` takes it back."""

    down: frozenset[frozenset[str]]
    hosts: dict[str, Attachment]
    host_ids: dict[str, int]
    reservations: dict[int, ReservationRecord]
    next_reservation: int
    holds: frozenset[str]
    installed: Desired
    trails: dict[str, frozenset[str]]


class FullFabricState:
    """The declared world plus what happened since: links down, hosts moved, reservations."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.declared: Topology = topology_from_scenario(scenario)
        self.down: set[frozenset[str]] = set()
        self.hosts: dict[str, Attachment] = {a.host: a for a in self.declared.attachments}
        self.host_ids: dict[str, int] = {name: i + 1 for i, name in enumerate(self.hosts)}
        self.chains: list[Chain] = [
            Chain(c.name, (c.ue, *c.functions), c.traffic.proto, c.traffic.port)
            for c in scenario.chains
        ]
        self.reservations: dict[int, ReservationRecord] = {}
        self.next_reservation = 1
        self.holds: set[str] = set()  # hosts whose traffic goes to the controller (transient)
        self.trails: dict[str, set[str]] = {}  # held host -> switches it left while held
        self._topo = self.declared
        self._installed: Desired = self.desired()

    # ------------------------------------------------------------------ the model

    @property
    def topo(self) -> Topology:
        """The declared topology without the links that are down."""
        return self._topo

    def _refresh_topo(self) -> None:
        pairs = [tuple(sorted(p)) for p in self.down]
        self._topo = self.declared.without_links(pairs) if pairs else self.declared  # type: ignore[arg-type]

    def dpid(self, switch: str) -> int:
        return self.declared.switch(switch).dpid

    def switch_name(self, dpid: int) -> str | None:
        """The name of the switch with `dpid`, or None if the scenario does not declare it."""
        for sw in self.declared.switches:
            if sw.dpid == dpid:
                return sw.name
        return None

    def is_link_port(self, switch: str, port: int) -> bool:
        return any(
            link.port_on(switch) == port
            for link in self.declared.links
            if switch in (link.a, link.b)
        )

    def host_by_mac(self, mac: str) -> Attachment | None:
        for att in self.hosts.values():
            if att.mac == mac:
                return att
        return None

    def host_by_ip(self, ip: str) -> Attachment | None:
        for att in self.hosts.values():
            if att.ip == ip:
                return att
        return None

    def resolve_host(self, name: str) -> Attachment:
        """A host by name; a site name stands for its MEC host (where the agent runs)."""
        if name in self.hosts:
            return self.hosts[name]
        if any(s.name == name for s in self.declared.sites):
            return self.hosts[agent_host(name)]
        raise UnknownName(f"no host or site called {name!r}", name)

    # ------------------------------------------------------------------ desired switch state

    def desired(self) -> Desired:
        """What every switch should hold now."""
        topo = self.topo
        config: Desired = {sw.name: SwitchConfig() for sw in self.declared.switches}
        for cfg in config.values():
            for flow in base_flows():
                cfg.add_flow(flow)
        for sw, flow in uplink_flows(self.declared).items():
            config[sw].add_flow(flow)
        for name, att in self.hosts.items():
            for sw, flow in host_flows(self.declared, att, self.host_ids[name]).items():
                config[sw].add_flow(flow)
        for sw, routes in route_flows(self.declared, topo).items():
            for flow in routes:
                config[sw].add_flow(flow)
        for i, chain in enumerate(self.chains, start=1):
            try:
                for sw, flow in chain_flows(chain, self.hosts, i):
                    config[sw].add_flow(flow)
            except ChainError as exc:
                log.warning("%s; chain not steered", exc)
        # one whose destination moved where no path had room: best effort meanwhile
        routed = [r for r in self.reservations.values() if r.path[-1] == self.hosts[r.dst].switch]
        for res in shared_meters(routed):
            dst = self.hosts[res.dst]
            # Ports from the declared topology (they never change): a reservation that could not
            # be rerouted around a failed link keeps its path until the link is back.
            first, meter, flows = reservation_flows(self.declared, res, dst)
            config[first].add_meter(meter)
            for sw, flow in flows:
                config[sw].add_flow(flow)
        for name in sorted(self.holds):  # where the held host leaves the fabric, and left
            att = self.hosts[name]
            for sw in {att.switch, *self.trails.get(name, ())}:
                for flow in hold_flows(att, self.host_ids[name]):
                    config[sw].add_flow(flow)
        return config

    def _commit(self) -> dict[str, list[Any]]:
        new = self.desired()
        stage = diff(self._installed, new)
        self._installed = new
        return stage

    def switch_config(self, switch: str) -> list[Any]:
        """All messages for `switch` when it (re)connects."""
        config = self._installed[switch]
        # A switch that was away may hold meters of reservations released meanwhile: meter ids
        # are reservation ids, never reused, so every earlier id not in force is stale.
        stale = set(range(1, self.next_reservation)) - set(config.meters)
        return full_config(config, stale_meters=stale)

    def resync(
        self,
        switch: str,
        flows: Iterable[Entry],
        meters: Mapping[int, tuple[int, int]],
        unreadable: Iterable[Entry] = (),
    ) -> list[Any]:
        """The messages that make `switch`, which holds `flows` and `meters` (read from it when
        it connected), hold exactly what the model wants of mecmig's: nothing when it already
        does (see `controller.plan.reconcile`).

        Whatever the switch kept from before is weighed: flows of reservations released or
        holds ended while it was away (or while no controller ran) go, and so do their meters.
        A meter is mecmig's when its id is one mecmig gave out (meter ids are reservation ids,
        never reused while the state file lasts) or when a flow of mecmig's uses or names it
        (a reservation's cookie carries its id): that covers a controller that lost its state
        file, or died between a switch's confirmation and its save. Other meters are left
        alone, as other apps' flows are.
        """
        flows = list(flows)
        unreadable = list(unreadable)
        ours: set[int] = set()
        for entry in flows + unreadable:
            kind = cookie_kind(entry.cookie)
            if kind is CookieKind.RESERVATION:
                ours.add(entry.cookie & ((1 << COOKIE_KIND_SHIFT) - 1))
            if kind is not None and entry.meter is not None:
                ours.add(entry.meter)

        def owned(meter_id: int) -> bool:
            return meter_id < self.next_reservation or meter_id in ours

        return reconcile(self._installed[switch], flows, meters, owned, unreadable)

    # ------------------------------------------------------------------ reservations

    def reserve(
        self,
        src: str,
        dst: str,
        rate_bps: int,
        *,
        proto: str = "tcp",
        dst_port: int | None = None,
        src_port: int | None = None,
        ip_src: str | None = None,
        ip_dst: str | None = None,
        burst_kb: int | None = None,
        owner: str | None = None,
    ) -> tuple[ReservationRecord, Plan]:
        """Admit and install a reservation; AdmissionError (nothing changed) if it does not fit,
        StateError (nothing changed) for a value out of bounds, UnknownName for a name."""
        a, b = self.resolve_host(src), self.resolve_host(dst)
        if a.host == b.host:
            raise StateError(f"{src!r} and {dst!r} are both {a.host}: a reservation joins two ends")
        check_rate(rate_bps)
        check_burst(burst_kb)
        _check_l4(proto, dst_port, src_port)
        ip_src = _check_ipv4("ip_src", ip_src or a.ip)
        ip_dst = _check_ipv4("ip_dst", ip_dst or b.ip)
        if owner is not None and len(owner) > MAX_OWNER_LENGTH:
            raise StateError(f"an owner is at most {MAX_OWNER_LENGTH} characters")
        path = admit(self.topo, a.switch, b.switch, rate_bps, self._models())
        rec = ReservationRecord(
            id=self.next_reservation,
            src=a.host,
            dst=b.host,
            rate_bps=rate_bps,
            burst_kb=default_burst_kb(rate_bps) if burst_kb is None else burst_kb,
            path=path,
            ip_src=ip_src or "",
            ip_dst=ip_dst or "",
            proto=proto,
            dst_port=dst_port,
            src_port=src_port,
            owner=owner,
        )
        self.next_reservation += 1
        self.reservations[rec.id] = rec
        return rec, [self._commit()]

    def resize(
        self, rid: int, rate_bps: int, burst_kb: int | None = None
    ) -> tuple[ReservationRecord, Plan]:
        """Change a reservation's rate on its path (the pre-freeze boost); AdmissionError if not."""
        rec = self._reservation(rid)
        check_rate(rate_bps)
        check_burst(burst_kb)
        resize_check(self.topo, rec.as_model(), rate_bps, self._models())
        burst = default_burst_kb(rate_bps) if burst_kb is None else burst_kb
        shrinks = rate_bps < rec.rate_bps
        rec = replace(rec, rate_bps=rate_bps, burst_kb=burst)
        self.reservations[rid] = rec
        if shrinks:  # room for one left without a path, as after a release
            self._reroute_reservations()
        return rec, [self._commit()]

    def release(self, rid: int) -> Plan:
        """Remove a reservation's flows and meter; one left without a path (no room when its
        host moved or a link failed) is admitted again in the room this frees."""
        self._reservation(rid)
        del self.reservations[rid]
        self._reroute_reservations()
        return [self._commit()]

    def _reservation(self, rid: int) -> ReservationRecord:
        try:
            return self.reservations[rid]
        except KeyError:
            raise KeyError(f"no reservation {rid}") from None

    def _models(self, exclude: Iterable[int] = ()) -> list[Any]:
        skip = set(exclude)
        return [r.as_model() for r in self.reservations.values() if r.id not in skip]

    # ------------------------------------------------------------------ hosts

    def relocate(
        self, host: str, switch: str, port: int | None = None
    ) -> tuple[Attachment, Attachment, Plan]:
        """Move `host` (same IP and MAC) to `switch`:`port`; make-before-break stages."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        try:
            switch = self.declared.resolve(switch)
        except UnknownNodeError as exc:
            raise UnknownName(f"no site or switch called {switch!r}", switch) from exc
        if port is not None:
            check_switch_port(port)
        old = self.hosts[host]
        port = port if port is not None else self._free_port(switch, old)
        if self.is_link_port(switch, port):
            raise StateError(f"port {port} of {switch} is a link port, not a host port")
        for other in self.hosts.values():
            if other.host != host and (other.switch, other.port) == (switch, port):
                raise StateError(f"port {port} of {switch} is taken by {other.host}")
        new = replace(old, switch=switch, port=port)
        self.hosts[host] = new
        self._left(old, new)
        self._reroute_reservations()
        return old, new, self._commit_move(switch)

    def _left(self, old: Attachment, new: Attachment) -> None:
        """A held host's old place keeps its hold until the hold ends."""
        if old.host in self.holds and old.switch != new.switch:
            self.trails.setdefault(old.host, set()).add(old.switch)
            self.trails[old.host].discard(new.switch)

    def hold(self, host: str) -> Plan:
        """Send `host`'s traffic to the controller, on every switch (see controller.hold)."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        if self.hosts[host].ip is None:
            raise StateError(f"{host} has no IP address: its traffic cannot be held")
        self.holds.add(host)
        return [self._commit()]

    def unhold(self, host: str) -> Plan:
        """Let `host`'s traffic flow again (nothing to do if it was not held)."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        self.holds.discard(host)
        self.trails.pop(host, None)
        return [self._commit()]

    def held_host(self, host_id: int) -> str | None:
        """The held host with this id (packet-ins of hold flows carry it in their cookie)."""
        for name in self.holds:
            if self.host_ids.get(name) == host_id:
                return name
        return None

    def _commit_move(self, switch: str) -> Plan:
        """Commit after a host moved to `switch`: make-before-break stages outwards from it."""
        stage = self._commit()
        distance = nx.single_source_shortest_path_length(self.topo.graph, switch)
        return staged_by_distance(stage, distance)

    def _free_port(self, switch: str, host: Attachment) -> int:
        """The port a host takes on `switch` when none is named: the declared one of the same
        host if it was declared there, else the port after every used one (a declared port
        stays its host's even while the host is away, so that it can come back)."""
        for att in self.declared.attachments:
            if att.host == host.host and att.switch == switch:
                return att.port
        used = {a.port for a in self.hosts.values() if a.switch == switch}
        used |= {a.port for a in self.declared.attachments if a.switch == switch}
        used |= {ln.port_on(switch) for ln in self.declared.links if switch in (ln.a, ln.b)}
        return max(used, default=0) + 1

    def learn_host(self, mac: str, ip: str | None, switch: str, port: int) -> Plan:
        """A frame from `mac` came in at `switch`:`port` (an edge port): record where it is."""
        known = self.host_by_mac(mac)
        if known is not None:
            if (known.switch, known.port) == (switch, port) and (ip is None or known.ip == ip):
                return []
            moved = replace(known, switch=switch, port=port, ip=ip or known.ip)
            self.hosts[known.host] = moved
            self._left(known, moved)
            log.info("host %s moved to %s:%d", known.host, switch, port)
            self._reroute_reservations()
            return self._commit_move(switch)
        name = f"learned-{mac}"
        self.hosts[name] = Attachment(name, switch, port, ip, mac, kind="agent")
        self.host_ids[name] = max(self.host_ids.values(), default=0) + 1
        log.info("learned host %s (%s) at %s:%d", mac, ip, switch, port)
        return [self._commit()]

    # ------------------------------------------------------------------ links

    def link_down(self, a: str, b: str) -> Plan:
        """A declared link went down: route around it (reservations re-admitted if they can)."""
        if not self.declared.has_link(a, b) or frozenset((a, b)) in self.down:
            return []
        self.down.add(frozenset((a, b)))
        self._refresh_topo()
        self._reroute_reservations()
        return [self._commit()]

    def link_up(self, a: str, b: str) -> Plan:
        """A declared link is back."""
        if frozenset((a, b)) not in self.down:
            return []
        self.down.discard(frozenset((a, b)))
        self._refresh_topo()
        self._reroute_reservations()  # one whose host moved while no path had room may fit now
        return [self._commit()]

    def _reroute_reservations(self) -> None:
        """Re-admit every reservation whose path lost a link or no longer joins its hosts."""
        for rec in list(self.reservations.values()):
            src, dst = self.hosts[rec.src].switch, self.hosts[rec.dst].switch
            intact = all(
                self.topo.has_link(u, v) for u, v in zip(rec.path, rec.path[1:], strict=False)
            )
            if intact and (rec.path[0], rec.path[-1]) == (src, dst):
                continue
            try:
                path = admit(self.topo, src, dst, rec.rate_bps, self._models([rec.id]))
            except TopologyError as exc:  # no path, or no room: it keeps its path (see desired)
                log.warning("reservation %d cannot be rerouted: %s", rec.id, exc)
                continue
            self.reservations[rec.id] = replace(rec, path=path)

    # ------------------------------------------------------------------ transactions

    def snapshot(self) -> Snapshot:
        """What every operation can change, as it is now (cheap: the records are immutable)."""
        return Snapshot(
            down=frozenset(self.down),
            hosts=dict(self.hosts),
            host_ids=dict(self.host_ids),
            reservations=dict(self.reservations),
            next_reservation=self.next_reservation,
            holds=frozenset(self.holds),
            trails={h: frozenset(sws) for h, sws in self.trails.items()},
            installed=self._installed,
        )

    def roll_back(self, snap: Snapshot, switches: Collection[str] | None = None) -> Plan:
        """Take the model back to `snap` (taken before one operation) and return the plan that
        takes `switches` (default: all) back to what `snap` had installed.

        That plan is the operation's difference reversed: every flow and meter of `snap` is sent
        again and everything the operation added is deleted, so it is right however much of the
        operation's plan the switches applied before one refused (a re-sent add, or a delete of
        what is not there, changes nothing). A host that moved goes back make-before-break:
        stages outwards from its old place.
        """
        since = self._installed
        moved = [h for h, att in self.hosts.items() if snap.hosts.get(h) != att]
        self.down = set(snap.down)
        self._refresh_topo()
        self.hosts = dict(snap.hosts)
        self.host_ids = dict(snap.host_ids)
        self.reservations = dict(snap.reservations)
        self.next_reservation = snap.next_reservation
        self.holds = set(snap.holds)
        self.trails = {h: set(sws) for h, sws in snap.trails.items()}
        self._installed = snap.installed
        if since is snap.installed:  # nothing was committed: nothing was sent
            return []
        stage: Stage = {
            sw: msgs
            for sw, msgs in diff(since, snap.installed).items()
            if switches is None or sw in switches
        }
        if not stage:
            return []
        back_to = [snap.hosts[h].switch for h in moved if h in snap.hosts]
        if len(back_to) == 1 and back_to[0] in self.topo.graph:
            distance = nx.single_source_shortest_path_length(self.topo.graph, back_to[0])
            return staged_by_distance(stage, distance)
        return [stage]

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """What must survive a controller restart: reservations and where hosts are now."""
        return {
            "version": 1,
            "scenario": self.scenario.name,
            "next_reservation": self.next_reservation,
            "reservations": [asdict(r) for r in self.reservations.values()],
            "hosts": [asdict(a) for a in self.hosts.values()],
            "host_ids": self.host_ids,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back what `to_dict` saved (same scenario); switches get it when they connect."""
        if data.get("scenario") != self.scenario.name:
            raise StateError(
                f"saved state is for scenario {data.get('scenario')!r}, not {self.scenario.name!r}"
            )
        for h in data.get("hosts", []):
            att = Attachment(**h)
            # a state file may hold what earlier versions let in unchecked
            try:
                check_switch_port(att.port)
                self.declared.switch(att.switch)
            except (StateError, TopologyError) as exc:
                log.warning("saved place of %s ignored: %s", att.host, exc)
                continue
            self.hosts[att.host] = att
        self.host_ids.update({k: int(v) for k, v in data.get("host_ids", {}).items()})
        self.reservations = {}
        for r in data.get("reservations", []):
            rec = ReservationRecord(**{**r, "path": tuple(r["path"])})
            try:
                self._check_saved(rec)
            except (StateError, TopologyError) as exc:
                log.warning("saved reservation %s dropped: %s", r.get("id"), exc)
                continue
            self.reservations[rec.id] = rec
        self.next_reservation = int(data.get("next_reservation", 1))
        self._installed = self.desired()

    def _check_saved(self, rec: ReservationRecord) -> None:
        if rec.src not in self.hosts or rec.dst not in self.hosts:
            raise StateError(f"unknown host in {rec.src} -> {rec.dst}")
        check_rate(rec.rate_bps)
        check_burst(rec.burst_kb)
        _check_l4(rec.proto, rec.dst_port, rec.src_port)
        _check_ipv4("ip_src", rec.ip_src)
        _check_ipv4("ip_dst", rec.ip_dst)
        for sw in rec.path:
            self.declared.switch(sw)
