"""The controller's model of the world, and every decision it takes, as pure code.

`FabricState` knows the declared topology (from the scenario), which links are down, where every
host is attached, the chains and the reservations. Each operation checks what it is given (names,
rates, bursts, ports, addresses: the bounds of `controller.limits`) before it changes anything,
then updates the model and returns a `Plan`: the OpenFlow messages, per switch and in stages, that
bring the switches in line. It never sends anything and never reads a clock; the os-ken app does
both. `snapshot()` and `roll_back()` make an operation undoable until the switches confirm it (see
`Runtime.transaction`). Not thread-safe: only the runtime's worker touches it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, overload

from controller.delta import DesiredIndex, Model, Touched
from controller.flowtable import Entry
from controller.limits import (
    MAX_BURST_KB,
    MAX_L4_PORT,
    MAX_OWNER_LENGTH,
    MAX_RATE_BPS,
    MAX_SWITCH_PORT,
    MIN_L4_PORT,
    MIN_SWITCH_PORT,
)
from controller.ofmsg import COOKIE_KIND_SHIFT, IP_PROTO, CookieKind, FlowMod, cookie_kind
from controller.plan import (
    Desired,
    Plan,
    Stage,
    SwitchConfig,
    delete_strict,
    full_config,
    reconcile,
    staged_by_distance,
)
from controller.reservations import ReservationRecord, default_burst_kb
from controller.standby import (
    bounce_flow,
    drain_flow,
    flow_changes,
    ports_of,
    standby_flow,
    standby_flows,
    with_standby_flows,
)
from controller.steering import Chain, ChainError, chain_flows
from controller.trees import Forest
from topology.admission import LinkLoad, admit, admit_on, fits_on_path, resize_check
from topology.errors import TopologyError, UnknownNodeError
from topology.model import Attachment, Topology
from topology.scenario import Scenario
from topology.world import agent_host, topology_from_scenario

log = logging.getLogger(__name__)
LEARNED_PREFIX = "learned-"  # a host the controller found at an edge port


class StateError(ValueError):
    """A request the model cannot carry out (unknown host, bad port, ...), with a message."""


class Occupied(StateError):
    """A request that conflicts with what is there (a port taken, a standby that is not one):
    the REST API answers 409."""


class UnknownName(StateError):
    """A host, site or switch name the model does not know (the REST API answers 404)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Snapshot:
    """Everything an operation can change, as it was: `FabricState.roll_back` takes it back."""

    down: frozenset[frozenset[str]]
    hosts: dict[str, Attachment]
    host_ids: dict[str, int]
    reservations: dict[int, ReservationRecord]
    next_reservation: int
    holds: frozenset[str]
    forest: Forest = field(compare=False)
    standbys: dict[str, dict[str, Attachment]] = field(default_factory=dict)
    trails: frozenset[tuple[str, str]] = frozenset()


def check_rate(rate_bps: object) -> int:
    """A rate in bit/s within the bounds (StateError otherwise)."""
    if isinstance(rate_bps, bool) or not isinstance(rate_bps, int):
        raise StateError(f"a rate is a whole number of bit/s, got {rate_bps!r}")
    if not 1 <= rate_bps <= MAX_RATE_BPS:
        raise StateError(f"a rate must be 1 to {MAX_RATE_BPS} bit/s, got {rate_bps}")
    return rate_bps


def check_burst(burst_kb: object) -> int | None:
    """A meter burst in kbit within the bounds, or None (StateError otherwise)."""
    if burst_kb is None:
        return None
    if isinstance(burst_kb, bool) or not isinstance(burst_kb, int):
        raise StateError(f"a burst is a whole number of kbit, got {burst_kb!r}")
    if not 0 <= burst_kb <= MAX_BURST_KB:
        raise StateError(f"a burst must be 0 to {MAX_BURST_KB} kbit, got {burst_kb}")
    return burst_kb


def _check_l4(proto: str, dst_port: int | None, src_port: int | None) -> None:
    if proto != "any" and proto not in IP_PROTO:
        raise StateError(f"proto must be tcp, udp or any, got {proto!r}")
    for what, port in (("dst_port", dst_port), ("src_port", src_port)):
        if port is None:
            continue
        if isinstance(port, bool) or not isinstance(port, int):
            raise StateError(f"{what} is a whole number, got {port!r}")
        if not MIN_L4_PORT <= port <= MAX_L4_PORT:
            raise StateError(f"{what} must be {MIN_L4_PORT} to {MAX_L4_PORT}, got {port}")
        if proto == "any":
            raise StateError(f"{what} needs proto tcp or udp (any matches every port)")


