"""Helpers for tests that run the real controller against the real emulation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.measure import goodput_bps, ofctl, port_tx_packets
from mininet_scenarios.testbed import Testbed, testbed
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
__all__ = [
    "ROOT", "Orchestrated", "goodput_bps", "live", "ofctl", "orchestrated", "port_tx_packets",
]  # fmt: skip


@contextlib.contextmanager
def live(
    scenario: str, state_file: Path | None = None, *, shaping: bool | None = None
) -> Iterator[Testbed]:
    """The testbed for `scenarios/<scenario>` (`shaping`: links shaped to their capacity;
    default: the scenario's `network.shaping`)."""
    with testbed(ROOT / "scenarios" / scenario, state_file, shaping=shaping) as tb:
        yield tb


@dataclass
class Orchestrated:
    """A testbed with an agent per site and an orchestrator over them (the controller's REST)."""

    tb: Testbed
    sc: Scenario
    orch: Orchestrator


@contextlib.contextmanager
def orchestrated(scenario: str, log_dir: Path) -> Iterator[Orchestrated]:
    """`scenarios/<scenario>`'s testbed without instance hosts (the agents run the instances),
    its site agents (their logs in `log_dir`) and an orchestrator over them; nothing deployed."""
    path = ROOT / "scenarios" / scenario
    sc = load_scenario(path)
    with (
        testbed(path, instance_hosts=False) as tb,
        SiteAgents(tb.emu, path, log_dir=log_dir) as agents,
    ):
        yield Orchestrated(
            tb, sc, Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        )
