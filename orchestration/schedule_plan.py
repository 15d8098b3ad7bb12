"""The scheduler's pure core: order, who starts, at what rate, and the deterministic simulation
of completions that gives expected starts and the "what would happen" estimates.

Everything here works on `Job` records handed in and copies them before changing them; the
live `Scheduler` (orchestration.scheduler) and `estimate` both call the same `choose_starts`
and `simulate`, so what the queue reports is what the scheduler would do if the predictions
held. See orchestration.scheduler for the policies in words.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from orchestration.schedule_models import DirectedLink, MigrationRequest, Policy

# Two predicted start times closer than this (relative, and absolute below 1 s) are the same:
# the backfill rule must not refuse a start for a rounding difference.
TIME_EPS = 1e-9
# A job with fewer bytes left than this is done (float progress never lands exactly on 0).
DONE_BYTES = 1e-6

Capacities = Mapping[DirectedLink, int]


@dataclass
class Job:
    """A request as the core tracks it: `seq` breaks ties in submission order, `floor` is the
    rate guaranteed to it under network-aware (its min rate, raised by boosts), `remaining`
    the bytes it is predicted to have left, `started_s` None while it waits."""

    req: MigrationRequest
    seq: int
    submitted_s: float
    floor: int
    remaining: float
    started_s: float | None = None

    @property
    def id(self) -> str:
        return self.req.id

    @property
    def links(self) -> tuple[DirectedLink, ...]:
        return self.req.links


def new_job(req: MigrationRequest, seq: int, submitted_s: float) -> Job:
    return Job(req, seq, submitted_s, req.min_rate_bps, float(req.predicted_bytes))


def priority(policy: Policy, job: Job) -> tuple[bool, float, float, int]:
    """The order of the queue (and, network-aware, of the spare capacity among running jobs):
    earliest deadline first, no deadline last, then submission time, then submission order,
    for network-aware; submission (FIFO) for the baselines."""
    if policy is Policy.NETWORK_AWARE:
        deadline = job.req.deadline_s
        return (deadline is None, deadline or 0.0, job.submitted_s, job.seq)
    return (False, 0.0, job.submitted_s, job.seq)


def floors_used(running: Iterable[Job]) -> dict[DirectedLink, int]:
    """The sum of the running jobs' floors on each link they cross."""
    used: dict[DirectedLink, int] = {}
    for job in running:
        for link in job.links:
            used[link] = used.get(link, 0) + job.floor
    return used


def grants(policy: Policy, caps: Capacities, running: Sequence[Job]) -> dict[str, int | None]:
    """The rate to reserve for each running job: None for the baselines and for a job that
    crosses no link. Network-aware: every job gets its floor; what the floors leave on each
    link goes to the running jobs in `priority` order, each taking all that is left on its
    tightest link (so the most urgent migration runs as fast as the links allow and the others
    keep their guaranteed floor). The sum on a link never exceeds its capacity."""
    if policy is not Policy.NETWORK_AWARE:
        return {job.id: None for job in running}
    left = {link: caps[link] - used for link, used in floors_used(running).items()}
    out: dict[str, int | None] = {}
    for job in sorted(running, key=lambda j: priority(policy, j)):
        if not job.links:
            out[job.id] = None
            continue
        extra = max(0, min(left[link] for link in job.links))
        for link in job.links:
            left[link] -= extra
        out[job.id] = job.floor + extra
    return out


def max_min_fair(caps: Capacities, running: Sequence[Job]) -> dict[str, float]:
    """Best-effort's model: the max-min fair rates of the running transfers (progressive
    filling: the link with the smallest equal share fixes the rate of every transfer on it).
    On one link, n transfers each get capacity / n."""
    active = {job.id: job.links for job in running if job.links}
    left = {link: float(caps[link]) for links in active.values() for link in links}
    rates: dict[str, float] = {}
    while active:
        users = Counter(link for links in active.values() for link in links)
        share, bottleneck = min((left[link] / n, link) for link, n in users.items())
        share = max(share, 0.0)
        for jid in [jid for jid, links in active.items() if bottleneck in links]:
            rates[jid] = share
            for link in active.pop(jid):
                left[link] -= share
    return rates


