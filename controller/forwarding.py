"""Proactive forwarding: the flows every switch carries whatever else happens.

Table 0 sends ARP to the controller (which answers from what it knows: no ARP floods) and
passes everything else to table 1. Table 1 forwards by destination MAC along a shortest-path tree
rooted at the host's switch, so a meshed topology never loops; unknown unicast and other broadcast
are dropped.
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
    TABLE_CLASSIFY,
    TABLE_FORWARD,
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


def host_flows(topo: Topology, host: Attachment, host_id: int) -> dict[str, FlowMod]:
    """Per switch name: the table-1 entry that brings frames for `host`'s MAC towards it."""
    if host.mac is None:
        return {}
    flows = {host.switch: host_flow(host.mac, host_id, host.port)}
    for sw, nxt in next_hops(topo, host.switch).items():
        flows[sw] = host_flow(host.mac, host_id, topo.port_to(sw, nxt))
    return flows
