"""Follow-me for stateless services (issue 12, seed 002): warm replicas instead of migration.

`FollowMe` only marks a stateless service (`Nothing`, once per site the UE is predicted to
reach); `ReplicaFollower` carries that out with each service's `Replicas`
(orchestration.replicas):

- a mark towards a site places a replica there, ahead of the UE, and retires the replicas that
  are neither there nor the primary (those behind): `Replicas.follow([site])`, in a thread of
  its own (starting a container takes a while; the marks and ticks go on meanwhile);
- at the UE's handover to a site, the replica there becomes the primary by a flow switch only
  (`Replicas.handover`; placed first if no mark came in time), and the policy is told that the
  service now runs there;
- every tick probes the replicas (`Replicas.tick`: a failed primary is replaced by its backup);
- `close()` retires every replica but the primary.

One lock per service: `Replicas` wants one caller at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from orchestration.follow_me import Nothing
from orchestration.follower import Done
from orchestration.replica_roles import NoReplicaLeft
from orchestration.replicas import Replicas
from topology.mobility_events import Handover

log = logging.getLogger(__name__)
StartThread = Callable[[Callable[[], None], str], None]
Settle = Callable[[str, str, float | None], None]  # (service, site, t): where it runs now


def start_daemon_thread(fn: Callable[[], None], name: str) -> None:
    threading.Thread(target=fn, name=name, daemon=True).start()


@dataclass
class _Served:
    replicas: Replicas
    lock: threading.Lock = field(default_factory=threading.Lock)
    switches: list[tuple[str, float]] = field(default_factory=list)  # (site, switch-over ms)


class ReplicaFollower:
    """The stateless services one UE's follow-me marks (see the module docstring)."""

    def __init__(
        self,
        settle: Settle,
        replicas: Mapping[str, Replicas],
        start_thread: StartThread = start_daemon_thread,
    ) -> None:
        self.settle = settle
        self.served = {name: _Served(r) for name, r in replicas.items()}
        self.start_thread = start_thread

    def on_actions(self, done: Iterable[Done]) -> None:
        """The follower's carried-out actions: a mark places a replica ahead (in a thread)."""
        for d in done:
            a = d.action
            served = self.served.get(a.service) if isinstance(a, Nothing) else None
            if isinstance(a, Nothing) and served is not None:
                self.start_thread(
                    partial(self._ahead, served, a.target), f"replica-{a.service}-{a.target}"
                )

    def on_handover(self, h: Handover) -> None:
        """The UE is served by `h.to_site` now: the replica there becomes the primary."""
        site = h.to_site
        if site is None:
            return
        for name, served in list(self.served.items()):
            with served.lock:
                reps = served.replicas
                if site == reps.primary:
                    continue
                try:
                    if site not in reps.set:
                        reps.place([site])  # no mark came in time: placed now, late
                    switch_ms = reps.handover(site)
                except Exception as exc:  # noqa: BLE001 - the service stays where it is
                    log.error("follow-me %s: %s not handed over to %s: %s", h.ue, name, site, exc)
                    continue
                served.switches.append((site, switch_ms))
            log.info("follow-me %s: %s served at %s (%.1f ms)", h.ue, name, site, switch_ms)
            self.settle(name, site, h.t_s)

    def tick(self) -> None:
        """Probe the replicas that are due; a failed primary is replaced by its backup. A
        service whose last replica is gone (stopped by its user, say) is no longer served."""
        for name, served in list(self.served.items()):
            with served.lock:
                try:
                    events = served.replicas.tick()
                except NoReplicaLeft as exc:
                    log.warning("follow-me: %s no longer served by replicas: %s", name, exc)
                    del self.served[name]
                    continue
                except Exception as exc:  # noqa: BLE001 - one service's trouble, logged
                    log.error("follow-me: %s's replicas: %s", name, exc)
                    continue
                primary = served.replicas.primary
            if any(e.kind == "failover" for e in events):
                self.settle(name, primary, None)

    def roles(self, name: str) -> dict[str, str]:
        served = self.served[name]
        with served.lock:
            return {site: role.value for site, role in served.replicas.roles().items()}

    def close(self) -> None:
        """Retire every replica but the primary."""
        for name, served in list(self.served.items()):
            with served.lock:
                reps = served.replicas
                for site in list(reps.set.sites):
                    if site != reps.primary:
                        try:
                            reps.retire(site)
                        except Exception as exc:  # noqa: BLE001 - the others still go
                            log.warning("%s's replica at %s stays: %s", name, site, exc)

    def _ahead(self, served: _Served, site: str) -> None:
        with served.lock:
            try:
                report = served.replicas.follow([site])
            except Exception as exc:  # noqa: BLE001 - a thread's last line: logged
                log.error("%s: no replica placed at %s: %s", served.replicas.instance, site, exc)
                return
        if report.skipped:
            log.warning("%s: replicas not placed: %s", served.replicas.instance, report.skipped)
