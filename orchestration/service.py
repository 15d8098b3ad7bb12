"""Migrations started through the controller's REST API (`/v1/migrations`).

`mecmig controller` mounts this into the controller's REST API (controller.extensions): the
controller's code never imports it. Each migration is checked in the request (a bad one gets its
4xx and changes nothing), then runs in a thread of its own; reservations, the traffic switch and
the traffic hold go straight to the northbound facade (no HTTP round trip to itself), and the
source agent's CRIU asks for the hold through the controller's own REST URL. The records (with
their phases as they happen) stay queryable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path

from controller.api_models import Conflict, Invalid, NotFound
from controller.facade import Northbound
from controller.location_service import LocationService
from controller.rest import API_PREFIX, ERRORS
from migration.engine import Migration, MigrationError
from migration.network import ControllerLink
from migration.site import Site, SiteError
from migration.timeline import MigrationRecord
from orchestration.api_models import (
    MAX_MIGRATION_ID_LENGTH,
    MIGRATION_ID_PATTERN,
    MigrationRequest,
    MigrationView,
)
from orchestration.chain_record import ChainRecord
from orchestration.links import FacadeLink
from orchestration.orchestrator import (
    CommandRefused,
    NotServing,
    Orchestrator,
    OrchestratorError,
    SitesUnreachable,
    UnknownName,
)
from orchestration.schedule_models import Policy
from orchestration.sites import site_clients
from topology.scenario import Scenario

if TYPE_CHECKING:  # it imports us
    from orchestration.chain_api import ChainMigrationService

log = logging.getLogger("mecmig.migrations")
# told ("started", record) as a migration starts and ("ended", record) once it ended
MigrationListener = Callable[[str, MigrationRecord | ChainRecord], object]


class Unavailable(Conflict):
    """A site agent that does not answer (503): where the instance runs cannot be told."""

    status = 503


class MigrationService:
    """Starts migrations in threads and keeps their records."""

    def __init__(
        self, scenario: Scenario, network: ControllerLink, sites: Mapping[str, Site]
    ) -> None:
        self.orch = Orchestrator(scenario, sites, network)
        self._lock = threading.Lock()
        self._records: dict[str, MigrationRecord] = {}
        self._busy: dict[str, str] = {}  # instance -> what is being done to it
        self._listeners: list[MigrationListener] = []
        # instance -> the migration moving it: started, not ended yet
        self._moving: dict[str, MigrationRecord | ChainRecord] = {}

    def claim(self, instance: str, doing: str) -> None:
        """Mark `instance` busy `doing` ("migrated", "deployed", "stopped"); Conflict if it is
        busy already. `release` ends the claim."""
        with self._lock:
            if instance in self._busy:
                raise Conflict(
                    f"{instance} is already being {self._busy[instance]}", instance=instance
                )
            self._busy[instance] = doing

    def release(self, instance: str) -> None:
        """End `instance`'s claim; if a migration moving it was `started`, it has ended: the
        listeners are told (once per record, at the first of its instances released)."""
        with self._lock:
            self._busy.pop(instance, None)
            record = self._moving.pop(instance, None)
            for name in _moved(record):
                if self._moving.get(name) is record:
                    del self._moving[name]
        if record is not None:
            self._tell("ended", record)

    def listen(self, listener: MigrationListener) -> None:
        """Tell `listener` when a migration starts and when it ends: one of /v1/migrations, of
        /v1/chain-migrations (the chain's record) and of the migration queue (`keep_in`)."""
        with self._lock:
            self._listeners.append(listener)

    def started(self, record: MigrationRecord | ChainRecord) -> None:
        """A migration of claimed instances starts now (it ends when the first is released)."""
        with self._lock:
            for name in _moved(record):
                self._moving[name] = record
        self._tell("started", record)

    def _tell(self, event: str, record: MigrationRecord | ChainRecord) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, record)
            except Exception:  # noqa: BLE001 - a listener never stops a migration
                log.exception("%s: a listener of the migration's %s failed", record.id, event)

    @contextmanager
    def claimed(self, instance: str, doing: str) -> Iterator[None]:
        """`instance` claimed for the duration of the block (see `claim`)."""
        self.claim(instance, doing)
        try:
            yield
        finally:
            self.release(instance)

    def start(self, req: MigrationRequest) -> MigrationView:
        """Check and start a migration; the view is returned at once and the record fills in."""
        self.claim(req.instance, "migrated")
        try:
            mig = self.orch.plan_migration(
                req.instance,
                req.to,
                strategy=req.strategy.value,
                budget_ms=req.budget_ms,
                rate_bps=req.rate,
                hold=req.hold.value,
                command=req.command,
            )
        except BaseException as exc:
            self.release(req.instance)
            raise api_error(exc) from exc
        with self._lock:
            self._records[mig.record.id] = mig.record
        threading.Thread(
            target=self._run, args=(mig,), name=f"migrate-{mig.record.id}", daemon=True
        ).start()
        return _view(mig.record)

    def keep(self, record: MigrationRecord) -> None:
        """Keep a migration's record started elsewhere (the migration queue's), so that
        GET /v1/migrations/{id} shows it."""
        with self._lock:
            self._records[record.id] = record

    def _run(self, mig: Migration) -> None:
        self.started(mig.record)
        try:
            mig.run()
        except MigrationError as exc:
            log.error("%s", exc)
        except Exception:  # noqa: BLE001 - a thread's last line: log it, keep the service
            log.exception("%s: migration failed unexpectedly", mig.record.id)
        finally:
            self.release(mig.plan.instance)

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


