"""Where a scenario's instance is, as the sites' agents say, and its last known migration.

`Placement` is one instance asked of every site: the status each agent answered (`running`,
`stopped`, `absent`, ...) and, for each site that could not say, why (its agent does not answer,
or refused the question: a wrong token). `InstanceStatus` adds its home site and the last
migration of it that the caller knows of: the orchestrator only asks sites; who started
migrations (the controller's `/v1/migrations`) knows those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

ABSENT, RUNNING, UNKNOWN = "absent", "running", "unknown"


@dataclass(frozen=True)
class Placement:
    """One instance at every site: `at` what each agent answered, `errors` why others did not."""

    instance: str
    at: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> tuple[str, ...]:
        """The sites where it runs (more than one would be a duplicate)."""
        return tuple(site for site, status in self.at.items() if status == RUNNING)

    @property
    def present(self) -> dict[str, str]:
        """The sites that hold something of it (running, stopped, paused...), and what."""
        return {site: status for site, status in self.at.items() if status != ABSENT}

    @property
    def site(self) -> str | None:
        """Where it runs (the first such site), else None."""
        return self.running[0] if self.running else None

    @property
    def status(self) -> str:
        """`running` somewhere; else what a site holds of it (`stopped`...); else `unknown` if
        a site could not say; else `absent`."""
        if self.running:
            return RUNNING
        if self.present:
            return next(iter(self.present.values()))
        return UNKNOWN if self.errors else ABSENT


@dataclass(frozen=True)
class LastMigration:
    """The latest migration of an instance that the caller knows of."""

    id: str
    outcome: str
    strategy: str
    source: str
    destination: str
    frozen_ms: float | None = None
    total_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class InstanceStatus:
    """A scenario instance: its home site, where it is, and its last known migration."""

    name: str
    home: str
    placement: Placement
    last_migration: LastMigration | None = None

    @property
    def site(self) -> str | None:
        return self.placement.site

    @property
    def status(self) -> str:
        return self.placement.status


@dataclass(frozen=True)
class StopReport:
    """What stopping an instance did: the sites that held something of it (and what), those
    whose agent failed to remove it, and those that could not be asked (why, each)."""

    instance: str
    removed: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    unreachable: Mapping[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every site was asked and removed what it held."""
        return not (self.failed or self.unreachable)


class _MigrationSummary(Protocol):
    """What `last_migrations` reads of a migration record (`orchestration.api_models.
    MigrationView`, as `/v1/migrations` and `MigrationClient` give them)."""

    @property
    def id(self) -> str: ...
    @property
    def instance(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def total_ms(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def metrics(self) -> Mapping[str, object]: ...


def last_migrations(records: Iterable[_MigrationSummary]) -> dict[str, LastMigration]:
    """Per instance, the last of `records` (in the order given: the order they were started)."""
    last: dict[str, LastMigration] = {}
    for rec in records:
        frozen = rec.metrics.get("frozen_ms")
        last[rec.instance] = LastMigration(
            id=rec.id,
            outcome=rec.outcome,
            strategy=rec.strategy,
            source=rec.source,
            destination=rec.destination,
            frozen_ms=float(frozen) if isinstance(frozen, int | float) else None,
            total_ms=rec.total_ms,
            error=rec.error,
        )
    return last
