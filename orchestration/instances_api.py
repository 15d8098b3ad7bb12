"""The scenario's instances through the controller's REST API: `GET /v1/status` (every instance),
`GET /v1/instances/{name}`, `POST /v1/instances/{name}/deploy`, `DELETE /v1/instances/{name}`.

Mounted beside `/v1/migrations` (orchestration.service.mount) over the same orchestrator and site
agents. A deploy or stop claims the instance like a migration does: while one of the three is in
progress the others get 409. The last migration of each instance is the last one started through
this controller (its `/v1/migrations` records, kept since it started). The controller's own
`GET /v1/instances` lists the hosts it forwards to, hence `/v1/status` for the list of these.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from controller.api_models import ApiError, NotFound
from controller.rest import API_PREFIX, ERRORS
from migration.site import SiteError, SiteRefused, SiteUnreachable
from orchestration.api_models import MAX_NAME_LENGTH
from orchestration.instance_models import (
    MAX_LOG_LINES,
    DeployRequest,
    InstanceStatusView,
    LogsView,
    StopView,
)
from orchestration.orchestrator import NotServing, OrchestratorError, UnknownName
from orchestration.placement import InstanceStatus, LastMigration, StopReport, last_migrations
from orchestration.service import UNAVAILABLE, MigrationService, Unavailable, api_error
from topology.scenario import NAME_PATTERN as SCENARIO_NAME_PATTERN


class SiteFailed(ApiError):
    """A site agent that failed the step (502): its message, e.g. why the service did not
    start, is the error's."""

    status = 502


class InstanceService:
    """Status, deploy and stop of the scenario's instances, beside a `MigrationService`."""

    def __init__(self, migrations: MigrationService) -> None:
        self.migrations = migrations
        self.orch = migrations.orch

    def _last(self) -> dict[str, LastMigration]:
        return last_migrations(self.migrations.list())

    def all(self) -> list[InstanceStatusView]:
        return [InstanceStatusView.of(s) for s in self.orch.status(self._last())]

    def one(self, name: str) -> InstanceStatusView:
        try:
            home = self.orch.instance(name).site
        except UnknownName as exc:
            raise NotFound(str(exc), instance=name) from exc
        status = InstanceStatus(name, home, self.orch.placement(name), self._last().get(name))
        return InstanceStatusView.of(status)

    def deploy(self, name: str, req: DeployRequest) -> InstanceStatusView:
        with self.migrations.claimed(name, "deployed"):
            try:
                self.orch.deploy(name, req.site)
            except (OrchestratorError, SiteError) as exc:
                raise _site_error(exc) from exc
        return self.one(name)

    def logs(self, name: str, lines: int) -> LogsView:
        try:
            site, said = self.orch.logs(name, lines)
        except UnknownName as exc:
            raise NotFound(str(exc), instance=name) from exc
        except NotServing as exc:
            raise NotFound(str(exc), instance=name) from exc
        except (OrchestratorError, SiteError) as exc:
            raise _site_error(exc) from exc
        return LogsView(instance=name, site=site, lines=said)

    def stop(self, name: str) -> StopView:
        with self.migrations.claimed(name, "stopped"):
            try:
                report = self.orch.stop(name)
            except UnknownName as exc:
                raise NotFound(str(exc), instance=name) from exc
        if not report.complete:
            raise _incomplete(report)
        return StopView.of(report)


def _site_error(exc: OrchestratorError | SiteError) -> Exception:
    """A refusal (409) as such; a site that does not answer 503; one that failed 502."""
    if isinstance(exc, SiteUnreachable):
        return Unavailable(str(exc))
    if isinstance(exc, SiteError) and not isinstance(exc, SiteRefused):
        return SiteFailed(str(exc))
    return api_error(exc)


