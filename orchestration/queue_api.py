"""`/v1/migration-queue`: many migrations at once, scheduled (orchestration.migration_queue).

Mounted beside `/v1/migrations` and `/v1/chain-migrations` (orchestration.service) and sharing
their claims: a queued or running job's instances count as being migrated. A batch is checked
whole before anything changes (unknown instance, chain, site, strategy or pattern: 404; one
busy, not running, already there, a policy change while jobs run or wait: 409; a site agent
that does not answer: 503; invalid: 422).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from controller.api_models import Conflict
from controller.rest import API_PREFIX, ERRORS
from orchestration.migration_queue import JobView, MigrationQueue, QueueError
from orchestration.queue_jobs import QueueJob
from orchestration.queue_models import (
    ChainJob,
    InstanceJob,
    QueueJobView,
    QueueSubmitRequest,
    QueueSubmitView,
    QueueView,
    SubmittedJob,
)
from orchestration.schedule_models import SchedulerError
from orchestration.service import STARTS, api_error


def job_of(req: InstanceJob | ChainJob) -> QueueJob:
    common: dict[str, Any] = {
        "to": req.to,
        "strategy": req.strategy.value,
        "budget_ms": req.budget_ms,
        "deadline_s": req.deadline_s,
        "hold": req.hold.value,
    }
    if isinstance(req, ChainJob):
        return QueueJob("chain", req.chain, pattern=req.pattern.value, **common)
    return QueueJob("instance", req.instance, **common)


def submit(queue: MigrationQueue, req: QueueSubmitRequest) -> QueueSubmitView:
    jobs = [job_of(j) for j in req.jobs]
    try:
        done = queue.submit(jobs, policy=req.policy)
    except (QueueError, SchedulerError) as exc:
        raise Conflict(str(exc)) from exc
    except Conflict:
        raise
    except Exception as exc:
        raise api_error(exc) from exc
    return QueueSubmitView(
        policy=queue.policy,
        jobs=[SubmittedJob.model_validate(asdict(s)) for s in done],
    )


def _job_view(v: JobView) -> QueueJobView:
    data = asdict(v)
    data["waiting_for"] = [list(link) for link in v.waiting_for]
    data["members"] = list(v.members)
    return QueueJobView.model_validate(data)


def view(queue: MigrationQueue) -> QueueView:
    st = queue.state()
    return QueueView(
        policy=queue.policy,
        running=[_job_view(v) for v in st.running],
        queue=[_job_view(v) for v in st.queue],
        ended=[_job_view(v) for v in st.ended],
    )


def migration_queue_router(queue: MigrationQueue) -> APIRouter:
    """`/v1/migration-queue`: submit a batch (202), the queue."""
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]}, tags=["migrations"])

    @router.post(
        "/migration-queue",
        response_model=QueueSubmitView,
        status_code=202,
        responses=STARTS,
    )
    def submit_to_queue(req: QueueSubmitRequest) -> QueueSubmitView:
        """Submit 1 to 64 migrations (instances or chains) that arrive together: the policy
        starts what it can at once and queues the rest; each job's id, whether it started or
        is queued, its position and expected start. 404: unknown instance, chain, site,
        strategy or pattern; 409: one is busy, not running or there already, or the policy
        cannot change now; 503: a site agent does not answer. Nothing changes on a refusal."""
        return submit(queue, req)

    @router.get("/migration-queue", response_model=QueueView)
    def migration_queue() -> QueueView:
        """Running jobs (rate, floor, expected finish), the queue (position, expected start
        and finish, the links each waits for) and ended jobs (outcome, error)."""
        return view(queue)

    return router
