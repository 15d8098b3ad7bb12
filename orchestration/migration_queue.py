"""The migration queue: the concurrent-migration scheduler (orchestration.scheduler) driving
real migrations (issue 11, part 4).

Interface
---------
``MigrationQueue(orchestrator, policy, clock=time.monotonic, start_thread=..., claims=...,
keep=...)``:

- ``submit(jobs, policy=None)``: `QueueJob`s (an instance's or a chain's migration to a site,
  strategy, budget, optional deadline in seconds from now, optional id) that arrive together.
  Each is checked (names first, then the sites: it runs, and not at the destination), its
  instances are claimed (`claims`: MigrationService's, so `/v1/migrations` and
  `/v1/chain-migrations` see them busy while queued or running), turned into a scheduler
  request (`orchestration.queue_jobs`) and submitted with `submit_many`: all or nothing, a bad
  job refuses the batch and changes nothing. Returns per job whether it started or is queued,
  its position and expected start. `policy`: switch the queue's policy first, which only an
  idle queue may (QueueBusy otherwise).
- every started grant runs in a thread (`start_thread(fn, name)`): the migration is planned
  then (`Orchestrator.plan_migration` / `plan_chain_migration`, id = the job's id) and run.
  network-aware: reserved at the granted rate (`rate_bps` = the grant, `fit_budget`), every
  reservation capped at the job's share of its grant (`orchestration.queue_link`); rerated
  grants resize the running reservations; the engine's boost of a final iteration asks the
  scheduler first (`request_boost`). best-effort and one-per-link: nothing reserved
  (`reserve=False` / `network_aware=False`), the copy asked to run at the rate the scheduler
  models for it (its stop rule's estimate).
- when a migration ends (done, rolled back, failed, or could not be planned) the scheduler is
  told (`finished` / `failed`), the claims are released and what the decisions start starts.
- ``state()``: every job: the running (rate, floor, expected finish), the queue (position,
  expected start and finish, the links it waits for), the ended (outcome, error); times in
  seconds from now.

One re-entrant lock guards the scheduler, the entries and every reservation change; planning
(which asks the sites) and the migrations themselves run outside it. The clock and the thread
starter are injected so that tests run deterministically (start_thread may just collect).

What others hold on the links (a `/v1/migrations` call's reservation, an operator's) is not
granted (orchestration.queue_outside): the queue reads the controller's reservations (`outside`,
by default the orchestrator's network when it lists them) at each submission and end, and every
`outside_poll_s` while a job runs or waits.

Not done: the scheduler's byte estimates are not corrected from the migrations' progress
(`Scheduler.progress`): a running job's expected finish is the model's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, Protocol

from controller.client import ControllerClientError
from ground.defaults import MIGRATION_RATE_BPS
from migration.engine import Migration, MigrationError
from migration.timeline import MigrationRecord
from orchestration.chain_migration import ChainMigration, ChainMigrationError
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import ChainRecord
from orchestration.ids import new_migration_id
from orchestration.orchestrator import Orchestrator, OrchestratorError
from orchestration.queue_jobs import QueueJob, Resolved, check_names, resolve
from orchestration.queue_link import Allocation
from orchestration.queue_outside import OUTSIDE_POLL_S, ListsReservations, outside_usage
from orchestration.schedule_models import Decisions, DirectedLink, Grant, Policy, Status
from orchestration.scheduler import Scheduler, capacities_of

log = logging.getLogger("mecmig.queue")

MAX_JOBS = 64  # per batch
ThreadStarter = Callable[[Callable[[], None], str], None]
State = Literal["queued", "running", "done", "rolled_back", "failed"]


class Claims(Protocol):
    """Who is busy (orchestration.service.MigrationService is one)."""

    def claim(self, instance: str, doing: str) -> None: ...

    def release(self, instance: str) -> None: ...


class QueueError(Exception):
    """A batch the queue refuses as a whole (nothing changed)."""


class QueueBusy(QueueError):
    """The policy can change only while nothing runs or waits."""


class DuplicateJob(QueueError):
    """A job id the queue knows already."""


class LocalClaims:
    """Claims of the queue's own (when no MigrationService shares them)."""

    def __init__(self) -> None:
        self._busy: dict[str, str] = {}
        self._lock = threading.Lock()

    def claim(self, instance: str, doing: str) -> None:
        with self._lock:
            if instance in self._busy:
                raise QueueError(f"{instance} is already being {self._busy[instance]}")
            self._busy[instance] = doing

    def release(self, instance: str) -> None:
        with self._lock:
            self._busy.pop(instance, None)


def start_daemon_thread(fn: Callable[[], None], name: str) -> None:
    threading.Thread(target=fn, name=name, daemon=True).start()


