"""What the concurrent-migration scheduler takes and gives: requests, policies, grants, the
queue as reported, predictions, and its typed errors. Plain frozen data, no behaviour beyond
validation; `orchestration.scheduler` documents how they are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

# A directed link (u, v) between two switches, as `topology` names it: capacity applies to each
# direction separately (topology.model.Link), so a->b and b->a are two different resources.
DirectedLink = tuple[str, str]
Kind = Literal["instance", "chain"]
KINDS: tuple[Kind, ...] = ("instance", "chain")


class Policy(StrEnum):
    """How concurrent migrations share links (the values are what the CLI and REST accept)."""

    BEST_EFFORT = "best-effort"
    ONE_PER_LINK = "one-per-link"
    NETWORK_AWARE = "network-aware"


@dataclass(frozen=True)
class MigrationRequest:
    """One migration (of an instance or of a whole chain) asked of the scheduler.

    - `links`: the directed links its transfer crosses, each once (for a chain: the union of
      its functions' transfer paths; `scheduler.links_of_path` turns a switch path into them).
      Empty when source and destination hang off the same switch: nothing to share.
    - `predicted_bytes`: what it is predicted to move in all (pre-copy rounds and final).
    - `budget_ms`: its downtime budget.
    - `min_rate_bps`: the rate its final iteration needs to fit the budget
      (`scheduler.min_rate_bps` computes it with migration.stoprule.final_rate_bps).
    - `deadline_s`: absolute clock seconds by which it should be done (e.g. the user's predicted
      time to leave coverage); None: no deadline, scheduled after every request that has one.
    - `submitted_s`: when it was asked for (clock seconds); None: `Scheduler.submit` stamps it
      with its clock.
    """

    id: str
    kind: Kind
    links: tuple[DirectedLink, ...]
    predicted_bytes: int
    budget_ms: float
    min_rate_bps: int
    deadline_s: float | None = None
    submitted_s: float | None = None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise InvalidRequestError(self.id, problem)


def _problem(r: MigrationRequest) -> str:
    if not r.id:
        return "empty id"
    if r.kind not in KINDS:
        return f"kind must be one of {KINDS}, got {r.kind!r}"
    if len(set(r.links)) != len(r.links):
        return f"a link is listed twice in {r.links}"
    for link in r.links:
        if len(link) != 2 or link[0] == link[1]:
            return f"{link!r} is not a directed link (u, v) between two switches"
    if r.predicted_bytes < 0:
        return f"predicted_bytes must be >= 0, got {r.predicted_bytes}"
    if not (r.budget_ms > 0 and math.isfinite(r.budget_ms)):
        return f"budget_ms must be > 0, got {r.budget_ms}"
    if r.min_rate_bps <= 0:
        return f"min_rate_bps must be > 0, got {r.min_rate_bps}"
    for name in ("deadline_s", "submitted_s"):
        value = getattr(r, name)
        if value is not None and not math.isfinite(value):
            return f"{name} must be finite, got {value}"
    return ""


@dataclass(frozen=True)
class Grant:
    """A migration told to start (or whose rate changed): `rate_bps` is the rate to reserve on
    every one of its links, None when nothing is reserved (the baselines, or no link crossed);
    `floor_bps` is the part of it guaranteed until it ends (network-aware only, else None)."""

    id: str
    rate_bps: int | None
    floor_bps: int | None = None


@dataclass(frozen=True)
class Decisions:
    """What follows an event, at clock `at_s`: who starts now (`started`, in the order to start
    them), whose reservation changes (`rerated`: network-aware only, new rate; a running one's
    rate never goes below its floor), and which ids were put in the queue (`queued`)."""

    at_s: float
    started: tuple[Grant, ...] = ()
    rerated: tuple[Grant, ...] = ()
    queued: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueEntry:
    """A waiting request as reported: `position` 1 is the next to start (policy order);
    `expected_start_s`/`expected_finish_s` come from the deterministic simulation (None: it
    would never start as predicted, e.g. a link that makes no progress); `waiting_for` the
    links on which it does not fit now."""

    id: str
    position: int
    expected_start_s: float | None
    expected_finish_s: float | None
    waiting_for: tuple[DirectedLink, ...]
    deadline_s: float | None
    submitted_s: float


@dataclass(frozen=True)
class RunningEntry:
    """A running migration as the scheduler models it: `rate_bps`/`floor_bps` as granted (None
    for the baselines), `model_rate_bps` the rate the estimates assume it moves at now (the
    grant, the link alone for one-per-link, the max-min fair share for best-effort)."""

    id: str
    started_s: float
    rate_bps: int | None
    floor_bps: int | None
    model_rate_bps: float
    remaining_bytes: float
    expected_finish_s: float | None
    deadline_s: float | None


@dataclass(frozen=True)
class Status:
    at_s: float
    policy: Policy
    running: tuple[RunningEntry, ...]
    queue: tuple[QueueEntry, ...]


@dataclass(frozen=True)
class Prediction:
    """What the simulation predicts for one request: when it starts and finishes, the mean
    rate at which it moves its last min_rate x budget bytes (the largest final iteration its
    min rate was sized for), and so whether it meets its downtime budget (that rate >= its min
    rate) and its deadline (None: it has none)."""

    id: str
    start_s: float | None
    finish_s: float | None
    final_rate_bps: float | None
    budget_met: bool
    deadline_met: bool | None


class SchedulerError(Exception):
    """Base class of the scheduler's errors."""


class InvalidRequestError(SchedulerError, ValueError):
    """A request's fields are inconsistent (negative bytes, a link listed twice, ...)."""

    def __init__(self, id: str, reason: str) -> None:
        self.id = id
        self.reason = reason
        super().__init__(f"migration request {id!r} is invalid: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.id, self.reason))


class UnknownMigrationError(SchedulerError, KeyError):
    """No running or queued migration has this id (`where`: what the event needed)."""

    def __init__(self, id: str, where: str = "running or queued") -> None:
        self.id = id
        self.where = where
        super().__init__(id, where)

    def __str__(self) -> str:
        return f"no {self.where} migration {self.id!r}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.id, self.where))


class DuplicateMigrationError(SchedulerError):
    """A request reuses the id of a migration still running or queued (`state`)."""

    def __init__(self, id: str, state: str) -> None:
        self.id = id
        self.state = state
        super().__init__(f"migration {id!r} is already {state}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.id, self.state))


class UnknownLinkInRequestError(SchedulerError):
    """A request crosses a directed link the scheduler has no capacity for."""

    def __init__(self, id: str, link: DirectedLink) -> None:
        self.id = id
        self.link = link
        super().__init__(f"migration {id!r} crosses {link[0]}->{link[1]}, an unknown link")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.id, self.link))


class NeverFitsError(SchedulerError):
    """Network-aware: a request's minimum rate exceeds a link's whole capacity, so it could
    never be admitted; it is refused rather than queued forever."""

    def __init__(self, id: str, link: DirectedLink, min_rate_bps: int, capacity_bps: int) -> None:
        self.id = id
        self.link = link
        self.min_rate_bps = min_rate_bps
        self.capacity_bps = capacity_bps
        super().__init__(
            f"migration {id!r} needs {min_rate_bps} bit/s but link {link[0]}->{link[1]} has "
            f"only {capacity_bps} bit/s in all: it can never meet its downtime budget there"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.id, self.link, self.min_rate_bps, self.capacity_bps))