def _moved(record: MigrationRecord | ChainRecord | None) -> list[str]:
    if record is None:
        return []
    return [record.instance] if isinstance(record, MigrationRecord) else list(record.functions)


def api_error(exc: BaseException) -> Exception:
    if isinstance(exc, UnknownName):
        return NotFound(str(exc))
    if isinstance(exc, SitesUnreachable):
        return Unavailable(str(exc))
    if isinstance(exc, CommandRefused):  # the request's command (or its lack): nothing moved
        return Invalid(str(exc))
    if isinstance(exc, NotServing | OrchestratorError | SiteError):
        return Conflict(str(exc))
    if isinstance(exc, ValueError):
        return Invalid(str(exc))
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _view(rec: MigrationRecord) -> MigrationView:
    for _ in range(3):  # the migration's thread may be appending a phase right now
        try:
            return MigrationView.model_validate(rec.to_dict())
        except RuntimeError:
            continue
    return MigrationView.model_validate(rec.to_dict())


UNAVAILABLE: dict[str, Any] = {
    "model": ERRORS[404]["model"],
    "description": "a site agent does not answer: where the instance runs cannot be told "
    "(the error names the site and its endpoint)",
}
# what starting one can answer besides 202 (the controller adds 401 when it has a token)
STARTS: dict[int | str, dict[str, Any]] = {
    **{k: ERRORS[k] for k in (400, 404, 413, 422)},
    409: {
        "model": ERRORS[409]["model"],
        "description": "refused: already being migrated, not running, already at that site, "
        "or a site refused a step before it changed anything",
    },
    503: UNAVAILABLE,
}
MigrationId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_MIGRATION_ID_LENGTH,
        pattern=MIGRATION_ID_PATTERN,
        description="migration id, e.g. mig-20261130-213455-3fa2c1b80e",
    ),
]