@dataclass
class Entry:
    """One job as the queue keeps it, from submission to its end."""

    id: str
    resolved: Resolved
    submitted_s: float
    deadline_s: float | None  # absolute, the queue's clock
    state: State = "queued"
    started_s: float | None = None
    ended_s: float | None = None
    rate_bps: int | None = None
    floor_bps: int | None = None
    error: str | None = None
    allocation: Allocation | None = None
    record: MigrationRecord | ChainRecord | None = field(default=None, repr=False)

    @property
    def job(self) -> QueueJob:
        return self.resolved.job


@dataclass(frozen=True)
class Submitted:
    id: str
    kind: str
    name: str
    state: Literal["started", "queued"]
    position: int | None
    expected_start_in_s: float | None


@dataclass(frozen=True)
class JobView:
    """One job in `QueueState`; times in seconds from the state's moment (negative: past)."""

    id: str
    kind: str
    name: str
    to: str
    members: tuple[str, ...]
    state: State
    budget_ms: float
    budget_at_risk: bool
    deadline_in_s: float | None
    position: int | None = None
    expected_start_in_s: float | None = None
    expected_finish_in_s: float | None = None
    waiting_for: tuple[DirectedLink, ...] = ()
    rate_bps: int | None = None
    floor_bps: int | None = None
    model_rate_bps: float | None = None
    started_in_s: float | None = None
    ended_in_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class QueueState:
    policy: str
    running: tuple[JobView, ...]
    queue: tuple[JobView, ...]
    ended: tuple[JobView, ...]


