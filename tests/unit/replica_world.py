"""A world for the replica tests: a real northbound facade over a runtime whose switches are
software switches (what the plans really do to the tables can be run), three MEC sites around a
core switch, a stateless `web` (with a volume) and a stateful `db` at mec1, a UE at mec3, and
in-memory sites on a fake clock."""

from __future__ import annotations

from typing import Any

from controller.fabricsim import FabricSim, Trace
from controller.facade import Northbound
from controller.state import FabricState
from orchestration.links import FacadeLink
from orchestration.orchestrator import Orchestrator
from tests.unit.controller_helpers import SwitchedRuntime, ip_packet, wiring
from tests.unit.migration_fakes import FakeClock, FakeSite, connect
from topology.scenario import Scenario, parse_scenario

SITES = ("mec1", "mec2", "mec3")


def replica_scenario() -> Scenario:
    command = "/usr/bin/python3 /data/memhog.py --size 8MiB --port 7000"
    instances: list[dict[str, Any]] = [
        {
            "name": "web",
            "site": "mec1",
            "command": command,
            "memory": "8MiB",
            "ip": "10.0.0.20",
            "stateless": True,
            "volume": True,
        },
        {"name": "db", "site": "mec1", "command": command, "memory": "8MiB", "ip": "10.0.0.21"},
    ]
    return parse_scenario(
        {
            "name": "replicas",
            "network": {"subnet": "10.0.0.0/24"},
            "sites": [{"name": s} for s in SITES],
            "switches": [{"name": "core", "dpid": 100}],
            "links": [{"between": [s, "core"], "capacity": "100Mbit"} for s in SITES],
            "instances": instances,
            "ues": [{"name": "ue1", "attach": "mec3", "ip": "10.0.0.100"}],
        }
    )


class ReplicaWorld:
    def __init__(self, **site_kw: Any) -> None:
        self.scenario = replica_scenario()
        self.switched = SwitchedRuntime(FabricState(self.scenario))
        self.nb = Northbound(self.switched.rt)
        self.link = FacadeLink(self.nb)
        self.clock = FakeClock()
        self.sites = {
            name: FakeSite(name, f"192.168.0.{i}", self.clock, **site_kw.get(name, {}))
            for i, name in enumerate(SITES, start=1)
        }
        connect(*self.sites.values())
        self.orch = Orchestrator(self.scenario, self.sites, self.link)
        for inst in self.scenario.instances:
            self.orch.deploy(inst.name)

    @property
    def state(self) -> FabricState:
        return self.switched.state

    def fabric(self) -> FabricSim:
        """The software switches' tables as they are now, wired as the model says hosts are."""
        tables = self.switched.tables()  # drains the switches' events
        assert tables
        sim = FabricSim(wiring(self.state))
        for name, sw in self.switched.switches.items():
            sim._tables[self.state.dpid(name)] = sw.table
        return sim

    def ue_to(self, instance: str) -> Trace:
        return self.fabric().send("ue1", ip_packet(self.state, "ue1", instance, proto="icmp"))

    def running(self, instance: str) -> list[str]:
        return [
            n
            for n, s in self.sites.items()
            if instance in s.instances and s.instances[instance].status == "running"
        ]

    def close(self) -> None:
        self.switched.close()
