"""Proactive forwarding: the flows every switch carries whatever else happens.

Table 0 sends ARP to the controller (which answers from what it knows: no ARP floods) and
passes everything else to table 1. Table 1 forwards by destination MAC along a shortest-path tree
rooted at the host's switch, so a meshed topology never loops; unknown unicast and other broadcast
are dropped.

The trees are built in two steps, so that a link event changes only what is between core
switches (two declared links or more: the aggregation switches of an operator's fabric), never
an entry per host. A host's *anchor* is its own switch if that is core, else the one declared
neighbour of its switch (a MEC site hangs off its aggregation switch). Then for a host:
- its own switch sends its frames out of its port, and its anchor out of the link to its switch;
- every other core switch writes the anchor's dpid into the metadata and goes to table 2, where
  one entry per anchor (`route_flow`) sends the frame on along the shortest-path tree rooted at
  the anchor over the links that are up (none where the anchor is out of reach: dropped there);
- every other switch with a single declared link, to a core switch, sends them up that link: not
  by an entry per host but by one entry below them all (`uplink_flow`), so a site holds its own
  hosts' entries and that one, whatever the size of the fabric, and a host that appears or
  moves changes the entries of core switches and of its own switches only. Unknown unicast
  goes up too, and is dropped at the aggregation switch (no entry there).
A host's entries follow from the declared topology alone: a link that is down shows only in
table 2, or as a port that is down (OVS drops what is sent out of it). So a site's uplink going
down or up changes no flow at all, and a link between core switches changes table-2 entries
alone: at 1,000 sites a few hundred, not ten thousand host entries.
"""

from __future__ import annotations

import networkx as nx

from controller.ofmsg import (
    CONTROLLER_PORT,
    ETH_TYPE_ARP,
    PRIO_CONTROL,
    PRIO_DEFAULT,
    PRIO_DROP_MULTICAST,
    PRIO_HOST,
    PRIO_ROUTE,
    PRIO_UPLINK,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    TABLE_ROUTE,
    CookieKind,
    FlowMod,
    Match,
    Output,
    cookie,
)
from topology.model import Attachment, Topology

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")


def base_flows() -> list[FlowMod]:
    """The flows every switch gets when it connects."""
    base = cookie(CookieKind.BASE)
    return [
        FlowMod(
            "add",
            table=TABLE_CLASSIFY,
            priority=PRIO_CONTROL,
            match=Match.of(eth_type=ETH_TYPE_ARP),
            actions=(Output(CONTROLLER_PORT),),
            cookie=base,
        ),
        FlowMod(
            "add", table=TABLE_CLASSIFY, priority=PRIO_DEFAULT, goto=TABLE_FORWARD, cookie=base
        ),
        # broadcast/multicast other than ARP (IPv6 ND, mDNS, ...): dropped, never flooded
        FlowMod(
            "add",
            table=TABLE_FORWARD,
            priority=PRIO_DROP_MULTICAST,
            match=Match.of(eth_dst=MULTICAST),
            cookie=base,
        ),
    ]


def next_hops(topo: Topology, root: str) -> dict[str, str]:
    """For every switch that can reach `root`, its neighbour on a shortest path towards it.

    One shortest-path tree per destination: every switch agrees with its next hop, so the per-host
    entries can never form a loop.
    """
    paths = nx.single_source_shortest_path(topo.graph, root)
    return {sw: path[-2] for sw, path in paths.items() if len(path) > 1}


def host_flow(mac: str, host_id: int, port: int, match: Match | None = None) -> FlowMod:
    """The table-1 entry that sends frames for `mac` out of `port` (the host's, or towards it);
    `match`: its match, made already (`Match.of(eth_dst=mac)`)."""
    return FlowMod(
        "add",
        table=TABLE_FORWARD,
        priority=PRIO_HOST,
        match=match or Match.of(eth_dst=mac),
        actions=(Output(port),),
        cookie=cookie(CookieKind.HOST, host_id),
    )


