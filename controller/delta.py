"""The desired flows and meters a change touches, before and after it, and the messages between.

`FabricState` changes its model and hands this module the model as it was (`Model`: a few dict
copies and the old `Forest`) and what the change touched (`Touched`). Only the cells (a switch and
one flow key or meter id) that the change can affect are computed, in both models, and diffed with
`controller.plan.diff_switch`, category by category in the order a full computation adds them:
host forwarding (table 1, then the table-2 routes), chains, reservations, holds. The result is
what `diff` of the full desired states before and after would give
(tests/unit/test_incremental.py checks it against the full computation on random topologies and
operation sequences).

Which cells a change can affect (forwarding goes in two steps, see controller.forwarding):
- a host that moved, appeared or changed: its MAC on every switch whose entry for it can
  differ (core switches and its old and new switch when both are in reach of a core switch;
  every switch else), its reservations, the chains it is in, its hold (on its old and new
  switch) if it is held;
- a link event: no host entry (they follow from the declared topology alone); for a link
  between two core switches, for every core tree it changed, the route to that tree's root on
  the switches whose next hop changed; the reservations it broke or that fit again;
- a reservation added, removed, resized or moved: the flows and meter of its match's group.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from controller.forwarding import base_flows, host_flow, route_flow, uplink_flows, via_flow
from controller.hold import hold_flows
from controller.ofmsg import CookieKind, FlowMod, Match, MeterMod, cookie
from controller.plan import FlowKey, Stage, SwitchConfig, delete_strict, diff_switch
from controller.reservations import ReservationRecord, reservation_flows, shared_meters
from controller.steering import Chain, ChainError, chain_flows
from controller.trees import Forest
from topology.model import Attachment, Topology

FlowCells = dict[str, dict[FlowKey, FlowMod]]  # switch -> flows of one category
# (output port, anchor dpid (0: none), host id): what a host's forwarding entry holds; it outputs
# to the port, or (with an anchor) goes to table 2 towards the anchor
HostValue = tuple[int, int, int]
Out = tuple[int, int]  # (output port, anchor dpid): where a switch sends a host's frames
Part = Callable[[str], SwitchConfig]  # one side's partial config of a switch (made on first use)
HostMsgs = tuple[list[FlowMod], list[FlowMod]]  # adds, deletes of host forwarding entries


@dataclass(frozen=True)
class Model:
    """What the desired flows are a function of (besides the declared topology and chains)."""

    hosts: Mapping[str, Attachment]
    host_ids: Mapping[str, int]
    reservations: Mapping[int, ReservationRecord]
    holds: frozenset[str]
    forest: Forest
    # (held host, switch): a place a held host left while held, whose hold flow stays until
    # the hold ends (what was on its way there is caught, not dropped: see controller.hold)
    trails: frozenset[tuple[str, str]] = frozenset()


@dataclass
class Touched:
    """What one change touched."""

    hosts: set[str] = field(default_factory=set)
    reservations: set[int] = field(default_factory=set)
    holds: bool = False
    links: list[tuple[str, str]] = field(default_factory=list)  # went down or came up

    def __bool__(self) -> bool:
        return bool(self.hosts or self.reservations or self.holds or self.links)


def _key(flow: FlowMod) -> FlowKey:
    return (flow.table, flow.priority, flow.match)


class DesiredIndex:
    """The indexes that find what a change touches, and the sparse part of the desired state
    (chain and reservation flows, meters) kept per switch; host forwarding and holds are
    computed when asked (they are hosts x switches)."""

    def __init__(self, declared: Topology, chains: list[Chain]) -> None:
        self.declared = declared
        self.switches = tuple(sw.name for sw in declared.switches)
        self.chains = chains
        self.members = {m for c in chains for m in c.members}
        self.base = base_flows()
        self.matches: dict[str, Match] = {}  # MAC -> the match of its forwarding entry
        # messages made once and sent to many switches (immutable): the add of a host's entry
        # with a port, the delete of a host's entry (the same on every switch)
        self.adds: dict[tuple[str, int, int, int], FlowMod] = {}
        self.deletes: dict[str, FlowMod] = {}
        self.ports = {  # (switch, neighbour) -> the port of the link between them on switch
            (sw, ln.other(sw)): ln.port_on(sw) for ln in declared.links for sw in (ln.a, ln.b)
        }
        self.dpids = {sw.name: sw.dpid for sw in declared.switches}
        self.rank = {sw: i for i, sw in enumerate(self.switches)}  # the declared order
        declared_adj: dict[str, list[str]] = {sw: [] for sw in self.switches}
        for ln in declared.links:
            declared_adj[ln.a].append(ln.b)
            declared_adj[ln.b].append(ln.a)
        self.cores = frozenset(sw for sw, nbrs in declared_adj.items() if len(nbrs) >= 2)
        self.anchors: dict[str, str | None] = {  # a switch -> the core side of its hosts
            sw: sw if sw in self.cores else (nbrs[0] if nbrs else None)
            for sw, nbrs in declared_adj.items()
        }
        self.uplinks = uplink_flows(declared)  # a site -> the entry up its one link
        self.routes: dict[tuple[str, int], FlowMod] = {}  # (anchor, port) -> its table-2 entry
        self.by_switch: dict[str, dict[str, None]] = {}  # switch -> hosts there (ordered)
        self.mac_owner: dict[str, str] = {}  # MAC -> the last host (in model order) with it
        self.pos: dict[str, int] = {}  # host -> its place in the model's order
        self.res_by_host: dict[str, set[int]] = {}
        self.res_by_match: dict[Match, set[int]] = {}
        self.chain_cfg: FlowCells = {}
        self.res_flows: FlowCells = {}
        self.res_meters: dict[str, dict[int, MeterMod]] = {}

    # ------------------------------------------------------------------ indexes

    def index_hosts(self, hosts: Mapping[str, Attachment]) -> None:
        self.by_switch, self.mac_owner, self.pos = {}, {}, {}
        for i, (name, att) in enumerate(hosts.items()):
            self.pos[name] = i
            self.by_switch.setdefault(att.switch, {})[name] = None
            if att.mac is not None:
                self.mac_owner[att.mac] = name

    def host_added(self, att: Attachment) -> None:
        self.pos[att.host] = len(self.pos)
        self.by_switch.setdefault(att.switch, {})[att.host] = None
        if att.mac is not None:
            self.mac_owner[att.mac] = att.host

    def host_moved(self, old: Attachment, new: Attachment) -> None:
        self.by_switch.get(old.switch, {}).pop(old.host, None)
        self.by_switch.setdefault(new.switch, {})[new.host] = None

    def index_reservations(self, reservations: Iterable[ReservationRecord]) -> None:
        self.res_by_host, self.res_by_match = {}, {}
        for rec in reservations:
            self.reservation_added(rec)

    def reservation_added(self, rec: ReservationRecord) -> None:
        for host in (rec.src, rec.dst):
            self.res_by_host.setdefault(host, set()).add(rec.id)
        self.res_by_match.setdefault(rec.match(), set()).add(rec.id)

    def reservation_removed(self, rec: ReservationRecord) -> None:
        for host in (rec.src, rec.dst):
            self.res_by_host.get(host, set()).discard(rec.id)
        self.res_by_match.get(rec.match(), set()).discard(rec.id)

    def rebuild(self, model: Model) -> None:
        """Every index and the sparse state, from `model` (start, restore, roll back)."""
        self.index_hosts(model.hosts)
        self.index_reservations(model.reservations.values())
        self.chain_cfg = self.chain_cells(model.hosts)
        self.res_flows, self.res_meters = {}, {}
        for m in list(self.res_by_match):
            group = self._group(model, m, self.res_by_match[m])
            if group is not None:
                first, meter, flows = group
                self.res_meters.setdefault(first, {})[meter.meter_id] = meter
                for sw, flow in flows:
                    self.res_flows.setdefault(sw, {})[_key(flow)] = flow

    # ------------------------------------------------------------------ values

    def host_out(self, att: Attachment, switch: str) -> Out | None:
        """Where `switch` sends `att`'s frames: out of a port, or to table 2 towards its anchor
        (None: nowhere). From the declared topology alone: see controller.forwarding."""
        root = att.switch
        if switch == root:
            return att.port, 0
        anchor = self.anchors[root]
        if anchor is None:
            return None
        if switch == anchor:
            return self.ports[(anchor, root)], 0
        if anchor not in self.cores:  # two switches and a link, nothing else
            return None
        if switch in self.cores:
            return 0, self.dpids[anchor]
        return None  # a site: up its one link by its uplink entry

    def route_port(self, forest: Forest, anchor: str, switch: str) -> int | None:
        """The port of `switch`'s table-2 entry towards core switch `anchor` (None: none)."""
        if switch == anchor or not forest.is_core(switch) or not forest.is_core(anchor):
            return None
        hop = forest.tree(anchor).get(switch)
        return None if hop is None else self.ports[(switch, hop)]

    def route(self, anchor: str, port: int) -> FlowMod:
        flow = self.routes.get((anchor, port))
        if flow is None:
            flow = self.routes[(anchor, port)] = route_flow(self.dpids[anchor], port)
        return flow

    def owner(self, model: Model, mac: str) -> str | None:
        """The host whose forwarding entry for `mac` is in force in `model` (the last one)."""
        name = self.mac_owner.get(mac)
        if name is not None:
            att = model.hosts.get(name)
            if att is not None and att.mac == mac:
                return name
        found = None
        for other, att in model.hosts.items():
            if att.mac == mac:
                found = other
        return found

    def host_value(self, model: Model, name: str | None, switch: str) -> HostValue | None:
        if name is None:
            return None
        att = model.hosts[name]
        out = self.host_out(att, switch)
        return None if out is None else (out[0], out[1], model.host_ids[name])

    def chain_cells(self, hosts: Mapping[str, Attachment]) -> FlowCells:
        cells: FlowCells = {}
        for i, chain in enumerate(self.chains, start=1):
            try:
                for sw, flow in chain_flows(chain, hosts, i):
                    cells.setdefault(sw, {})[_key(flow)] = flow
            except ChainError:
                continue  # logged where the full state is built (FabricState)
        return cells

    def hold_cells(self, model: Model, switch: str) -> dict[FlowKey, FlowMod]:
        """The hold flows `switch` carries: those of the held hosts attached there (a held
        host's traffic is caught where it leaves the fabric, see controller.hold)."""
        cells: dict[FlowKey, FlowMod] = {}
        for name in sorted(model.holds):
            att = model.hosts[name]
            if att.switch == switch or (name, switch) in model.trails:
                for flow in hold_flows(att, model.host_ids[name]):
                    cells[_key(flow)] = flow
        return cells

    @staticmethod
    def hold_switches(model: Model) -> set[str]:
        """The switches that carry a hold flow in `model`."""
        held = {model.hosts[name].switch for name in model.holds}
        return held | {sw for name, sw in model.trails if name in model.holds}

    def _group(
        self, model: Model, match: Match, ids: Iterable[int]
    ) -> tuple[str, MeterMod, list[tuple[str, FlowMod]]] | None:
        """The meter and flows in force for the reservations of `ids` that select `match`."""
        res, hosts = model.reservations, model.hosts
        routed = [
            res[i]
            for i in sorted(ids)
            if i in res and res[i].match() == match and res[i].path[-1] == hosts[res[i].dst].switch
        ]
        if not routed:
            return None
        (lead,) = shared_meters(routed)
        return reservation_flows(self.declared, lead, hosts[lead.dst])

    def config(self, model: Model, switch: str) -> SwitchConfig:
        """Everything `switch` should hold in `model` (the current one: the sparse part is)."""
        cfg = SwitchConfig()
        for flow in self.base:
            cfg.add_flow(flow)
        uplink = self.uplinks.get(switch)
        if uplink is not None:
            cfg.add_flow(uplink)
        for name, att in model.hosts.items():
            if att.mac is None:
                continue
            out = self.host_out(att, switch)
            if out is not None:
                cfg.add_flow(self._host_flow(att.mac, (*out, model.host_ids[name])))
        forest = model.forest
        if forest.is_core(switch):
            for anchor in forest.cores:
                port = self.route_port(forest, anchor, switch)
                if port is not None:
                    cfg.add_flow(self.route(anchor, port))
        cfg.flows.update(self.chain_cfg.get(switch, {}))
        cfg.meters.update(self.res_meters.get(switch, {}))
        cfg.flows.update(self.res_flows.get(switch, {}))
        cfg.flows.update(self.hold_cells(model, switch))
        return cfg

    # ------------------------------------------------------------------ the difference

    def stage(self, old: Model, new: Model, touched: Touched) -> Stage:
        """The messages from `old` to `new` (this index is `new`'s but for the sparse state,
        which is `old`'s until this returns), per switch, for what `touched` names."""
        olds: dict[str, SwitchConfig] = {}
        news: dict[str, SwitchConfig] = {}

        def old_part(sw: str) -> SwitchConfig:
            cfg = olds.get(sw)
            if cfg is None:
                cfg = olds[sw] = SwitchConfig()
            return cfg

        def new_part(sw: str) -> SwitchConfig:
            cfg = news.get(sw)
            if cfg is None:
                cfg = news[sw] = SwitchConfig()
            return cfg

        host_msgs = self._host_part(old, new, touched)
        for sw, (r_adds, r_dels) in self._route_part(old, new, touched).items():
            h_adds, h_dels = host_msgs.get(sw, ([], []))
            host_msgs[sw] = ([*h_adds, *r_adds], [*h_dels, *r_dels])
        if touched.hosts & self.members:
            after = self.chain_cells(new.hosts)
            for sw in set(self.chain_cfg) | set(after):
                before, now = self.chain_cfg.get(sw, {}), after.get(sw, {})
                if before != now:
                    old_part(sw).flows.update(before)
                    new_part(sw).flows.update(now)
            self.chain_cfg = after
        self._reservation_part(old, new, touched, old_part, new_part)
        held = old.holds | new.holds
        if touched.holds or (held and touched.hosts & held):
            for sw in self.hold_switches(old) | self.hold_switches(new):
                h_old, h_new = self.hold_cells(old, sw), self.hold_cells(new, sw)
                if h_old != h_new:
                    old_part(sw).flows.update(h_old)
                    new_part(sw).flows.update(h_new)
        stage: Stage = {}
        changed = set(olds) | set(news) | set(host_msgs)
        for sw in sorted(changed):
            head_adds, head_dels = host_msgs.get(sw, ([], []))
            if sw not in olds and sw not in news:  # host entries only: adds, then deletes
                stage[sw] = [*head_adds, *head_dels]
                continue
            msgs = diff_switch(olds.get(sw), news.get(sw, SwitchConfig()), head_adds, head_dels)
            if msgs:
                stage[sw] = msgs
        return stage

    def _host_part(self, old: Model, new: Model, touched: Touched) -> dict[str, HostMsgs]:
        """Per switch, the adds and deletes of host forwarding entries the change makes."""
        cells = self._host_cells(old, new, touched)
        if not cells:
            return {}
        far = len(self.pos) + 1
        owners: dict[str, tuple[str | None, str | None]] = {}
        dels = self.deletes
        if len(self.adds) > 4 * len(self.pos) + 1024:  # bounded: a few ports per host
            self.adds.clear()

        def owned(mac: str) -> tuple[str | None, str | None]:
            pair = owners.get(mac)
            if pair is None:
                pair = owners[mac] = (self.owner(old, mac), self.owner(new, mac))
            return pair

        def order(mac: str) -> int:
            o_old, o_new = owned(mac)
            name = o_new or o_old
            return self.pos.get(name, far) if name is not None else far

        out: dict[str, HostMsgs] = {}
        for sw in self.switches:
            some = cells.get(sw)
            if not some:
                continue
            macs = sorted(some, key=order) if len(some) > 1 else some
            sw_adds: list[FlowMod] = []
            sw_dels: list[FlowMod] = []
            for mac in macs:
                o_old, o_new = owned(mac)
                v_old = self.host_value(old, o_old, sw)
                v_new = self.host_value(new, o_new, sw)
                if v_old == v_new:
                    continue
                if v_new is not None:
                    sw_adds.append(self._host_flow(mac, v_new))
                elif v_old is not None:
                    gone = dels.get(mac)
                    if gone is None or gone.cookie != cookie(CookieKind.HOST, v_old[2]):
                        gone = dels[mac] = delete_strict(self._host_flow(mac, v_old))
                    sw_dels.append(gone)
            if sw_adds or sw_dels:
                out[sw] = (sw_adds, sw_dels)
        return out

    def _host_flow(self, mac: str, value: HostValue) -> FlowMod:
        """The forwarding entry for `mac` that holds `value` (made once, shared)."""
        key = (mac, *value)
        flow = self.adds.get(key)
        if flow is None:
            port, anchor, host_id = value
            if anchor:
                flow = via_flow(mac, host_id, anchor, self._match(mac))
            else:
                flow = host_flow(mac, host_id, port, self._match(mac))
            self.adds[key] = flow
        return flow

    def _route_part(self, old: Model, new: Model, touched: Touched) -> dict[str, HostMsgs]:
        """Per switch, the adds and deletes of table-2 entries a link event makes."""
        f_old, f_new = old.forest, new.forest
        if not touched.links or f_old is f_new:
            return {}
        # switch -> (anchor, next hop before, next hop after) of each table-2 entry that changes;
        # a tree holds core switches only, and its root's entry is none (see `route_port`)
        cells: dict[str, list[tuple[str, str | None, str | None]]] = {}
        if f_new.joins_cores(touched.links):
            for anchor in f_new.cores:
                t_old, t_new = f_old.tree(anchor), f_new.tree(anchor)
                for sw in t_old.keys() | t_new.keys():
                    h_old, h_new = t_old.get(sw), t_new.get(sw)
                    if h_old != h_new:
                        cells.setdefault(sw, []).append((anchor, h_old, h_new))
        if not cells:
            return {}
        rank, ports = self.rank, self.ports
        out: dict[str, HostMsgs] = {}
        for sw in sorted(cells, key=rank.__getitem__):
            sw_adds: list[FlowMod] = []
            sw_dels: list[FlowMod] = []
            for anchor, h_old, h_new in sorted(cells[sw], key=lambda c: rank[c[0]]):
                if h_new is not None:
                    sw_adds.append(self.route(anchor, ports[(sw, h_new)]))
                elif h_old is not None:
                    sw_dels.append(delete_strict(self.route(anchor, ports[(sw, h_old)])))
            out[sw] = (sw_adds, sw_dels)
        return out

    def _match(self, mac: str) -> Match:
        match = self.matches.get(mac)
        if match is None:
            match = self.matches[mac] = Match.of(eth_dst=mac)
        return match

    def _host_cells(self, old: Model, new: Model, touched: Touched) -> dict[str, set[str]]:
        """Switch -> MACs whose entry there may change (a host's entries follow from where it
        is attached alone: a link event changes none)."""
        cells: dict[str, set[str]] = {}
        for name in touched.hosts:
            a_old, a_new = old.hosts.get(name), new.hosts.get(name)
            macs = {a.mac for a in (a_old, a_new) if a is not None and a.mac is not None}
            for mac in macs:
                switches = self._move_cells(old, new, mac)
                for sw in switches:
                    cells.setdefault(sw, set()).add(mac)
        return cells

    def _move_cells(self, old: Model, new: Model, mac: str) -> Iterable[str]:
        """The switches where the entry for `mac` may differ between `old` and `new`: where
        its owner in either has one (its own switch, its anchor, and the core switches when
        the anchor is core)."""
        cells: set[str] = set()
        for model in (old, new):
            name = self.owner(model, mac)
            if name is None:
                continue
            root = model.hosts[name].switch
            anchor = self.anchors[root]
            cells.add(root)
            if anchor is not None:
                cells.add(anchor)
                if anchor in self.cores:
                    cells |= self.cores
        return cells

    def _reservation_part(
        self,
        old: Model,
        new: Model,
        touched: Touched,
        old_part: Part,
        new_part: Part,
    ) -> None:
        ids = set(touched.reservations)
        for name in touched.hosts:
            ids |= self.res_by_host.get(name, set())
        if not ids:
            return
        matches: set[Match] = set()
        for i in ids:
            for model in (old, new):
                rec = model.reservations.get(i)
                if rec is not None:
                    matches.add(rec.match())
        groups = []
        for m in matches:
            members = self.res_by_match.get(m, set()) | touched.reservations
            g_old, g_new = self._group(old, m, members), self._group(new, m, members)
            if g_old == g_new:
                continue
            lead = min(g[1].meter_id for g in (g_old, g_new) if g is not None)
            groups.append((lead, g_old, g_new))
        for _, g_old, g_new in sorted(groups, key=lambda g: g[0]):
            if g_old is not None:
                first, meter, flows = g_old
                old_part(first).add_meter(meter)
                self.res_meters.get(first, {}).pop(meter.meter_id, None)
                for sw, flow in flows:
                    old_part(sw).add_flow(flow)
                    self.res_flows.get(sw, {}).pop(_key(flow), None)
            if g_new is not None:
                first, meter, flows = g_new
                new_part(first).add_meter(meter)
                self.res_meters.setdefault(first, {})[meter.meter_id] = meter
                for sw, flow in flows:
                    new_part(sw).add_flow(flow)
                    self.res_flows.setdefault(sw, {})[_key(flow)] = flow
