"""The application-mobility service in the controller process: the pure state (orchestration.ams)
behind a lock, its notifications handed to a notifier (controller.location_webhook's sender:
each subscription's POSTs in order, by a thread of its own), and the migrations' starts and ends
as orchestration.service.MigrationService tells them (`on_record`, its listener).

A migration's record (`MigrationRecord`) is one application's move; a chain's (`ChainRecord`)
moves the chain (one application) and each of its functions (each an application too), all with
the chain's outcome. Notifications are handed on under the lock, so each subscriber gets them
in the order the migrations started and ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from migration.timeline import MigrationRecord, Outcome
from orchestration.ams import (
    AmsState,
    AssociateId,
    Device,
    EventKind,
    MobilityStatus,
    Notification,
    Registration,
    Subscription,
)
from orchestration.chain_record import ChainRecord
from topology.scenario import Scenario

log = logging.getLogger(__name__)
T = TypeVar("T")


class Notifier(Protocol):
    def send(self, notes: Sequence[Notification]) -> None: ...
    def forget(self, subscription_id: str) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class AppMove:
    """One application's part in a migration's start or end (`ok`: None at the start)."""

    kind: EventKind
    app: str
    source: str
    target: str
    ok: bool | None
    serving: str  # where it serves if it failed: the target once past the point of no return


def moves(event: str, record: MigrationRecord | ChainRecord) -> list[AppMove]:
    """What a record's start ("started") or end ("ended") is for the service, per application
    it moves: the instance; or the chain, then each of its functions."""
    kind: EventKind = "start" if event == "started" else "end"
    ok = None if kind == "start" else record.outcome is Outcome.DONE
    past = record.point_of_no_return_ms is not None
    to = record.destination
    if isinstance(record, MigrationRecord):
        return [
            AppMove(kind, record.instance, record.source, to, ok, to if past else record.source)
        ]
    sources = {name: m.source for name, m in record.members.items()}
    first = sources.get(record.functions[0], "") if record.functions else ""
    out = [AppMove(kind, record.chain, first, to, ok, to if past else first)]
    for fn in record.functions:
        source = sources.get(fn, first)
        out.append(AppMove(kind, fn, source, to, ok, to if past else source))
    return out


class AmsService:
    """Thread-safe: every call takes the service's lock."""

    def __init__(
        self, scenario: Scenario, notifier: Notifier, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = AmsState.from_scenario(scenario, clock)
        self.notifier = notifier
        self._lock = threading.Lock()

    def read(self, query: Callable[[AmsState], T]) -> T:
        """`query(state)` under the lock."""
        with self._lock:
            return query(self.state)

    # ------------------------------------------------------------------ registrations

    def register(
        self,
        app: str,
        devices: Sequence[Device],
        resource_url: Callable[[str], str],
        expiry_time: int | None = None,
    ) -> Registration:
        with self._lock:
            reg = self.state.register(app, devices, resource_url, expiry_time)
        log.info("application mobility service %s: %s registered", reg.id, app)
        return reg

    def update(
        self, rid: str, app: str, devices: Sequence[Device], expiry_time: int | None = None
    ) -> Registration:
        with self._lock:
            return self.state.update(rid, app, devices, expiry_time)

    def deregister(self, rid: str) -> None:
        with self._lock:
            reg = self.state.deregister(rid)
        log.info("application mobility service %s: %s deregistered", rid, reg.app)

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        notify_url: str,
        resource_url: Callable[[str], str],
        app: str | None = None,
        associate_ids: Sequence[AssociateId] = (),
        statuses: Sequence[MobilityStatus] = (),
    ) -> Subscription:
        with self._lock:
            sub = self.state.subscribe(notify_url, resource_url, app, associate_ids, statuses)
        log.info("mobility-procedure subscription %s: %s -> %s", sub.id, app or "any", notify_url)
        return sub

    def unsubscribe(self, sid: str) -> None:
        with self._lock:
            self.state.unsubscribe(sid)
        self.notifier.forget(sid)
        log.info("mobility-procedure subscription %s deleted", sid)

    # ------------------------------------------------------------------ migrations

    def on_record(self, event: str, record: MigrationRecord | ChainRecord) -> int:
        """A migration started or ended (MigrationService's listener): how many notifications
        it made."""
        count = 0
        with self._lock:
            for m in moves(event, record):
                notes = self.state.on_migration_event(
                    m.kind, m.app, m.source, m.target, m.ok, m.serving
                )
                self.notifier.send(notes)
                count += len(notes)
        if count:
            log.debug("%s %s: %d mobility notification(s)", record.id, event, count)
        return count

    def close(self) -> None:
        self.notifier.close()
