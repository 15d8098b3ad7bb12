"""The follow-me driver: mobility events and ticks in, `FollowMe`'s decisions carried out with
speculative migrations (`orchestration.speculation`).

    follower = Follower(policy, orchestrator_launcher(orch, strategy="precopy"))
    # a chain's Start moves it whole: orchestrator_launcher(orch, pattern="round-robin")
    follower.on_handover(handover)   # from the location service, a playback, the emulation
    follower.tick(t)                 # every so often (say every 100 ms), scenario time

Both may be called from any thread (one lock); neither blocks on a migration: a Start plans the
migration (`launch`, which asks the sites where the instance is) and starts its speculation's
thread, a Commit or a Cancel only leaves a request with it. Each call first collects the
speculations that ended and tells the policy where their services run now. `close()` cancels
what is still speculating (a commit in progress goes on) and waits for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ground.defaults import DOWNTIME_BUDGET_MS, MIGRATION_RATE_BPS
from migration.engine import Migration
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import Pattern
from orchestration.chain_speculation import ChainMove
from orchestration.follow_me import Action, Cancel, Commit, FollowMe, Nothing, Start
from orchestration.orchestrator import Orchestrator, OrchestratorError
from orchestration.speculation import Movable, SpecState, Speculation
from topology.mobility_events import Handover

log = logging.getLogger(__name__)
Launch = Callable[[Start], Speculation]


class Unsupported(Exception):
    """A move the launcher cannot carry out (the service is then no longer followed)."""


@dataclass(frozen=True)
class Done:
    """What the driver did with one action: `result` is `started`, `requested`, `refused`
    (the speculation had ended, or a cancel came after a commit), `marked`, or an error."""

    action: Action
    result: str


@dataclass
class Follower:
    policy: FollowMe
    launch: Launch
    history: list[Done] = field(default_factory=list)
    speculations: dict[str, Speculation] = field(default_factory=dict)  # in progress
    ended: list[tuple[str, Speculation]] = field(default_factory=list)
    last_t: float | None = None  # the time of the last tick or handover
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def tick(self, t: float | None = None) -> list[Done]:
        with self._lock:
            self.last_t = t if t is not None else self.policy.clock() if self.policy.clock else None
            self._reap(self.last_t)
            return self._carry_out(self.policy.tick(self.last_t), self.last_t)

    def on_handover(self, h: Handover, t: float | None = None) -> list[Done]:
        with self._lock:
            self.last_t = h.t_s if t is None else t
            self._reap(self.last_t)
            return self._carry_out(self.policy.on_handover(h, self.last_t), self.last_t)

    def settled(self, service: str, site: str, t: float | None = None) -> None:
        """A service now runs at `site` by other means than a speculation (a replica made the
        primary): the policy is told, under the driver's lock."""
        with self._lock:
            self.policy.settled(service, site, t)

    def close(self, reason: str = "follow-me stopped", timeout: float | None = 60.0) -> None:
        with self._lock:
            specs = list(self.speculations.values())
            for spec in specs:
                spec.cancel(reason)
        for spec in specs:
            spec.wait_for(timeout=timeout)
        with self._lock:
            self._reap(self.last_t)

    # ------------------------------------------------------------------ inside

    def _reap(self, t: float | None) -> None:
        for name, spec in list(self.speculations.items()):
            state = spec.state
            if state not in (SpecState.DONE, SpecState.CANCELLED, SpecState.FAILED):
                continue
            del self.speculations[name]
            self.ended.append((name, spec))
            where = spec.move.destination if state is SpecState.DONE else spec.move.source
            log.info("follow-me %s: %s %s, at %s", self.policy.ue, name, state.value, where)
            self.policy.settled(name, where, t)

    def _carry_out(self, actions: list[Action], t: float | None) -> list[Done]:
        done = [Done(a, self._one(a, t)) for a in actions]
        self.history += done
        return done

    def _one(self, a: Action, t: float | None) -> str:
        if isinstance(a, Nothing):
            return "marked"
        if isinstance(a, Start):
            try:
                spec = self.launch(a)
            except Unsupported as exc:
                self.policy.drop(a.service)
                return f"unsupported: {exc}"
            except OrchestratorError as exc:
                self.policy.settled(a.service, a.source, t)
                return f"not planned: {exc}"
            self.speculations[a.service] = spec
            spec.start()
            return "started"
        spec_or_none = self.speculations.get(a.service)
        if spec_or_none is None:
            return "refused: no speculation in progress"
        if isinstance(a, Commit):
            return "requested" if spec_or_none.commit() else "refused"
        assert isinstance(a, Cancel)
        accepted = spec_or_none.cancel(a.reason)
        return "requested" if accepted else "refused"


def orchestrator_launcher(
    orch: Orchestrator,
    *,
    strategy: str = "precopy",
    pattern: str = Pattern.WAIT_FOR_ME.value,
    budget_ms: float = DOWNTIME_BUDGET_MS,
    rate_bps: int = MIGRATION_RATE_BPS,
    speculate: Callable[[Movable | Migration], Speculation] = Speculation,
    command: Sequence[str] | None = None,
) -> Launch:
    """Starts plan the move with `orch` (OrchestratorError if it cannot go) and wrap it with
    `speculate` (say `functools.partial(Speculation, warm_interval_s=0.5)`): an instance's
    migration, or a chain's (`kind` "chain": every function, moved under `pattern` with one
    switch, `orchestration.chain_speculation.ChainMove`). `command`: what an instance's
    destination starts under the `filesystem` strategy (its configuration stays behind)."""

    def launch(a: Start) -> Speculation:
        if a.kind == "chain":
            try:
                orch.sc.chain(a.service)
            except KeyError:  # it never will be: the service is no longer followed
                raise Unsupported(f"chain {a.service}: no such chain in the scenario") from None
            cm = plan_chain_migration(
                orch, a.service, a.target, pattern=pattern, strategy=strategy,
                budget_ms=budget_ms, rate_bps=rate_bps,
            )  # fmt: skip
            cm.record.metrics["speculative"] = a.speculative
            return speculate(ChainMove(cm))
        if a.kind != "instance":
            raise Unsupported(f"{a.kind} {a.service}: not a kind of move the launcher knows")
        mig = orch.plan_migration(
            a.service, a.target, strategy=strategy, budget_ms=budget_ms, rate_bps=rate_bps,
            command=command,
        )  # fmt: skip
        mig.record.metrics["speculative"] = a.speculative
        return speculate(mig)

    return launch
