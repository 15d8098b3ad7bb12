"""Moving a whole service function chain: seed 000's patterns over the engine's phases.

Each function has its own `Migration` (same strategy for all); this module decides when each of
its steps runs. The steps before the switch (prepare, pre-copy rounds, the freeze, the copy) run
as the pattern says:

- `async`: every function walks its steps in a thread of its own, unsupervised;
- `wait-for-me`: each step runs for every function at once, and the next waits for all (a
  barrier): the rounds run in parallel, then every function freezes at the same moment;
- `round-robin`: each step runs for one function after the other; pre-copy rounds alternate
  between the functions until each one's stop rule ends its rounds. No two functions' phases
  ever overlap.

Then the chain's steering moves **once**: every function's traffic is re-pointed in one change
of the controller (`ControllerLink.relocate_many`: one checked plan, confirmed by barriers).
Every function is frozen then, its traffic held, so no packet meets a half-moved chain. The
restores follow (in parallel, or in turn for round-robin). The chain's **point of no return** is
passed when every function serves at the destination (`Migration.commit`): before it, a failure
in any function rolls back all of them (the steering goes back in one change, every function
runs at its source with its state, every reservation is released); after it, each function's
clean-up (held packets delivered, post-copy pages pulled, reservations released, the source's
copy removed) is best effort, as for one migration.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from migration.engine import Migration, MigrationError
from migration.network import ControllerLink, RelocationIncomplete
from migration.strategies import Rounds
from migration.timeline import Clock, MigrationRecord, Outcome, PhaseRecord, monotonic
from orchestration.chain_record import ChainRecord, Pattern

log = logging.getLogger(__name__)
T = TypeVar("T")
ChainListener = Callable[[str, ChainRecord, str | None, PhaseRecord | None], None]


class ChainMigrationError(Exception):
    """A chain migration that did not complete; `record` says how far it got."""

    def __init__(self, message: str, record: ChainRecord) -> None:
        super().__init__(message)
        self.record = record


class ChainMigration:
    """One chain, its functions' migrations, one pattern (see the module docstring)."""

    def __init__(
        self,
        chain: str,
        migrations: Sequence[Migration],
        pattern: Pattern | str,
        network: ControllerLink,
        *,
        migration_id: str,
        network_aware: bool = False,
        clock: Clock = monotonic,
        listener: ChainListener | None = None,
    ) -> None:
        if not migrations:
            raise ValueError(f"chain {chain}: nothing to migrate")
        strategies = {m.plan.strategy for m in migrations}
        if len(strategies) != 1:
            raise ValueError(f"chain {chain}: one strategy for every function, got {strategies}")
        self.pattern = Pattern(pattern)
        self.ms = list(migrations)
        self.net = network
        self.clock = clock
        self.listener = listener
        first = self.ms[0]
        self.record = ChainRecord(
            id=migration_id,
            chain=chain,
            functions=[m.plan.instance for m in self.ms],
            destination=first.plan.destination_site,
            pattern=self.pattern.value,
            strategy=first.plan.strategy,
            network_aware=network_aware,
            members={m.plan.instance: m.record for m in self.ms},
        )
        self.t0 = clock()
        for m in self.ms:
            m.timeline.t0 = self.t0  # one time origin for the chain and every function
            m.defer_point_of_no_return = True
        self.steps = first.strategy.steps
        if "switch" not in self.steps:
            raise ValueError(f"strategy {first.plan.strategy} has no switch step")
        self._failed = threading.Event()  # async: the other functions stop at their next step
        at = self.steps.index("switch")
        self._before, self._after = self.steps[:at], self.steps[at + 1 :]
        # the steps `prepare()` runs: up to the rounds, or up to and with the prepare step
        self._split = (
            self._before.index("rounds")
            if "rounds" in self._before
            else self._before.index("prepare") + 1
            if "prepare" in self._before
            else 0
        )
        self._cpu0: dict[str, tuple[int, int] | None] = {}
        self._active: list[Migration] = []  # functions whose rounds are not over (iterate_once)

    @property
    def tag(self) -> str:
        return f"{self.record.id} chain={self.record.chain}"

    def _now_ms(self) -> float:
        return (self.clock() - self.t0) * 1000.0

    def now_ms(self) -> float:
        """Milliseconds since the chain's time origin (its record's and every function's)."""
        return self._now_ms()

    # ------------------------------------------------------------------ running

    def run(self) -> ChainRecord:
        """Move the chain; ChainMigrationError (record inside) if it did not complete."""
        self.begin()
        try:
            self._before_switch(self._before)
            self._from_switch()
        except BaseException as exc:  # any function, before the chain's point of no return
            error = self._roll_back(exc)
            if not isinstance(exc, Exception):
                raise
            raise error from exc
        return self._end()

    # ------------------------------------------------------------------ step by step
    # `run()` in pieces, for a caller that decides when each comes (a speculation: see
    # orchestration.chain_speculation): begin(), prepare(), iterate_once() until it says the
    # rounds are over (then warm_round() as often as wanted), finish(); before finish() has
    # passed the point of no return, any failure is the caller's to hand to abandon(exc).

    def begin(self) -> None:
        """Log the start; every function's source CPU counters now (for the conclusion)."""
        log.info(
            "%s: %s chain migration of %s -> %s (%s)",
            self.tag,
            self.pattern.value,
            ", ".join(self.record.functions),
            self.record.destination,
            self.record.strategy,
        )
        self._cpu0 = {m.plan.instance: m.begin() for m in self.ms}

    @property
    def has_rounds(self) -> bool:
        """Whether the strategy has pre-copy rounds (`iterate_once`, `warm_round`)."""
        return "rounds" in self._before

    @property
    def past_point_of_no_return(self) -> bool:
        return self.record.point_of_no_return_ms is not None

    def prepare(self) -> None:
        """The steps before the rounds (or, without rounds, up to the prepare step), per the
        pattern: every function's destination namespace and reservation."""
        self._before_switch(self._before[: self._split])
        self._active = list(self.ms)

    def iterate_once(self) -> bool:
        """One pre-copy round for every function whose stop rule has not ended its rounds:
        at once (async, wait-for-me: a barrier after), in turn (round-robin); True once every
        function's rounds are over (and at once without rounds)."""
        if not self.has_rounds:
            return True
        active = list(self._active)
        if self.pattern is Pattern.ROUND_ROBIN:
            for m in active:
                _focus(m)
                if m.iterate_once():
                    self._active.remove(m)
        else:
            over = self._parallel_over(active, lambda m: m.iterate_once())
            self._active = [m for m, done in zip(active, over, strict=True) if not done]
        return not self._active

    def warm_round(self) -> None:
        """Keep the delta warm: one more round for every function (their rounds are over),
        at once or in turn as the pattern says."""
        if not self.has_rounds:
            return

        def warm(m: Migration) -> None:
            m.precopy_round(False if m.strategy.rounds is Rounds.FILES else None)

        self._all(warm)

    def finish(
        self, warmed: bool = False, serving: Callable[[], None] | None = None
    ) -> ChainRecord:
        """The rest: the final reservations sized from the last (warm) round if `warmed`, the
        remaining steps before the switch per the pattern (the final freezes), the chain's
        switch, the restores, the point of no return; then `serving()`, and the clean-up,
        which finishes the record. Raises before the point of no return without rolling
        back: hand the error to `abandon`."""
        rest = self._before[self._split :]
        if self.has_rounds:
            if self._active:
                raise RuntimeError(f"{self.tag}: finish before every function's rounds ended")
            rest = rest[1:]  # the rounds were run by iterate_once
            if warmed:
                self._all(lambda m: m.boost())
        self._before_switch(rest)
        self._from_switch()
        if serving is not None:
            serving()
        return self._end()

    def abandon(self, exc: BaseException) -> ChainMigrationError:
        """Before the point of no return: the whole chain rolled back, the record finished;
        the error to raise (its record says `rolled_back`, or `failed` if the rollback itself
        was incomplete)."""
        return self._roll_back(exc)

    def _from_switch(self) -> None:
        """The chain's switch, the steps after it, and its point of no return."""
        self._switch()
        self._in_pattern(self._after)
        for m in self.ms:
            m.commit()
        self.record.point_of_no_return_ms = self._now_ms()
        self._emit("point_of_no_return", None, None)

    def _end(self) -> ChainRecord:
        errors = self._conclude(self._cpu0)
        self.record.summarize()
        self._finish(Outcome.DONE if not errors else Outcome.FAILED, "; ".join(errors) or None)
        return self.record

    def _parallel_over(self, ms: Sequence[Migration], action: Callable[[Migration], T]) -> list[T]:
        """`action` for the functions `ms` only, each in a thread (see `_parallel`)."""
        results: dict[int, T] = {}
        errors: dict[int, BaseException] = {}

        def one(i: int, m: Migration) -> None:
            try:
                results[i] = action(m)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors[i] = exc

        threads = [
            threading.Thread(target=one, args=(i, m), name=f"chain-{m.plan.instance}")
            for i, m in enumerate(ms)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[min(errors)]
        return [results[i] for i in range(len(ms))]

    def _before_switch(self, steps: Sequence[str]) -> None:
        if self.pattern is Pattern.ASYNC:

            def walk(m: Migration) -> None:
                for step in steps:
                    if self._failed.is_set():
                        raise RuntimeError("another function of the chain failed")
                    try:
                        m.step(step)
                    except BaseException:
                        self._failed.set()
                        raise

            self._parallel(walk)
            return
        for step in steps:
            if step == "rounds" and self.pattern is Pattern.ROUND_ROBIN:
                self._rounds_in_turn()
            else:
                self._all(lambda m, step=step: m.step(step))  # type: ignore[misc]

    def _in_pattern(self, steps: Sequence[str]) -> None:
        for step in steps:
            self._all(lambda m, step=step: m.step(step))  # type: ignore[misc]

    def _all(self, action: Callable[[Migration], None]) -> None:
        """`action` for every function: at once (a barrier after), or in turn (round-robin)."""
        if self.pattern is Pattern.ROUND_ROBIN:
            for m in self.ms:
                _focus(m)
                action(m)
        else:
            self._parallel(action)

    def _rounds_in_turn(self) -> None:
        """Round-robin: one pre-copy round per function in turn, until every stop rule says
        stop (a function whose rounds are over waits for the others)."""
        active = list(self.ms)
        while active:
            for m in list(active):
                _focus(m)
                if m.iterate_once():
                    active.remove(m)

    def _parallel(self, action: Callable[[Migration], T]) -> list[T]:
        """`action` for every function, each in a thread; when all have ended, the first
        error (in chain order) is raised."""
        return self._parallel_over(self.ms, action)

    def _switch(self) -> None:
        """The chain's steering moves once: every function's source link down, then all of
        its traffic re-pointed in one change of the controller."""
        phase = PhaseRecord("switch", self._now_ms())
        self.record.phases.append(phase)
        self._emit("phase_started", None, phase)
        try:
            for m in self.ms:
                m.plan.source.set_link(m.plan.instance, False)
                m.switched = True
            moves = [(m.plan.instance, m.plan.destination_site, m.plan.destination_port)
                     for m in self.ms]  # fmt: skip
            phase.detail["switchover_ms"] = self.net.relocate_many(moves)
            phase.detail["functions"] = len(moves)
        except BaseException as exc:
            phase.ok, phase.end_ms = False, self._now_ms()
            phase.detail["error"] = str(exc)
            self._emit("phase_failed", None, phase)
            raise
        phase.ok, phase.end_ms = True, self._now_ms()
        self.record.metrics["switchover_ms"] = phase.detail["switchover_ms"]
        self._emit("phase_done", None, phase)

    # ------------------------------------------------------------------ ending

    def _roll_back(self, exc: BaseException) -> ChainMigrationError:
        """Every function back at its source with its state; the steering back in one change
        first (then each function's own rollback has no traffic to move)."""
        log.error("%s: rolling the whole chain back after: %s", self.tag, exc)
        phase = PhaseRecord("rollback", self._now_ms(), detail={"error": str(exc)})
        self.record.phases.append(phase)
        switched = [m for m in self.ms if m.switched]
        if switched:
            try:
                back = [
                    (m.plan.instance, m.plan.source.name, m.plan.source.spec(m.plan.instance).port)
                    for m in switched
                ]
                self.net.relocate_many(back)
                for m in switched:
                    m.switched = False
                phase.detail["steering"] = "back in one change"
            except RelocationIncomplete as incomplete:  # back home: as good as it gets now
                for m in switched:
                    m.switched = False
                phase.detail["steering"] = f"back, but {incomplete}"
            except Exception as err:  # noqa: BLE001 - each function then moves its own back
                phase.detail["steering"] = f"per function ({err})"
        failures: list[str] = []

        def undo(m: Migration) -> None:
            try:
                m.abandon(exc)
            except MigrationError as rb:
                failures.append(f"{m.plan.instance}: {rb}")

        self._parallel(undo)
        phase.ok, phase.end_ms = not failures, self._now_ms()
        phase.detail["functions"] = {m.plan.instance: m.record.outcome.value for m in self.ms}
        self.record.summarize()
        if failures:
            self._finish(Outcome.FAILED, "rollback incomplete: " + "; ".join(failures))
            return ChainMigrationError(f"{self.tag}: rollback incomplete: {failures}", self.record)
        self._finish(Outcome.ROLLED_BACK, str(exc) or type(exc).__name__)
        return ChainMigrationError(f"{self.tag}: rolled back: {exc}", self.record)

    def _conclude(self, cpu0: dict[str, tuple[int, int] | None]) -> list[str]:
        """After the point of no return: each function's clean-up (in turn for round-robin)."""

        def conclude(m: Migration) -> MigrationRecord:
            return m.conclude(cpu0[m.plan.instance])

        records = (
            [conclude(m) for m in self.ms]
            if self.pattern is Pattern.ROUND_ROBIN
            else self._parallel(conclude)
        )
        return [f"{r.instance}: {r.error}" for r in records if r.outcome is not Outcome.DONE]

    def _finish(self, outcome: Outcome, error: str | None) -> None:
        self.record.outcome = outcome
        self.record.error = error
        log.info("%s: %s%s", self.tag, outcome.value, f" ({error})" if error else "")
        self._emit("finished", None, None)

    def _emit(self, event: str, function: str | None, phase: PhaseRecord | None) -> None:
        if self.listener is not None:
            self.listener(event, self.record, function, phase)


def _focus(m: Migration) -> None:
    """Round-robin: `m` copies alone now. A migration run by the queue under a network-aware
    grant shares it with its chain (orchestration.queue_link.ScheduledLink): the grant goes to
    `m` for its turn. Other links have no `focus`."""
    focus = getattr(m.net, "focus", None)
    if callable(focus):
        focus()
