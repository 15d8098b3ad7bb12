"""The data of the instance endpoints (`/v1/status`, `/v1/instances/{name}`, its deploy and its
stop): what a caller may send (a site, bounded by the scenario's name rule) and what it gets back
(where each instance is, per site, and its last migration started through this controller)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestration.api_models import Name
from orchestration.placement import InstanceStatus, LastMigration, StopReport


class DeployRequest(BaseModel):
    """Where to start the instance (the body is optional: its home site in the scenario)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        json_schema_extra={"examples": [{}, {"site": "mec2"}]},
    )

    site: Name | None = Field(
        default=None, description="the site to start it at (default: its scenario site)"
    )


class LastMigrationView(BaseModel):
    """The last migration of an instance started through this controller (`/v1/migrations`)."""

    id: str
    outcome: str = Field(description="running, done, rolled_back or failed")
    strategy: str
    source: str
    destination: str
    frozen_ms: float | None = Field(default=None, description="how long the service was frozen")
    total_ms: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, last: LastMigration | None) -> LastMigrationView | None:
        return None if last is None else cls.model_validate(last, from_attributes=True)


class InstanceStatusView(BaseModel):
    """A scenario instance: where it runs, what each site's agent says of it, its last
    migration."""

    name: str
    home: str = Field(description="its site in the scenario")
    site: str | None = Field(description="where it runs (null: nowhere that answered)")
    status: str = Field(
        description="running (at `site`); else what a site holds of it (stopped, paused...); "
        "else unknown if a site could not say (see `unreachable`); else absent"
    )
    sites: dict[str, str] = Field(description="per site, its status as the agent answered")
    unreachable: dict[str, str] = Field(
        description="per site that could not say, why (agent down, wrong endpoint or token)"
    )
    last_migration: LastMigrationView | None = Field(
        description="the last migration started through this controller since it started "
        "(migrations run by `mecmig migrate` from a shell are not known here)"
    )

    @classmethod
    def of(cls, status: InstanceStatus) -> InstanceStatusView:
        return cls(
            name=status.name,
            home=status.home,
            site=status.site,
            status=status.status,
            sites=dict(status.placement.at),
            unreachable=dict(status.placement.errors),
            last_migration=LastMigrationView.of(status.last_migration),
        )


class StopView(BaseModel):
    """What stopping an instance removed: per site, what was there."""

    name: str
    removed: dict[str, str] = Field(
        description="per site that held something of it, its status before (running, stopped...)"
    )

    @classmethod
    def of(cls, report: StopReport) -> StopView:
        return cls(name=report.instance, removed=dict(report.removed))


MAX_LOG_LINES = 10_000  # as the agents' own bound


class LogsView(BaseModel):
    """The last lines an instance wrote on stdout and stderr, and where it runs."""

    instance: str
    site: str = Field(description="where it runs now, where the lines were read")
    lines: list[str]
