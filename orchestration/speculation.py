"""A speculative migration (issue 12, "Triggers and prediction"): seed 003's two phases, split at
the moment the user's handover is known.

    start()  -> warming: begin, prepare, pre-copy rounds until the stop rule ends them
             -> ready: the delta kept warm (another round every `warm_interval_s`, at most
                `max_warm_rounds` of them), waiting for the caller
    commit() -> committing: the rest of the strategy (final freeze, copy, switch, restore),
                then the engine's clean-up -> done
    cancel() -> the engine's rollback (the destination wiped, the reservation released, the
                source resumed: it never went through its final freeze) -> cancelled

Every engine call runs in the speculation's own thread (`start_thread`, injected); `commit` and
`cancel` only leave a request, which that thread acts on at its next step boundary (a round in
progress, a CRIU pre-dump, is never cut). The first request wins: a `cancel` after an accepted
`commit` is refused (returns False) and the other way round, so a commit racing a cancel is
well-defined whichever thread gets there first. A `commit` that arrives while the rounds still
run (warming) lets them run on until the stop rule ends them, then goes straight to the final
phase (no warm rounds): the stop rule is what a plain migration started at the handover would
obey, so the downtime stays what it would have been, and it bounds the wait (MAX_ROUNDS).

Strategies without rounds (cold, postcopy): the speculation is the prepare step only (the
destination's namespace and the reservation; the image, if the instance runs one, was sent when
the migration was planned: `Orchestrator.plan_migration`), and the state is `ready` at once.

The record: the engine's own `MigrationRecord`, plus `metrics["speculation"]` (JSON): how the
speculation ended, the cancel reason, the rounds before ready and the warm rounds, and
`rounds_dump_ms`, the sum of the rounds' dump times. A cancelled speculation finishes with the
engine's outcome `rolled_back` (the source serves, with its state; the REST models and the
migration queue know that outcome) and `metrics["speculation"]["outcome"] == "cancelled"`; its
`error` reads `cancelled: <reason>`. NB: a round is a CRIU pre-dump (or, where the kernel tracks
no dirty memory, a full dump left running), and CRIU freezes the process while it collects the
pages: a cancelled speculation never went through the *final* freeze, but each of its rounds
paused the service for part of its `precopy-N` phase's `dump_s` (its upper bound).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

from migration.engine import Migration, MigrationError
from migration.strategies import Rounds
from migration.timeline import Clock, monotonic

log = logging.getLogger(__name__)

WARM_INTERVAL_S = 1.0
MAX_WARM_ROUNDS = 8
MAX_WAIT_S = 300.0  # ready and never told: the speculation cancels itself (it holds a reservation)
POLL_S = 0.05  # real seconds the thread waits at most before reading the (injected) clock again

StartThread = Callable[[Callable[[], None], str], None]


def start_daemon_thread(fn: Callable[[], None], name: str) -> None:
    threading.Thread(target=fn, name=name, daemon=True).start()


class SpecState(StrEnum):
    WARMING = "warming"
    READY = "ready"
    COMMITTING = "committing"
    DONE = "done"  # the destination serves (the record says whether its clean-up was complete)
    CANCELLED = "cancelled"  # rolled back on request: the source serves, nothing left behind
    FAILED = "failed"  # a step failed: rolled back (record: rolled_back), or worse (failed)


TERMINAL = frozenset({SpecState.DONE, SpecState.CANCELLED, SpecState.FAILED})


class SpeculationCancelled(Exception):
    """What the rollback of a cancelled speculation is told."""


class Movable(Protocol):
    """What a speculation drives: one instance's migration (`SingleMove`), or a chain's."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str:
        """The site it runs at before the move."""
        ...

    @property
    def destination(self) -> str:
        """The site it goes to."""
        ...

    @property
    def has_rounds(self) -> bool: ...

    @property
    def past_point_of_no_return(self) -> bool: ...

    def begin(self) -> None: ...

    def prepare(self) -> None: ...

    def iterate_once(self) -> bool:
        """One round (of every function not done); True once the stop rule ended them all."""
        ...

    def warm_round(self) -> None: ...

    def finish(self, warmed: bool, serving: Callable[[], None]) -> None:
        """The final phase up to the point of no return (raises before it), `serving()`, then
        the clean-up (which finishes the record)."""
        ...

    def abandon(self, exc: BaseException) -> bool:
        """Roll back and finish the record; False if the rollback itself was incomplete."""
        ...

    def metrics(self) -> dict[str, Any]:
        """The record's metrics (the speculation adds its own entry)."""
        ...

    def rounds_dump_s(self) -> float: ...

    def now_ms(self) -> float: ...


