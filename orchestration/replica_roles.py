"""Warm replicas of a stateless service, as pure decisions (issue 12 part 4, seed 002 §1.4).

`ReplicaSet`: the roles of one service's replicas, one per site. Exactly one is the primary
(the one the controller steers the service's traffic to), one of the others is the backup
whenever there is another (the one promoted if the primary fails), the rest are secondaries; at
most `max_replicas` in all. Every operation checks first and changes nothing when it refuses
(`ReplicaError`), and `check()` holds after each.

`FailureDetector`: a replica failed when `misses` probes in a row, one every `interval_s`,
failed. A failure at time t is seen at the latest at t + interval_s x misses (+ the last probe's
own timeout): the first probe after t comes within interval_s, and `misses` of them fail.

`SyncSchedule`: storage-dependent replicas get the primary's volume every `period_s`; it says
which are due and how stale each replica's copy is (the age of the primary's data it holds:
now minus the start of its last sync, or since the replica was made).

Pure: no clock (times are given), no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

DEFAULT_MAX_REPLICAS = 3
EARLY_S = 1e-6
OldPrimary = Literal["backup", "secondary", "retired"]  # what a handed-over primary becomes


class Role(StrEnum):
    PRIMARY = "primary"
    BACKUP = "backup"
    SECONDARY = "secondary"


class ReplicaError(Exception):
    """A replica operation that cannot be made (nothing changed)."""


class NoReplicaLeft(ReplicaError):
    """The primary failed and no other replica can take over."""


class ReplicaSet:
    """The replicas of one service by site, with their roles (see the module)."""

    def __init__(
        self, instance: str, primary: str, max_replicas: int = DEFAULT_MAX_REPLICAS
    ) -> None:
        if max_replicas < 1:
            raise ValueError(f"max_replicas must be at least 1, got {max_replicas}")
        self.instance = instance
        self.max_replicas = max_replicas
        self.roles: dict[str, Role] = {primary: Role.PRIMARY}  # in the order they were made

    # ------------------------------------------------------------------ views

    @property
    def primary(self) -> str:
        return next(site for site, role in self.roles.items() if role is Role.PRIMARY)

    @property
    def backup(self) -> str | None:
        return next((site for site, role in self.roles.items() if role is Role.BACKUP), None)

    @property
    def secondaries(self) -> list[str]:
        return [site for site, role in self.roles.items() if role is Role.SECONDARY]

    @property
    def sites(self) -> list[str]:
        return list(self.roles)

    @property
    def full(self) -> bool:
        return len(self.roles) >= self.max_replicas

    def __contains__(self, site: object) -> bool:
        return site in self.roles

    def check(self) -> None:
        """AssertionError unless the invariants hold (see the module)."""
        roles = list(self.roles.values())
        assert roles.count(Role.PRIMARY) == 1, self.roles
        assert roles.count(Role.BACKUP) == (1 if len(roles) > 1 else 0), self.roles
        assert len(roles) <= self.max_replicas, self.roles

    # ------------------------------------------------------------------ changes

    def add(self, site: str) -> Role:
        """A new replica at `site`: the backup if there is none, else a secondary."""
        if site in self.roles:
            raise ReplicaError(f"{self.instance} has a replica at {site} already")
        if self.full:
            raise ReplicaError(
                f"{self.instance} has {len(self.roles)} replicas, at most {self.max_replicas}"
            )
        role = Role.SECONDARY if self.backup is not None else Role.BACKUP
        self.roles[site] = role
        return role

    def remove(self, site: str) -> Role:
        """The replica at `site` goes (not the primary: hand over first); a backup that goes
        is replaced by the oldest secondary."""
        role = self._role(site)
        if role is Role.PRIMARY:
            raise ReplicaError(f"{site} holds {self.instance}'s primary: hand over first")
        del self.roles[site]
        self._elect_backup()
        return role

    def handover(self, site: str, old: OldPrimary = "backup") -> str:
        """The replica at `site` becomes the primary; the old primary becomes the backup
        (`old`), a secondary, or goes ("retired"). The old primary's site."""
        role = self._role(site)
        if role is Role.PRIMARY:
            raise ReplicaError(f"{site} holds {self.instance}'s primary already")
        previous = self.primary
        self.roles[site] = Role.PRIMARY
        if old == "retired":
            del self.roles[previous]
        elif old == "backup":
            backup = self.backup
            if backup is not None:
                self.roles[backup] = Role.SECONDARY
            self.roles[previous] = Role.BACKUP
        else:
            self.roles[previous] = Role.SECONDARY
        self._elect_backup()
        return previous

    def fail(self, site: str) -> str | None:
        """The replica at `site` failed and goes. If it was the primary, the backup takes
        over (NoReplicaLeft, nothing changed, if there is none); the new primary's site, or
        None if the primary stays."""
        role = self._role(site)
        if role is not Role.PRIMARY:
            self.remove(site)
            return None
        backup = self.backup
        if backup is None:
            raise NoReplicaLeft(f"{self.instance}'s primary at {site} failed, no replica is left")
        del self.roles[site]
        self.roles[backup] = Role.PRIMARY
        self._elect_backup()
        return backup

    def _role(self, site: str) -> Role:
        try:
            return self.roles[site]
        except KeyError:
            raise ReplicaError(f"{self.instance} has no replica at {site}") from None

    def _elect_backup(self) -> None:
        if self.backup is None and self.secondaries:
            self.roles[self.secondaries[0]] = Role.BACKUP


