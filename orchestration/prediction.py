"""Predictions of a UE's next change of serving site, as `orchestration.follow_me` asks for them:
`Predictor` is `t -> SiteChange | None` (the UE's next handover to a cell of another site after
`t`, with its lead time).

- `known_path(mobility)`: the scenario's path itself (`UEMobility.next_site_change`): never
  wrong, so it never starts a speculation that the UE then turns away from; `known_dwell`:
  how long the UE then stays.
- `straight_ahead(mobility, horizon_s)`: dead reckoning, what a controller that sees only where
  the UE is and how it moves could predict: the UE keeps its present velocity (for at most
  `horizon_s`), and the same sticky serving-cell rule as the model (it keeps its cell while in
  range, then takes the nearest cell in range) is applied along that straight line. A UE that
  turns changes the prediction at once. It reads the UE's position and velocity at `t` from its
  motion; asked about a future `t` (a dwell estimate), it knows where the UE will be then.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from topology.mobility_events import SiteChange, UEMobility
from topology.mobility_map import EPS_S, Cell
from topology.mobility_paths import Segment

Predictor = Callable[[float], SiteChange | None]
# how long the UE stays served by `site` from `arrival_s` (None: not known, or to the end)
DwellOf = Callable[[float, str], float | None]
HORIZON_S = 60.0


def known_path(mobility: UEMobility) -> Predictor:
    return mobility.next_site_change


def known_dwell(mobility: UEMobility) -> DwellOf:
    """The stay along the known path: from the arrival to the first handover after it to
    another site or to no cell at all (as topology.dwell counts it); None if it lasts to the
    end of the analysed time."""

    def dwell(arrival_s: float, site: str) -> float | None:
        for h in mobility.handovers:
            if h.t_s > arrival_s and h.to_site != site:
                return h.t_s - arrival_s
        return None

    return dwell


def predicted_dwell(predict: Predictor) -> DwellOf:
    """The stay as `predict` sees it from the arrival: up to its next change of site (a UE
    leaving every range is not one: then None)."""

    def dwell(arrival_s: float, site: str) -> float | None:
        after = predict(arrival_s)
        return after.lead_s if after is not None else None

    return dwell


def straight_ahead(mobility: UEMobility, horizon_s: float = HORIZON_S) -> Predictor:
    if not 0 < horizon_s <= 3600:
        raise ValueError(f"horizon must be within 0-3600 s, not {horizon_s:g}")

    def predict(t: float) -> SiteChange | None:
        seg = _segment_at(mobility, t)
        if seg is None or (seg.vx == 0 and seg.vy == 0):
            return None  # at rest: no change of site ahead
        x, y = seg.at(t)
        ray = Segment(t, t + horizon_s, x, y, seg.vx, seg.vy)
        return _first_site_change(mobility, ray, mobility.serving(t))

    return predict


def _segment_at(mobility: UEMobility, t: float) -> Segment | None:
    """The segment of the UE's motion it is on at `t` (the one starting at `t`, at a corner)."""
    found = None
    for seg in mobility.motion.walk(t, t):
        if seg.t0 <= t:
            found = seg
    return found


def _first_site_change(
    mobility: UEMobility, ray: Segment, current: Cell | None
) -> SiteChange | None:
    radio = mobility.radio
    site = current.site if current else None
    t = ray.t0
    for _ in range(4 * len(radio.cells) + 4):  # each turn leaves a cell or enters one
        if current is not None:
            span = radio.interval(ray, current)
            t = max(span[1], t) if span else t
            if t >= ray.t1 - EPS_S:
                return None
            nxt = radio.best(ray, t, exclude=current)
        else:
            entry = radio.next_entry(ray, t)
            if entry is None:
                return None
            t, nxt = entry, radio.best(ray, entry)
        if nxt is not None and nxt.site != site:
            seen = _first_in_range(mobility, ray, nxt.site, t)
            return SiteChange(t, t - ray.t0, seen, nxt.name, nxt.zone, nxt.site)
        current = nxt
    return None


def _first_in_range(mobility: UEMobility, ray: Segment, site: str, until: float) -> float:
    starts = [
        max(span[0], ray.t0)
        for c in mobility.radio.cells
        if c.site == site and (span := mobility.radio.interval(ray, c)) is not None
    ]
    return min([*starts, until])
