"""The concurrent-migration scheduler (issue 11, part 4): which of many migrations asked for at
once start now, at what rate, and when the others are expected to start. Pure decision logic:
no I/O, no threads, the clock injected (seconds, any monotonic origin).

Interface
---------
``Scheduler(capacities, policy, clock)`` (or ``Scheduler.from_topology(topo, ...)``) holds the
running migrations and the queue. Every event returns `Decisions` (who starts now and at what
rate, whose reservation changes, who was queued); the caller acts on them (reserve, start):

- ``submit(request)``: a `MigrationRequest` (id, kind, directed links crossed, predicted bytes,
  downtime budget, the minimum rate its final iteration needs, optional deadline);
  ``submit_many(requests)`` for requests that arrive together (ordered before any starts).
- ``finished(id)`` / ``failed(id)``: a running migration ended; its links are free.
- ``cancel(id)``: a queued one leaves the queue; a running one is forgotten like a failure
  (the caller stops it).
- ``request_boost(id, rate_bps)``: a running migration's final iteration needs more (seed 000
  sizes it from the previous iteration): its guaranteed floor rises to ``rate_bps`` or to
  what its links leave, whichever is smaller; never over-committing.
- ``set_outside(usage)``: bandwidth others hold per link (reservations made outside the
  scheduler); links grant their capacity less it from now on (running grants shrink to fit,
  never below a floor; waiting requests wait for it).
- ``progress(id, remaining_bytes)``: corrects the predicted bytes left (better estimates).
- ``status()``: running migrations (rate, floor, bytes left, expected finish) and the queue
  (position, expected start and finish, the links it waits for), for the REST API.

``estimate(policy, capacities, requests)`` predicts each request's start, finish, final rate,
and whether it meets its budget and deadline. It uses the same simulation, so a benchmark can
compare the three policies without a network.
``min_rate_bps(...)`` (migration.stoprule.final_rate_bps), ``links_of_path(path)`` and
``capacities_of(topology or LinkLoad)`` build the inputs.

Policies
--------
- ``best-effort``: everything starts at once, nothing reserved (rates None). Modelled as
  max-min fair shares of each link (n transfers on one link: capacity / n each).
- ``one-per-link``: at most one running migration per directed link, nothing reserved. Per-link
  FIFO: a queued request starts when all its links are free and no earlier queued request
  waits for one of them; requests on disjoint links run in parallel (KubeVirt's one outbound
  migration per node). Modelled at its links' full capacity.
- ``network-aware``: earliest deadline first (no deadline last; ties by submission time, then
  order). Each running migration has a floor, its min rate (raised by `request_boost`), which
  it keeps until it ends, and a grant: its floor plus spare. The spare the floors leave goes
  to the running migrations in EDF order, each taking all that is left on its tightest link:
  the most urgent runs as fast as its links allow, the others at least at their floor. A
  request starts when on every link of its path its floor fits in the room it has: the
  capacity minus the grants of the running migrations more urgent than it and minus the
  floors of the less urgent ones. So a start never slows a more urgent migration; a more
  urgent newcomer takes the spare of less urgent ones (reported as `rerated`, never below a
  floor), but nobody's floor (non-preemptive). Requests submitted together in EDF order run
  one after another at the full link; the sum of the grants on a link never exceeds its
  capacity. Floors are the price of the guarantee: while running floors fill a link (e.g.
  urgent requests arriving one by one, each more urgent than the last), the migrations on
  it move at their floors and further requests wait. A request whose min rate exceeds a
  link's capacity is refused (`NeverFitsError`).
  Backfilling: behind a head that cannot start, a later request that can starts only if the
  simulation predicts it delays the start of no request ahead of it (conservative
  backfilling; the check simulates without further backfills). So the head is never blocked
  by later requests, but a link can stay partly idle.

Expected starts come from a deterministic simulation of completions: every running migration
moves its predicted remaining bytes at its modelled rate; at each predicted completion the
same start rule runs. Progress between events is accounted at the modelled rate (a clock that
goes backwards counts as no time). The simulation runs at each `status()` and, network-aware,
once per backfill candidate: meant for tens of concurrent migrations, not thousands.

Files: `schedule_models` (requests, grants, queue entries, errors), `schedule_plan` (the pure
core: order, admission, grants, simulation), `schedule_inputs`, `schedule_estimate`; import
what a caller needs from here.

The baselines neither reserve nor check rates: they accept requests network-aware would refuse.
Ids are unique among the running and queued migrations; a finished id may be used again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from orchestration.schedule_estimate import estimate
from orchestration.schedule_inputs import (
    capacities_of,
    check_capacities,
    check_new,
    links_of_path,
    min_rate_bps,
)
from orchestration.schedule_models import (
    Decisions,
    DirectedLink,
    Grant,
    MigrationRequest,
    Policy,
    QueueEntry,
    RunningEntry,
    Status,
    UnknownMigrationError,
)
from orchestration.schedule_plan import (
    Job,
    choose_starts,
    floors_used,
    grants,
    model_rates,
    new_job,
    priority,
    short_links,
    simulate,
)
from topology.admission import LinkLoad
from topology.model import Topology

__all__ = [
    "Scheduler",
    "capacities_of",
    "estimate",
    "links_of_path",
    "min_rate_bps",
]

Clock = Callable[[], float]


class Scheduler:
    """Running migrations and the queue under one `Policy`; see the module docstring."""

    def __init__(
        self, capacities: Mapping[DirectedLink, int], policy: Policy | str, clock: Clock
    ) -> None:
        # the links' capacities, and what others (reservations made outside this scheduler)
        # hold on them: the scheduler grants from `capacities`, the base less the outside
        self.base = check_capacities(capacities)
        self.outside: dict[DirectedLink, int] = {}
        self.capacities = dict(self.base)
        self.policy = Policy(policy)
        self._clock = clock
        self._running: dict[str, Job] = {}  # in start order
        self._queue: list[Job] = []  # in priority order
        self._granted: dict[str, tuple[int | None, int | None]] = {}  # id -> (rate, floor)
        self._seq = 0
        self._t = clock()

    @classmethod
    def from_topology(
        cls, source: Topology | LinkLoad, policy: Policy | str, clock: Clock
    ) -> Scheduler:
        return cls(capacities_of(source), policy, clock)

    # events

    def submit(self, request: MigrationRequest) -> Decisions:
        """Queue `request` and start what can start. Raises DuplicateMigrationError,
        UnknownLinkInRequestError, NeverFitsError (network-aware)."""
        return self.submit_many([request])

    def submit_many(self, requests: Iterable[MigrationRequest]) -> Decisions:
        """Queue requests that arrive together, then start what can start: they are put in
        policy order among themselves before any of them starts (submitting them one by one
        could start a less urgent one first). All or nothing: one refused refuses them all."""
        reqs = list(requests)
        taken = {jid: "running" for jid in self._running}
        taken.update({job.id: "queued" for job in self._queue})
        check_new(self.policy, self.base, reqs, taken)
        now = self._now()
        self._advance(now)
        for request in reqs:
            submitted = now if request.submitted_s is None else request.submitted_s
            request = replace(request, submitted_s=submitted)
            self._queue.append(new_job(request, self._seq, submitted))
            self._seq += 1
        decisions = self._settle(now)
        waiting = {job.id for job in self._queue}
        return replace(decisions, queued=tuple(r.id for r in reqs if r.id in waiting))

    def finished(self, id: str) -> Decisions:
        """A running migration completed: free its links, start what now fits."""
        return self._end(id)

    def failed(self, id: str) -> Decisions:
        """A running migration failed (rolled back): free its links, start what now fits."""
        return self._end(id)

    def cancel(self, id: str) -> Decisions:
        """Take `id` out of the queue, or forget it if it runs (the caller stops it)."""
        if id in self._running:
            return self._end(id)
        for job in self._queue:
            if job.id == id:
                now = self._now()
                self._queue.remove(job)
                return self._settle(now)
        raise UnknownMigrationError(id)

    def request_boost(self, id: str, rate_bps: int) -> Decisions:
        """Raise a running migration's guaranteed floor to `rate_bps`, or to what its links
        leave beside the other floors if that is less (never lowered). Network-aware only: the
        baselines reserve nothing, so they return no decision."""
        if rate_bps <= 0:
            raise ValueError(f"rate_bps must be > 0, got {rate_bps}")
        job = self._running.get(id)
        if job is None:
            raise UnknownMigrationError(id, "running")
        now = self._now()
        if self.policy is Policy.NETWORK_AWARE and job.links:
            others = floors_used(j for j in self._running.values() if j is not job)
            room = min(self.capacities[link] - others.get(link, 0) for link in job.links)
            job.floor = max(job.floor, min(rate_bps, room))
        return self._settle(now)

    def set_outside(self, usage: Mapping[DirectedLink, int]) -> Decisions:
        """What others hold on the links (reservations made outside this scheduler: a
        migration started on its own, an operator's): from now on each link grants its
        capacity less that. A request waits while its floor does not fit beside it (it is
        refused only if it exceeds the link's whole capacity); running grants shrink to fit,
        never below their floors, and grow back when the outside releases. Links this
        scheduler does not know are ignored. Returns what starts or is rerated now."""
        now = self._now()
        self._advance(now)
        held = {link: int(rate) for link, rate in usage.items() if link in self.base and rate > 0}
        if held == self.outside:
            return Decisions(now, (), ())
        self.outside = held
        self.capacities = {link: max(0, cap - held.get(link, 0)) for link, cap in self.base.items()}
        return self._settle(now)

    def progress(self, id: str, remaining_bytes: float) -> None:
        """A running migration reports how many bytes it still has to move."""
        job = self._running.get(id)
        if job is None:
            raise UnknownMigrationError(id, "running")
        if remaining_bytes < 0:
            raise ValueError(f"remaining_bytes must be >= 0, got {remaining_bytes}")
        self._advance(self._now())
        job.remaining = float(remaining_bytes)

    # reading

    def status(self) -> Status:
        """Running migrations and the queue, with the simulation's expected starts."""
        now = self._now()
        self._advance(now)
        running = list(self._running.values())
        sim = simulate(self.policy, self.capacities, running, self._queue, now)
        rates = model_rates(self.policy, self.capacities, running)
        run_view = tuple(
            RunningEntry(
                id=job.id,
                started_s=job.started_s if job.started_s is not None else now,
                rate_bps=self._granted[job.id][0],
                floor_bps=self._granted[job.id][1],
                model_rate_bps=rates[job.id],
                remaining_bytes=job.remaining,
                expected_finish_s=sim[job.id].finish_s,
                deadline_s=job.req.deadline_s,
            )
            for job in running
        )
        waits = self._waiting_for(running)
        queue = tuple(
            QueueEntry(
                id=job.id,
                position=i,
                expected_start_s=sim[job.id].start_s,
                expected_finish_s=sim[job.id].finish_s,
                waiting_for=waits[job.id],
                deadline_s=job.req.deadline_s,
                submitted_s=job.submitted_s,
            )
            for i, job in enumerate(self._queue, start=1)
        )
        return Status(now, self.policy, run_view, queue)

    def queue(self) -> tuple[QueueEntry, ...]:
        return self.status().queue

    def grant_of(self, id: str) -> Grant:
        """What a running migration is granted now."""
        if id not in self._running:
            raise UnknownMigrationError(id, "running")
        rate, floor = self._granted[id]
        return Grant(id, rate, floor)

    # internals

    def _now(self) -> float:
        return float(self._clock())

    def _advance(self, now: float) -> None:
        """Account the running migrations' progress at their modelled rates up to `now`."""
        dt = now - self._t
        if dt > 0:
            running = list(self._running.values())
            for jid, rate in model_rates(self.policy, self.capacities, running).items():
                job = self._running[jid]
                moved = job.remaining if math.isinf(rate) else rate * dt / 8
                job.remaining = max(0.0, job.remaining - moved)
        self._t = max(self._t, now)

    def _end(self, id: str) -> Decisions:
        if id not in self._running:
            raise UnknownMigrationError(id, "running")
        now = self._now()
        self._advance(now)
        del self._running[id]
        del self._granted[id]
        return self._settle(now)

    def _settle(self, now: float) -> Decisions:
        """Start what the policy starts now and report the grants that changed."""
        self._advance(now)
        self._queue.sort(key=lambda j: priority(self.policy, j))
        running = list(self._running.values())
        starts = choose_starts(self.policy, self.capacities, running, self._queue, now)
        for job in starts:
            self._queue.remove(job)
            job.started_s = now
            self._running[job.id] = job
        granted = grants(self.policy, self.capacities, list(self._running.values()))
        aware = self.policy is Policy.NETWORK_AWARE
        new = {
            jid: (rate, self._running[jid].floor if aware and rate is not None else None)
            for jid, rate in granted.items()
        }
        started_ids = {job.id for job in starts}
        started = tuple(Grant(job.id, *new[job.id]) for job in starts)
        rerated = tuple(
            Grant(jid, *grant)
            for jid, grant in new.items()
            if jid not in started_ids and self._granted.get(jid) != grant
        )
        self._granted = new
        return Decisions(now, started, rerated)

    def _waiting_for(self, running: Sequence[Job]) -> dict[str, tuple[DirectedLink, ...]]:
        """Per queued job, the links on which it does not fit now (empty: it waits its turn)."""
        out: dict[str, tuple[DirectedLink, ...]] = {}
        if self.policy is Policy.NETWORK_AWARE:
            for job in self._queue:
                out[job.id] = tuple(short_links(self.capacities, running, job))
            return out
        busy = {link for job in running for link in job.links}
        for job in self._queue:
            out[job.id] = tuple(link for link in job.links if link in busy)
        return out
