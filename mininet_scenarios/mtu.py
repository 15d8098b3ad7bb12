"""The fabric's MTU: jumbo frames where the site agents' traffic goes, 1500 everywhere else.

The switch-to-switch links and the MEC hosts' own links (both ends of each veth) get the
scenario's `network.fabric_mtu`; the bridges' ports are asked for it too (`mtu_request`), so
that the userspace datapath takes such frames in. UEs' and service instances' links keep 1500:
their TCP's MSS meets the smaller end, and no frame larger than 1500 bytes is ever addressed to
them.

Measured on this machine kind, before this (`mecmig bench migration --quick --strategies
postcopy --repeat 3`, three times each way, interleaved): a post-copy's 1.8 MB of images went
over a fresh TCP connection in 50 ms at 1500 bytes, 34 at 9000 (slow start leaves in fewer round
trips; the datapath moves a sixth of the frames); the client's downtime median 248 -> 211 ms,
the pages 61 -> 70 MB/s.

Pure: a topology -> its commands; `mininet_scenarios.emulation` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mininet_scenarios.record import switch_interface
from topology.model import Topology

ETHERNET_MTU = 1500
HOST_INTERFACE = "eth0"  # a host's one interface (port1=0 in mininet_scenarios.topo)


@dataclass(frozen=True)
class MtuPlan:
    """`root`: `ip -batch` lines for the switches' ends (root namespace); `ovs`: one
    `ovs-vsctl` argv asking each of those ports for the MTU; `hosts`: MEC host -> its
    interface's `ip` argv (run in its namespace)."""

    root: tuple[str, ...]
    ovs: tuple[str, ...]
    hosts: tuple[tuple[str, tuple[str, ...]], ...]


def fabric_mtu_plan(topo: Topology, mtu: int) -> MtuPlan | None:
    """What gives `topo`'s fabric `mtu` (see the module docstring); None at 1500: nothing to
    change."""
    if mtu == ETHERNET_MTU:
        return None
    ends = [switch_interface(ln.a, ln.a_port) for ln in topo.links]
    ends += [switch_interface(ln.b, ln.b_port) for ln in topo.links]
    agents = [att for att in topo.attachments if att.kind == "agent"]
    ends += [switch_interface(att.switch, att.port) for att in agents]
    ends = sorted(set(ends))
    ovs: list[str] = ["ovs-vsctl"]
    for dev in ends:
        ovs += ["--", "set", "Interface", dev, f"mtu_request={mtu}"]
    hosts = tuple(
        (
            att.host,
            ("ip", "link", "set", "dev", f"{att.host}-{HOST_INTERFACE}", "mtu", str(mtu)),
        )
        for att in sorted(agents, key=lambda a: a.host)
    )
    return MtuPlan(tuple(f"link set dev {dev} mtu {mtu}" for dev in ends), tuple(ovs), hosts)
