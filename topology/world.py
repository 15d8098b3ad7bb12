"""From a scenario file to the topology model: the one place that maps one onto the other.

Host order fixes port numbers (see `Topology.build`): site agents first, then instances, then
UEs, so Mininet, the controller and the benchmarks derive the same ports from the same file.
"""

from __future__ import annotations

from topology.model import HostSpec, Link, Site, Switch, Topology
from topology.scenario import Scenario, mac_from_ip


def topology_from_scenario(sc: Scenario) -> Topology:
    """The static topology a scenario describes (UEs at their initial attachment)."""
    switches = [Switch(s.switch_name, _dpid(s.dpid)) for s in sc.sites]
    switches += [Switch(s.name, _dpid(s.dpid)) for s in sc.switches]
    sites = [Site(s.name, s.switch_name, s.compute.cpus, s.compute.memory) for s in sc.sites]
    links = [
        Link(link.between[0], link.between[1], link.capacity, link.latency_ms) for link in sc.links
    ]
    return Topology.build(switches, links, sites, host_specs(sc))


def host_specs(sc: Scenario) -> list[HostSpec]:
    """Every host of the scenario with its switch, address and kind, in port order."""
    hosts = [
        HostSpec(agent_host(s.name), s.switch_name, str(s.agent_ip), _mac(s.agent_ip), "agent")
        for s in sc.sites
    ]
    hosts += [
        HostSpec(i.name, sc.switch_of(i.site), str(i.ip), sc.mac_of(i.name), "instance")
        for i in sc.instances
    ]
    hosts += [
        HostSpec(u.name, sc.switch_of(u.attach), str(u.ip), sc.mac_of(u.name), "ue") for u in sc.ues
    ]
    return hosts


def agent_host(site: str) -> str:
    """The name of a site's MEC host, where its agent runs ("hmec1" for site "mec1")."""
    return f"h{site}"


def _dpid(dpid: int | None) -> int:
    assert dpid is not None, "load_scenario fills in every dpid"
    return dpid


def _mac(ip: object) -> str:
    from ipaddress import IPv4Address

    assert isinstance(ip, IPv4Address), "load_scenario fills in every agent address"
    return mac_from_ip(ip)
