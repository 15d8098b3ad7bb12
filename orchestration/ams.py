"""The application-mobility service's state in the shape of ETSI MEC021 (v2.1.1's integer codes):
registrations of application instances with the UEs they serve, subscriptions to
mobility-procedure notifications, and the notifications a migration makes. Pure: no I/O, no
thread; the clock that stamps notifications is injected.

An application instance (`serviceConsumerId.appInstanceId`) is a scenario instance or a chain
(a chain is one application: its migration notifies once for the chain; each of its functions
registered on its own is notified too). Its devices are UEs named by `associateId` type 1
(UE_IPv4_ADDRESS) and the UE's IP. A subscription (`MobilityProcedureSubscription`) names
`callbackReference` and `filterCriteria`: `appInstanceId` (one application, or any), `associateId`
(any of these UEs, or any) and `mobilityStatus` (MEC021's default: TRIGGERED only).

`on_migration_event` turns a migration of a registered application into the
`MobilityProcedureNotification`s due: INTERHOST_MOVEOUT_TRIGGERED when it starts,
INTERHOST_MOVEOUT_COMPLETED when it is done, INTERHOST_MOVEOUT_FAILED when it rolled back or
failed, each subscription's in the order the events came, subscriptions in the order they were
made. An application nobody registered notifies nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from controller.location_events import timestamp
from topology.scenario import Scenario

MAX_REGISTRATIONS = 256
MAX_SUBSCRIPTIONS = 256
MAX_DEVICES = 16  # per registration
MAX_FILTER_IDS = 16  # associateIds in a subscription's filter
MAX_EXPIRY_S = 2**32 - 1
UE_IPV4_ADDRESS = 1  # the one AssociateId type served
NOTIFICATION_TYPE = "MobilityProcedureNotification"
NO_PORT = 0  # an instance whose scenario entry declares no port
EventKind = Literal["start", "end"]


class MobilityStatus(IntEnum):
    """MEC021's MobilityStatus."""

    INTERHOST_MOVEOUT_TRIGGERED = 1
    INTERHOST_MOVEOUT_COMPLETED = 2
    INTERHOST_MOVEOUT_FAILED = 3


DEFAULT_STATUSES = (MobilityStatus.INTERHOST_MOVEOUT_TRIGGERED,)


class UnknownAms(LookupError):
    """No such application instance, UE, registration or subscription (the message names it)."""


class AmsFull(Exception):
    """The service holds its most registrations or subscriptions."""


@dataclass(frozen=True)
class AssociateId:
    type: int
    value: str


@dataclass(frozen=True)
class Device:
    """A UE the application serves, with what it registered for it (kept and echoed)."""

    associate_id: AssociateId
    service_level: int | None = None  # AppMobilityServiceLevel 1-3
    context_transfer_state: int | None = None  # 0 NOT_TRANSFERRED, 1 ..._COMPLETED


@dataclass(frozen=True)
class Registration:
    id: str
    app: str
    devices: tuple[Device, ...]
    expiry_time: int | None = None  # kept and echoed; not enforced
    resource_url: str = ""


@dataclass(frozen=True)
class Subscription:
    id: str
    notify_url: str
    app: str | None  # filterCriteria.appInstanceId (None: any)
    associate_ids: tuple[AssociateId, ...]  # filterCriteria.associateId (empty: any)
    statuses: tuple[MobilityStatus, ...]  # filterCriteria.mobilityStatus
    resource_url: str

    def matching(self, app: str, ids: Sequence[AssociateId]) -> tuple[AssociateId, ...] | None:
        """The UEs of `app` this subscription is told about (None: it is not told)."""
        if self.app is not None and self.app != app:
            return None
        if not self.associate_ids:
            return tuple(ids)
        found = tuple(i for i in ids if i in self.associate_ids)
        return found or None


