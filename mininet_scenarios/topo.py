"""A Mininet `Topo` built from a mecmig scenario file.

Usable from Mininet's own command line (run it with the venv's Python so the project imports):

    sudo .venv/bin/python /usr/bin/mn --custom mininet_scenarios/topo.py \\
        --topo mecmig,scenarios/default.yaml --switch ovs,datapath=user,protocols=OpenFlow13 \\
        --controller remote,ip=127.0.0.1,port=6653

Switch dpids and every port number come from the topology model, so the controller and the emulation
agree on them without discovery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mininet.topo import Topo

import topology
from topology.scenario import Scenario, load_scenario
from topology.world import topology_from_scenario

# `mn --custom` execs this file without __file__: find the default scenario via the package.
DEFAULT_SCENARIO = Path(topology.__file__).resolve().parent.parent / "scenarios" / "default.yaml"


class MecTopo(Topo):  # type: ignore[misc]
    """Switches, MEC hosts (one per site), service instances and UEs of one scenario."""

    def build(
        self,
        scenario: Scenario | str | Path = DEFAULT_SCENARIO,
        instance_hosts: bool = True,
        **_: Any,
    ) -> None:
        """`instance_hosts=False`: service instances are left to the site agents (runc
        containers plugged in at the same ports), not made Mininet hosts."""
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        topo = topology_from_scenario(sc)
        prefix = sc.network.subnet.prefixlen
        self.scenario = sc
        self.model = topo
        for switch in topo.switches:
            self.addSwitch(switch.name, dpid=f"{switch.dpid:016x}")
        for link in topo.links:
            self.addLink(link.a, link.b, port1=link.a_port, port2=link.b_port)
        for att in topo.attachments:
            if att.kind == "instance" and not instance_hosts:
                continue
            self.addHost(att.host, ip=f"{att.ip}/{prefix}", mac=att.mac)
            self.addLink(att.host, att.switch, port1=0, port2=att.port)


# `mn --custom mininet_scenarios/topo.py --topo mecmig[,FILE]`
topos = {"mecmig": MecTopo}