def _incomplete(report: StopReport) -> ApiError:
    """What a stop left: 503 if a site could not be asked, else 502; context says it all."""
    parts = [f"{site}: {why}" for site, why in {**report.unreachable, **report.failed}.items()]
    message = f"{report.instance} may still be at a site: " + "; ".join(parts)
    context = {"removed": dict(report.removed), "failed": dict(report.failed)}
    context["unreachable"] = dict(report.unreachable)
    error: ApiError = Unavailable(message) if report.unreachable else SiteFailed(message)
    error.context.update(context)
    return error


InstanceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=SCENARIO_NAME_PATTERN,
        description="an instance of the scenario",
        examples=["counter"],
    ),
]
GATEWAY: dict[str, Any] = {
    "model": ERRORS[502]["model"],
    "description": "a site agent failed the step: its message (for a service that did not "
    "start, the agent's account of why)",
}
CLAIMED = "busy: being migrated, deployed or stopped"
DEPLOYS: dict[int | str, dict[str, Any]] = {
    **{k: ERRORS[k] for k in (400, 413, 422)},
    404: {"model": ERRORS[404]["model"], "description": "no such instance, or no such site"},
    409: {
        "model": ERRORS[409]["model"],
        "description": f"refused, nothing changed: it runs (or a site holds a copy of it) "
        f"already, the site refused, or {CLAIMED}",
    },
    502: GATEWAY,
    503: UNAVAILABLE,
}
STOPS: dict[int | str, dict[str, Any]] = {
    **{k: ERRORS[k] for k in (404, 422)},
    409: {"model": ERRORS[409]["model"], "description": f"refused, nothing changed: {CLAIMED}"},
    502: {
        **GATEWAY,
        "description": "a site agent failed to remove it (`context` says "
        "what was removed where, and what failed)",
    },
    503: {
        **UNAVAILABLE,
        "description": "a site agent does not answer: the instance may "
        "still be there (`context` says what was removed where)",
    },
}


def instances_router(service: InstanceService) -> APIRouter:
    """`/v1/status`, and one instance's status, deploy and stop."""
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]}, tags=["instances"])

    @router.get("/status", response_model=list[InstanceStatusView])
    def instances_status() -> list[InstanceStatusView]:
        """Every instance of the scenario: where it runs, what each site's agent says of it,
        which agents did not answer, and its last migration started through this controller."""
        return service.all()

    @router.get(
        "/instances/{name}",
        response_model=InstanceStatusView,
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def instance_status(name: InstanceName) -> InstanceStatusView:
        """One instance, as in /v1/status."""
        return service.one(name)

    @router.post(
        "/instances/{name}/deploy",
        response_model=InstanceStatusView,
        status_code=201,
        responses=DEPLOYS,
    )
    def deploy_instance(
        name: InstanceName, body: DeployRequest | None = None
    ) -> InstanceStatusView:
        """Start the instance at `site` (default: its scenario site) and point its traffic
        there. Refused (409) if it runs, or a site holds a copy of it, already; 503 if a site
        cannot say whether it does; 502 with the agent's message if it did not start."""
        return service.deploy(name, body or DeployRequest())

    @router.get(
        "/instances/{name}/logs",
        response_model=LogsView,
        responses={
            404: {"model": ERRORS[404]["model"], "description": "no such instance, or it "
                  "runs nowhere"},
            **{k: ERRORS[k] for k in (422,)}, 502: GATEWAY, 503: UNAVAILABLE,
        },
    )  # fmt: skip
    def instance_logs(
        name: InstanceName,
        lines: Annotated[
            int, Query(ge=1, le=MAX_LOG_LINES, description="how many of its last lines")
        ] = 100,
    ) -> LogsView:
        """The last lines the instance wrote on stdout and stderr, read at the site where it
        runs now (its log moves with it)."""
        return service.logs(name, lines)

    @router.delete("/instances/{name}", response_model=StopView, responses=STOPS)
    def stop_instance(name: InstanceName) -> StopView:
        """Stop the instance and remove it, and whatever a failed start or migration left of
        it, at every site; it answers what was where."""
        return service.stop(name)

    return router
