"""The location service's state in the shape of ETSI MEC013: zones, access points, users and
subscriptions. Pure: no I/O, no thread; the clock that stamps positions is injected.

Zones and access points (the map's cells) come from the scenario's `map:`; a scenario without
one has none. Every UE of the scenario is a user, addressed as MEC013 does, `acr:<its IP>`. A UE
that moves on the map (a path or a trace) starts on the cell serving it at time 0, at its
position then; any other UE is on no access point until a handover is announced for it, and a
user on no access point is left out of the lists. `apply(handover)` moves a user to the
handover's cell and returns the notifications due (controller.location_events): the access
point it leaves is the one this state holds, whatever the handover says it came from.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from controller.location_events import (
    Kind,
    Move,
    Notification,
    Subscription,
    UserEvent,
    notifications,
)
from topology.mobility_events import Handover, moving_ues, ue_mobility
from topology.mobility_map import Cell, RadioMap
from topology.scenario import Scenario

MAX_SUBSCRIPTIONS = 256  # of both kinds together
MAX_URL_LENGTH = 2048
MAX_CALLBACK_DATA = 1024
MAX_CORRELATOR = 256
ADDRESS_PREFIX = "acr:"


class UnknownLocation(LookupError):
    """No such zone, access point, user or subscription (the message names it)."""


class TooManySubscriptions(Exception):
    """The service holds MAX_SUBSCRIPTIONS already."""


@dataclass(frozen=True)
class Zone:
    id: str
    site: str
    access_points: tuple[str, ...]


@dataclass(frozen=True)
class User:
    """Where a UE is: its access point and zone (None: on none), its position on the map (None:
    not known) and when it got there (seconds since the epoch)."""

    ue: str
    address: str
    access_point: str | None
    zone: str | None
    position: tuple[float, float] | None
    timestamp: float


def address_of(ip: object) -> str:
    return f"{ADDRESS_PREFIX}{ip}"


class LocationState:
    def __init__(
        self,
        cells: Sequence[Cell],
        zones: Sequence[tuple[str, str]],
        users: Iterable[User],
        clock: Callable[[], float],
    ) -> None:
        self.cells = {c.name: c for c in cells}
        self.zones = {
            name: Zone(name, site, tuple(c.name for c in cells if c.zone == name))
            for name, site in zones
        }
        self.users = {u.ue: u for u in users}
        self.by_address = {u.address: u.ue for u in self.users.values()}
        self.clock = clock
        self.subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)

    @classmethod
    def from_scenario(cls, sc: Scenario, clock: Callable[[], float]) -> LocationState:
        if sc.map is None:
            cells: tuple[Cell, ...] = ()
            zones: list[tuple[str, str]] = []
        else:
            cells = RadioMap.from_spec(sc.map).cells
            zones = [(z.name, z.site) for z in sc.map.zones]
        now = clock()
        start: dict[str, tuple[Cell | None, tuple[float, float]]] = {}
        for name in moving_ues(sc):
            m = ue_mobility(sc, name, until=0.0)
            start[name] = (m.initial, m.position(0.0))
        users = []
        for ue in sc.ues:
            cell, position = start.get(ue.name, (None, None))
            zone = cell.zone if cell else None
            ap = cell.name if cell else None
            users.append(User(ue.name, address_of(ue.ip), ap, zone, position, now))
        return cls(cells, zones, users, clock)

    # ------------------------------------------------------------------ queries

    def zone(self, zone_id: str) -> Zone:
        if zone_id not in self.zones:
            raise UnknownLocation(f"no zone {zone_id!r}" + ("" if self.zones else _NO_MAP))
        return self.zones[zone_id]

    def access_point(self, zone_id: str, ap: str) -> Cell:
        if ap not in self.zone(zone_id).access_points:
            raise UnknownLocation(f"no access point {ap!r} in zone {zone_id!r}")
        return self.cells[ap]

    def located(self) -> list[User]:
        """The users on an access point, in scenario order."""
        return [u for u in self.users.values() if u.access_point is not None]

    def users_in(self, zone_id: str | None = None, ap: str | None = None) -> int:
        return sum(
            1
            for u in self.located()
            if (zone_id is None or u.zone == zone_id) and (ap is None or u.access_point == ap)
        )

    def find_users(
        self, zone_ids: Sequence[str] = (), aps: Sequence[str] = (), addresses: Sequence[str] = ()
    ) -> list[User]:
        """MEC013's filters: any of the values of one filter, all of the filters given."""
        return [
            u
            for u in self.located()
            if (not zone_ids or u.zone in zone_ids)
            and (not aps or u.access_point in aps)
            and (not addresses or u.address in addresses)
        ]

    def user(self, ue: str) -> User:
        if ue not in self.users:
            raise UnknownLocation(f"no UE {ue!r}")
        return self.users[ue]

    # ------------------------------------------------------------------ moves

    def announce(self, ue: str, ap: str | None) -> tuple[Move, list[Notification]]:
        """The UE is now on access point `ap` (None: on none), at that cell's position."""
        self.user(ue)
        if ap is not None and ap not in self.cells:
            raise UnknownLocation(f"no access point {ap!r}" + ("" if self.cells else _NO_MAP))
        return self.move(ue, ap, _position(self.cells.get(ap or "")))

    def apply(self, handover: Handover) -> tuple[Move, list[Notification]]:
        """A handover from the mobility model: the UE moves to its cell and position."""
        return self.move(handover.ue, handover.to_cell, (handover.x, handover.y))

    def move(
        self, ue: str, ap: str | None, position: tuple[float, float] | None
    ) -> tuple[Move, list[Notification]]:
        old = self.user(ue)
        zone = self.cells[ap].zone if ap is not None else None
        now = self.clock()
        change = Move(ue, old.address, old.access_point, ap, old.zone, zone, now)
        if ap != old.access_point or position != old.position:
            self.users[ue] = replace(
                old, access_point=ap, zone=zone, position=position, timestamp=now
            )
        return change, notifications(list(self.subscriptions.values()), change)

    # ------------------------------------------------------------------ subscriptions

    def subscribe(
        self,
        kind: Kind,
        target: str,
        notify_url: str,
        resource_url: Callable[[str], str],
        callback_data: str | None = None,
        client_correlator: str | None = None,
        criteria: Sequence[UserEvent] = (),
    ) -> Subscription:
        """A new subscription to a zone's (`zonalTraffic`) or a user's (`userTracking`) events;
        `resource_url(id)` is its URL."""
        if kind == "zonalTraffic":
            self.zone(target)
        elif target not in self.by_address:
            raise UnknownLocation(f"no user {target!r}")
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise TooManySubscriptions(
                f"the location service holds {MAX_SUBSCRIPTIONS} subscriptions, its most: "
                "delete one first"
            )
        sid = str(next(self._ids))
        sub = Subscription(
            sid,
            kind,
            target,
            notify_url,
            callback_data,
            client_correlator,
            tuple(dict.fromkeys(criteria)),
            resource_url(sid),
        )
        self.subscriptions[sid] = sub
        return sub

    def subscription(self, kind: Kind, sid: str) -> Subscription:
        sub = self.subscriptions.get(sid)
        if sub is None or sub.kind != kind:
            raise UnknownLocation(f"no {kind} subscription {sid!r}")
        return sub

    def of_kind(self, kind: Kind) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.kind == kind]

    def unsubscribe(self, kind: Kind, sid: str) -> Subscription:
        sub = self.subscription(kind, sid)
        del self.subscriptions[sid]
        return sub


_NO_MAP = " (this scenario has no map:)"


def _position(cell: Cell | None) -> tuple[float, float] | None:
    return None if cell is None else (cell.x, cell.y)