def migrations_router(service: MigrationService) -> APIRouter:
    """`/v1/migrations`: start (202), list, one record."""
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]}, tags=["migrations"])

    @router.post(
        "/migrations",
        response_model=MigrationView,
        status_code=202,
        responses=STARTS,
    )
    def start_migration(req: MigrationRequest) -> MigrationView:
        """Start a live migration; poll GET /v1/migrations/{id} for its phases and outcome.
        404: unknown instance or site; 409: already migrating, not running, already there;
        422: a bad request, or a `command` the strategy cannot take (filesystem needs one
        where the image names none; the others keep their own); 503: a site agent does not
        answer."""
        return service.start(req)

    @router.get("/migrations", response_model=list[MigrationView])
    def list_migrations() -> list[MigrationView]:
        return service.list()

    @router.get(
        "/migrations/{mid}",
        response_model=MigrationView,
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def get_migration(mid: MigrationId) -> MigrationView:
        return service.get(mid)

    return router


def mount(
    northbound: Northbound,
    scenario: Scenario,
    rest_url: str,
    *,
    location: LocationService | None = None,
) -> APIRouter:
    """The controller extension (controller.extensions): `/v1/migrations`, and the instances'
    status, deploy and stop (orchestration.instances_api), over the scenario's site agents (at
    their `agent:` endpoints, else the local Unix sockets), with the facade as the engine's
    controller link. The agents' token, if any, is read from the file named by
    MECMIG_AGENT_TOKEN_FILE (`mecmig controller --agent-token-file`); a bad file stops the
    start-up with its reason. A controller with a token of its own
    (MECMIG_CONTROLLER_TOKEN_FILE) gives the source agents' CRIU no URL to ask for the hold
    (it has no token to send): the engine holds the traffic itself, before the dump.

    `/v1/migration-queue` (orchestration.queue_api) schedules many migrations at once under
    the policy MECMIG_MIGRATION_POLICY names (best-effort, one-per-link or network-aware, the
    default); an unknown one stops the start-up.

    `/amsi/v1` (orchestration.ams_api) is the application-mobility service in MEC021's shape:
    it listens to every migration started here and notifies its subscribers.

    `/v1/follow-me` (orchestration.follow_api) moves a UE's services ahead of its handovers,
    which it hears from the controller's `location` service (without one: not mounted)."""
    import os

    from controller.location_webhook import WebhookSender
    from ground.token import AGENT_TOKEN_ENV, CONTROLLER_TOKEN_ENV, token_from_env
    from orchestration.ams_api import ams_router
    from orchestration.ams_service import AmsService
    from orchestration.instances_api import InstanceService, instances_router  # it imports us

    sites = site_clients(scenario, token=token_from_env(AGENT_TOKEN_ENV))
    hold_url = None if os.environ.get(CONTROLLER_TOKEN_ENV) else rest_url
    service = MigrationService(scenario, FacadeLink(northbound, hold_url), sites)
    from orchestration.chain_api import ChainMigrationService, chain_migrations_router
    from orchestration.migration_queue import MigrationQueue
    from orchestration.queue_api import migration_queue_router

    chains = ChainMigrationService(service)
    queue = MigrationQueue(
        service.orch, queue_policy(os.environ), claims=service, keep=keep_in(service, chains)
    )
    router = APIRouter()
    router.include_router(migrations_router(service))
    router.include_router(chain_migrations_router(chains))
    router.include_router(migration_queue_router(queue))
    router.include_router(instances_router(InstanceService(service)))
    mobility = AmsService(scenario, WebhookSender(service="ams"))
    service.listen(mobility.on_record)
    router.include_router(ams_router(mobility))
    if location is not None:
        from orchestration.follow_api import follow_router
        from orchestration.follow_service import FollowService

        follow = FollowService(
            service.orch,
            scenario,
            location.scenario_time,
            claims=service,
            keep=store_in(service, chains),  # follow-me tells the claims it started itself
        )
        location.add_listener(follow.handover)
        router.include_router(follow_router(follow))
    return router


POLICY_ENV = "MECMIG_MIGRATION_POLICY"


def queue_policy(env: Mapping[str, str]) -> Policy:
    """The migration queue's policy from MECMIG_MIGRATION_POLICY (default network-aware);
    ValueError naming the known ones if it is none of them."""
    value = env.get(POLICY_ENV, "").strip() or Policy.NETWORK_AWARE.value
    try:
        return Policy(value)
    except ValueError:
        known = ", ".join(p.value for p in Policy)
        raise ValueError(f"{POLICY_ENV}={value!r} is no policy (known: {known})") from None


def store_in(
    service: MigrationService, chains: ChainMigrationService
) -> Callable[[MigrationRecord | ChainRecord], None]:
    """Where a record goes: a chain's to /v1/chain-migrations, others' to /v1/migrations."""

    def store(record: MigrationRecord | ChainRecord) -> None:
        if isinstance(record, ChainRecord):
            chains.keep(record)
        else:
            service.keep(record)

    return store


def keep_in(
    service: MigrationService, chains: ChainMigrationService
) -> Callable[[MigrationRecord | ChainRecord], None]:
    """Where the queue's records go (`store_in`), and the service's listeners are told it
    started."""
    store = store_in(service, chains)

    def keep(record: MigrationRecord | ChainRecord) -> None:
        store(record)
        service.started(record)  # it runs now; its claims are released when it ends

    return keep