class MigrationQueue:
    """Jobs submitted, scheduled and run (see the module docstring)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        policy: Policy | str = Policy.NETWORK_AWARE,
        *,
        clock: Callable[[], float] = time.monotonic,
        start_thread: ThreadStarter = start_daemon_thread,
        claims: Claims | None = None,
        keep: Callable[[MigrationRecord | ChainRecord], None] | None = None,
        outside: ListsReservations | None = None,
        outside_poll_s: float | None = OUTSIDE_POLL_S,
    ) -> None:
        self.orch = orchestrator
        if outside is None and isinstance(orchestrator.network, ListsReservations):
            outside = orchestrator.network
        self._outside = outside
        self._outside_poll_s = outside_poll_s
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None
        self.capacities = capacities_of(orchestrator.model)
        self.claims: Claims = claims if claims is not None else LocalClaims()
        self._clock = clock
        self._start = start_thread
        self._keep = keep
        self._lock = threading.RLock()
        self.scheduler = Scheduler(self.capacities, Policy(policy), clock)
        self._entries: dict[str, Entry] = {}  # in submission order

    @property
    def policy(self) -> Policy:
        return self.scheduler.policy

    def set_policy(self, policy: Policy | str) -> None:
        """Use `policy` from now on; QueueBusy while a job runs or waits."""
        policy = Policy(policy)
        with self._lock:
            if policy is self.scheduler.policy:
                return
            busy = [e.id for e in self._entries.values() if e.state in ("queued", "running")]
            if busy:
                raise QueueBusy(
                    f"the policy is {self.scheduler.policy.value} while jobs run or wait "
                    f"({len(busy)}): it can change once the queue is idle"
                )
            outside = self.scheduler.outside
            self.scheduler = Scheduler(self.capacities, policy, self._clock)
            self.scheduler.set_outside(outside)  # idle: nothing starts or rerates

    # submission

    def submit(
        self, jobs: Sequence[QueueJob], policy: Policy | str | None = None
    ) -> list[Submitted]:
        """Check, claim and schedule `jobs` together (see the module docstring). Raises
        OrchestratorError (UnknownName, NotServing, SitesUnreachable), QueueError, ValueError,
        or the claims' error; all before anything changed."""
        if not 1 <= len(jobs) <= MAX_JOBS:
            raise ValueError(f"a batch holds 1 to {MAX_JOBS} jobs, got {len(jobs)}")
        wanted = Policy(policy) if policy is not None else None
        for job in jobs:  # every name before any site is asked
            check_names(self.orch, job)
        resolved = [resolve(self.orch, job, self.capacities) for job in jobs]
        ids = [r.job.id or new_migration_id() for r in resolved]
        claimed: list[str] = []
        try:
            for r in resolved:
                for name in r.members:
                    self.claims.claim(name, "migrated")
                    claimed.append(name)
            self.refresh_outside()
            with self._lock:
                submitted = self._submit_locked(resolved, ids, wanted)
        except BaseException:
            for name in claimed:
                self.claims.release(name)
            raise
        self._watch_outside()
        return submitted

    def _submit_locked(
        self, resolved: list[Resolved], ids: list[str], policy: Policy | None
    ) -> list[Submitted]:
        for jid in ids:
            if jid in self._entries:
                raise DuplicateJob(f"job {jid} exists already ({self._entries[jid].state})")
        if policy is not None:
            self.set_policy(policy)
        now = float(self._clock())
        entries = [
            Entry(
                id=jid,
                resolved=r,
                submitted_s=now,
                deadline_s=None if r.job.deadline_s is None else now + r.job.deadline_s,
            )
            for jid, r in zip(ids, resolved, strict=True)
        ]
        decisions = self.scheduler.submit_many(
            [e.resolved.request(e.id, e.deadline_s) for e in entries]
        )
        for e in entries:
            self._entries[e.id] = e
        self._act(decisions)
        status = self.scheduler.status()
        places = {q.id: q for q in status.queue}
        out = []
        for e in entries:
            q = places.get(e.id)
            start = None if q is None else _rel(q.expected_start_s, status.at_s)
            out.append(
                Submitted(
                    id=e.id,
                    kind=e.job.kind,
                    name=e.job.name,
                    state="queued" if q is not None else "started",
                    position=None if q is None else q.position,
                    expected_start_in_s=0.0 if q is None else start,
                )
            )
        return out

    # decisions

    def _act(self, decisions: Decisions) -> None:
        """Carry out the scheduler's decisions (under the lock): rerates (shrinking ones
        first, so that growing ones find the room), then starts."""

        def change(g: Grant) -> int:
            current = self._entries[g.id].rate_bps
            return (g.rate_bps or 0) - (current or 0)

        for grant in sorted(decisions.rerated, key=change):
            entry = self._entries[grant.id]
            entry.rate_bps, entry.floor_bps = grant.rate_bps, grant.floor_bps
            a = entry.allocation
            if a is not None and grant.rate_bps is not None:
                a.regrant(grant.rate_bps)
        for grant in decisions.started:
            entry = self._entries[grant.id]
            entry.state = "running"
            entry.started_s = decisions.at_s
            entry.rate_bps, entry.floor_bps = grant.rate_bps, grant.floor_bps
            network = self.orch.network
            if network is not None and grant.rate_bps is not None:  # network-aware
                entry.allocation = Allocation(
                    entry.id,
                    entry.resolved.member_min_rates,
                    grant.rate_bps,
                    network,
                    self._lock,
                    self._boost,
                )
            self._start(partial(self._run, entry), f"queue-{entry.id}")

    def _boost(self, allocation: Allocation, member: str, rate_bps: int) -> None:
        """A member's engine wants `rate_bps` (its final iteration): ask the scheduler to
        raise the job's floor by what it lacks; its decisions rerate (this job too)."""
        with self._lock:
            entry = self._entries[allocation.job_id]
            if entry.state != "running":
                return
            lacking = rate_bps - allocation.alloc[member]
            self._act(self.scheduler.request_boost(entry.id, allocation.total + lacking))

    # running

    def _run(self, entry: Entry) -> None:
        ok = False
        try:
            runner = self._plan(entry)
            runner.run()
            ok = True
        except (MigrationError, ChainMigrationError) as exc:
            entry.error = str(exc)
            log.error("%s", exc)
        except OrchestratorError as exc:
            entry.error = f"could not start: {exc}"
            log.error("%s: %s", entry.id, entry.error)
        except Exception as exc:  # noqa: BLE001 - a thread's last line: log it, keep the queue
            entry.error = f"{type(exc).__name__}: {exc}"
            log.exception("%s: queued migration failed unexpectedly", entry.id)
        finally:
            self._ended(entry, ok)

    def _plan(self, entry: Entry) -> Migration | ChainMigration:
        job = entry.job
        aware = entry.allocation is not None
        rate = entry.rate_bps if entry.rate_bps is not None else self._model_rate(entry.id)
        runner: Migration | ChainMigration
        if job.kind == "chain":
            runner = plan_chain_migration(
                self.orch,
                job.name,
                job.to,
                pattern=job.pattern,
                strategy=job.strategy,
                budget_ms=job.budget_ms,
                rate_bps=rate,
                network_aware=aware,
                hold=job.hold,
                migration_id=entry.id,
            )
            migrations = list(runner.ms)
        else:
            runner = self.orch.plan_migration(
                job.name,
                job.to,
                strategy=job.strategy,
                budget_ms=job.budget_ms,
                rate_bps=rate,
                hold=job.hold,
                migration_id=entry.id,
                reserve=aware,
                fit_budget=True,
            )
            migrations = [runner]
        a = entry.allocation
        if a is not None:
            links = a.links()
            with self._lock:
                for mig in migrations:
                    a.migrations[mig.plan.instance] = mig
                    mig.net = links[mig.plan.instance]
        entry.record = runner.record
        if self._keep is not None:
            self._keep(runner.record)
        return runner

    def _model_rate(self, jid: str) -> int:
        with self._lock:
            for run in self.scheduler.status().running:
                if run.id == jid and run.model_rate_bps != float("inf"):
                    return max(1, int(run.model_rate_bps))
        return MIGRATION_RATE_BPS

    def _ended(self, entry: Entry, ok: bool) -> None:
        self.refresh_outside()
        with self._lock:
            entry.ended_s = float(self._clock())
            outcome = getattr(entry.record, "outcome", None)
            if ok:
                entry.state = "done" if outcome is None or outcome.value == "done" else "failed"
            else:
                rolled = outcome is not None and outcome.value == "rolled_back"
                entry.state = "rolled_back" if rolled else "failed"
            if ok and entry.state == "failed" and entry.record is not None:
                entry.error = entry.record.error
            for name in entry.resolved.members:
                self.claims.release(name)
            end = self.scheduler.finished if ok else self.scheduler.failed
            self._act(end(entry.id))

    # what others hold on the links

    def refresh_outside(self) -> None:
        """Read the controller's reservations; grant each link its capacity less what is not
        the queue's (orchestration.queue_outside). Unreadable: keep what was known."""
        if self._outside is None:
            return
        try:
            views = self._outside.reservations()
        except (ControllerClientError, OSError) as exc:
            log.warning("the controller's reservations could not be read: %s", exc)
            return
        with self._lock:
            self._act(self.scheduler.set_outside(outside_usage(views, self._entries.keys())))

    def _watch_outside(self) -> None:
        """Poll the outside every `outside_poll_s` while a job runs or waits (one thread)."""
        if self._outside is None or self._outside_poll_s is None:
            return
        with self._lock:
            if self._watcher is not None or self._closed.is_set():
                return
            self._watcher = threading.Thread(
                target=self._watch_loop, name="queue-outside", daemon=True
            )
            self._watcher.start()

    def _watch_loop(self) -> None:
        poll = self._outside_poll_s
        assert poll is not None
        while not self._closed.wait(poll):
            with self._lock:
                if not any(e.state in ("queued", "running") for e in self._entries.values()):
                    self._watcher = None
                    return
            try:
                self.refresh_outside()
            except Exception:  # noqa: BLE001 - a thread's last line: log it, stop watching
                log.exception("watching the controller's reservations failed")
                break
        with self._lock:
            self._watcher = None

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop polling the outside, and wait for the poll to end (jobs that run go on)."""
        self._closed.set()
        with self._lock:
            watcher = self._watcher
        if watcher is not None:
            watcher.join(timeout_s)

    # reading

    def state(self) -> QueueState:
        """Every job as it stands (see the module docstring)."""
        with self._lock:
            status = self.scheduler.status()
            entries = list(self._entries.values())
        return _state(status, entries)

    def entry(self, jid: str) -> Entry | None:
        with self._lock:
            return self._entries.get(jid)


def _rel(t: float | None, now: float) -> float | None:
    return None if t is None else round(t - now, 3)


def _state(status: Status, entries: list[Entry]) -> QueueState:
    now = status.at_s
    running = {r.id: r for r in status.running}
    queued = {q.id: q for q in status.queue}

    def base(e: Entry) -> JobView:
        return JobView(
            id=e.id,
            kind=e.job.kind,
            name=e.job.name,
            to=e.job.to,
            members=e.resolved.members,
            state=e.state,
            budget_ms=e.job.budget_ms,
            budget_at_risk=e.resolved.budget_at_risk,
            deadline_in_s=_rel(e.deadline_s, now),
            rate_bps=e.rate_bps,
            floor_bps=e.floor_bps,
            started_in_s=_rel(e.started_s, now),
            ended_in_s=_rel(e.ended_s, now),
            error=e.error,
        )

    run_views: list[JobView] = []
    queue_views: list[JobView] = []
    ended: list[JobView] = []
    for e in entries:
        view = base(e)
        if e.id in running:
            r = running[e.id]
            run_views.append(
                _with(
                    view,
                    model_rate_bps=r.model_rate_bps if r.model_rate_bps != float("inf") else None,
                    expected_finish_in_s=_rel(r.expected_finish_s, now),
                )
            )
        elif e.id in queued:
            q = queued[e.id]
            queue_views.append(
                _with(
                    view,
                    position=q.position,
                    expected_start_in_s=_rel(q.expected_start_s, now),
                    expected_finish_in_s=_rel(q.expected_finish_s, now),
                    waiting_for=q.waiting_for,
                )
            )
        elif e.state not in ("queued", "running"):
            ended.append(view)
    queue_views.sort(key=lambda v: v.position or 0)
    return QueueState(status.policy.value, tuple(run_views), tuple(queue_views), tuple(ended))


def _with(view: JobView, **changes: Any) -> JobView:
    return replace(view, **changes)