@dataclass(frozen=True)
class AppEndpoint:
    """Where an application is reached: each (IP, port) of its instances (a chain's in order)."""

    name: str
    addresses: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Notification:
    """A notification due to a subscription: POST `body` to `notify_url`."""

    subscription_id: str
    notify_url: str
    body: dict[str, object]
    kind: str = "mobilityProcedure"


def _addresses(ip: object, ports: Sequence[int]) -> tuple[tuple[str, int], ...]:
    return tuple((str(ip), p) for p in ports) or ((str(ip), NO_PORT),)


def endpoints(sc: Scenario) -> dict[str, AppEndpoint]:
    """Every application of the scenario: its instances, then its chains (an instance's name
    wins over a chain's)."""
    apps = {i.name: AppEndpoint(i.name, _addresses(i.ip, i.ports)) for i in sc.instances}
    for chain in sc.chains:
        if chain.name not in apps:
            addresses = [a for fn in chain.functions for a in apps[fn].addresses]
            apps[chain.name] = AppEndpoint(chain.name, tuple(addresses))
    return apps


def status_of(kind: EventKind, ok: bool | None) -> MobilityStatus:
    if kind == "start":
        return MobilityStatus.INTERHOST_MOVEOUT_TRIGGERED
    if ok:
        return MobilityStatus.INTERHOST_MOVEOUT_COMPLETED
    return MobilityStatus.INTERHOST_MOVEOUT_FAILED


