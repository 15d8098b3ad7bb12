"""The data of `/v1/migration-queue` (pydantic): a batch of jobs for the concurrent-migration
scheduler and the queue as it stands. Names, strategies, patterns, budgets and holds are bounded
as `/v1/migrations` and `/v1/chain-migrations` bound them (orchestration.api_models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ground.defaults import DEFAULT_STRATEGY, DOWNTIME_BUDGET_MS, HOLD_MODE
from orchestration.api_models import MAX_BUDGET_MS, HoldMode, Name, PatternName, StrategyName
from orchestration.migration_queue import MAX_JOBS
from orchestration.schedule_models import Policy

MAX_DEADLINE_S = 86_400.0

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Job(BaseModel):
    model_config = _STRICT

    to: Name = Field(description="destination site")
    strategy: StrategyName = Field(default=StrategyName(DEFAULT_STRATEGY), strict=False)
    budget_ms: float = Field(
        default=DOWNTIME_BUDGET_MS,
        gt=0,
        le=MAX_BUDGET_MS,
        allow_inf_nan=False,
        description="downtime budget (a chain: of each function)",
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DEADLINE_S,
        allow_inf_nan=False,
        description="seconds from now by which it should be done (e.g. the user's predicted "
        "time to leave coverage); network-aware runs the earliest deadline first, jobs "
        "without one last",
    )
    hold: HoldMode = Field(default=HoldMode(HOLD_MODE), strict=False)


class InstanceJob(_Job):
    """Migrate one instance."""

    instance: Name


class ChainJob(_Job):
    """Migrate a whole chain with one of seed 000's patterns."""

    chain: Name
    pattern: PatternName = Field(default=PatternName("wait-for-me"), strict=False)


class QueueSubmitRequest(BaseModel):
    """Jobs that arrive together: ordered by the policy among themselves before any starts."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "jobs": [
                        {"instance": "counter", "to": "mec2", "deadline_s": 30},
                        {"chain": "pair", "to": "mec2", "pattern": "async"},
                    ]
                },
                {"policy": "one-per-link", "jobs": [{"instance": "web", "to": "mec2"}]},
            ]
        },
    )

    policy: Policy | None = Field(
        default=None,
        strict=False,
        description="the queue's policy from this batch on (only while nothing runs or "
        "waits, else 409); absent: the queue's current one",
    )
    jobs: list[InstanceJob | ChainJob] = Field(min_length=1, max_length=MAX_JOBS)


class SubmittedJob(BaseModel):
    id: str
    kind: Literal["instance", "chain"]
    name: str
    state: Literal["started", "queued"]
    position: int | None = Field(description="in the queue, 1 = next to start; null: started")
    expected_start_in_s: float | None = Field(
        description="seconds from now (0: started; null: no prediction)"
    )


class QueueSubmitView(BaseModel):
    policy: Policy
    jobs: list[SubmittedJob]


class QueueJobView(BaseModel):
    """One job; every `*_in_s` is seconds from the answer's moment (negative: past)."""

    id: str
    kind: Literal["instance", "chain"]
    name: str
    to: str
    members: list[str] = Field(description="the instances it moves")
    state: Literal["queued", "running", "done", "rolled_back", "failed"]
    budget_ms: float
    budget_at_risk: bool = Field(
        description="its final iteration needs more than its path can carry: it runs at the "
        "full link and may miss its budget"
    )
    deadline_in_s: float | None
    position: int | None = None
    expected_start_in_s: float | None = None
    expected_finish_in_s: float | None = None
    waiting_for: list[list[str]] = Field(
        default=[], description="directed links [from, to] on which it does not fit now"
    )
    rate_bps: int | None = Field(default=None, description="granted (null: nothing reserved)")
    floor_bps: int | None = Field(default=None, description="guaranteed part of the grant")
    model_rate_bps: float | None = Field(
        default=None, description="the rate the scheduler's estimates assume"
    )
    started_in_s: float | None = None
    ended_in_s: float | None = None
    error: str | None = None


class QueueView(BaseModel):
    """The queue: running jobs, waiting ones in order, ended ones."""

    policy: Policy
    running: list[QueueJobView]
    queue: list[QueueJobView]
    ended: list[QueueJobView]
