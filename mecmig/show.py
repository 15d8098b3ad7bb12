"""Printing a scenario for people: the `show` and `admit` commands."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ground.units import fmt_bps, parse_rate
from topology.admission import admit
from topology.errors import AdmissionError, TopologyError
from topology.paths import shortest_path
from topology.scenario import Scenario
from topology.world import topology_from_scenario


def show_scenario(console: Console, sc: Scenario) -> None:
    """Tables of switches, links and hosts (with ports), and the chains."""
    topo = topology_from_scenario(sc)
    console.print(f"[bold]scenario {sc.name}[/bold] - {sc.description}", highlight=False)

    switches = Table("switch", "dpid", "site", "ports", title="switches")
    site_of = {s.switch: s.name for s in topo.sites}
    for sw in topo.switches:
        ports = len(topo.neighbors(sw.name)) + len(topo.attachments_on(sw.name))
        switches.add_row(sw.name, f"{sw.dpid:#x}", site_of.get(sw.name, "-"), str(ports))
    console.print(switches)

    links = Table("link", "ports", "capacity", "latency", title="links")
    for link in topo.links:
        latency = "-" if link.latency_ms is None else f"{link.latency_ms:g} ms"
        links.add_row(
            f"{link.a} - {link.b}",
            f"{link.a_port} / {link.b_port}",
            fmt_bps(link.capacity_bps),
            latency,
        )
    console.print(links)

    hosts = Table("host", "kind", "switch:port", "ip", "mac", title="hosts")
    for att in topo.attachments:
        hosts.add_row(att.host, att.kind, f"{att.switch}:{att.port}", att.ip or "", att.mac or "")
    console.print(hosts)

    for chain in sc.chains:
        hops = " -> ".join((chain.ue, *chain.functions))
        path = shortest_path(topo, chain.ue, chain.functions[0])
        console.print(
            f"chain [bold]{chain.name}[/bold]: {hops} ({chain.traffic.proto}"
            f"{'' if chain.traffic.port is None else f'/{chain.traffic.port}'}); "
            f"UE to first function via {' > '.join(path)}",
            highlight=False,
        )


def admit_command(console: Console, sc: Scenario, src: str, dst: str, rate: str) -> int:
    """Print whether `rate` fits from `src` to `dst` and on which path; 0 if it does, 1 if not."""
    topo = topology_from_scenario(sc)
    try:
        rate_bps = parse_rate(rate)
        path = admit(topo, src, dst, rate_bps, ())
    except (AdmissionError, TopologyError, ValueError) as exc:
        console.print(f"[red]refused[/red]: {exc}", highlight=False)
        return 1
    console.print(f"admitted {fmt_bps(rate_bps)} from {src} to {dst} via {' > '.join(path)}")
    return 0
