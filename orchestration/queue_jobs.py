"""What the migration queue (`orchestration.migration_queue`) is asked to do, and how a job
becomes a scheduler request: the instances it moves, the directed links its copies cross, the
bytes it is predicted to move and the minimum rate its final iteration needs.

- Links: for each instance, the shortest switch path (topology.paths, hops) from the site it
  runs at to the destination, as directed links (the copy and post-copy pages flow that way);
  a chain's: the union of its functions' paths.
- Predicted bytes: the instance's `memory` in the scenario (a chain: its functions' sum).
- Min rate: `scheduler.min_rate_bps` of the memory, the budget and the engine's dump and
  restore estimates: the worst case of the final iteration (a pre-copy's last delta is at most
  the memory). A chain's: the sum of its functions' (wait-for-me freezes them all at once).
  Where that exceeds what the path can carry in all, it is cut to the path's bottleneck
  capacity, and the job is marked `budget_at_risk`: it will run alone at the full link rather
  than be refused (the scheduler would never admit it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ground.defaults import DEFAULT_STRATEGY, DOWNTIME_BUDGET_MS, HOLD_MODE
from migration.engine import DUMP_ESTIMATE_S, RESTORE_ESTIMATE_S
from migration.strategies import strategy as strategy_named
from orchestration.chain_record import Pattern
from orchestration.orchestrator import NotServing, Orchestrator, UnknownName
from orchestration.schedule_models import DirectedLink, MigrationRequest
from orchestration.scheduler import links_of_path, min_rate_bps
from topology.errors import NoPathError
from topology.paths import shortest_path

JobKind = Literal["instance", "chain"]


@dataclass(frozen=True)
class QueueJob:
    """One migration asked of the queue: an instance's (`kind="instance"`, `name` the instance)
    or a whole chain's (`kind="chain"`, `name` the chain, `pattern` its pattern) to site `to`.
    `deadline_s`: seconds from submission by which it should be done (None: none, scheduled
    after every job that has one). `id`: the job's id (None: one is made, a migration id)."""

    kind: JobKind
    name: str
    to: str
    strategy: str = DEFAULT_STRATEGY
    budget_ms: float = DOWNTIME_BUDGET_MS
    deadline_s: float | None = None
    pattern: str = Pattern.WAIT_FOR_ME.value
    hold: str = HOLD_MODE
    id: str | None = None


@dataclass(frozen=True)
class Resolved:
    """A job checked against the scenario and the sites: what it moves and what it asks."""

    job: QueueJob
    members: tuple[str, ...]  # the instances it moves (a chain's functions, in order)
    sources: Mapping[str, str]  # instance -> the site it runs at now
    links: tuple[DirectedLink, ...]
    predicted_bytes: int
    min_rate_bps: int
    member_min_rates: Mapping[str, int]
    budget_at_risk: bool

    def request(self, id: str, deadline_abs_s: float | None) -> MigrationRequest:
        return MigrationRequest(
            id=id,
            kind=self.job.kind,
            links=self.links,
            predicted_bytes=self.predicted_bytes,
            budget_ms=self.job.budget_ms,
            min_rate_bps=self.min_rate_bps,
            deadline_s=deadline_abs_s,
        )


def members_of(orch: Orchestrator, job: QueueJob) -> tuple[str, ...]:
    """The instances `job` moves; UnknownName if the instance or chain is not the scenario's."""
    if job.kind == "chain":
        try:
            return tuple(orch.sc.chain(job.name).functions)
        except KeyError:
            known = ", ".join(c.name for c in orch.sc.chains) or "none"
            raise UnknownName(f"no chain called {job.name!r} (chains: {known})") from None
    orch.instance(job.name)
    return (job.name,)


def check_names(orch: Orchestrator, job: QueueJob) -> tuple[str, ...]:
    """The job's names (instance or chain, site, strategy, pattern), without asking a site."""
    members = members_of(orch, job)
    try:
        orch.sc.site(job.to)
    except KeyError:
        raise UnknownName(f"no site called {job.to!r}") from None
    try:
        strategy_named(job.strategy)
    except ValueError as exc:
        raise UnknownName(str(exc)) from None
    if job.kind == "chain":
        try:
            Pattern(job.pattern)
        except ValueError:
            known = ", ".join(p.value for p in Pattern)
            raise UnknownName(f"unknown pattern {job.pattern!r} (known: {known})") from None
    return members


def resolve(orch: Orchestrator, job: QueueJob, capacities: Mapping[DirectedLink, int]) -> Resolved:
    """Check `job` (names; every instance it moves runs, and not at the destination: asks the
    sites) and size its request (see the module docstring). Raises OrchestratorError."""
    members = check_names(orch, job)
    sources: dict[str, str] = {}
    links: list[DirectedLink] = []
    rates: dict[str, int] = {}
    total_bytes = 0
    for name in members:
        source = orch.where(name)
        if source is None:
            raise NotServing(f"{name} is not running at any site")
        if source == job.to:
            raise NotServing(f"{name} already runs at {job.to}")
        sources[name] = source
        for link in _path_links(orch, source, job.to):
            if link not in links:
                links.append(link)
        memory = orch.sc.instance(name).memory
        total_bytes += memory
        rates[name] = min_rate_bps(memory, job.budget_ms, DUMP_ESTIMATE_S, RESTORE_ESTIMATE_S)
    wanted = sum(rates.values())
    bottleneck = min((capacities.get(link, 0) for link in links), default=None)
    at_risk = bottleneck is not None and wanted > bottleneck
    rate = max(1, min(wanted, bottleneck)) if bottleneck is not None else wanted
    return Resolved(
        job=job,
        members=members,
        sources=sources,
        links=tuple(links),
        predicted_bytes=total_bytes,
        min_rate_bps=rate,
        member_min_rates=rates,
        budget_at_risk=at_risk,
    )


def _path_links(orch: Orchestrator, source: str, to: str) -> tuple[DirectedLink, ...]:
    try:
        return links_of_path(shortest_path(orch.model, source, to))
    except NoPathError as exc:
        raise NotServing(f"no path from {source} to {to}: {exc}") from None


def shares(total_bps: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `total_bps` among members in proportion to `weights`, rounded down: the shares
    never sum above the total (a share may be 0 when the total is tiny)."""
    weight_sum = sum(max(1, w) for w in weights.values())
    return {n: total_bps * max(1, w) // weight_sum for n, w in weights.items()}