def _check_ipv4(what: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise StateError(f"{what} is not an IPv4 address: {str(value)[:40]!r}") from None


def check_switch_port(port: object) -> int:
    """A port a host can be plugged into: OpenFlow's physical range (StateError otherwise)."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise StateError(f"a switch port is a whole number, got {port!r}")
    if not MIN_SWITCH_PORT <= port <= MAX_SWITCH_PORT:
        raise StateError(
            f"a switch port must be {MIN_SWITCH_PORT} to {MAX_SWITCH_PORT}, got {port}"
        )
    return port


class FabricState:
    """The declared world plus what happened since: links down, hosts moved, reservations.

    Every decision costs what it touches (issue 15): admission reads residuals kept per directed
    link (`LinkLoad`), forwarding trees are kept and repaired (`Forest`), and an operation
    computes and diffs only the flows of the switches and hosts it affects
    (`controller.delta`). Nothing holds the whole fabric's flows: a switch's full config is
    computed when it connects.
    """

    SAVED_VERSION = 1  # of the document `to_dict` makes

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
        # held host -> the switches it left while held, whose hold flows stay until it is
        # released: a packet on its way to the old place is caught there (transient)
        self.hold_trails: dict[str, set[str]] = {}
        # host -> switch -> a standby attachment of it there (a warm replica's port)
        self.standbys: dict[str, dict[str, Attachment]] = {}
        # host -> the old place of its drained promotion, delivering or sending back up what
        # still arrives there until sealed (transient)
        self.draining: dict[str, Drain] = {}
        self._topo: Topology | None = self.declared
        self._forest = Forest.of(self.declared)
        self._load = LinkLoad(self.declared)
        self._displaced: set[int] = set()  # reservations whose path is broken or misplaced
        self._by_link: dict[frozenset[str], set[int]] = {}  # link -> reservations crossing it
        self._index = DesiredIndex(self.declared, self.chains)
        self._rebuild()

    # ------------------------------------------------------------------ the model

    @property
    def topo(self) -> Topology:
        """The declared topology without the links that are down (made when first asked)."""
        if self._topo is None:
            pairs = [tuple(sorted(p)) for p in self.down]
            self._topo = self.declared.without_links(pairs) if pairs else self.declared  # type: ignore[arg-type]
        return self._topo

    def dpid(self, switch: str) -> int:
        return self.declared.switch(switch).dpid

    def switch_name(self, dpid: int) -> str | None:
        """The name of the switch with `dpid`, or None if the scenario does not declare it."""
        try:
            return self.declared.switch_by_dpid(dpid).name
        except TopologyError:
            return None

    def is_link_port(self, switch: str, port: int) -> bool:
        return any(link.port_on(switch) == port for link in self.declared.links_of(switch))

    def arp_answer(
        self, sender_mac: str, sender_ip: str | None, switch: str, port: int, target_ip: str
    ) -> str | None:
        """The MAC that answers an ARP request for `target_ip`, when there is nothing to learn
        from it: its sender is a host known at exactly that edge port (not a standby's) with
        that address. None: the worker must see the request (`learn_host`, then the answer).

        For the switch's event thread, while the worker may be changing the state: it reads a
        copy of the places (`list()` of a dict's values is one step under the GIL) and records
        that are never changed in place."""
        places = list(self.hosts.values())
        sender = next((a for a in places if a.mac == sender_mac), None)
        if sender is None or (sender.switch, sender.port) != (switch, port):
            return None
        if sender_ip is not None and sender.ip != sender_ip:
            return None
        target = next((a for a in places if a.ip == target_ip), None)
        return None if target is None else target.mac

    def host_by_mac(self, mac: str) -> Attachment | None:
        """The host with this MAC (MACs are unique: a learned host has a MAC no host had)."""
        name = self._index.mac_owner.get(mac)
        if name is None or self.hosts[name].mac != mac:
            return None
        return self.hosts[name]

    def host_by_ip(self, ip: str) -> Attachment | None:
        for att in self.hosts.values():
            if att.ip == ip:
                return att
        return None

    def resolve_host(self, name: str) -> Attachment:
        """A host by name; a site name stands for its MEC host (where the agent runs)."""
        if name in self.hosts:
            return self.hosts[name]
        try:
            self.declared.site(name)
        except TopologyError:
            raise UnknownName(f"no host or site called {name!r}", name) from None
        return self.hosts[agent_host(name)]

    def _model(self) -> Model:
        """The model as it is now, to diff against after a change (a few dict copies)."""
        return Model(
            dict(self.hosts),
            dict(self.host_ids),
            dict(self.reservations),
            frozenset(self.holds),
            self._forest,
            self._trails(),
        )

    def _live(self) -> Model:
        """The model as it is now, without copies (read at once, never kept)."""
        return Model(
            self.hosts,
            self.host_ids,
            self.reservations,
            frozenset(self.holds),
            self._forest,
            self._trails(),
        )

    def _trails(self) -> frozenset[tuple[str, str]]:
        return frozenset((h, sw) for h, switches in self.hold_trails.items() for sw in switches)

    def _rebuild(self) -> None:
        """Every index and the sparse desired state from the model (start, restore)."""
        self._index.rebuild(self._live())
        for i, chain in enumerate(self.chains, start=1):
            try:
                chain_flows(chain, self.hosts, i)
            except ChainError as exc:
                log.warning("%s; chain not steered", exc)
        self._load = LinkLoad(self.declared)
        for pair in self.down:
            a, b = sorted(pair)
            self._load.set_up(a, b, False)
        self._by_link = {}
        for rec in self.reservations.values():
            self._load.add(rec.path, rec.rate_bps)
            for link in _links_of(rec.path):
                self._by_link.setdefault(link, set()).add(rec.id)
        self._displaced = {rid for rid, rec in self.reservations.items() if not self._intact(rec)}

    # ------------------------------------------------------------------ desired switch state

    def desired(self) -> Desired:
        """What every switch should hold now (all of it: for tests and tools; a connecting
        switch gets its own, `switch_config`)."""
        return {sw.name: self._config(sw.name) for sw in self.declared.switches}

    def _config(self, switch: str) -> SwitchConfig:
        """What `switch` should hold: the index's config and the drops of standbys there."""
        config = self._index.config(self._live(), switch)
        for flow in standby_flows(self.standbys, self.host_ids).get(switch, []):
            config.add_flow(flow)
        for host, d in self.draining.items():
            drained = self._drain_flow(host, d) if d.at.switch == switch else None
            if drained is not None:
                config.add_flow(drained)
        return config

    def _drain_flow(self, host: str, d: Drain) -> FlowMod | None:
        """What a draining old place holds: `drain_flow` to deliver there, or `bounce_flow`
        where its switch is a site with one link up (None elsewhere: nothing to hold)."""
        hid = self.host_ids[host]
        if d.deliver:
            return drain_flow(d.at, hid)
        links = self.declared.links_of(d.at.switch)
        if len(links) != 1:
            return None
        return bounce_flow(d.at, hid, links[0].port_on(d.at.switch))

    def _commit(self, before: Model, touched: Touched) -> Stage:
        if not touched:
            return {}
        return self._index.stage(before, self._live(), touched)

    def switch_config(self, switch: str) -> list[Any]:
        """All messages for `switch` when it (re)connects."""
        config = self._config(switch)
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

        return reconcile(self._config(switch), flows, meters, owned, unreadable)

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
        path = self._admit(a.switch, b.switch, rate_bps)
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
        before = self._model()
        self.next_reservation += 1
        self._put(rec)
        return rec, [self._commit(before, Touched(reservations={rec.id}))]

    def resize(
        self, rid: int, rate_bps: int, burst_kb: int | None = None
    ) -> tuple[ReservationRecord, Plan]:
        """Change a reservation's rate on its path (the pre-freeze boost); AdmissionError if not."""
        rec = self._reservation(rid)
        check_rate(rate_bps)
        check_burst(burst_kb)
        if not fits_on_path(self._load, rec.path, rec.rate_bps, rate_bps):
            resize_check(self.topo, rec.as_model(), rate_bps, self._models())  # names the link
        burst = default_burst_kb(rate_bps) if burst_kb is None else burst_kb
        shrinks = rate_bps < rec.rate_bps
        before = self._model()
        touched = Touched(reservations={rid})
        rec = replace(rec, rate_bps=rate_bps, burst_kb=burst)
        self._put(rec)
        if shrinks:  # room for one left without a path, as after a release
            self._reroute(set(), touched)
        return rec, [self._commit(before, touched)]

    def release(self, rid: int) -> Plan:
        """Remove a reservation's flows and meter; one left without a path (no room when its
        host moved or a link failed) is admitted again in the room this frees."""
        rec = self._reservation(rid)
        before = self._model()
        touched = Touched(reservations={rid})
        self._drop(rec)
        self._reroute(set(), touched)
        return [self._commit(before, touched)]

    def _reservation(self, rid: int) -> ReservationRecord:
        try:
            return self.reservations[rid]
        except KeyError:
            raise KeyError(f"no reservation {rid}") from None

    def _put(self, rec: ReservationRecord) -> None:
        """Add `rec`, or replace the record of the same id: load and indexes follow."""
        old = self.reservations.get(rec.id)
        if old is not None:
            self._unindex(old)
        self.reservations[rec.id] = rec
        self._load.add(rec.path, rec.rate_bps)
        self._index.reservation_added(rec)
        for link in _links_of(rec.path):
            self._by_link.setdefault(link, set()).add(rec.id)

    def _unindex(self, rec: ReservationRecord) -> None:
        self._load.remove(rec.path, rec.rate_bps)
        self._index.reservation_removed(rec)
        for link in _links_of(rec.path):
            self._by_link.get(link, set()).discard(rec.id)

    def _drop(self, rec: ReservationRecord) -> None:
        del self.reservations[rec.id]
        self._unindex(rec)
        self._displaced.discard(rec.id)

    def _models(self, exclude: Iterable[int] = ()) -> list[Any]:
        skip = set(exclude)
        return [r.as_model() for r in self.reservations.values() if r.id not in skip]

    @overload
    def _admit(
        self, src: str, dst: str, rate_bps: int, exclude: int | None = None
    ) -> tuple[str, ...]: ...

    @overload
    def _admit(
        self, src: str, dst: str, rate_bps: int, exclude: int | None, explain: Literal[False]
    ) -> tuple[str, ...] | None: ...

    def _admit(
        self,
        src: str,
        dst: str,
        rate_bps: int,
        exclude: int | None = None,
        explain: bool = True,
    ) -> tuple[str, ...] | None:
        """The path `admit` gives, from the residuals kept per link (`exclude`: a reservation
        whose own rate does not count, being the one rerouted). A refusal is computed again in
        full, for the AdmissionError that names the bottleneck; None instead without
        `explain`."""
        own = self.reservations.get(exclude) if exclude is not None else None
        if own is not None:
            self._load.remove(own.path, own.rate_bps)
        try:
            path = admit_on(self._load, src, dst, rate_bps)
        finally:
            if own is not None:
                self._load.add(own.path, own.rate_bps)
        if path is not None or not explain:
            return path
        skip = [] if exclude is None else [exclude]
        return admit(self.topo, src, dst, rate_bps, self._models(skip))

    def _intact(self, rec: ReservationRecord) -> bool:
        """Its path has every link up and joins its hosts' switches now."""
        src, dst = self.hosts[rec.src].switch, self.hosts[rec.dst].switch
        if (rec.path[0], rec.path[-1]) != (src, dst):
            return False
        up = self._load.up
        return all(up(u, v) for u, v in zip(rec.path, rec.path[1:], strict=False))

    # ------------------------------------------------------------------ hosts

    def relocate(
        self, host: str, switch: str, port: int | None = None
    ) -> tuple[Attachment, Attachment, Plan]:
        """Move `host` (same IP and MAC) to `switch`:`port`; make-before-break stages."""
        [(old, new)], plan = self.relocate_many([(host, switch, port)])
        return old, new, plan

    def relocate_many(
        self, moves: Sequence[tuple[str, str, int | None]]
    ) -> tuple[list[tuple[Attachment, Attachment]], Plan]:
        """Move several hosts at once (a chain's functions): one change, one plan, so that no
        switch ever holds some of them moved and others not once a stage is confirmed. Every
        move is checked before any is made (unknown names, link ports, a port taken by a host
        that does not move, two moves to one port: nothing changes). Stages are
        make-before-break outwards from the switch the first move goes to."""
        if not moves:
            raise StateError("no moves")
        hosts = [host for host, _, _ in moves]
        if len(set(hosts)) != len(hosts):
            raise StateError("a host may be moved only once in one change")
        wanted: list[tuple[Attachment, Attachment]] = []
        claimed: dict[tuple[str, int], str] = {}
        for host, switch, port in moves:
            old, new = self._check_move(host, switch, port, set(hosts))
            while port is None and (new.switch, new.port) in claimed:  # a free port each
                old, new = self._check_move(host, switch, new.port + 1, set(hosts))
            other = claimed.setdefault((new.switch, new.port), host)
            if other != host:
                raise StateError(f"port {new.port} of {new.switch} is asked for {other} and {host}")
            wanted.append((old, new))
        before = self._model()
        touched = Touched(hosts=set(hosts))
        reservations: set[int] = set()
        for old, new in wanted:
            self._move(old, new)
            reservations |= self._index.res_by_host.get(old.host, set())
        self._reroute(reservations, touched)
        return wanted, self._commit_move(before, touched, wanted[0][1].switch)

    def _check_move(
        self, host: str, switch: str, port: int | None, moving: set[str]
    ) -> tuple[Attachment, Attachment]:
        """Where `host` is and where it would be at `switch`:`port` (its free port if None);
        StateError / UnknownName if it cannot go there (hosts in `moving` do not count as
        taking a port: they leave it in the same change)."""
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
        taken = [
            name
            for name in self._index.by_switch.get(switch, {})
            if name not in moving and self.hosts[name].port == port
        ]
        if taken:
            first = min(taken, key=self._index.pos.__getitem__)
            raise StateError(f"port {port} of {switch} is taken by {first}")
        for sb_port, owner in ports_of(self.standbys, switch):
            if sb_port == port or owner == host:  # 422 as a taken port is (409: standbys)
                raise StateError(
                    f"port {port} of {switch} is a standby of {owner}"
                    if owner != host
                    else f"{host} has a standby at {switch}: promote it, or remove it first"
                )
        return old, replace(old, switch=switch, port=port)

    def _move(self, old: Attachment, new: Attachment) -> None:
        self.hosts[new.host] = new
        self._index.host_moved(old, new)
        if old.host in self.holds and old.switch != new.switch:
            trail = self.hold_trails.setdefault(old.host, set())
            trail.add(old.switch)
            trail.discard(new.switch)

    def hold(self, host: str) -> Plan:
        """Send `host`'s traffic to the controller, at its switch (see controller.hold)."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        if self.hosts[host].ip is None:
            raise StateError(f"{host} has no IP address: its traffic cannot be held")
        before = self._model()
        self.holds.add(host)
        return [self._commit(before, Touched(holds=True))]

    def unhold(self, host: str) -> Plan:
        """Let `host`'s traffic flow again (nothing to do if it was not held)."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        before = self._model()
        self.holds.discard(host)
        self.hold_trails.pop(host, None)
        return [self._commit(before, Touched(holds=True))]

    def held_host(self, host_id: int) -> str | None:
        """The held host with this id (packet-ins of hold flows carry it in their cookie)."""
        for name in self.holds:
            if self.host_ids.get(name) == host_id:
                return name
        return None

    def _commit_move(self, before: Model, touched: Touched, switch: str) -> Plan:
        """Commit after a host moved to `switch`: make-before-break stages outwards from it."""
        stage = self._commit(before, touched)
        return staged_by_distance(stage, self._forest.distances_to(switch, stage))

    def _free_port(self, switch: str, host: Attachment) -> int:
        """The port a host takes on `switch` when none is named: the declared one of the same
        host if it was declared there, else the port after every used one (a declared port
        stays its host's even while the host is away, so that it can come back)."""
        declared = self.declared.attachments_on(switch)
        for att in declared:
            if att.host == host.host:
                return att.port
        used = {self.hosts[name].port for name in self._index.by_switch.get(switch, {})}
        used |= {a.port for a in declared}
        used |= {ln.port_on(switch) for ln in self.declared.links_of(switch)}
        used |= {port for port, _ in ports_of(self.standbys, switch)}
        return max(used, default=0) + 1

    def learn_host(self, mac: str, ip: str | None, switch: str, port: int) -> Plan:
        """A frame from `mac` came in at `switch`:`port` (an edge port): record where it is.
        Nothing is learned from a standby's port (a warm replica answers with its instance's
        MAC: see controller.standby)."""
        if self.standby_at(switch, port) is not None:
            return []
        known = self.host_by_mac(mac)
        if known is not None:
            if (known.switch, known.port) == (switch, port) and (ip is None or known.ip == ip):
                return []
            moved = replace(known, switch=switch, port=port, ip=ip or known.ip)
            before = self._model()
            touched = Touched(hosts={known.host})
            self._move(known, moved)
            log.info("host %s moved to %s:%d", known.host, switch, port)
            self._reroute(self._index.res_by_host.get(known.host, set()), touched)
            return self._commit_move(before, touched, switch)
        name = f"{LEARNED_PREFIX}{mac}"
        before = self._model()
        att = Attachment(name, switch, port, ip, mac, kind="agent")
        self.hosts[name] = att
        self.host_ids[name] = max(self.host_ids.values(), default=0) + 1
        self._index.host_added(att)
        log.info("learned host %s (%s) at %s:%d", mac, ip, switch, port)
        return [self._commit(before, Touched(hosts={name}))]

    # ------------------------------------------------------------------ standbys

    def standby_at(self, switch: str, port: int) -> str | None:
        """The host whose standby is at `switch`:`port`, or None."""
        for sb_port, host in ports_of(self.standbys, switch):
            if sb_port == port:
                return host
        return None

    def standbys_of(self, host: str) -> list[Attachment]:
        """`host`'s standbys, by switch name (UnknownName if there is no such host)."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        places = self.standbys.get(host, {})
        return [places[sw] for sw in sorted(places)]

    def add_standby(self, host: str, to: str, port: int | None = None) -> tuple[Attachment, Plan]:
        """Make `to` (a site or switch), port `port` (default: the host's declared port there,
        else a free one), a standby of `host`: frames from it are dropped there and never
        learned (see controller.standby). The same standby again changes nothing. Occupied if
        the port is another host's or another standby's, if `host` is at that switch itself
        or has a standby there at another port; StateError for a link port; nothing changed."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        switch = self._switch(to)
        mine = self.standbys.get(host, {}).get(switch)
        if port is None:
            port = mine.port if mine is not None else self._free_port(switch, self.hosts[host])
        self._check_standby(host, switch, port)
        if mine is not None:
            return mine, []
        att = replace(self.hosts[host], switch=switch, port=port)
        self.standbys.setdefault(host, {})[switch] = att
        log.info("standby of %s at %s:%d", host, switch, port)
        return att, [{switch: [standby_flow(att, self.host_ids[host])]}]

    def remove_standby(self, host: str, at: str) -> tuple[Attachment, Plan]:
        """Forget `host`'s standby at `at` (a site or switch): its port's drop goes, so remove
        the replica there first (its frames would be learned). UnknownName if there is none."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        switch = self._switch(at)
        places = self.standbys.get(host, {})
        att = places.get(switch)
        if att is None:
            raise UnknownName(f"{host} has no standby at {at}", at)
        del places[switch]
        if not places:
            del self.standbys[host]
        log.info("standby of %s at %s:%d removed", host, switch, att.port)
        return att, [{switch: [delete_strict(standby_flow(att, self.host_ids[host]))]}]

    def promote(
        self,
        host: str,
        to: str,
        *,
        keep_old: bool = True,
        drain: bool = False,
        deliver_old: bool = False,
    ) -> tuple[Attachment, Attachment, Plan]:
        """Move `host`'s traffic to its standby at `to` (a site or switch) in one
        make-before-break change, as a relocation does: the standby's drop goes first with the
        new place's forwarding; the old place becomes a standby (its drop last, once nothing is
        steered there), or is forgotten without `keep_old`. `drain`: the old place's drop is
        left out of the plan, so that what the old replica still sends for requests it took
        before the switch gets through; `seal_standby` adds it later (it is a standby at once:
        never learned). `deliver_old` (with `drain`): until then, what still arrives at the old
        place's switch for the host leaves by its old port (`drain_flow`): for one host with a
        link at each place, not replicas (a new connection would reach the old one). Occupied
        if `host` has no standby there; nothing changed."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        switch = self._switch(to)
        sb = self.standbys.get(host, {}).get(switch)
        if sb is None:
            have = ", ".join(sorted(self.standbys.get(host, {}))) or "none"
            raise Occupied(f"{host} has no standby at {to} to promote (standbys at: {have})")
        old = self.hosts[host]
        new = replace(old, switch=sb.switch, port=sb.port)
        standbys_before = {h: dict(places) for h, places in self.standbys.items()}
        before = self._model()
        places = self.standbys[host]
        del places[switch]
        if keep_old:
            places[old.switch] = old
        if not places:
            del self.standbys[host]
        touched = Touched(hosts={host})
        self._move(old, new)
        self._reroute(self._index.res_by_host.get(host, set()), touched)
        plan = self._commit_move(before, touched, new.switch)
        first, last = flow_changes(standbys_before, self.standbys, self.host_ids, self.host_ids)
        was = self.draining.pop(host, None)
        if drain:
            last = {}
        flow = None
        if drain and keep_old:
            # the old place delivers what still arrives there (`drain_flow`: one host with a
            # link at each place) or sends it back up to the new one (`bounce_flow`: replicas),
            # from before its forwarding changes (the first stage) until it is sealed
            d = Drain(old, deliver_old)
            flow = self._drain_flow(host, d)
            if flow is not None:
                self.draining[host] = d
                first = {**first, old.switch: [flow, *first.get(old.switch, [])]}
        ended = None if was is None else self._drain_flow(host, was)
        if was is not None and ended is not None and (was.at.switch, ended) != (old.switch, flow):
            last = {**last, was.at.switch: [*last.get(was.at.switch, []), delete_strict(ended)]}
        log.info("promoted %s: %s:%d -> %s:%d", host, old.switch, old.port, new.switch, new.port)
        return old, new, with_standby_flows(plan, first, last)

    def seal_standby(self, host: str, at: Attachment) -> Plan:
        """The drop of `host`'s standby `at` (a place a drained promotion left open), if it is
        still that standby; else nothing (it moved on meanwhile)."""
        msgs: list[Any] = []
        if self.standbys.get(host, {}).get(at.switch) == at:
            msgs.append(standby_flow(at, self.host_ids[host]))
        d = self.draining.get(host)
        if d is not None and d.at == at:  # it drained: nothing arrives there any more
            flow = self._drain_flow(host, d)
            del self.draining[host]
            if flow is not None:
                msgs.append(delete_strict(flow))
        return [{at.switch: msgs}] if msgs else []

    def _switch(self, name: str) -> str:
        try:
            return self.declared.resolve(name)
        except UnknownNodeError as exc:
            raise UnknownName(f"no site or switch called {name!r}", name) from exc

    def _check_standby(self, host: str, switch: str, port: int) -> None:
        """Whether `host` can have a standby at `switch`:`port` (see `add_standby`)."""
        if host not in self.hosts:
            raise UnknownName(f"no host called {host!r}", host)
        self.declared.switch(switch)
        check_switch_port(port)
        primary = self.hosts[host]
        if primary.mac is None:
            raise StateError(f"{host} has no MAC address: a standby answers with its MAC")
        if primary.switch == switch:
            raise Occupied(f"{host} is at {switch} itself: a standby is at another switch")
        if self.is_link_port(switch, port):
            raise StateError(f"port {port} of {switch} is a link port, not a host port")
        for name in self._index.by_switch.get(switch, {}):
            if self.hosts[name].port == port:
                raise Occupied(f"port {port} of {switch} is taken by {name}")
        other = self.standby_at(switch, port)
        if other is not None and other != host:
            raise Occupied(f"port {port} of {switch} is a standby of {other}")
        mine = self.standbys.get(host, {}).get(switch)
        if mine is not None and mine.port != port:
            raise Occupied(f"{host} has a standby at {switch} already, at port {mine.port}")

    # ------------------------------------------------------------------ links

    def link_down(self, a: str, b: str) -> Plan:
        """A declared link went down: route around it (reservations re-admitted if they can)."""
        if not self.declared.has_link(a, b) or frozenset((a, b)) in self.down:
            return []
        before = self._model()
        self.down.add(frozenset((a, b)))
        touched = self._link_changed(a, b, up=False)
        self._reroute(set(self._by_link.get(frozenset((a, b)), ())), touched)
        return [self._commit(before, touched)]

    def link_up(self, a: str, b: str) -> Plan:
        """A declared link is back."""
        if frozenset((a, b)) not in self.down:
            return []
        before = self._model()
        self.down.discard(frozenset((a, b)))
        touched = self._link_changed(a, b, up=True)
        self._reroute(set(), touched)  # one whose host moved while no path had room may fit now
        return [self._commit(before, touched)]

    def _link_changed(self, a: str, b: str, *, up: bool) -> Touched:
        self._topo = None
        self._load.set_up(a, b, up)
        self._forest = self._forest.with_links(self.declared, [(a, b)], self.down)
        return Touched(links=[(a, b)])

    def _reroute(self, suspects: Iterable[int], touched: Touched) -> None:
        """Re-admit every reservation whose path lost a link or no longer joins its hosts: the
        `suspects` a change may have broken and those already broken, in their order."""
        for rid in sorted(set(suspects) | self._displaced):
            rec = self.reservations[rid]
            if self._intact(rec):
                self._displaced.discard(rid)
                continue
            src, dst = self.hosts[rec.src].switch, self.hosts[rec.dst].switch
            path = self._admit(src, dst, rec.rate_bps, exclude=rid, explain=False)
            if path is None:  # no path, or no room: it keeps its path (see desired)
                if rid not in self._displaced:
                    log.warning(
                        "reservation %d cannot be rerouted: no path from %s to %s with %d bit/s",
                        rid,
                        src,
                        dst,
                        rec.rate_bps,
                    )
                self._displaced.add(rid)
                continue
            self._displaced.discard(rid)
            self._put(replace(rec, path=path))
            touched.reservations.add(rid)

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
            forest=self._forest,
            standbys={h: dict(places) for h, places in self.standbys.items()},
            trails=self._trails(),
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
        now = self._live()
        then = Model(
            snap.hosts, snap.host_ids, snap.reservations, snap.holds, snap.forest, snap.trails
        )
        moved = [h for h, att in self.hosts.items() if snap.hosts.get(h) != att]
        touched = Touched(
            hosts={
                h
                for h in set(self.hosts) | set(snap.hosts)
                if self.hosts.get(h) != snap.hosts.get(h)
                or self.host_ids.get(h) != snap.host_ids.get(h)
            },
            reservations={
                r
                for r in set(self.reservations) | set(snap.reservations)
                if self.reservations.get(r) != snap.reservations.get(r)
            },
            holds=self.holds != snap.holds or now.trails != snap.trails,
            links=[tuple(sorted(p)) for p in self.down ^ snap.down],  # type: ignore[misc]
        )
        full = self._index.stage(now, then, touched) if touched else {}
        # standby drops: those the operation made go first, those it removed come back last
        sb_first, sb_last = flow_changes(self.standbys, snap.standbys, self.host_ids, snap.host_ids)
        self.standbys = {h: dict(places) for h, places in snap.standbys.items()}
        self.down = set(snap.down)
        self._topo = None
        self.hosts = dict(snap.hosts)
        self.host_ids = dict(snap.host_ids)
        self.reservations = dict(snap.reservations)
        self.next_reservation = snap.next_reservation
        self.holds = set(snap.holds)
        self.hold_trails = {}
        for host, sw in snap.trails:
            self.hold_trails.setdefault(host, set()).add(sw)
        self._forest = snap.forest
        self._rebuild()
        stage: Stage = {sw: msgs for sw, msgs in full.items() if switches is None or sw in switches}
        sb_first, sb_last = (
            {sw: m for sw, m in part.items() if switches is None or sw in switches}
            for part in (sb_first, sb_last)
        )
        if not stage:
            return with_standby_flows([], sb_first, sb_last)
        back_to = [snap.hosts[h].switch for h in moved if h in snap.hosts]
        if len(back_to) == 1:
            plan = staged_by_distance(stage, self._forest.distances_to(back_to[0], stage))
        else:
            plan = [stage]
        return with_standby_flows(plan, sb_first, sb_last)

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """What must survive a controller restart: reservations and where hosts are now."""
        return {
            "version": self.SAVED_VERSION,
            "scenario": self.scenario.name,
            "next_reservation": self.next_reservation,
            "reservations": [record_dict(r) for r in self.reservations.values()],
            "hosts": [attachment_dict(a) for a in self.hosts.values()],
            "host_ids": self.host_ids,
            "standbys": [
                attachment_dict(a) for places in self.standbys.values() for a in places.values()
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back what `to_dict` saved (same scenario); switches get it when they connect."""
        if data.get("scenario") != self.scenario.name:
            raise StateError(
                f"saved state is for scenario {data.get('scenario')!r}, not {self.scenario.name!r}"
            )
        for h in data.get("hosts", []):
            att = Attachment(**h)
            # a state file may hold what earlier versions let in unchecked, and hosts of an
            # earlier version of the scenario (same name): their ports would stay taken
            if att.host not in self.hosts and not att.host.startswith(LEARNED_PREFIX):
                log.warning(
                    "saved place of %s ignored: scenario %s has no such host (now)",
                    att.host, self.scenario.name,
                )  # fmt: skip
                continue
            try:
                check_switch_port(att.port)
                self.declared.switch(att.switch)
            except (StateError, TopologyError) as exc:
                log.warning("saved place of %s ignored: %s", att.host, exc)
                continue
            self.hosts[att.host] = att
        self.host_ids.update({k: int(v) for k, v in data.get("host_ids", {}).items()})
        self.reservations = {}
        saved = []
        for r in data.get("reservations", []):
            rec = ReservationRecord(**{**r, "path": tuple(r["path"])})
            try:
                self._check_saved(rec)
            except (StateError, TopologyError) as exc:
                log.warning("saved reservation %s dropped: %s", r.get("id"), exc)
                continue
            saved.append(rec)
        # in id order: the order reroutes take them in (as they were made)
        self.reservations = {rec.id: rec for rec in sorted(saved, key=lambda rec: rec.id)}
        self.next_reservation = int(data.get("next_reservation", 1))
        self.standbys = {}
        for sb in data.get("standbys", []):
            att = Attachment(**sb)
            try:
                self._check_standby(att.host, att.switch, att.port)
            except (StateError, TopologyError) as exc:
                log.warning("saved standby of %s ignored: %s", att.host, exc)
                continue
            self.standbys.setdefault(att.host, {})[att.switch] = att
        self._rebuild()

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


@dataclass(frozen=True)
class Drain:
    """A drained promotion's old place: `deliver` what arrives there by its old port (one host
    with a link at each place), or send it back up (replicas)."""

    at: Attachment
    deliver: bool


def record_dict(rec: ReservationRecord) -> dict[str, Any]:
    """`asdict(rec)`, without its deep copy (the fields are immutable): saved on every change."""
    return {f: getattr(rec, f) for f in _RECORD_FIELDS}


def attachment_dict(att: Attachment) -> dict[str, Any]:
    return {f: getattr(att, f) for f in _ATTACHMENT_FIELDS}


_RECORD_FIELDS = tuple(f.name for f in fields(ReservationRecord))
_ATTACHMENT_FIELDS = tuple(f.name for f in fields(Attachment))


def _links_of(path: tuple[str, ...]) -> set[frozenset[str]]:
    return {frozenset(hop) for hop in zip(path, path[1:], strict=False)}
