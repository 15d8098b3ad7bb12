"""Migrations started through the controller's REST API (`POST /v1/migrations`).

The controller reaches the scenario's site agents on their Unix sockets and runs each migration
in a thread of its own; reservations and the traffic switch go straight to the northbound facade
(no HTTP round trip to itself). The records (with their phases as they happen) stay queryable.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from controller.api_models import (
    Conflict,
    MigrationRequest,
    MigrationView,
    NotFound,
    RelocationRequest,
    ReservationRequest,
    TrafficMatch,
)
from controller.facade import Northbound
from migration.engine import STRATEGIES, MigrationError
from migration.network import Grant
from migration.orchestrator import Orchestrator, OrchestratorError
from migration.site import Site, SiteError
from migration.timeline import MigrationRecord, PhaseRecord
from topology.scenario import Scenario

log = logging.getLogger("mecmig.controller")


class FacadeLink:
    """The engine's ControllerLink, answered in-process by the northbound facade."""

    def __init__(self, northbound: Northbound) -> None:
        self.nb = northbound

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        """Reserve `rate_bps`, or what the path has left if that is less; None if nothing."""

        def request(rate: int) -> ReservationRequest:
            match = TrafficMatch(proto="tcp", dst_port=dst_port)
            return ReservationRequest(src=src, dst=dst, rate=rate, match=match, owner=owner)

        try:
            view = self.nb.reserve(request(rate_bps))
        except Conflict as exc:
            residual = int(str(exc.context.get("residual_bps") or 0))
            if not 0 < residual < rate_bps:
                return None
            try:
                view = self.nb.reserve(request(residual))
            except Conflict:
                return None
        return Grant(view.id, view.rate_bps)

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        try:
            view = self.nb.resize(grant.id, rate_bps)
        except Conflict:
            return grant
        return Grant(view.id, view.rate_bps)

    def release(self, grant: Grant) -> None:
        self.nb.release(grant.id)

    def relocate(self, instance: str, site: str, port: int) -> float:
        view = self.nb.relocate(RelocationRequest(instance=instance, to=site, port=port))
        return float(view.switchover_ms)


class MigrationService:
    """Starts migrations in threads and keeps their records."""

    def __init__(
        self, scenario: Scenario, northbound: Northbound, sites: dict[str, Site] | None = None
    ) -> None:
        if sites is None:
            from mecmig.migrate_cli import site_clients

            sites = dict(site_clients(scenario))
        self.orch = Orchestrator(scenario, sites, FacadeLink(northbound))
        self._lock = threading.Lock()
        self._records: dict[str, MigrationRecord] = {}
        self._busy: set[str] = set()

    def start(self, req: MigrationRequest) -> MigrationView:
        """Start migrating; the view is returned at once and the record fills in."""
        if req.strategy not in STRATEGIES:
            raise Conflict(f"unknown strategy {req.strategy!r}")
        with self._lock:
            if req.instance in self._busy:
                raise Conflict(f"{req.instance} is already being migrated")
            self._busy.add(req.instance)
        started = threading.Event()
        holder: dict[str, Any] = {}

        def listener(event: str, rec: MigrationRecord, _: PhaseRecord | None) -> None:
            if "record" not in holder:
                holder["record"] = rec
                with self._lock:
                    self._records[rec.id] = rec
                started.set()

        def run() -> None:
            try:
                self.orch.migrate(
                    req.instance,
                    req.to,
                    strategy=req.strategy,
                    budget_ms=req.budget_ms,
                    rate_bps=req.rate,
                    listener=listener,
                )
            except MigrationError as exc:
                log.error("%s", exc)
            except (OrchestratorError, SiteError) as exc:
                holder["error"] = str(exc)
                log.error("migration of %s not started: %s", req.instance, exc)
            finally:
                with self._lock:
                    self._busy.discard(req.instance)
                started.set()

        threading.Thread(target=run, name=f"migrate-{req.instance}", daemon=True).start()
        started.wait(60)
        if "record" not in holder:
            raise Conflict(holder.get("error", "the migration did not start"))
        return _view(holder["record"])

    def get(self, mid: str) -> MigrationView:
        with self._lock:
            rec = self._records.get(mid)
        if rec is None:
            raise NotFound(f"no migration {mid}")
        return _view(rec)

    def list(self) -> list[MigrationView]:
        with self._lock:
            records = list(self._records.values())
        return [_view(r) for r in records]


def _view(rec: MigrationRecord) -> MigrationView:
    for _ in range(3):  # the migration's thread may be appending a phase right now
        try:
            return MigrationView.model_validate(rec.to_dict())
        except RuntimeError:
            continue
    return MigrationView.model_validate(rec.to_dict())