# ------------------------------------------------------------------------------ failure detection


@dataclass
class FailureDetector:
    """Probes of one replica: failed after `misses` failures in a row (see the module)."""

    interval_s: float
    misses: int
    last_probe: float = -math.inf
    missed: int = 0
    failed_at: float | None = None

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and math.isfinite(self.interval_s)):
            raise ValueError(f"a probe interval is a positive number of seconds: {self.interval_s}")
        if self.misses < 1:
            raise ValueError(f"misses must be at least 1, got {self.misses}")

    @property
    def bound_s(self) -> float:
        """The longest a failure goes unseen (probe timeouts aside): interval x misses."""
        return self.interval_s * self.misses

    def due(self, now: float) -> bool:
        """Whether a probe is due at `now`."""
        # a tick a microsecond early (a timer's rounding) does not wait a whole interval more
        return self.failed_at is None and now - self.last_probe >= self.interval_s - EARLY_S

    def record(self, now: float, ok: bool) -> bool:
        """A probe's result at `now`; True exactly once: when it makes the replica failed."""
        self.last_probe = now
        if self.failed_at is not None:
            return False
        if ok:
            self.missed = 0
            return False
        self.missed += 1
        if self.missed >= self.misses:
            self.failed_at = now
            return True
        return False


# ------------------------------------------------------------------------------ volume sync


@dataclass
class SyncRecord:
    """One sync of the primary's volume to a replica."""

    site: str
    started: float
    ended: float
    bytes: int
    staleness_before_s: float  # how old the replica's copy was when this sync started
    full: bool = False  # all of the volume (a new replica, or the first after a handover)


@dataclass
class SyncSchedule:
    """When each replica gets the primary's volume, and how stale its copy is (see module)."""

    period_s: float
    since: dict[str, float] = field(default_factory=dict)  # site -> what its copy is as of
    history: list[SyncRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ValueError(f"a sync period is a positive number of seconds: {self.period_s}")

    def made(self, site: str, now: float) -> None:
        """A replica made at `now` holds the primary's data as of `now` (its volume came with
        the spec: empty, or what the image holds; the first sync is due at once)."""
        self.since[site] = now - self.period_s

    def forget(self, site: str) -> None:
        self.since.pop(site, None)

    def due(self, now: float, replicas: list[str]) -> list[str]:
        """The replicas whose copy is a period old or more, stalest first."""
        ages = [(now - self.since.get(site, -math.inf), site) for site in replicas]
        return [site for age, site in sorted(ages, key=lambda a: -a[0]) if age >= self.period_s]

    def synced(
        self, site: str, started: float, ended: float, nbytes: int, full: bool = False
    ) -> SyncRecord:
        """The sync to `site` that started at `started` (its data is as of then) ended."""
        rec = SyncRecord(site, started, ended, nbytes, self.staleness(site, started), full)
        self.since[site] = started
        self.history.append(rec)
        return rec

    def staleness(self, site: str, now: float) -> float:
        """How old `site`'s copy of the primary's data is at `now` (inf: never synced)."""
        return now - self.since.get(site, -math.inf)

    def bytes_per_period(self) -> float:
        """Inter-site bytes of syncs per period, over the history (0 without any)."""
        if not self.history:
            return 0.0
        span = max(r.ended for r in self.history) - min(r.started for r in self.history)
        periods = max(1.0, span / self.period_s)
        return sum(r.bytes for r in self.history) / periods