class SingleMove:
    """One instance's `Migration`, step by step."""

    def __init__(self, migration: Migration) -> None:
        self.m = migration
        self._cpu0: tuple[int, int] | None = None
        steps = migration.strategy.steps
        self.has_rounds = "rounds" in steps
        self._rest = steps[steps.index("rounds" if self.has_rounds else "prepare") + 1 :]

    @property
    def name(self) -> str:
        return self.m.plan.instance

    @property
    def source(self) -> str:
        return self.m.plan.source.name

    @property
    def destination(self) -> str:
        return self.m.plan.destination_site

    @property
    def past_point_of_no_return(self) -> bool:
        return self.m.past_point_of_no_return

    def begin(self) -> None:
        self._cpu0 = self.m.begin()

    def prepare(self) -> None:
        self.m.step("prepare")

    def iterate_once(self) -> bool:
        return self.m.iterate_once()

    def warm_round(self) -> None:
        self.m.precopy_round(False if self.m.strategy.rounds is Rounds.FILES else None)

    def finish(self, warmed: bool, serving: Callable[[], None]) -> None:
        if warmed:
            self.m.boost()  # the final reservation from the last (warm) round
        for step in self._rest:
            self.m.step(step)
        if not self.m.past_point_of_no_return:
            raise RuntimeError(
                f"strategy {self.m.strategy.name} ended before the destination served"
            )
        serving()
        self.m.conclude(self._cpu0)

    def abandon(self, exc: BaseException) -> bool:
        try:
            self.m.abandon(exc)
        except MigrationError:
            return False
        return True

    def metrics(self) -> dict[str, Any]:
        return self.m.record.metrics

    def rounds_dump_s(self) -> float:
        return sum(r.dump_s for r in self.m.rounds)

    def now_ms(self) -> float:
        return self.m.timeline.now_ms()


