"""Chain migrations started through the controller's REST API (`/v1/chain-migrations`).

Mounted next to `/v1/migrations` (orchestration.service) and sharing its claims: while a chain
moves, each of its functions counts as being migrated (a single migration of one of them gets a
409, and so does a second chain migration that shares a function). A request is checked whole
before anything changes (unknown chain, site, pattern or strategy: 404; a function not running,
or already at the destination: 409); the chain then moves in a thread of its own and its record,
with every function's phases as they happen, stays queryable.
"""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter

from controller.api_models import Conflict, NotFound
from controller.rest import API_PREFIX, ERRORS
from orchestration.api_models import ChainMigrationRequest, ChainMigrationView
from orchestration.chain_migration import ChainMigration, ChainMigrationError
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import ChainRecord
from orchestration.service import STARTS, MigrationId, MigrationService, api_error

log = logging.getLogger("mecmig.migrations")


class ChainMigrationService:
    """Starts chain migrations in threads and keeps their records."""

    def __init__(self, migrations: MigrationService) -> None:
        self.migrations = migrations
        self._lock = threading.Lock()
        self._records: dict[str, ChainRecord] = {}

    def _claim_all(self, functions: list[str]) -> None:
        claimed: list[str] = []
        try:
            for fn in functions:
                self.migrations.claim(fn, "migrated")
                claimed.append(fn)
        except Conflict:
            for fn in claimed:
                self.migrations.release(fn)
            raise

    def start(self, req: ChainMigrationRequest) -> ChainMigrationView:
        orch = self.migrations.orch
        try:
            functions = list(orch.sc.chain(req.chain).functions)
        except KeyError:
            known = ", ".join(c.name for c in orch.sc.chains) or "none"
            raise NotFound(f"no chain called {req.chain!r} (chains: {known})") from None
        self._claim_all(functions)
        try:
            cm = plan_chain_migration(
                orch,
                req.chain,
                req.to,
                pattern=req.pattern.value,
                strategy=req.strategy.value,
                budget_ms=req.budget_ms,
                rate_bps=req.rate,
                network_aware=req.network_aware,
                hold=req.hold.value,
            )
        except BaseException as exc:
            for fn in functions:
                self.migrations.release(fn)
            raise api_error(exc) from exc
        with self._lock:
            self._records[cm.record.id] = cm.record
        threading.Thread(
            target=self._run, args=(cm, functions), name=f"chain-{cm.record.id}", daemon=True
        ).start()
        return chain_view(cm.record)

    def keep(self, record: ChainRecord) -> None:
        """Keep a chain migration's record started elsewhere (the migration queue's)."""
        with self._lock:
            self._records[record.id] = record

    def _run(self, cm: ChainMigration, functions: list[str]) -> None:
        self.migrations.started(cm.record)  # its listeners are told; the releases end it
        try:
            cm.run()
        except ChainMigrationError as exc:
            log.error("%s", exc)
        except Exception:  # noqa: BLE001 - a thread's last line: log it, keep the service
            log.exception("%s: chain migration failed unexpectedly", cm.record.id)
        finally:
            for fn in functions:
                self.migrations.release(fn)

    def get(self, mid: str) -> ChainMigrationView:
        with self._lock:
            rec = self._records.get(mid)
        if rec is None:
            raise NotFound(f"no chain migration {mid}")
        return chain_view(rec)

    def list(self) -> list[ChainMigrationView]:
        with self._lock:
            records = list(self._records.values())
        return [chain_view(r) for r in records]


def chain_view(rec: ChainRecord) -> ChainMigrationView:
    for _ in range(3):  # a function's thread may be appending a phase right now
        try:
            return ChainMigrationView.model_validate(rec.to_dict())
        except RuntimeError:
            continue
    return ChainMigrationView.model_validate(rec.to_dict())


def chain_migrations_router(service: ChainMigrationService) -> APIRouter:
    """`/v1/chain-migrations`: start (202), list, one record."""
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]}, tags=["migrations"])

    @router.post(
        "/chain-migrations",
        response_model=ChainMigrationView,
        status_code=202,
        responses=STARTS,
    )
    def start_chain_migration(req: ChainMigrationRequest) -> ChainMigrationView:
        """Move a whole chain (every function, with its state) to a site with one of seed
        000's patterns; poll GET /v1/chain-migrations/{id}. 404: unknown chain, site, pattern
        or strategy; 409: a function is being migrated, is not running or is there already;
        503: a site agent does not answer."""
        return service.start(req)

    @router.get("/chain-migrations", response_model=list[ChainMigrationView])
    def list_chain_migrations() -> list[ChainMigrationView]:
        return service.list()

    @router.get(
        "/chain-migrations/{mid}",
        response_model=ChainMigrationView,
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def get_chain_migration(mid: MigrationId) -> ChainMigrationView:
        return service.get(mid)

    return router