def model_rates(policy: Policy, caps: Capacities, running: Sequence[Job]) -> dict[str, float]:
    """The rate (bit/s) each running job is assumed to move at until the next event: the grant
    (network-aware), its links' capacity (one-per-link: it is alone on them), the max-min fair
    share (best-effort). A job that crosses no link moves at an unbounded rate (math.inf)."""
    if policy is Policy.BEST_EFFORT:
        fair = max_min_fair(caps, running)
        return {job.id: fair.get(job.id, math.inf) for job in running}
    if policy is Policy.ONE_PER_LINK:
        return {
            job.id: float(min((caps[link] for link in job.links), default=math.inf))
            for job in running
        }
    granted = grants(policy, caps, running)
    return {jid: math.inf if rate is None else float(rate) for jid, rate in granted.items()}


def short_links(caps: Capacities, running: Sequence[Job], job: Job) -> list[DirectedLink]:
    """Network-aware: the links of `job` on which it has no room for its floor now (empty: it
    may start). Its room on a link is the capacity minus the grants of the running migrations
    more urgent than it and minus the floors of the less urgent ones: it may take a less urgent
    migration's spare, never a more urgent one's, nor anyone's floor."""
    policy = Policy.NETWORK_AWARE
    granted = grants(policy, caps, running)
    key = priority(policy, job)
    taken: dict[DirectedLink, int] = {}
    for other in running:
        rate = granted[other.id]
        if rate is None:
            continue
        share = rate if priority(policy, other) < key else other.floor
        for link in other.links:
            taken[link] = taken.get(link, 0) + share
    return [link for link in job.links if caps[link] - taken.get(link, 0) < job.floor]


def choose_starts(
    policy: Policy,
    caps: Capacities,
    running: Sequence[Job],
    queue: Sequence[Job],
    now: float,
    backfill: bool = True,
) -> list[Job]:
    """The queued jobs (`queue`, in `priority` order) that start at `now`, in order.

    - best-effort: all of them.
    - one-per-link: in FIFO order, a job starts when none of its links carries a running job
      and no job ahead of it in the queue waits for one of them (per-link FIFO: a later job
      never overtakes an earlier one on a link they share; disjoint links run in parallel).
    - network-aware: in EDF order, a job starts if it has room for its floor on each of its
      links (`short_links`). Behind the first one that has not, a job that has room starts only
      if `backfill` and the simulation (without backfilling) predicts that no job ahead of it
      starts later because of it.
    """
    if policy is Policy.BEST_EFFORT:
        return list(queue)
    if policy is Policy.ONE_PER_LINK:
        claimed: set[DirectedLink] = {link for job in running for link in job.links}
        starts = []
        for job in queue:
            if claimed.isdisjoint(job.links):
                starts.append(job)
            claimed.update(job.links)
        return starts
    started: list[Job] = []
    waiting: list[Job] = []  # the jobs ahead that do not fit
    baseline: dict[str, float | None] = {}
    for job in queue:
        now_running = [*running, *started]
        if short_links(caps, now_running, job):
            waiting.append(job)
            baseline = {}  # one more job ahead of the next candidates: its start counts too
            continue
        if waiting:
            if not backfill:
                break
            if not baseline:
                baseline = _starts_of(policy, caps, now_running, waiting, now)
            tried = _starts_of(policy, caps, [*now_running, _started(job, now)], waiting, now)
            if not all(_not_later(tried[j.id], baseline[j.id]) for j in waiting):
                continue
            baseline = {}  # the running set changed: recompute for the next candidate
        started.append(job)
    return started


def _started(job: Job, now: float) -> Job:
    return replace(job, started_s=now)


def _not_later(t: float | None, base: float | None) -> bool:
    if base is None:
        return True
    if t is None:
        return False
    return t <= base + TIME_EPS * max(1.0, abs(base))


