"""Follow-me in the controller process (issue 12): the services of a moving UE follow it,
started by `POST /v1/follow-me` (orchestration.follow_api) and fed by the location service.

- `start(ue, services, ...)`: a `FollowMe` policy (orchestration.follow_me) over the UE's known
  path or dead reckoning (orchestration.prediction) and a `Follower` (orchestration.follower)
  that carries its decisions out with speculative migrations planned by the orchestrator.
  Services: the instances and chains named, by default the UE's `follow:` in the scenario; each
  one's T_pre and T_down are estimated from its memory and its site's uplink
  (`follow_me.estimate_times`).
- `handover(h)`: a listener of the location service (`LocationService.add_listener`): each
  change of a UE's access point, announced by the emulation or played back.
- A ticker thread asks every follower for its decisions every `tick_s` at the mobility's time
  (`clock`: the location service's `scenario_time`; no time yet: no tick).
- `stop(ue)` cancels what speculates for that UE and forgets it; `close()` stops all.

A service is followed for one UE at a time; a UE is followed once (a second start: 409).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from ground.defaults import DOWNTIME_BUDGET_MS, MIGRATION_RATE_BPS
from migration.timeline import MigrationRecord
from orchestration.chain_record import ChainRecord
from orchestration.follow_me import (
    Cancel,
    Commit,
    Followed,
    FollowMe,
    Nothing,
    Start,
    estimate_times,
)
from orchestration.follow_replicas import ReplicaFollower
from orchestration.follower import Done, Follower, Launch, orchestrator_launcher
from orchestration.orchestrator import Orchestrator, OrchestratorError, UnknownName
from orchestration.prediction import known_dwell, known_path, straight_ahead
from orchestration.replicas import Replicas
from orchestration.speculation import SpecState, Speculation
from topology.mobility_events import Handover, moving_ues, ue_mobility
from topology.scenario import Scenario

log = logging.getLogger(__name__)
TICK_S = 0.1
WARM_INTERVAL_S = 0.5
MAX_HISTORY = 100  # actions kept per UE
PREDICTORS = ("known-path", "straight-ahead")


class FollowConflict(Exception):
    """A follow-me that cannot start: the UE is followed already, does not move on the map, or a
    service follows another UE."""


@dataclass(frozen=True)
class ServiceState:
    name: str
    kind: str
    site: str  # where it runs, as the policy knows it
    target: str | None  # where a speculation is taking it
    speculation: str | None  # its state (warming, ready, committing, ...), None: none
    replicas: dict[str, str] | None = None  # stateless: site -> primary, backup, secondary


@dataclass(frozen=True)
class ActionRecord:
    t_s: float
    action: str  # start, commit, cancel, nothing
    service: str
    target: str
    result: str
    speculative: bool | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FollowState:
    ue: str
    predictor: str
    strategy: str
    services: tuple[ServiceState, ...]
    history: tuple[ActionRecord, ...]
    moves_done: int
    moves_cancelled: int


@dataclass
class _Following:
    follower: Follower
    predictor: str
    strategy: str
    replicas: ReplicaFollower | None = None  # its stateless services' warm replicas
    released: set[int] = field(default_factory=set)  # the ended speculations' claims let go


class Claims(Protocol):
    """Who is busy (orchestration.service.MigrationService): a service moving by follow-me is
    claimed as migrated, and its migration is started and kept there (GET /v1/migrations, the
    application-mobility service's notifications)."""

    def claim(self, instance: str, doing: str) -> None: ...

    def release(self, instance: str) -> None: ...

    def started(self, record: MigrationRecord | ChainRecord) -> None: ...


class FollowService:
    """The UEs followed in this process (see the module docstring); thread-safe."""

    def __init__(
        self,
        orch: Orchestrator,
        scenario: Scenario,
        clock: Callable[[], float | None],
        *,
        tick_s: float = TICK_S,
        warm_interval_s: float = WARM_INTERVAL_S,
        claims: Claims | None = None,
        keep: Callable[[MigrationRecord | ChainRecord], None] | None = None,
    ) -> None:
        self.orch = orch
        self.claims = claims
        self.keep = keep
        self.sc = scenario
        self.clock = clock
        self.tick_s = tick_s
        self.warm_interval_s = warm_interval_s
        self._lock = threading.Lock()
        self._ues: dict[str, _Following] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------ starting, stopping

    def start(
        self,
        ue: str,
        services: Sequence[str] = (),
        *,
        strategy: str = "precopy",
        predictor: str = "known-path",
        budget_ms: float = DOWNTIME_BUDGET_MS,
        pattern: str = "wait-for-me",
    ) -> FollowState:
        """Follow `ue` with `services` (default: its `follow:`). UnknownName for a UE, instance
        or chain the scenario does not have; FollowConflict (see the class); ValueError for a
        predictor it does not know."""
        if predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}, not {predictor!r}")
        try:
            spec = self.sc.ue(ue)
        except KeyError as exc:
            raise UnknownName(f"no UE called {ue!r} in scenario {self.sc.name}") from exc
        if ue not in moving_ues(self.sc):
            raise FollowConflict(f"{ue} does not move on a map (no path: or trace:)")
        names = list(services) or list(spec.follow)
        if not names:
            raise FollowConflict(f"nothing follows {ue}: name services, or give it follow:")
        followed = [self._followed(name, strategy, budget_ms) for name in names]
        mob = ue_mobility(self.sc, ue)
        predict = known_path(mob) if predictor == "known-path" else straight_ahead(mob)
        serving = mob.initial.site if mob.initial is not None else None
        now = self.clock()
        if now is not None:
            cell = mob.serving(now)
            serving = cell.site if cell is not None else None
        policy = FollowMe(ue, followed, predict, serving, dwell=known_dwell(mob))
        speculate = partial(Speculation, warm_interval_s=self.warm_interval_s)
        launch = self._claiming(
            orchestrator_launcher(
                self.orch,
                strategy=strategy,
                pattern=pattern,
                budget_ms=budget_ms,
                speculate=speculate,
            )
        )
        with self._lock:
            if ue in self._ues:
                raise FollowConflict(f"{ue} is followed already: DELETE /v1/follow-me/{ue} first")
            taken = {
                s.name: other for other, f in self._ues.items() for s in f.follower.policy.services
            }
            for name in names:
                if name in taken:
                    raise FollowConflict(f"{name} follows {taken[name]} already")
            follower = Follower(policy, launch)
            stateless = {f.name: self.replicas_of(f.name) for f in followed if f.stateless}
            replicas = ReplicaFollower(follower.settled, stateless) if stateless else None
            self._ues[ue] = _Following(follower, predictor, strategy, replicas)
            self._ensure_ticker()
        log.info("follow-me %s: %s (%s, %s)", ue, ", ".join(names), strategy, predictor)
        return self.state(ue)

    def stop(self, ue: str) -> FollowState:
        """Stop following `ue`: what speculates is cancelled (a commit under way ends)."""
        with self._lock:
            following = self._ues.get(ue)
        if following is None:
            raise UnknownName(f"{ue} is not followed")
        following.follower.close(reason="follow-me stopped")
        if following.replicas is not None:
            following.replicas.close()
        self._release_ended(following)
        state = self._state(ue, following)
        with self._lock:
            self._ues.pop(ue, None)
        log.info("follow-me %s: stopped", ue)
        return state

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            ues = list(self._ues)
        for ue in ues:
            self.stop(ue)

    # ------------------------------------------------------------------ inputs

    def handover(self, h: Handover) -> None:
        """A UE changed its access point (the location service's listener)."""
        with self._lock:
            following = self._ues.get(h.ue)
        if following is None:
            return
        done = following.follower.on_handover(h)
        if following.replicas is not None:
            following.replicas.on_handover(h)  # the replica there: the primary
            following.replicas.on_actions(done)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or not self._ticker.is_alive():
            self._ticker = threading.Thread(target=self._tick_loop, name="follow-me", daemon=True)
            self._ticker.start()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            t = self.clock()
            with self._lock:
                if not self._ues:
                    self._ticker = None
                    return
            with self._lock:
                followings = list(self._ues.values())
            for following in followings:
                try:
                    done = following.follower.tick(t) if t is not None else []
                    if following.replicas is not None:
                        following.replicas.on_actions(done)
                        following.replicas.tick()
                    self._release_ended(following)
                except Exception:  # noqa: BLE001 - one UE's failure stops not the others'
                    log.exception("follow-me %s: a tick failed", following.follower.policy.ue)

    # ------------------------------------------------------------------ reading

    def state(self, ue: str) -> FollowState:
        with self._lock:
            following = self._ues.get(ue)
        if following is None:
            raise UnknownName(f"{ue} is not followed")
        return self._state(ue, following)

    def states(self) -> list[FollowState]:
        with self._lock:
            items = list(self._ues.items())
        return [self._state(ue, f) for ue, f in items]

    def _state(self, ue: str, following: _Following) -> FollowState:
        follower = following.follower
        policy = follower.policy
        specs = dict(follower.speculations)
        services = tuple(
            ServiceState(
                s.name,
                s.kind,
                policy.where(s.name),
                policy.target(s.name),
                specs[s.name].state.value if s.name in specs else None,
                following.replicas.roles(s.name)
                if following.replicas is not None and s.name in following.replicas.served
                else None,
            )
            for s in policy.services
        )
        ended = [spec.state for _, spec in follower.ended]
        return FollowState(
            ue,
            following.predictor,
            following.strategy,
            services,
            tuple(_record(d) for d in follower.history[-MAX_HISTORY:]),
            sum(1 for s in ended if s is SpecState.DONE),
            sum(1 for s in ended if s is SpecState.CANCELLED),
        )

    # ------------------------------------------------------------------ inside

    def _members(self, name: str) -> list[str]:
        chain = next((c for c in self.sc.chains if c.name == name), None)
        return list(chain.functions) if chain is not None else [name]

    def _claiming(self, launch: Launch) -> Launch:
        """`launch`, with the service's instances claimed first and its record kept."""
        claims = self.claims
        if claims is None:
            return launch

        def claimed(a: Start) -> Speculation:
            members = self._members(a.service)
            taken: list[str] = []
            try:
                for name in members:
                    claims.claim(name, "migrated")
                    taken.append(name)
                spec = launch(a)
            except Exception as exc:
                for name in taken:
                    claims.release(name)
                if isinstance(exc, OrchestratorError):
                    raise
                raise OrchestratorError(str(exc)) from exc  # busy: planned again later
            record = _record_of(spec)
            if record is not None:
                if self.keep is not None:
                    self.keep(record)
                claims.started(record)
            return spec

        return claimed

    def _release_ended(self, following: _Following) -> None:
        if self.claims is None:
            return
        for name, spec in list(following.follower.ended):
            if id(spec) not in following.released:
                following.released.add(id(spec))
                for member in self._members(name):
                    self.claims.release(member)

    def replicas_of(self, name: str) -> Replicas:
        """A stateless service's warm replicas (its primary where it runs now; its volume,
        if it has one, synced to them every `sync_period_s` of its scenario entry)."""
        return Replicas(self.orch, name, sync_period_s=self.sc.instance(name).sync_period_s)

    def _followed(self, name: str, strategy: str, budget_ms: float) -> Followed:
        chain = next((c for c in self.sc.chains if c.name == name), None)
        members = list(chain.functions) if chain is not None else [self.orch.instance(name).name]
        site = self.orch.where(members[0])
        if site is None:
            raise FollowConflict(f"{members[0]} runs nowhere: deploy it first")
        memory = sum(self.sc.instance(m).memory for m in members)
        t_pre, t_down = estimate_times(memory, self._uplink_bps(site), strategy, budget_ms)
        if chain is not None:
            return Followed(name, site, t_pre, t_down, kind="chain")
        stateless = self.sc.instance(name).stateless
        return Followed(name, site, t_pre, t_down, kind="instance", stateless=stateless)

    def _uplink_bps(self, site: str) -> int:
        """The slowest link at the site's switch: what a copy leaving it goes through."""
        switch = self.sc.switch_of(site)
        rates = [
            ln.capacity
            for ln in self.sc.links
            if switch in (self.sc.switch_of(n) for n in ln.between)
        ]
        return min(rates, default=MIGRATION_RATE_BPS)


def _record_of(spec: Speculation) -> MigrationRecord | ChainRecord | None:
    """The record of the migration a speculation runs (its move's, one instance or a chain)."""
    move = spec.move
    for holder in (move, getattr(move, "m", None), getattr(move, "cm", None)):
        record = getattr(holder, "record", None)
        if isinstance(record, MigrationRecord | ChainRecord):
            return record
    return None


def _record(done: Done) -> ActionRecord:
    a = done.action
    if isinstance(a, Start):
        return ActionRecord(a.t_s, "start", a.service, a.target, done.result, a.speculative)
    if isinstance(a, Commit):
        return ActionRecord(a.t_s, "commit", a.service, a.target, done.result)
    if isinstance(a, Cancel):
        return ActionRecord(a.t_s, "cancel", a.service, a.target, done.result, reason=a.reason)
    assert isinstance(a, Nothing)
    return ActionRecord(a.t_s, "nothing", a.service, a.target, done.result, reason=a.reason)