def via_flow(mac: str, host_id: int, anchor: int, match: Match | None = None) -> FlowMod:
    """The table-1 entry of a core switch that sends frames for `mac` on through table 2 towards
    the core switch whose dpid is `anchor`."""
    return FlowMod(
        "add",
        table=TABLE_FORWARD,
        priority=PRIO_HOST,
        match=match or Match.of(eth_dst=mac),
        metadata=anchor,
        goto=TABLE_ROUTE,
        cookie=cookie(CookieKind.HOST, host_id),
    )


def uplink_flow(port: int, up_dpid: int) -> FlowMod:
    """The table-1 entry of a site (one declared link, to the core switch with dpid `up_dpid`)
    that sends every unicast frame no entry above takes out of `port`, up that link."""
    return FlowMod(
        "add",
        table=TABLE_FORWARD,
        priority=PRIO_UPLINK,
        actions=(Output(port),),
        cookie=cookie(CookieKind.ROUTE, up_dpid & _IDENT),
    )


def uplink_flows(declared: Topology) -> dict[str, FlowMod]:
    """Per switch with one declared link, to a core switch: its `uplink_flow`."""
    degree = _degrees(declared)
    flows: dict[str, FlowMod] = {}
    for switch in declared.switches:
        if degree[switch.name] == 1:
            (ln,) = declared.links_of(switch.name)
            up = ln.other(switch.name)
            if degree[up] >= 2:
                port = declared.port_to(switch.name, up)
                flows[switch.name] = uplink_flow(port, declared.switch(up).dpid)
    return flows


def route_flow(anchor: int, port: int) -> FlowMod:
    """The table-2 entry that sends what is bound for the core switch with dpid `anchor` out of
    `port` (towards it)."""
    return FlowMod(
        "add",
        table=TABLE_ROUTE,
        priority=PRIO_ROUTE,
        match=Match.of(metadata=anchor),
        actions=(Output(port),),
        cookie=cookie(CookieKind.ROUTE, anchor & _IDENT),
    )


_IDENT = (1 << 56) - 1  # the bits of a cookie that say which one


def _degrees(topo: Topology) -> dict[str, int]:
    degree = {sw.name: 0 for sw in topo.switches}
    for ln in topo.links:
        degree[ln.a] += 1
        degree[ln.b] += 1
    return degree


def host_flows(declared: Topology, host: Attachment, host_id: int) -> dict[str, FlowMod]:
    """Per switch name: the table-1 entry that brings frames for `host`'s MAC towards it (see
    the module doc), from the declared topology alone, computed from scratch (the reference
    that `controller.delta` keeps)."""
    if host.mac is None:
        return {}
    root = host.switch
    flows = {root: host_flow(host.mac, host_id, host.port)}
    degree = _degrees(declared)
    if degree[root] >= 2:
        anchor = root
    elif degree[root] == 1:
        (ln,) = declared.links_of(root)
        anchor = ln.other(root)
    else:
        return flows
    if anchor != root:
        flows[anchor] = host_flow(host.mac, host_id, declared.port_to(anchor, root))
    if degree[anchor] < 2:  # two switches and a link, nothing else
        return flows
    dpid = declared.switch(anchor).dpid
    for switch in declared.switches:
        name = switch.name
        if name in (root, anchor):
            continue
        if degree[name] >= 2:
            flows[name] = via_flow(host.mac, host_id, dpid)
    return flows  # a site sends it up its one link by its uplink_flow


def route_flows(declared: Topology, topo: Topology) -> dict[str, list[FlowMod]]:
    """Per switch name: its table-2 entries, one per core switch (of `declared`) it reaches
    over the links of `topo` (those up), in the order the topology declares them, computed from
    scratch."""
    degree = _degrees(declared)
    flows: dict[str, list[FlowMod]] = {}
    for root in declared.switches:
        if degree[root.name] < 2:
            continue
        for other, nxt in next_hops(topo, root.name).items():
            if degree[other] >= 2:
                flows.setdefault(other, []).append(route_flow(root.dpid, topo.port_to(other, nxt)))
    return flows