class Speculation:
    """A migration started ahead of the handover (see the module docstring)."""

    def __init__(
        self,
        move: Movable | Migration,
        *,
        start_thread: StartThread = start_daemon_thread,
        clock: Clock = monotonic,
        warm_interval_s: float = WARM_INTERVAL_S,
        max_warm_rounds: int = MAX_WARM_ROUNDS,
        max_wait_s: float = MAX_WAIT_S,
        poll_s: float = POLL_S,
    ) -> None:
        if warm_interval_s < 0 or max_warm_rounds < 0 or max_wait_s <= 0 or poll_s <= 0:
            raise ValueError("speculation: intervals and bounds must not be negative")
        self.move: Movable = SingleMove(move) if isinstance(move, Migration) else move
        self._start_thread = start_thread
        self.clock = clock
        self.warm_interval_s, self.max_warm_rounds = warm_interval_s, max_warm_rounds
        self.max_wait_s, self.poll_s = max_wait_s, poll_s
        self._cond = threading.Condition()
        self._state = SpecState.WARMING
        self._request: str | None = None  # "commit" | "cancel"
        self.reason: str | None = None  # why it was cancelled (or failed)
        self.started = False
        self.rounds_before_ready = 0
        self.warm_rounds = 0

    # ------------------------------------------------------------------ the caller's side

    @property
    def state(self) -> SpecState:
        with self._cond:
            return self._state

    @property
    def requested(self) -> str | None:
        with self._cond:
            return self._request

    def start(self) -> None:
        with self._cond:
            if self.started:
                raise RuntimeError(f"speculation of {self.move.name} started twice")
            self.started = True
        self._start_thread(self._run, f"migrate-spec-{self.move.name}")

    def commit(self) -> bool:
        """Ask for the final phase; False if the speculation is cancelled (or asked to be),
        or failed. Returns at once: `wait_for` the outcome."""
        with self._cond:
            if self._request == "commit":
                return True
            if self._request is not None or self._state in TERMINAL:
                return False
            self._request = "commit"
            self._mark("commit_requested_ms")
            self._cond.notify_all()
            return True

    def cancel(self, reason: str) -> bool:
        """Ask for the rollback; False once a commit was accepted (or it ended otherwise)."""
        with self._cond:
            if self._request == "cancel":
                return True
            if self._request is not None or self._state in TERMINAL:
                return False
            self._request, self.reason = "cancel", reason
            self._mark("cancel_requested_ms")
            self._cond.notify_all()
            return True

    def wait_for(self, *states: SpecState, timeout: float | None = None) -> SpecState:
        """Wait (real seconds) until the state is one of `states` or terminal; the state."""
        wanted = set(states) | TERMINAL
        with self._cond:
            self._cond.wait_for(lambda: self._state in wanted, timeout)
            return self._state

    def summary(self) -> dict[str, Any]:
        """The speculation's entry in the record's metrics (JSON)."""
        with self._cond:
            return dict(self._summary())

    # ------------------------------------------------------------------ the thread

    def _summary(self) -> dict[str, Any]:
        entry = self.move.metrics().setdefault("speculation", {})
        assert isinstance(entry, dict)
        return entry

    def _mark(self, key: str, value: Any = None) -> None:
        self._summary()[key] = round(self.move.now_ms(), 3) if value is None else value

    def _set(self, state: SpecState) -> None:
        with self._cond:
            self._state = state
            self._summary()["state"] = state.value
            self._cond.notify_all()

    def _cancel_requested(self) -> bool:
        with self._cond:
            return self._request == "cancel"

    def _run(self) -> None:
        mv = self.move
        with self._cond:
            self._summary().update(state=self._state.value, warm_interval_s=self.warm_interval_s)
        try:
            mv.begin()
            mv.prepare()
            if mv.has_rounds:
                while not self._cancel_requested():
                    self.rounds_before_ready += 1
                    if mv.iterate_once():
                        break
            self._summary()["rounds_before_ready"] = self.rounds_before_ready
            with self._cond:
                if self._request is None:
                    self._state = SpecState.READY
                    self._summary()["state"] = self._state.value
                    self._mark("ready_ms")
                    self._cond.notify_all()
            request = self._await_request()
            if request == "cancel":
                self._roll_back()
                return
            self._set(SpecState.COMMITTING)
            self._mark("committing_ms")
            mv.finish(self.warm_rounds > 0, self._serving)
            self._end(SpecState.DONE)
        except BaseException as exc:  # noqa: BLE001 - recorded; the caller reads the state
            self._failed(exc)
            if not isinstance(exc, Exception):
                raise

    def _await_request(self) -> str:
        """Keep the delta warm until commit or cancel; the request."""
        waited_from = self.clock()
        next_round = waited_from + self.warm_interval_s
        while True:
            with self._cond:
                while self._request is None:
                    now = self.clock()
                    if now - waited_from >= self.max_wait_s:
                        self._request = "cancel"
                        self.reason = f"timeout: not committed within {self.max_wait_s:g} s"
                        break
                    warm = self.move.has_rounds and self.warm_rounds < self.max_warm_rounds
                    if warm and now >= next_round:
                        break
                    left = min(next_round - now if warm else self.poll_s, self.poll_s)
                    self._cond.wait(max(left, 0.0))
                if self._request is not None:
                    return self._request
            self.move.warm_round()  # outside the lock: commit and cancel are heard meanwhile
            self.warm_rounds += 1
            self._summary()["warm_rounds"] = self.warm_rounds
            next_round = self.clock() + self.warm_interval_s

    def _serving(self) -> None:
        """Past the point of no return: the summary as the finished record will carry it."""
        self._summary().update(outcome=SpecState.DONE.value, state=SpecState.DONE.value)
        self._summary()["rounds_dump_ms"] = round(self.move.rounds_dump_s() * 1000.0, 3)
        self._summary()["warm_rounds"] = self.warm_rounds

    def _roll_back(self) -> None:
        reason = self.reason or "cancelled"
        log.info("speculative migration of %s cancelled: %s", self.move.name, reason)
        self._summary().update(
            outcome="cancelled",
            reason=reason,
            rounds_dump_ms=round(self.move.rounds_dump_s() * 1000.0, 3),
        )
        ok = self.move.abandon(SpeculationCancelled(f"cancelled: {reason}"))
        if not ok:
            self._summary()["outcome"] = "failed"
        self._end(SpecState.CANCELLED if ok else SpecState.FAILED)

    def _failed(self, exc: BaseException) -> None:
        log.error("speculative migration of %s failed: %s", self.move.name, exc)
        with self._cond:
            self.reason = str(exc) or type(exc).__name__
        self._summary().update(outcome="failed", reason=self.reason)
        self._summary()["rounds_dump_ms"] = round(self.move.rounds_dump_s() * 1000.0, 3)
        if not self.move.past_point_of_no_return:
            try:
                self.move.abandon(exc)
            except Exception as err:  # noqa: BLE001 - the record says what it could
                log.error("speculative migration of %s: rollback: %s", self.move.name, err)
            self._end(SpecState.FAILED)
            return
        # the destination serves: the move stands, its clean-up did not end well
        self._end(SpecState.DONE)

    def _end(self, state: SpecState) -> None:
        summary = self._summary()
        summary.setdefault("outcome", state.value)
        summary.setdefault("rounds_dump_ms", round(self.move.rounds_dump_s() * 1000.0, 3))
        summary["rounds_before_ready"] = self.rounds_before_ready
        summary["warm_rounds"] = self.warm_rounds
        self._set(state)
