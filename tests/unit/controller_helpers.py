"""Shared helpers for the controller's decision tests: a `FabricState` from a scenario file, and a
software fabric (`FabricSim`) that runs what the state tells the switches.

`Fabric` boots every switch with its full config (what a connecting switch gets), applies plans
stage by stage, applying every batch twice and checking that the second time changed nothing,
and keeps the simulated wiring (links up, where every host is plugged in) in line with the
state's model, so that a relocated host is found at its new port and a link that is down carries
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from controller.fabricsim import FabricSim, FabricSnapshot, Trace
from controller.flowtable import Entry, TableSnapshot
from controller.ofmsg import ETH_TYPE_ARP, ETH_TYPE_IP, IP_PROTO, Batch, Message
from controller.plan import Plan, Stage
from controller.state import FabricState
from topology.model import Topology
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
DEFAULT = SCENARIOS / "default.yaml"
THREE_SITES = SCENARIOS / "three-sites.yaml"
BROADCAST = "ff:ff:ff:ff:ff:ff"
M = 1_000_000


def make_state(path: Path = THREE_SITES) -> FabricState:
    """A fresh controller model of the scenario in `path`."""
    return FabricState(load_scenario(path))


def switch_names(state: FabricState) -> list[str]:
    return [sw.name for sw in state.declared.switches]


def to_batch(state: FabricState, stage: Mapping[str, Iterable[Message]]) -> Batch:
    """One stage of a plan (switch names) as a batch keyed by dpid."""
    return {state.dpid(sw): list(msgs) for sw, msgs in stage.items()}


def full_configs(state: FabricState) -> Batch:
    """What every switch gets when it connects."""
    return {state.dpid(sw): state.switch_config(sw) for sw in switch_names(state)}


def wiring(state: FabricState) -> Topology:
    """The physical world as the state models it: links that are up, hosts where they are now."""
    return Topology(
        state.declared.switches,
        state.topo.links,
        state.declared.sites,
        list(state.hosts.values()),
    )


def _wiring_key(topo: Topology) -> tuple[Any, ...]:
    return (topo.links, frozenset(topo.attachments))


class Fabric:
    """A `FabricSim` driven by a `FabricState`: boot, apply plans, send packets."""

    def __init__(self, state: FabricState, *, boot: bool = True) -> None:
        self.state = state
        self._history: list[Batch] = []
        self._key: tuple[Any, ...] = ()
        self.sim = self._new_sim()
        if boot:
            self.apply(full_configs(state))

    def _new_sim(self) -> FabricSim:
        topo = wiring(self.state)
        self._key = _wiring_key(topo)
        sim = FabricSim(topo)
        for batch in self._history:
            sim.apply(batch)
        return sim

    def _sync_wiring(self) -> None:
        # The tables stay what they are; only the cables move (replayed onto a new fabric).
        if _wiring_key(wiring(self.state)) != self._key:
            self.sim = self._new_sim()

    def apply(self, batch: Batch, *, twice: bool = True) -> None:
        """Apply one batch; with `twice`, apply it again and insist that nothing changed."""
        self._sync_wiring()
        self.sim.apply(batch)
        self._history.append(batch)
        if twice:
            before = self.sim.snapshot()
            self.sim.apply(batch)
            self._history.append(batch)
            after = self.sim.snapshot()
            assert after == before, "a batch applied twice changed the tables:\n" + self.dump()

    def apply_plan(
        self,
        plan: Plan,
        *,
        twice: bool = True,
        after_stage: Callable[[int, Stage], None] | None = None,
    ) -> None:
        """Apply a plan's stages in order; `after_stage(i, stage)` runs after each one."""
        for i, stage in enumerate(plan):
            self.apply(to_batch(self.state, stage), twice=twice)
            if after_stage is not None:
                after_stage(i, stage)

    def send(self, host: str, packet: Mapping[str, object]) -> Trace:
        """Send `packet` from `host` (at its current place)."""
        self._sync_wiring()
        return self.sim.send(host, packet)

    def snapshot(self) -> FabricSnapshot:
        return self.sim.snapshot()

    def table_snapshot(self, switch: str) -> TableSnapshot:
        return self.sim.table(switch).snapshot()

    def flows(self, switch: str) -> tuple[Entry, ...]:
        return self.sim.table(switch).flows()

    def all_flows(self) -> list[tuple[str, Entry]]:
        return [(sw, e) for sw in switch_names(self.state) for e in self.flows(sw)]

    def meters(self, switch: str) -> dict[int, tuple[int, int]]:
        return self.sim.table(switch).meters

    def dump(self) -> str:
        return "\n".join(self.sim.table(sw).dump() for sw in switch_names(self.state))


# ------------------------------------------------------------------------------------ packets


def ip_packet(
    state: FabricState,
    src: str,
    dst: str,
    *,
    proto: str = "tcp",
    dport: int | None = None,
    sport: int | None = None,
    eth_src: str | None = None,
    eth_dst: str | None = None,
) -> dict[str, object]:
    """An IPv4 packet from host `src` to host `dst`, addressed as their kernels would."""
    a, b = state.hosts[src], state.hosts[dst]
    pkt: dict[str, object] = {
        "eth_src": eth_src or a.mac,
        "eth_dst": eth_dst or b.mac,
        "eth_type": ETH_TYPE_IP,
        "ipv4_src": a.ip,
        "ipv4_dst": b.ip,
        "ip_proto": IP_PROTO[proto],
    }
    if proto in ("tcp", "udp"):
        pkt[f"{proto}_src"] = 40000 if sport is None else sport
        pkt[f"{proto}_dst"] = 5001 if dport is None else dport
    return pkt


def forward(pkt: Mapping[str, object], via_mac: str, next_mac: str) -> dict[str, object]:
    """`pkt` as a routing function re-sends it: own MAC as source, the next hop's as destination."""
    return {**pkt, "eth_src": via_mac, "eth_dst": next_mac}


def arp_request(state: FabricState, src: str, target_ip: str) -> dict[str, object]:
    a = state.hosts[src]
    return {
        "eth_src": a.mac,
        "eth_dst": BROADCAST,
        "eth_type": ETH_TYPE_ARP,
        "arp_op": 1,
        "arp_spa": a.ip,
        "arp_tpa": target_ip,
    }


def assert_delivered_once(trace: Trace, host: str) -> None:
    """Delivered to exactly `host`, once, visiting no switch twice."""
    assert trace.delivered_to == (host,), trace
    assert len(set(trace.switches)) == len(trace.switches), f"revisited a switch: {trace}"
