"""UEs that move in a running emulation (issue 12): at each change of a UE's point of access
(a `topology.mobility_events.Handover`), the UE's link follows the cell's attachment and the
controller is told.

    mover = UEMover(emu, controller_client)
    mover.apply(handover)        # or: drive(mover, events, scale=4.0, also=follower.on_handover)
    with FollowLocation(mover, ["car"]): ...   # or the controller moves them (its playback)

- The cell's `attach` (a site or a switch; default the cell's site) names the switch the UE
  hangs off. When it is another switch than the UE's now, the UE moves make-before-break
  and loses no packet: the controller makes a port there the UE's standby (it picks the port;
  frames from it are dropped and never learned), the emulation plugs a second link into it
  with the UE's IP and MAC (`Emulation.plug_second`), the controller moves the UE's traffic
  there (`promote`: its old port becomes a standby, so that nothing the UE still sends from it
  moves the UE back, and keeps forwarding its frames for `DRAIN_MS`), the UE's routes move to
  the new link (`Emulation.swap_to`: `ip route replace`) and its old link is removed, then
  the old standby forgotten. Within one switch nothing is re-plugged: the radio changed, not
  the wire.
- Every change is announced to the controller's location service
  (`POST /v1/ues/{ue}/access-point`; None: out of every range), which notifies its MEC013
  subscribers.

The UE keeps its address, so a TCP connection it holds survives the move; while both links are
up, a packet for it arrives by one or the other, and one it sends leaves by one or the other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controller.client import ControllerClient, ControllerClientError
from ground.runner import CommandError
from mininet_scenarios.emulation import Emulation
from topology.mobility_events import Handover
from topology.mobility_map import RadioMap
from topology.mobility_playback import Playback, play

log = logging.getLogger(__name__)
MAX_NOTE_BYTES = 64 * 1024  # a notification is a few hundred bytes
# a moved UE's frames still leave by its old link until its routes move (`swap_to`, ms later):
# the old port forwards them that long at most, then drops them (it is a standby meanwhile)
DRAIN_MS = 1000.0


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
                done = self._replug(h.ue, h.to_cell)
                if done is not None:
                    switch, port, replug_ms, switchover_ms = done
                    log.info(
                        "%s: %s -> %s, re-plugged at %s:%d in %.0f ms",
                        h.ue, h.from_cell, h.to_cell, switch, port, replug_ms,
                    )  # fmt: skip
            self.client.announce_access_point(h.ue, h.to_cell, h.t_s, self.time_scale)
            moved = Moved(h, switch, port, replug_ms, switchover_ms)
            self.log.append(moved)
            return moved

    def replug(self, ue: str, cell: str) -> tuple[str, int, float, float] | None:
        """Only the emulation's part: re-plug `ue` for `cell` if it hangs off another switch
        (the controller told us of the move: nothing is announced back)."""
        with self._lock:
            return self._replug(ue, cell)

    def _replug(self, ue: str, cell: str) -> tuple[str, int, float, float] | None:
        target = self.emu.scenario.switch_of(self.radio.cell(cell).attach)
        source = self.at[ue]
        if target == source:
            return None
        t0 = time.monotonic()
        standby = self.client.add_standby(ue, target)  # the controller picks the port
        try:
            intf = self.emu.plug_second(ue, standby.switch, standby.port)
        except BaseException:
            self._forget_standby(ue, target)
            raise
        try:
            view = self.client.promote(ue, target, keep_old=True, drain_ms=DRAIN_MS)
        except BaseException:
            self.emu.unplug(ue, intf)
            self._forget_standby(ue, target)
            raise
        self.at[ue] = target
        self.emu.swap_to(ue, intf)
        self._forget_standby(ue, source)  # its link is gone: the old port is nobody's
        return view.new_switch, view.new_port, (time.monotonic() - t0) * 1000.0, view.switchover_ms

    def _forget_standby(self, ue: str, switch: str) -> None:
        try:
            self.client.remove_standby(ue, switch)
        except ControllerClientError as err:
            log.warning("%s's standby at %s not removed: %s", ue, switch, err)


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


class FollowLocation:
    """Re-plug the emulation's UEs as the controller's location service moves them: while the
    controller plays the scenario's paths (`POST /v1/mobility/playback`) or anybody announces
    a handover, `mecmig emulate` follows its MEC013 user-tracking notifications (ENTERING and
    TRANSFERRING name the new access point), received on 127.0.0.1 at a port of its own.

        with FollowLocation(mover, ["car"]):   # subscribed; unsubscribed on exit
            ...
    """

    def __init__(self, mover: UEMover, ues: Sequence[str], host: str = "127.0.0.1") -> None:
        sc = mover.emu.scenario
        self.mover = mover
        self.by_address = {f"acr:{sc.ue(u).ip}": u for u in ues}
        self.subscriptions: list[str] = []
        self.replugged: list[tuple[str, str]] = []  # (ue, cell)
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/notify"

    def __enter__(self) -> FollowLocation:
        self._thread.start()
        try:
            for address in self.by_address:
                events = ("ENTERING_EVENT", "TRANSFERRING_EVENT")
                self.subscriptions.append(self.mover.client.track_user(address, self.url, events))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for url in self.subscriptions:
            try:
                self.mover.client.untrack(url)
            except ControllerClientError as err:
                log.warning("subscription %s not removed: %s", url, err)
        self.subscriptions.clear()
        self.server.shutdown()
        self.server.server_close()

    def notified(self, body: object) -> None:
        """One notification: re-plug its user for its access point (others are ignored)."""
        note = body.get("zonalPresenceNotification") if isinstance(body, dict) else None
        if not isinstance(note, dict):
            return
        ue = self.by_address.get(str(note.get("address")))
        cell = note.get("currentAccessPointId")
        if ue is None or not isinstance(cell, str):
            return
        if note.get("userEventType") not in ("ENTERING_EVENT", "TRANSFERRING_EVENT"):
            return
        try:
            done = self.mover.replug(ue, cell)
        except (ControllerClientError, CommandError, KeyError) as exc:
            log.error("%s could not be re-plugged for %s: %s", ue, cell, exc)
            return
        self.replugged.append((ue, cell))
        if done is not None:
            log.info("%s on %s: re-plugged at %s:%d in %.0f ms", ue, cell, *done[:3])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = min(int(self.headers.get("Content-Length") or 0), MAX_NOTE_BYTES)
                raw = self.rfile.read(length)
                with contextlib.suppress(ValueError):  # not JSON: nothing to do
                    outer.notified(json.loads(raw))
                self.send_response(204)  # after the re-plug: the sender's order is the moves'
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet: no access log in the user's terminal

        return Handler
