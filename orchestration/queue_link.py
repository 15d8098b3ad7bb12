"""A running job's reservations under the scheduler's grant (network-aware): the engine's
`ControllerLink` of each migration the queue starts is wrapped so that what it reserves never
exceeds the job's share of the grant, whatever the engine's own sizing asks.

- A job's grant is split among its migrations (a chain's functions) in proportion to their
  minimum rates (`Allocation.alloc`); a single instance takes it whole.
- `reserve` asks for at most its member's share; `resize` too, and when the engine wants more
  (the final iteration sized from the last round, seed 000 §III-D) the queue first asks the
  scheduler (`Scheduler.request_boost`), which raises the job's floor only as far as its
  links allow, taking spare from less urgent jobs (whose reservations shrink first).
- `focus` (a round-robin chain, whose functions copy one at a time: `ChainMigration` calls it
  before each function's turn) gives that member the grant but a trickle per other member
  (`IDLE_SHARE_BPS`, or less on a tiny grant): the others' reservations shrink first, then its
  own grows, so the job's sum never exceeds its grant and a turn copies at the whole grant.
- `regrant` applies a rerated grant (the scheduler's `rerated`): every live reservation of the
  job is resized to its new share, and its migration's `grant` follows.

Every call runs under the queue's one lock, the scheduler's, so reservations change in the
order the scheduler decided them. The engine sets `Migration.grant` from what `resize`
returns; a rerate landing between that return and the engine's assignment leaves the engine's
copy of the rate stale until its next resize (it informs its stop rule and paces its next
copy), never the reservation. A copy under way keeps the pace it started with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from migration.engine import Migration
from migration.network import ControllerLink, Grant, WithoutReservations
from orchestration.queue_jobs import shares

IDLE_SHARE_BPS = 1_000_000  # what a member keeps while another member of its job has the focus

# the queue's answer to "member wants rate_bps": it may rerate this job (see Allocation.boosting)
Booster = Callable[["Allocation", str, int], None]


class Allocation:
    """A network-aware job's grant and its members' shares and live reservations."""

    def __init__(
        self,
        job_id: str,
        weights: Mapping[str, int],
        rate_bps: int,
        inner: ControllerLink,
        lock: threading.RLock,
        booster: Booster,
    ) -> None:
        self.job_id = job_id
        self.inner = inner
        self.lock = lock
        self.booster = booster
        self.total = rate_bps
        self.alloc = shares(rate_bps, weights)
        self.grants: dict[str, Grant] = {}  # member -> its reservation in force
        self.migrations: dict[str, Migration] = {}
        self.boosting: tuple[str, int] | None = None  # (member, rate) while a boost is decided

    def regrant(self, rate_bps: int) -> None:
        """The job's grant is now `rate_bps`: resize its members' reservations to their new
        shares (a boosting member takes the difference, the others keep theirs)."""
        with self.lock:
            if self.boosting is not None:
                member, wanted = self.boosting
                new = dict(self.alloc)
                new[member] = max(0, min(wanted, new[member] + rate_bps - self.total))
            else:
                new = shares(rate_bps, self.alloc)
            self.total = rate_bps
            self.alloc = new
            for member, grant in list(self.grants.items()):
                if grant.rate_bps != new[member] and new[member] > 0:
                    self._set(member, self.inner.resize(grant, new[member]))

    def focus(self, member: str) -> None:
        """`member` copies now and the others not (module docstring); no-op for one member."""
        with self.lock:
            others = [m for m in self.alloc if m != member]
            if not others or self.total < 4 * len(others):  # nothing to focus (a tiny grant)
                return
            idle = max(1, min(IDLE_SHARE_BPS, self.total // (4 * len(others))))
            new = {m: idle for m in others}
            new[member] = self.total - idle * len(others)
            if new == self.alloc:
                return
            self.alloc = new
            # every shrink before any growth: the job's sum never passes its grant
            for m in sorted(self.grants, key=lambda m: new[m] - self.grants[m].rate_bps):
                grant = self.grants[m]
                if grant.rate_bps != new[m] and new[m] > 0:
                    self._set(m, self.inner.resize(grant, new[m]))

    def _set(self, member: str, grant: Grant) -> None:
        self.grants[member] = grant
        mig = self.migrations.get(member)
        if mig is not None and mig.grant is not None:
            mig.grant = grant

    def links(self) -> dict[str, ScheduledLink]:
        """Each member's link, to give its migration (`Migration.net`)."""
        return {m: ScheduledLink(self.inner, self, m) for m in self.alloc}


class ScheduledLink(WithoutReservations):
    """One member's `ControllerLink`: reservations capped at its share (module docstring);
    the traffic switch and hold go straight through (as WithoutReservations')."""

    def __init__(self, inner: ControllerLink, allocation: Allocation, member: str) -> None:
        super().__init__(inner)
        self.allocation = allocation
        self.member = member

    def focus(self) -> None:
        """This member copies alone now (a round-robin chain's turn): `Allocation.focus`."""
        self.allocation.focus(self.member)

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        a = self.allocation
        with a.lock:
            cap = a.alloc[self.member]
            if cap <= 0:
                return None
            grant = self.inner.reserve(src, dst, min(rate_bps, cap), dst_port, owner)
            if grant is not None:
                a.grants[self.member] = grant
            return grant

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        a = self.allocation
        with a.lock:
            if rate_bps > a.alloc[self.member]:
                a.boosting = (self.member, rate_bps)
                try:
                    a.booster(a, self.member, rate_bps)
                finally:
                    a.boosting = None
            current = a.grants.get(self.member, grant)
            rate = min(rate_bps, a.alloc[self.member])
            if rate <= 0 or rate == current.rate_bps:
                return current
            new = self.inner.resize(current, rate)
            a.grants[self.member] = new
            return new

    def release(self, grant: Grant) -> None:
        a = self.allocation
        with a.lock:
            self.inner.release(a.grants.pop(self.member, grant))
