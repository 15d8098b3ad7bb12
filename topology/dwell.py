"""Dwell-time analysis (seed 003, Table V): how long a UE stays where it arrives, per point of
access, per zone or per serving site, and whether a migration strategy fits: `T_pre + T_down
<= T_dwell` (seed 003's second viability), the dwell being the time the UE then stays at the
target. Leaving every range counts as a change; an arrival still in place at the end of the
analysed time is `open` and counted apart (its dwell is not known)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from topology.mobility_events import Handover

GRANULARITIES = ("poa", "zone", "site")
_KEY = {"poa": "cell", "zone": "zone", "site": "site"}
MAX_STRATEGY_MS = 3_600_000.0
_MS = r"(\d{1,9}(?:\.\d{1,6})?)"
_STRATEGY = re.compile(rf"^([A-Za-z][A-Za-z0-9_.-]{{0,31}}):{_MS}:{_MS}$")


@dataclass(frozen=True)
class Strategy:
    """A way of moving a service: its pre-relocation time and its downtime."""

    name: str
    t_pre_ms: float
    t_down_ms: float

    def __post_init__(self) -> None:
        for v in (self.t_pre_ms, self.t_down_ms):
            if not 0 <= v <= MAX_STRATEGY_MS:
                raise ValueError(f"{self.name}: times must be within 0-{MAX_STRATEGY_MS:.0f} ms")

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """`NAME:T_PRE_MS:T_DOWN_MS`, e.g. `fccp:4200:900`."""
        match = _STRATEGY.match(text)
        if not match:
            raise ValueError(f"{text!r}: expected NAME:T_PRE_MS:T_DOWN_MS, e.g. precopy:1200:300")
        return cls(match[1], float(match[2]), float(match[3]))

    def fits(self, dwell_s: float) -> bool:
        return self.t_pre_ms + self.t_down_ms <= dwell_s * 1000


@dataclass(frozen=True)
class Dwell:
    """The UE arrived at `target` (a cell, zone or site) at `start_s` and stayed `dwell_s`
    (up to the end of the analysis if `open`)."""

    ue: str
    target: str
    start_s: float
    dwell_s: float
    open: bool


@dataclass(frozen=True)
class DwellStats:
    count: int  # complete dwells
    open: int
    mean_s: float | None
    min_s: float | None
    # per strategy: (viable, of) over the complete dwells
    viable: tuple[tuple[str, int, int], ...]

    def fraction(self, strategy: str) -> float | None:
        for name, ok, of in self.viable:
            if name == strategy:
                return ok / of if of else None
        raise KeyError(strategy)


def dwells(handovers: Sequence[Handover], until: float, granularity: str) -> list[Dwell]:
    """The arrivals at a new cell, zone or site among one UE's handovers, with their dwell."""
    key = _KEY[granularity]
    arrivals: list[tuple[float, str | None]] = []
    current = getattr(handovers[0], f"from_{key}") if handovers else None
    for h in handovers:
        new = getattr(h, f"to_{key}")
        if new != current:
            arrivals.append((h.t_s, new))
            current = new
    ue = handovers[0].ue if handovers else ""
    out = []
    for i, (start, target) in enumerate(arrivals):
        if target is None:
            continue
        end = arrivals[i + 1][0] if i + 1 < len(arrivals) else until
        out.append(Dwell(ue, target, start, end - start, open=i + 1 == len(arrivals)))
    return out


def stats(items: Iterable[Dwell], strategies: Sequence[Strategy] = ()) -> DwellStats:
    """Mean, minimum and count of the complete dwells, and how many each strategy fits."""
    items = list(items)
    done = [d.dwell_s for d in items if not d.open]
    viable = tuple((s.name, sum(s.fits(d) for d in done), len(done)) for s in strategies)
    return DwellStats(
        len(done),
        len(items) - len(done),
        sum(done) / len(done) if done else None,
        min(done) if done else None,
        viable,
    )


def analyse(
    handovers: Sequence[Handover], until: float, strategies: Sequence[Strategy] = ()
) -> dict[str, tuple[list[Dwell], DwellStats]]:
    """Per granularity (poa, zone, site): one UE's dwells and their statistics."""
    out = {}
    for granularity in GRANULARITIES:
        items = dwells(handovers, until, granularity)
        out[granularity] = (items, stats(items, strategies))
    return out
