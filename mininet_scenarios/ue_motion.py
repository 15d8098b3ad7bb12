"""UEs that move in a running emulation (issue 12): at each change of a UE's point of access
(a `topology.mobility_events.Handover`), the UE's link follows the cell's attachment and the
controller is told.

    mover = UEMover(emu, controller_client)
    mover.apply(handover)        # or: drive(mover, events, scale=4.0, also=follower.on_handover)

- The cell's `attach` (a site or a switch; default the cell's site) names the switch the UE
  hangs off. When it is another switch than the UE's now, the controller moves the UE's traffic
  there first (`relocate`: it picks the port, make-before-break), then the emulation re-plugs
  the UE into that port with the same IP and MAC (`Emulation.move_host`). Within one switch
  nothing is re-plugged: the radio changed, not the wire.
- Every change is announced to the controller's location service
  (`POST /v1/ues/{ue}/access-point`; None: out of every range), which notifies its MEC013
  subscribers.

The UE keeps its address, so a TCP connection it holds survives the move: only the packets in
flight while its link is swapped are lost (and retransmitted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.client import ControllerClient
from mininet_scenarios.emulation import Emulation
from topology.mobility_events import Handover
from topology.mobility_map import RadioMap
from topology.mobility_playback import Playback, play

log = logging.getLogger(__name__)


class MotionError(Exception):
    """A UE's move that could not be made in the emulation."""


@dataclass(frozen=True)
class Moved:
    """What one handover did: the switch and port the UE hangs off now (None: not re-plugged),
    how long the re-plug took, and the location service's view."""

    handover: Handover
    switch: str | None
    port: int | None
    replug_ms: float | None
    switchover_ms: float | None


class UEMover:
    """Moves the scenario's UEs in `emu` as their cells change (module docstring)."""

    def __init__(self, emu: Emulation, client: ControllerClient, time_scale: float = 1.0) -> None:
        sc = emu.scenario
        if sc.map is None:
            raise MotionError(f"scenario {sc.name} has no map: its UEs have no cells")
        self.emu = emu
        self.client = client
        self.time_scale = time_scale  # told with each change: the controller's mobility clock
        self.radio = RadioMap.from_spec(sc.map)
        self.at: dict[str, str] = {ue.name: sc.switch_of(ue.attach) for ue in sc.ues}
        self.log: list[Moved] = []
        self._lock = threading.Lock()

    def apply(self, h: Handover) -> Moved:
        """Re-plug the UE if its new cell hangs off another switch; announce the new cell."""
        with self._lock:
            switch = port = replug_ms = switchover_ms = None
            if h.to_cell is not None:
                target = self.emu.scenario.switch_of(self.radio.cell(h.to_cell).attach)
                if target != self.at[h.ue]:
                    t0 = time.monotonic()
                    view = self.client.relocate(h.ue, target)
                    self.emu.move_host(h.ue, view.new_switch, view.new_port)
                    replug_ms = (time.monotonic() - t0) * 1000.0
                    switchover_ms = view.switchover_ms
                    switch, port = view.new_switch, view.new_port
                    self.at[h.ue] = target
                    log.info(
                        "%s: %s -> %s, re-plugged at %s:%d in %.0f ms",
                        h.ue, h.from_cell, h.to_cell, switch, port, replug_ms,
                    )  # fmt: skip
            self.client.announce_access_point(h.ue, h.to_cell, h.t_s, self.time_scale)
            moved = Moved(h, switch, port, replug_ms, switchover_ms)
            self.log.append(moved)
            return moved


def drive(
    mover: UEMover,
    events: Sequence[Handover],
    *,
    scale: float = 1.0,
    also: Callable[[Handover], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Play `events` (in time order) at `scale` scenario seconds per second: each is applied to
    the emulation, then handed to `also` (say a follow-me driver). Returns how many."""
    mover.time_scale = scale

    def handle(h: Handover) -> None:
        mover.apply(h)
        if also is not None:
            also(h)

    return play(Playback(events, clock(), scale), clock, sleep, handle)
