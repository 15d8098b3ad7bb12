"""UEs that move in a running emulation (issue 12): at each change of a UE's point of access
(a `topology.mobility_events.Handover`), the UE's link follows the cell's attachment and the
controller is told.

    mover = UEMover(emu, controller_client)
    mover.apply(handover)        # or: drive(mover, events, scale=4.0, also=follower.on_handover)
    with FollowLocation(mover, ["car"]): ...   # or the controller moves them (its playback)

- The cell's `attach` (a site or a switch; default the cell's site) names the switch the UE
  hangs off. When it is another switch than the UE's now, the UE moves make-before-break
  and loses no packet: it has a link into a port there that the controller knows as its
  standby (frames from it are dropped and never learned), plugged ahead with the UE's IP and
  MAC (`Emulation.plug_second`); the controller moves the UE's traffic there (`promote`: its
  old port becomes a standby, so that nothing the UE still sends from it moves the UE back,
  and keeps forwarding its frames for `DRAIN_MS`), then the UE's routes move to that link
  (`Emulation.route_to`: `ip route replace`). The link left stays plugged, a standby for a
  return. Within one switch nothing is re-plugged: the radio changed, not the wire.
- Links are plugged ahead because adding a port to OVS stalls its userspace datapath (4 ms on
  a bare bridge, 12-20 ms in a four-bridge emulation on two cores): plugged at the move, that
  stall is the client's. The mover plugs a standby link for each moving UE at every other
  switch its path's (or trace's) cells hang off when it is made (`ahead`), `drive` for the
  cells of the handovers it plays, `FollowLocation` for the UEs it follows. A cell nobody
  foresaw gets its link at the move (the stall then is the move's). `close` removes every
  link of a UE but the one it uses, and their standbys; the emulation's stop removes them all.
- Every change is announced to the controller's location service
  (`POST /v1/ues/{ue}/access-point`; None: out of every range), which notifies its MEC013
  subscribers.

The UE keeps its address, so a TCP connection it holds survives the move; while its traffic
moves, a packet for it arrives by one link or the other, and one it sends leaves by one or the
other. A standby link is never sent to and its frames are dropped at its switch (the controller
answers ARP itself and floods nothing), so only the active link is heard.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controller.client import ControllerClient, ControllerClientError
from ground.runner import CommandError
from mininet_scenarios.emulation import Emulation, EmulationError
from topology.mobility_events import Handover, moving_ues, ue_mobility
from topology.mobility_map import RadioMap
from topology.mobility_playback import Playback, play
from topology.scenario import Scenario

log = logging.getLogger(__name__)
MAX_NOTE_BYTES = 64 * 1024  # a notification is a few hundred bytes
# a moved UE's frames still leave by its old link until its routes move (`route_to`, ms later):
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
    """Moves the scenario's UEs in `emu` as their cells change (module docstring). `ahead`:
    every moving UE gets its standby links now (`prepare`)."""

    def __init__(
        self,
        emu: Emulation,
        client: ControllerClient,
        time_scale: float = 1.0,
        *,
        ahead: bool = True,
    ) -> None:
        sc = emu.scenario
        if sc.map is None:
            raise MotionError(f"scenario {sc.name} has no map: its UEs have no cells")
        self.emu = emu
        self.client = client
        self.time_scale = time_scale  # told with each change: the controller's mobility clock
        self.radio = RadioMap.from_spec(sc.map)
        self.at: dict[str, str] = {ue.name: sc.switch_of(ue.attach) for ue in sc.ues}
        # where the controller has them now: an earlier mover may have moved them
        try:
            self.at.update({v.name: v.switch for v in client.instances() if v.kind == "ue"})
        except ControllerClientError as err:
            log.warning("the UEs' places not asked (the scenario's are assumed): %s", err)
        self.log: list[Moved] = []
        # ue -> switch -> its link's interface there: those this mover plugged, and the one
        # each move left (standbys at the controller, but for the one at `at[ue]`)
        self.links: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        if ahead:
            try:
                self.prepare()
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> UEMover:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, ues: Iterable[str] | None = None, cells: Iterable[str] | None = None) -> int:
        """Plug a standby link for each of `ues` (default: those that move on the map) at
        every other switch that `cells` (default: the cells of its path or trace) hang off,
        where it has none yet. A link that cannot be plugged is left to the move (logged).
        Returns how many were plugged."""
        sc = self.emu.scenario
        wanted = list(cells) if cells is not None else None
        plugged = 0
        with self._lock:
            for ue in moving_ues(sc) if ues is None else ues:
                names = wanted if wanted is not None else path_cells(sc, ue)
                have = self.links.get(ue, {})
                for switch in attach_switches(sc, self.radio, names):
                    if switch == self.at[ue] or switch in have:
                        continue
                    try:
                        self._plug_standby(ue, switch)
                    except (ControllerClientError, EmulationError, CommandError) as err:
                        log.warning("%s's link at %s not plugged ahead: %s", ue, switch, err)
                        continue
                    plugged += 1
        return plugged

    def close(self) -> None:
        """Remove every link of each UE but the one it uses now, with its standby (what
        this mover plugged, and the links its moves left)."""
        with self._lock:
            for ue, links in self.links.items():
                for switch, intf in sorted(links.items()):
                    if switch == self.at[ue]:
                        continue
                    try:
                        self.emu.unplug(ue, intf)
                    except (EmulationError, CommandError) as err:
                        log.warning("%s's link %s at %s not removed: %s", ue, intf, switch, err)
                    self._forget_standby(ue, switch)
            self.links.clear()

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
        links = self.links.setdefault(ue, {})
        intf = links.get(target)
        late = intf is None  # not foreseen: plugged now, its port's stall in the move
        if intf is None:
            intf = self._plug_standby(ue, target)
        try:
            # the old link delivers what was on its way there meanwhile (one host, two links)
            view = self.client.promote(
                ue, target, keep_old=True, drain_ms=DRAIN_MS, deliver_old=True
            )
        except BaseException:
            if late:
                self.emu.unplug(ue, intf)
                del links[target]
                self._forget_standby(ue, target)
            raise
        self.at[ue] = target
        links[source] = self.emu.route_to(ue, intf)  # the link left: a standby now
        return view.new_switch, view.new_port, (time.monotonic() - t0) * 1000.0, view.switchover_ms

    def _plug_standby(self, ue: str, switch: str) -> str:
        """A link of `ue` into a port at `switch` that the controller made its standby (it
        picks the port); recorded in `links`."""
        standby = self.client.add_standby(ue, switch)
        try:
            intf = self.emu.plug_second(ue, standby.switch, standby.port)
        except BaseException:
            self._forget_standby(ue, switch)
            raise
        self.links.setdefault(ue, {})[switch] = intf
        return intf

    def _forget_standby(self, ue: str, switch: str) -> None:
        try:
            self.client.remove_standby(ue, switch)
        except ControllerClientError as err:
            log.warning("%s's standby at %s not removed: %s", ue, switch, err)


def path_cells(sc: Scenario, ue: str) -> list[str]:
    """The cells UE `ue` is handed to along its path or trace (once round a loop), in order;
    none if it does not move (or its trace cannot be read: logged)."""
    if ue not in moving_ues(sc):
        return []
    try:
        handovers = ue_mobility(sc, ue).handovers
    except ValueError as err:  # TraceError is one
        log.warning("%s's cells are not foreseen: %s", ue, err)
        return []
    return [h.to_cell for h in handovers if h.to_cell is not None]


def attach_switches(sc: Scenario, radio: RadioMap, cells: Iterable[str]) -> list[str]:
    """The switches `cells` hang off (their `attach`), each once, in the cells' order."""
    out: list[str] = []
    for name in cells:
        switch = sc.switch_of(radio.cell(name).attach)
        if switch not in out:
            out.append(switch)
    return out


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
    the emulation, then handed to `also` (say a follow-me driver). Returns how many. Each UE
    first gets its links at the switches of the cells it will be handed to (`prepare`)."""
    mover.time_scale = scale
    for ue in sorted({h.ue for h in events}):
        mover.prepare([ue], [h.to_cell for h in events if h.ue == ue and h.to_cell is not None])

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

    On entry each UE gets its links ahead (`UEMover.prepare`, its path's cells); on exit the
    mover is closed (the links it does not use removed).
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
            self.mover.prepare(self.by_address.values())
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
        self.mover.close()

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
