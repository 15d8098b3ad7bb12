"""Helpers for tests that run the real controller against the real emulation."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.measure import goodput_bps, ofctl, port_tx_packets
from mininet_scenarios.testbed import Testbed, testbed
from mininet_scenarios.ue_motion import UEMover, drive
from orchestration.follower import Follower
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from orchestration.speculation import SpecState
from topology.mobility_events import UEMobility
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
__all__ = [
    "ROOT", "Orchestrated", "drive_followed", "goodput_bps", "live", "ofctl", "orchestrated",
    "port_tx_packets", "runc_pid",
]  # fmt: skip


def runc_pid(scenario: str, site: str, instance: str) -> int:
    """The host PID of `instance`'s init process, as runc has it at `site` of `scenario`."""
    state = subprocess.run(
        ["runc", "--root", f"/run/mecmig/runc/{scenario}-{site}", "state", instance],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(json.loads(state.stdout)["pid"])


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


def drive_followed(
    tb: Testbed, follower: Follower, mob: UEMobility, scale: float
) -> tuple[UEMover, float]:
    """Drive `mob`'s UE through its path at `scale` in `tb` (its link re-plugged at each
    handover), `follower` ticked every 0.1 s at the mobility's time and told each handover;
    wait for the path's end and for a commit under way, then close the follower and the mover
    (the UEs' links but the ones in use removed, with their standbys: the next test's mover
    plugs its own). The mover (its `log` kept) and the wall time the drive started."""
    mover = UEMover(tb.emu, tb.ctl.client)
    start = time.monotonic()
    stop = threading.Event()

    def ticks() -> None:
        while not stop.wait(0.1):
            follower.tick((time.monotonic() - start) * scale)

    ticker = threading.Thread(target=ticks, name=f"ticks-{mob.ue}", daemon=True)
    ticker.start()
    try:
        drive(mover, mob.handovers, scale=scale, also=follower.on_handover)
        end = start + mob.until / scale
        while time.monotonic() < end:
            time.sleep(0.1)
        for spec in list(follower.speculations.values()):  # a commit under way ends
            spec.wait_for(SpecState.DONE, SpecState.CANCELLED, SpecState.FAILED, timeout=60)
    finally:
        stop.set()
        ticker.join()
        follower.close()
        mover.close()
    return mover, start