class AmsState:
    def __init__(
        self,
        apps: Mapping[str, AppEndpoint],
        ue_addresses: Iterable[str],
        clock: Callable[[], float],
    ) -> None:
        self.apps = dict(apps)
        self.ue_addresses = frozenset(ue_addresses)
        self.clock = clock
        self.registrations: dict[str, Registration] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._registration_ids = itertools.count(1)
        self._subscription_ids = itertools.count(1)

    @classmethod
    def from_scenario(cls, sc: Scenario, clock: Callable[[], float]) -> AmsState:
        return cls(endpoints(sc), (str(u.ip) for u in sc.ues), clock)

    # ------------------------------------------------------------------ checks

    def _app(self, app: str) -> str:
        if app not in self.apps:
            known = ", ".join(sorted(self.apps)) or "none"
            raise UnknownAms(f"no application instance {app!r} (instances and chains: {known})")
        return app

    def _ues(self, ids: Iterable[AssociateId]) -> None:
        for aid in ids:
            if aid.type != UE_IPV4_ADDRESS:
                raise ValueError(f"associateId type {aid.type}: only 1 (UE_IPv4_ADDRESS) is served")
            if aid.value not in self.ue_addresses:
                raise UnknownAms(f"no UE with address {aid.value!r}")

    def _devices(self, devices: Sequence[Device]) -> tuple[Device, ...]:
        if len(devices) > MAX_DEVICES:
            raise ValueError(f"at most {MAX_DEVICES} devices per registration")
        self._ues(d.associate_id for d in devices)
        return tuple(devices)

    # ------------------------------------------------------------------ registrations

    def register(
        self,
        app: str,
        devices: Sequence[Device],
        resource_url: Callable[[str], str],
        expiry_time: int | None = None,
    ) -> Registration:
        """A new registration of application instance `app` serving `devices`."""
        self._app(app)
        kept = self._devices(devices)
        if len(self.registrations) >= MAX_REGISTRATIONS:
            raise AmsFull(
                f"the application mobility service holds {MAX_REGISTRATIONS} registrations, "
                "its most: delete one first"
            )
        rid = str(next(self._registration_ids))
        reg = Registration(rid, app, kept, expiry_time, resource_url(rid))
        self.registrations[rid] = reg
        return reg

    def registration(self, rid: str) -> Registration:
        if rid not in self.registrations:
            raise UnknownAms(f"no application mobility service {rid!r}")
        return self.registrations[rid]

    def update(
        self, rid: str, app: str, devices: Sequence[Device], expiry_time: int | None = None
    ) -> Registration:
        """Replace registration `rid` (PUT): its id and URL stay."""
        old = self.registration(rid)
        self._app(app)
        reg = Registration(rid, app, self._devices(devices), expiry_time, old.resource_url)
        self.registrations[rid] = reg
        return reg

    def deregister(self, rid: str) -> Registration:
        return self.registrations.pop(self.registration(rid).id)

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        notify_url: str,
        resource_url: Callable[[str], str],
        app: str | None = None,
        associate_ids: Sequence[AssociateId] = (),
        statuses: Sequence[MobilityStatus] = (),
    ) -> Subscription:
        """A new mobility-procedure subscription; `statuses` empty: MEC021's default, TRIGGERED
        only."""
        if app is not None:
            self._app(app)
        if len(associate_ids) > MAX_FILTER_IDS:
            raise ValueError(f"at most {MAX_FILTER_IDS} associateIds in a filter")
        self._ues(associate_ids)
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise AmsFull(
                f"the application mobility service holds {MAX_SUBSCRIPTIONS} subscriptions, "
                "its most: delete one first"
            )
        sid = str(next(self._subscription_ids))
        sub = Subscription(
            sid,
            notify_url,
            app,
            tuple(dict.fromkeys(associate_ids)),
            tuple(dict.fromkeys(statuses)) or DEFAULT_STATUSES,
            resource_url(sid),
        )
        self.subscriptions[sid] = sub
        return sub

    def subscription(self, sid: str) -> Subscription:
        if sid not in self.subscriptions:
            raise UnknownAms(f"no subscription {sid!r}")
        return self.subscriptions[sid]

    def unsubscribe(self, sid: str) -> Subscription:
        return self.subscriptions.pop(self.subscription(sid).id)

    # ------------------------------------------------------------------ migrations

    def devices_of(self, app: str) -> tuple[AssociateId, ...]:
        """The UEs every registration of `app` names, in registration order, each once."""
        ids = [
            d.associate_id for r in self.registrations.values() if r.app == app for d in r.devices
        ]
        return tuple(dict.fromkeys(ids))

    def on_migration_event(
        self,
        kind: EventKind,
        instance: str,
        source_site: str,
        target_site: str,
        ok: bool | None = None,
        serving_site: str | None = None,
    ) -> list[Notification]:
        """The notifications a migration of application `instance` from `source_site` to
        `target_site` makes as it starts (`kind` "start") or ends ("end", `ok` whether it is
        done). `targetAppInfo` names the application and where it is reached; its
        `mecHostInformation` the site: the target, or after a failure `serving_site` (where it
        serves now: by default the source, where a rollback leaves it)."""
        if instance not in self.apps or not any(
            r.app == instance for r in self.registrations.values()
        ):
            return []
        status = status_of(kind, ok)
        failed = status is MobilityStatus.INTERHOST_MOVEOUT_FAILED
        site = (serving_site or source_site) if failed else target_site
        ids = self.devices_of(instance)
        now = self.clock()
        notes = []
        for sub in self.subscriptions.values():
            if status not in sub.statuses:
                continue
            found = sub.matching(instance, ids)
            if found is None:
                continue
            notes.append(self._notification(sub, status, found, self.apps[instance], site, now))
        return notes

    @staticmethod
    def _notification(
        sub: Subscription,
        status: MobilityStatus,
        ids: Sequence[AssociateId],
        app: AppEndpoint,
        site: str,
        now: float,
    ) -> Notification:
        body: dict[str, object] = {
            "notificationType": NOTIFICATION_TYPE,
            "timeStamp": timestamp(now),
        }
        if ids:
            body["associateId"] = [{"type": i.type, "value": i.value} for i in ids]
        body["mobilityStatus"] = status.value
        body["targetAppInfo"] = {
            "appInstanceId": app.name,
            "commInterface": {"ipAddresses": [{"host": h, "port": p} for h, p in app.addresses]},
            "mecHostInformation": {"hostName": site, "hostId": {"site": site}},
        }
        body["_links"] = {"subscription": {"href": sub.resource_url}}
        return Notification(sub.id, sub.notify_url, body)
