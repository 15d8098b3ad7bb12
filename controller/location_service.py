"""The location service in the controller process: the pure state (controller.location) behind
a lock, its notifications handed to a notifier (controller.location_webhook), and the playback of
the scenario's paths in a thread of its own.

Its lock is its own, not the runtime's worker: the controller's decisions never wait for it, and
a handover announced by the emulation (`announce`) and one played back (`apply`) take the same
way. Notifications are handed on under the lock, so each subscriber gets them in the order the
state changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from controller.location import LocationState, UnknownLocation
from controller.location_events import Kind, Move, Notification, Subscription, UserEvent
from topology.mobility_events import Handover, UEMobility, merged, moving_ues, ue_mobility
from topology.mobility_map import RadioMap
from topology.mobility_playback import Playback, play
from topology.scenario import Scenario

log = logging.getLogger(__name__)
T = TypeVar("T")
MIN_TIME_SCALE, MAX_TIME_SCALE = 1.0, 1000.0


class Notifier(Protocol):
    def send(self, notes: Sequence[Notification]) -> None: ...
    def forget(self, subscription_id: str) -> None: ...
    def close(self) -> None: ...


Listener = Callable[[Handover], object]


class PlaybackConflict(Exception):
    """A playback runs already, or the scenario has nothing to play."""


@dataclass(frozen=True)
class PlaybackStatus:
    running: bool
    time_scale: float
    events: int
    played: int
    duration_s: float  # scenario seconds, from the first handover's time 0 to the last


class _Stopped(Exception):
    pass


class PlaybackRunner:
    """Plays `events` in a daemon thread, handing each to `handle` when due on `clock`."""

    def __init__(
        self,
        events: Sequence[Handover],
        handle: Callable[[Handover], object],
        scale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.playback = Playback(events, clock(), scale)
        self.handle, self.clock = handle, clock
        self.played = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="location-playback", daemon=True)

    def _run(self) -> None:
        try:
            play(self.playback, self.clock, self._sleep, self._one)
        except _Stopped:
            log.info("mobility playback stopped after %d handover(s)", self.played)
        except Exception:  # noqa: BLE001 - a thread's last line: say why it ended
            log.exception("mobility playback failed after %d handover(s)", self.played)
        else:
            log.info("mobility playback done: %d handover(s)", self.played)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _one(self, event: Handover) -> None:
        if self._stop.is_set():
            raise _Stopped
        self.handle(event)
        self.played += 1

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout_s)

    def status(self) -> PlaybackStatus:
        events = self.playback.events
        return PlaybackStatus(
            running=self.thread.is_alive(),
            time_scale=self.playback.scale,
            events=len(events),
            played=self.played,
            duration_s=events[-1].t_s if events else 0.0,
        )


class LocationService:
    """Thread-safe: every call takes the service's lock."""

    def __init__(
        self,
        scenario: Scenario,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.state = LocationState.from_scenario(scenario, clock)
        self.notifier = notifier
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._playback: PlaybackRunner | None = None
        self._paths: list[UEMobility] | None = None
        self._radio = RadioMap.from_spec(scenario.map) if scenario.map is not None else None
        # the mobility's clock: (monotonic reading, scenario seconds then, scale) at the last
        # announcement that gave its time, or at the playback's start
        self._time_base: tuple[float, float, float] | None = None
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ time and listeners

    def scenario_time(self) -> float | None:
        """The mobility's time now (scenario seconds): from a playback's start, or from the
        last announcement that carried its time; None before either."""
        with self._lock:
            base = self._time_base
        if base is None:
            return None
        wall, t_s, scale = base
        return t_s + (self.monotonic() - wall) * scale

    def add_listener(self, listener: Listener) -> None:
        """`listener(handover)` after every change of a UE's access point (announced or played
        back), outside the service's lock, in the announcing thread (say follow-me)."""
        with self._lock:
            self._listeners.append(listener)

    def _tell(self, handover: Handover) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(handover)
            except Exception:  # noqa: BLE001 - a listener's failure is its own, not the move's
                log.exception("a listener failed on %s's handover", handover.ue)

    def _as_handover(
        self, move: Move, t_s: float, position: tuple[float, float] | None
    ) -> Handover:
        def site(ap: str | None) -> str | None:
            return None if ap is None or self._radio is None else self._radio.cell(ap).site

        x, y = position if position is not None else (0.0, 0.0)
        return Handover(
            t_s, move.ue, move.old_ap, move.new_ap, move.old_zone, move.new_zone,
            site(move.old_ap), site(move.new_ap), x, y,
        )  # fmt: skip

    def read(self, query: Callable[[LocationState], T]) -> T:
        """`query(state)` under the lock."""
        with self._lock:
            return query(self.state)

    # ------------------------------------------------------------------ moves

    def announce(
        self, ue: str, ap: str | None, t_s: float | None = None, time_scale: float | None = None
    ) -> tuple[Move, int]:
        """The UE is on access point `ap` now: the move, and how many notifications it made.
        `t_s` (with `time_scale`, default the last one or 1): the mobility's time of the move,
        which sets the mobility's clock (`scenario_time`)."""
        with self._lock:
            move, notes = self.state.announce(ue, ap)
            self.notifier.send(notes)
            if t_s is not None:
                scale = time_scale or (self._time_base[2] if self._time_base else 1.0)
                self._time_base = (self.monotonic(), t_s, scale)
            position = self.state.users[ue].position
        log.info("UE %s on access point %s (was %s)", ue, move.new_ap, move.old_ap)
        if move.new_ap != move.old_ap:
            now = self.scenario_time()
            self._tell(self._as_handover(move, now if now is not None else 0.0, position))
        return move, len(notes)

    def apply(self, handover: Handover) -> Move:
        with self._lock:
            move, notes = self.state.apply(handover)
            self.notifier.send(notes)
        log.debug("handover %s: %s -> %s", handover.ue, move.old_ap, move.new_ap)
        if move.new_ap != move.old_ap:
            self._tell(handover)
        return move

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        kind: Kind,
        target: str,
        notify_url: str,
        resource_url: Callable[[str], str],
        callback_data: str | None = None,
        client_correlator: str | None = None,
        criteria: Sequence[UserEvent] = (),
    ) -> Subscription:
        with self._lock:
            sub = self.state.subscribe(
                kind, target, notify_url, resource_url, callback_data, client_correlator, criteria
            )
        log.info("%s subscription %s: %s -> %s", kind, sub.id, target, notify_url)
        return sub

    def unsubscribe(self, kind: Kind, sid: str) -> None:
        with self._lock:
            self.state.unsubscribe(kind, sid)
        self.notifier.forget(sid)
        log.info("%s subscription %s deleted", kind, sid)

    # ------------------------------------------------------------------ playback

    def start_playback(self, scale: float) -> PlaybackStatus:
        """Put each UE that moves on the map where its path or trace starts, then play their
        handovers (each path or trace once, a loop one round) at `scale` in a thread."""
        if not MIN_TIME_SCALE <= scale <= MAX_TIME_SCALE:
            raise ValueError(f"time_scale must be within {MIN_TIME_SCALE:g}-{MAX_TIME_SCALE:g}")
        with self._lock:
            if self._playback is not None and self._playback.thread.is_alive():
                raise PlaybackConflict("a mobility playback runs already: DELETE it first")
            if self._paths is None:
                self._paths = [ue_mobility(self.scenario, n) for n in moving_ues(self.scenario)]
            if not self._paths:
                raise PlaybackConflict(
                    f"scenario {self.scenario.name!r} has no UE that moves on a map (path: or "
                    "trace:): nothing to play"
                )
            for m in self._paths:
                start = m.initial.name if m.initial else None
                _, notes = self.state.move(m.ue, start, m.position(0.0))
                self.notifier.send(notes)
            runner = PlaybackRunner(merged(self._paths), self.apply, scale, self.monotonic)
            self._playback = runner
            self._time_base = (runner.playback.start_wall, 0.0, scale)
        runner.thread.start()
        log.info("mobility playback: %d handover(s) at x%g", len(runner.playback.events), scale)
        return runner.status()

    def playback(self) -> PlaybackStatus:
        with self._lock:
            runner = self._playback
        if runner is None:
            raise UnknownLocation("no mobility playback was started")
        return runner.status()

    def stop_playback(self) -> PlaybackStatus:
        with self._lock:
            runner = self._playback
        if runner is None or not runner.thread.is_alive():
            raise UnknownLocation("no mobility playback runs")
        runner.stop()
        return runner.status()

    def close(self) -> None:
        with self._lock:
            runner = self._playback
        if runner is not None:
            runner.stop()
        self.notifier.close()
