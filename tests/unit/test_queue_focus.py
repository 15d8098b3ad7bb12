"""A network-aware job's grant given to the function whose turn it is (round-robin chains,
orchestration.queue_link.Allocation.focus): every shrink lands before any growth, so the sum
of the job's reservations never passes its grant, after rerates too; a tiny grant is left as
it is."""

from __future__ import annotations

import threading

from migration.network import Grant, WithoutReservations
from orchestration.queue_link import Allocation


class Meters(WithoutReservations):
    """Reservations in memory; the largest sum they ever reached."""

    def __init__(self) -> None:
        self.rates: dict[int, int] = {}
        self.peak = 0
        self._next = 0

    def _note(self) -> None:
        self.peak = max(self.peak, sum(self.rates.values()))

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        self._next += 1
        self.rates[self._next] = rate_bps
        self._note()
        return Grant(self._next, rate_bps)

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        self.rates[grant.id] = rate_bps
        self._note()
        return Grant(grant.id, rate_bps)


def _allocation(total: int, members: tuple[str, ...]) -> tuple[Allocation, Meters]:
    meters = Meters()
    a = Allocation(
        "job", dict.fromkeys(members, 1), total, meters, threading.RLock(), lambda *_: None
    )
    for name, link in a.links().items():
        assert link.reserve("s1", "s2", total, 7100, name) is not None
    return a, meters


def test_each_turn_takes_the_grant_and_the_sum_never_passes_it() -> None:
    a, meters = _allocation(100_000_000, ("fw", "ids", "kv"))
    assert meters.peak <= 100_000_000
    for member in ("fw", "ids", "kv", "ids", "fw"):
        a.focus(member)
        assert a.alloc[member] == 100_000_000 - 2 * 1_000_000
        assert sum(meters.rates.values()) <= 100_000_000
    assert meters.peak <= 100_000_000


def test_a_focus_after_a_shrinking_rerate_still_shrinks_first() -> None:
    a, meters = _allocation(100_000_000, ("fw", "ids", "kv"))
    a.focus("kv")
    a.regrant(6_000_000)  # rerated down: the idle ones fall below their trickle
    meters.peak = sum(meters.rates.values())
    a.focus("fw")  # kv shrinks before fw and ids grow
    assert meters.peak <= 6_000_000, meters.rates
    assert sum(a.alloc.values()) <= 6_000_000


def test_a_tiny_grant_is_not_refocused() -> None:
    a, _ = _allocation(7, ("fw", "ids", "kv"))  # below 4 bit/s per other member
    before = dict(a.alloc)
    a.focus("fw")
    assert a.alloc == before
