"""Which MEC013 user events a change of access point makes, and the notification bodies.

A user that changes zone LEAVES the zone it was in (if any), then ENTERS the new one (if any);
a user that changes access point within its zone is TRANSFERRING. (This is how the ETSI MEC
Sandbox's location service, AdvantEDGE, reads MEC013: a LEAVING event names the access point
left as `currentAccessPointId`; ENTERING and TRANSFERRING name the new one, and the one before
as `previousAccessPointId` when there was one.) A zonal-traffic subscription gets the events of
its zone, a user-tracking subscription those of its user; either only the kinds in its
`userEventCriteria` (all three when it gives none). Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Kind = Literal["zonalTraffic", "userTracking"]
KINDS: tuple[Kind, ...] = ("zonalTraffic", "userTracking")


class UserEvent(StrEnum):
    """MEC013 v2's UserEventType values."""

    ENTERING = "ENTERING_EVENT"
    LEAVING = "LEAVING_EVENT"
    TRANSFERRING = "TRANSFERRING_EVENT"


@dataclass(frozen=True)
class Move:
    """A user's change of access point (None: out of every range), as applied at `timestamp`
    (seconds since the epoch, the injected clock's)."""

    ue: str
    address: str
    old_ap: str | None
    new_ap: str | None
    old_zone: str | None
    new_zone: str | None
    timestamp: float


@dataclass(frozen=True)
class ZoneEvent:
    """One user event in one zone."""

    event: UserEvent
    zone: str
    current_ap: str
    previous_ap: str | None


def zone_events(move: Move) -> list[ZoneEvent]:
    """The events `move` makes, in the order they are notified (LEAVING before ENTERING)."""
    events = []
    if move.old_zone != move.new_zone:
        if move.old_zone is not None and move.old_ap is not None:
            events.append(ZoneEvent(UserEvent.LEAVING, move.old_zone, move.old_ap, None))
        if move.new_zone is not None and move.new_ap is not None:
            events.append(ZoneEvent(UserEvent.ENTERING, move.new_zone, move.new_ap, move.old_ap))
    elif move.new_zone is not None and move.new_ap is not None and move.old_ap != move.new_ap:
        events.append(ZoneEvent(UserEvent.TRANSFERRING, move.new_zone, move.new_ap, move.old_ap))
    return events


@dataclass(frozen=True)
class Subscription:
    """A zonal-traffic (`target` a zone) or user-tracking (`target` an address) subscription."""

    id: str
    kind: Kind
    target: str
    notify_url: str
    callback_data: str | None
    client_correlator: str | None
    criteria: tuple[UserEvent, ...]  # empty: every event
    resource_url: str

    def wants(self, move: Move, event: ZoneEvent) -> bool:
        if self.criteria and event.event not in self.criteria:
            return False
        if self.kind == "zonalTraffic":
            return event.zone == self.target
        return move.address == self.target


@dataclass(frozen=True)
class Notification:
    """A notification due to a subscription: POST `body` to `notify_url`."""

    subscription_id: str
    kind: Kind
    notify_url: str
    body: dict[str, object]


def timestamp(t: float) -> dict[str, int]:
    """MEC013's TimeStamp: seconds and nanoseconds since the epoch."""
    seconds = math.floor(t)
    return {"seconds": seconds, "nanoSeconds": min(round((t - seconds) * 1e9), 10**9 - 1)}


def notification(sub: Subscription, move: Move, event: ZoneEvent) -> Notification:
    """The `zonalPresenceNotification` MEC013 v2 sends for both kinds of subscription."""
    body: dict[str, object] = {"zoneId": event.zone, "address": move.address}
    if sub.callback_data is not None:
        body["callbackData"] = sub.callback_data
    body["userEventType"] = event.event.value
    body["currentAccessPointId"] = event.current_ap
    if event.previous_ap is not None:
        body["previousAccessPointId"] = event.previous_ap
    body["timestamp"] = timestamp(move.timestamp)
    body["link"] = [{"rel": sub.kind, "href": sub.resource_url}]
    return Notification(sub.id, sub.kind, sub.notify_url, {"zonalPresenceNotification": body})


def notifications(subs: list[Subscription], move: Move) -> list[Notification]:
    """What `move` notifies: each subscription's events in order, subscriptions in the order
    they were made."""
    events = zone_events(move)
    return [notification(s, move, e) for s in subs for e in events if s.wants(move, e)]
