"""Warm replicas of one stateless service (issue 12 part 4, seed 002): placed ahead, retired
behind, handed over by a flow switch, failed over to the backup.

`Replicas` keeps a `ReplicaSet` (orchestration.replica_roles) in line with the sites and the
controller:
- `place(sites)` starts a replica at each site through its agent (`Orchestrator.deploy_replica`:
  the primary's spec, same IP and MAC, its port made a standby at the controller first), up to
  `max_replicas` in all;
- `retire(site)` removes a replica (never the primary): the replica first, then its standby (in
  that order: once the standby's drop is gone, frames from that port are learned);
- `handover(site)` makes the replica at `site` the primary by a flow switch only (the
  controller's promote; nothing starts); the old primary becomes the backup, a secondary, or is
  retired (`old_primary`); `follow(ahead)` retires what is not ahead and places what is;
- `tick(now)` probes every replica when due (`FailureDetector`: a failure is seen within
  probe_interval_s x misses, plus a probe's timeout) and, the primary failed, promotes the
  backup; a failed replica is removed where its agent answers (its standby is kept, so that
  nothing it may still send is learned, where the agent does not: `leftovers`, retried by
  `tick`);
- storage-dependent replicas (`volume: true`) get the primary's volume every sync_period_s
  (`SyncSchedule`) through `copy`, by default the agents' volume sync (`agent.volume_sync`:
  the replica's agent receives into the running replica's own /volume, each file renamed into
  place; the primary's sends what changed since its last sync there, all of it to a replica
  made anew); a handover to a replica that never got it (placed too late for a period to
  pass) syncs it first, so that it never serves an empty volume.

Not thread-safe: one caller (a follow-me driver, or a loop around `tick`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from migration.site import SendInfo, SiteError
from orchestration.orchestrator import NotServing, NotStateless, Orchestrator, OrchestratorError
from orchestration.replica_roles import (
    DEFAULT_MAX_REPLICAS,
    FailureDetector,
    NoReplicaLeft,
    OldPrimary,
    ReplicaError,
    ReplicaSet,
    Role,
    SyncRecord,
    SyncSchedule,
)
from orchestration.standby_link import StandbyLink

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
DRAIN_MS = 250.0  # after a handover the old primary's replies still get through this long
MISSES = 3
Probe = Callable[[str], bool]  # site -> whether the replica there is alive
# (from site, to site, in full: a replica never synced) -> bytes on the wire
VolumeCopy = Callable[[str, str, bool], int]


@runtime_checkable
class VolumeSites(Protocol):
    """What a site's agent does for a volume sync (agent.volume_sync; AgentClient,
    SiteService)."""

    address: str

    def start_volume_receive(self, instance: str, port: int | None = None) -> int: ...

    def finish_volume_receive(self, instance: str) -> SendInfo: ...

    def send_volume(
        self, instance: str, peer: str, port: int, *, full: bool = False
    ) -> SendInfo: ...


@dataclass(frozen=True)
class Event:
    """Something that happened to the replicas, at `at` (the clock's seconds)."""

    at: float
    kind: str  # placed, retired, handover, failed, failover, synced, leftover
    site: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass
class PlaceReport:
    created: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # site -> why


def agent_probe(orch: Orchestrator, instance: str) -> Probe:
    """A probe that asks the site's agent whether the replica runs (an agent that does not
    answer counts as a failed probe)."""

    def probe(site: str) -> bool:
        try:
            return orch.site(site).status(instance) == "running"
        except (SiteError, OrchestratorError):
            return False

    return probe


def agent_copy(orch: Orchestrator, instance: str) -> VolumeCopy:
    """The agents' volume sync from one site to another (see the module), on the instance's
    migration port (what the controller counts as its migration traffic)."""
    port = orch.migration_ports(instance)[0]

    def copy(src: str, dst: str, full: bool) -> int:
        source, target = orch.site(src), orch.site(dst)
        if not isinstance(source, VolumeSites) or not isinstance(target, VolumeSites):
            raise ReplicaError(f"the agents at {src} and {dst} do not sync volumes")
        at = target.start_volume_receive(instance, port)
        # a failed send leaves the receiver listening: the next sync's start replaces it
        source.send_volume(instance, target.address, at, full=full)
        return target.finish_volume_receive(instance).bytes_on_wire

    return copy


class Replicas:
    """One stateless service's replicas (see the module)."""

    def __init__(
        self,
        orch: Orchestrator,
        instance: str,
        link: StandbyLink | None = None,
        *,
        max_replicas: int = DEFAULT_MAX_REPLICAS,
        old_primary: OldPrimary = "backup",
        probe_interval_s: float = PROBE_INTERVAL_S,
        misses: int = MISSES,
        probe: Probe | None = None,
        sync_period_s: float | None = None,
        copy: VolumeCopy | None = None,
        clock: Callable[[], float] = time.monotonic,
        drain_ms: float = DRAIN_MS,
    ) -> None:
        inst = orch.instance(instance)
        if not inst.stateless:
            raise NotStateless(f"{instance} is not stateless: it gets no replicas")
        running = orch.placement(instance).running
        if not running:
            raise NotServing(f"{instance} runs nowhere: deploy it before its replicas")
        if len(running) > 1:
            raise ReplicaError(f"{instance} runs at {', '.join(running)}: one primary expected")
        self.orch = orch
        self.instance = instance
        if link is None and isinstance(orch.network, StandbyLink):
            link = orch.network
        self.link = link
        self.old_primary = old_primary
        self.drain_ms = drain_ms
        self.set = ReplicaSet(instance, running[0], max_replicas)
        self.interval_s, self.misses = probe_interval_s, misses
        self.probe = probe or agent_probe(orch, instance)
        self.clock = clock
        self.detectors = {running[0]: FailureDetector(probe_interval_s, misses)}
        self.sync = SyncSchedule(sync_period_s) if inst.volume and sync_period_s else None
        self.copy = copy or agent_copy(orch, instance)
        self.leftovers: dict[str, str] = {}  # failed replicas not removed yet: why
        self.synced_once: set[str] = set()  # replicas synced since they were made
        self.unsynced: set[str] = set()  # replicas that never got the primary's volume
        self.events: list[Event] = []

    @property
    def primary(self) -> str:
        return self.set.primary

    def roles(self) -> dict[str, Role]:
        return dict(self.set.roles)

    # ------------------------------------------------------------------ placement

    def place(self, sites: Iterable[str]) -> PlaceReport:
        """A replica at each of `sites` that has none, while there is room (see the module)."""
        report = PlaceReport()
        for site in sites:
            if site in self.set:
                continue
            if self.set.full:
                report.skipped[site] = f"{self.set.max_replicas} replicas at most"
                continue
            try:
                port = self.orch.deploy_replica(self.instance, site, self.link)
            except Exception as exc:  # refused, or a site or the controller failed
                log.warning("%s: no replica at %s: %s", self.instance, site, exc)
                report.skipped[site] = str(exc)
                continue
            role = self.set.add(site)
            now = self.clock()
            self.detectors[site] = FailureDetector(self.interval_s, self.misses, last_probe=now)
            if self.sync is not None:
                self.sync.made(site, now)
                self.unsynced.add(site)
            self._event("placed", site, role=role.value, port=port)
            report.created.append(site)
        self.set.check()
        return report

    def retire(self, site: str) -> None:
        """Remove the replica at `site` (ReplicaError for the primary or a site without one)."""
        if site == self.set.primary:
            raise ReplicaError(f"{site} holds {self.instance}'s primary: hand over first")
        if site not in self.set:
            raise ReplicaError(f"{self.instance} has no replica at {site}")
        self._remove(site)  # SiteError: it stays a replica, with its standby
        self.set.remove(site)
        self._forget(site)
        self._event("retired", site)
        self.set.check()

    def follow(self, ahead: Iterable[str]) -> PlaceReport:
        """Replicas where the user goes: those not `ahead` (but the primary) are retired, then
        `ahead` is placed in its order."""
        wanted = list(ahead)
        for site in self.set.sites:
            if site != self.set.primary and site not in wanted:
                self.retire(site)
        return self.place(wanted)

    def handover(self, site: str) -> float:
        """The replica at `site` becomes the primary by a flow switch; the switch-over in ms."""
        if site not in self.set:
            raise ReplicaError(f"{self.instance} has no replica at {site}")
        if site == self.set.primary:
            raise ReplicaError(f"{site} holds {self.instance}'s primary already")
        # placed too late for a period to pass, it would serve an empty volume: synced first
        unsynced = self.sync is not None and site in self.unsynced
        if unsynced and self._sync(site, self.clock()) is None:
            raise ReplicaError(f"{self.instance}'s replica at {site} has none of its data")
        switch_ms = self._promote(site)
        previous = self.set.handover(site, self.old_primary)
        detail: dict[str, object] = {"switchover_ms": switch_ms, "from": previous}
        if self.sync is not None:
            detail["staleness_s"] = self.sync.staleness(site, self.clock())
            self.sync.forget(site)
            self.sync.since[previous] = self.clock()  # it held the data until now
            # the new primary's data is no longer what the old primary last sent anywhere:
            # each replica's next sync goes in full (a delta needs the receiver to hold what
            # its sender last sent it)
            self.synced_once.clear()
        self._event("handover", site, **detail)
        if self.old_primary == "retired":
            self._cleanup(previous)
        self.set.check()
        return switch_ms

    # ------------------------------------------------------------------ failures, sync

    def tick(self, now: float | None = None) -> list[Event]:
        """Probe the replicas that are due, fail over a failed primary, sync what is due;
        what happened."""
        now = self.clock() if now is None else now
        start = len(self.events)
        for site, why in list(self.leftovers.items()):
            self._cleanup(site, why)
        for site in self.set.sites:
            det = self.detectors.get(site)
            if det is None or not det.due(now):
                continue
            if det.record(now, self.probe(site)):
                self.failed(site, now)
        if self.sync is not None:
            self._sync_due(now)
        return self.events[start:]

    def failed(self, site: str, now: float | None = None) -> str | None:
        """The replica at `site` failed: a primary is replaced by the backup (promoted at the
        controller first; NoReplicaLeft if there is none). The new primary, if it changed."""
        now = self.clock() if now is None else now
        new: str | None = None
        det = self.detectors.get(site)
        bound = det.bound_s if det is not None else self.interval_s * self.misses
        if site == self.set.primary:
            new = self.set.backup
            if new is None:
                raise NoReplicaLeft(f"{self.instance}'s primary at {site} failed, none is left")
            switch_ms = self._promote(new)
            self.set.fail(site)
            self._event("failover", new, failed=site, switchover_ms=switch_ms, bound_s=bound)
        else:
            self.set.fail(site)
            self._event("failed", site, bound_s=bound)
        self._forget(site)
        self._cleanup(site)
        self.set.check()
        return new

    def _sync_due(self, now: float) -> list[SyncRecord]:
        assert self.sync is not None
        others = [s for s in self.set.sites if s != self.set.primary]
        done = [self._sync(site, now) for site in self.sync.due(now, others)]
        return [rec for rec in done if rec is not None]

    def _sync(self, site: str, now: float) -> SyncRecord | None:
        """The primary's volume to the replica at `site` now (None: it failed, logged)."""
        assert self.sync is not None
        full = site not in self.synced_once
        try:
            nbytes = self.copy(self.set.primary, site, full)
        except (SiteError, OrchestratorError, ReplicaError) as exc:
            log.warning("%s: volume sync to %s failed: %s", self.instance, site, exc)
            return None
        self.synced_once.add(site)
        self.unsynced.discard(site)
        rec = self.sync.synced(site, now, self.clock(), nbytes, full)
        self._event("synced", site, bytes=nbytes, staleness_before_s=rec.staleness_before_s)
        return rec

    # ------------------------------------------------------------------ helpers

    def _promote(self, site: str) -> float:
        if self.link is None:
            return 0.0
        # the old place: a standby, its frames let through for `drain_ms` (the replies to the
        # requests it took before the switch)
        return self.link.promote(self.instance, site, True, self.drain_ms)

    def _remove(self, site: str) -> None:
        self.orch.site(site).destroy(self.instance)
        if self.link is not None:
            self.link.remove_standby(self.instance, site)

    def _cleanup(self, site: str, why: str = "") -> None:
        """Remove what is left at `site` (a failed or retired replica); kept in `leftovers`,
        standby and all, when its agent does not answer."""
        try:
            self._remove(site)
        except Exception as exc:  # its agent may be down: retried by tick
            if site not in self.leftovers:
                self._event("leftover", site, error=str(exc))
            self.leftovers[site] = str(exc) or why
            return
        self.leftovers.pop(site, None)

    def _forget(self, site: str) -> None:
        self.detectors.pop(site, None)
        self.synced_once.discard(site)
        self.unsynced.discard(site)
        if self.sync is not None:
            self.sync.forget(site)

    def _event(self, kind: str, site: str, **detail: object) -> None:
        self.events.append(Event(self.clock(), kind, site, dict(detail)))
        log.info("%s: %s %s %s", self.instance, kind, site, detail or "")