def _starts_of(
    policy: Policy, caps: Capacities, running: Sequence[Job], queue: Sequence[Job], now: float
) -> dict[str, float | None]:
    sim = simulate(policy, caps, running, queue, now, backfill=False)
    return {job.id: sim[job.id].start_s for job in queue}


@dataclass
class Simulated:
    """One job's predicted start and finish, and the mean rate of its final iteration
    (`final_rate`): what decides whether it meets its downtime budget."""

    start_s: float | None = None
    finish_s: float | None = None
    final_rate_bps: float | None = None


def simulate(
    policy: Policy,
    caps: Capacities,
    running: Sequence[Job],
    queue: Sequence[Job],
    now: float,
    arrivals: Sequence[Job] = (),
    backfill: bool = True,
) -> dict[str, Simulated]:
    """Play the schedule forward from `now`: rates (`model_rates`) are constant between events;
    an event is a predicted completion (remaining bytes / rate) or an arrival (a job of
    `arrivals` at its submission time). At each event the finished jobs leave and
    `choose_starts` picks who starts. Deterministic; the inputs are not changed.

    Returns every job's `Simulated`; start/finish None when it would never happen (a job
    stuck behind a link that moves nothing).
    """
    run = [replace(job) for job in running]
    waiting = [replace(job) for job in queue]
    pending = sorted((replace(job) for job in arrivals), key=lambda j: (j.submitted_s, j.seq))
    out = {job.id: Simulated(start_s=job.started_s) for job in run}
    out.update({job.id: Simulated() for job in (*waiting, *pending)})
    history: dict[str, list[tuple[float, float]]] = {}  # per job: (duration, rate) intervals
    t = now
    rates: dict[str, float] = {}
    while True:
        while pending and pending[0].submitted_s <= t:
            waiting.append(pending.pop(0))
        waiting.sort(key=lambda j: priority(policy, j))
        for job in choose_starts(policy, caps, run, waiting, t, backfill):
            waiting.remove(job)
            job.started_s = t
            out[job.id].start_s = t
            run.append(job)
        rates = model_rates(policy, caps, run)
        until = {job.id: _time_left(job, rates[job.id]) for job in run}
        step = min(until.values(), default=math.inf)
        if pending:
            step = min(step, pending[0].submitted_s - t)
        if math.isinf(step):
            return out  # nothing left, or nothing that moves
        step = max(step, 0.0)
        t += step
        still = []
        for job in run:
            rate = rates[job.id]
            if step > 0:
                history.setdefault(job.id, []).append((step, rate))
            if until[job.id] <= step:
                out[job.id].finish_s = t
                out[job.id].final_rate_bps = final_rate(job.req, history.get(job.id, []))
                continue
            job.remaining = max(0.0, job.remaining - rate * step / 8)
            still.append(job)
        run = still


def final_bytes(req: MigrationRequest) -> float:
    """The final iteration its min rate was sized for, at most: min rate x budget (the budget
    also holds the dump and the restore, so the real final iteration is smaller)."""
    return req.min_rate_bps * req.budget_ms / 1000 / 8


def final_rate(req: MigrationRequest, history: Sequence[tuple[float, float]]) -> float:
    """The mean rate at which a job moved its last `final_bytes` (all its bytes if fewer),
    from its (duration, rate) intervals; math.inf if it took no time."""
    want = min(final_bytes(req), float(req.predicted_bytes))
    moved = took = 0.0
    for duration, rate in reversed(history):
        if moved >= want:
            break
        if math.isinf(rate):
            return math.inf
        part = min(duration, (want - moved) * 8 / rate) if rate > 0 else duration
        moved += rate * part / 8
        took += part
    return math.inf if took <= 0 else moved * 8 / took


def _time_left(job: Job, rate: float) -> float:
    if job.remaining <= DONE_BYTES or math.isinf(rate):
        return 0.0
    if rate <= 0:
        return math.inf
    return job.remaining * 8 / rate
