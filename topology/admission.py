"""Bandwidth admission control: can `rate_bps` go from A to B, and on which path?

Links are full-duplex, so every quantity here is per DIRECTED link ``(u, v)``: a reservation
along a->b consumes capacity of a->b only, never of b->a.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from topology.errors import AdmissionError, NoPathError, UnknownLinkError
from topology.model import Reservation, Topology
from topology.paths import UNCONSTRAINED, path_links, shortest_path, widest_path

__all__ = [
    "UNCONSTRAINED",
    "LinkLoad",
    "admit",
    "admit_on",
    "fits_on_path",
    "path_residual",
    "reserved_per_link",
    "residual",
    "resize_check",
]

DirectedLink = tuple[str, str]


def reserved_per_link(reservations: Iterable[Reservation]) -> dict[DirectedLink, int]:
    """Total reserved bit/s on each directed link crossed by at least one reservation."""
    total: dict[DirectedLink, int] = {}
    for r in reservations:
        for hop in path_links(r.path):
            total[hop] = total.get(hop, 0) + r.rate_bps
    return total


def residual(topo: Topology, reservations: Iterable[Reservation]) -> dict[DirectedLink, int]:
    """Capacity minus reserved, clamped at 0, for both directions of every link.

    Reservations on links the topology no longer has (a link went down) are ignored here.
    """
    reserved = reserved_per_link(reservations)
    out: dict[DirectedLink, int] = {}
    for ln in topo.links:
        for hop in ((ln.a, ln.b), (ln.b, ln.a)):
            out[hop] = max(0, ln.capacity_bps - reserved.get(hop, 0))
    return out


def _bottleneck(
    topo: Topology, path: Sequence[str], res: dict[DirectedLink, int]
) -> tuple[int, DirectedLink | None]:
    best, where = UNCONSTRAINED, None
    for u, v in path_links(path):
        topo.link(u, v)  # raises UnknownLinkError for a hop the topology does not have
        if res[(u, v)] < best:
            best, where = res[(u, v)], (u, v)
    return best, where


def path_residual(
    topo: Topology, path: Sequence[str], reservations: Iterable[Reservation]
) -> tuple[int, DirectedLink | None]:
    """The smallest residual along `path` and the directed link that has it (first one on ties).

    A single-switch path crosses no link: returns ``(UNCONSTRAINED, None)``.
    Raises UnknownLinkError if two consecutive switches are not linked.
    """
    return _bottleneck(topo, path, residual(topo, reservations))


def _fits(topo: Topology, path: Sequence[str], res: dict[DirectedLink, int], rate: int) -> bool:
    return all(topo.has_link(u, v) and res[(u, v)] >= rate for u, v in path_links(path))


def _refuse(
    topo: Topology,
    src: str,
    dst: str,
    rate_bps: int,
    res: dict[DirectedLink, int],
    reserved: dict[DirectedLink, int],
    path: Sequence[str],
    detail: str = "",
) -> AdmissionError:
    left, hop = _bottleneck(topo, path, res)
    if hop is None:
        return AdmissionError(src, dst, rate_bps, None, 0, detail=detail)
    capacity = topo.link(*hop).capacity_bps
    return AdmissionError(
        src, dst, rate_bps, hop, left, capacity, reserved.get(hop, 0), detail=detail
    )


def admit(
    topo: Topology,
    src: str,
    dst: str,
    rate_bps: int,
    reservations: Iterable[Reservation],
    *,
    weight: str = "hops",
    prefer: tuple[str, ...] | None = None,
) -> tuple[str, ...]:
    """The path on which `rate_bps` can be reserved from `src` to `dst` (switch/site/host names).

    Returns `prefer` if it still fits (e.g. keep a flow where it is), else the shortest path (by
    `weight`, see `shortest_path`) over directed links with residual >= `rate_bps`. Endpoints on
    the same switch always fit: ``(switch,)``. Raises AdmissionError naming the bottleneck of the
    widest path (the best the network could offer), or with ``bottleneck=None`` when no path
    exists at all; ValueError if `rate_bps` <= 0 or `prefer` does not join src to dst.
    """
    if rate_bps <= 0:
        raise ValueError(f"rate_bps must be > 0, got {rate_bps}")
    s, d = topo.resolve(src), topo.resolve(dst)
    if prefer is not None and (not prefer or prefer[0] != s or prefer[-1] != d):
        raise ValueError(f"preferred path {prefer} does not lead from {s} to {d}")
    if s == d:
        return (s,)
    reservations = list(reservations)
    res = residual(topo, reservations)
    # A preferred path that lost a link (failure) simply no longer fits.
    if prefer is not None and _fits(topo, prefer, res, rate_bps):
        return prefer
    too_thin = [hop for hop, left in res.items() if left < rate_bps]
    try:
        return shortest_path(topo, s, d, weight=weight, exclude=too_thin)
    except NoPathError:
        pass
    try:
        widest, _ = widest_path(topo, s, d, res)
    except NoPathError as exc:
        raise AdmissionError(src, dst, rate_bps, None, 0) from exc
    reserved = reserved_per_link(reservations)
    raise _refuse(topo, src, dst, rate_bps, res, reserved, widest)


def resize_check(
    topo: Topology,
    reservation: Reservation,
    new_rate_bps: int,
    reservations: Iterable[Reservation],
) -> None:
    """Check that `reservation` can change to `new_rate_bps` on its current path.

    Entries of `reservations` with the same id as `reservation` are left out of the reserved
    totals (its current amount is what it would give up). Raises AdmissionError naming the
    tightest link, ValueError if `new_rate_bps` <= 0, UnknownLinkError if its path lost a link.
    """
    if new_rate_bps <= 0:
        raise ValueError(f"new_rate_bps must be > 0, got {new_rate_bps}")
    others = [r for r in reservations if r.id != reservation.id]
    res = residual(topo, others)
    left, _ = _bottleneck(topo, reservation.path, res)
    if left >= new_rate_bps:
        return
    detail = f"resizing reservation {reservation.id} on its path {'->'.join(reservation.path)}"
    reserved = reserved_per_link(others)
    raise _refuse(
        topo,
        reservation.src,
        reservation.dst,
        new_rate_bps,
        res,
        reserved,
        reservation.path,
        detail,
    )


class LinkLoad:
    """Capacity and reserved bit/s per directed link, and which links are up: what admission
    needs, kept up to date per change (a reservation added, removed or moved, a link event)
    instead of summed over every reservation and link for each request.

    Reserved totals count every reservation's path, as `reserved_per_link` does; a link that is
    down has no residual (it is not in the topology admission sees).
    """

    def __init__(self, declared: Topology) -> None:
        self.declared = declared
        self.capacity: dict[DirectedLink, int] = {}
        for ln in declared.links:
            self.capacity[(ln.a, ln.b)] = self.capacity[(ln.b, ln.a)] = ln.capacity_bps
        self.reserved: dict[DirectedLink, int] = {}
        self.down: set[frozenset[str]] = set()
        self._nbrs = {sw.name: declared.neighbors(sw.name) for sw in declared.switches}
        # switch -> its neighbours (over links that are up) that have two such links or more:
        # the only ones a path can cross on its way (a leaf is only ever an end)
        self._transit = {sw: self._transit_of(sw) for sw in self._nbrs}

    def _transit_of(self, switch: str) -> tuple[str, ...]:
        nbrs = self._nbrs
        return tuple(n for n in nbrs[switch] if len(nbrs[n]) >= 2)

    def add(self, path: Sequence[str], rate_bps: int) -> None:
        reserved = self.reserved
        for hop in path_links(path):
            reserved[hop] = reserved.get(hop, 0) + rate_bps

    def remove(self, path: Sequence[str], rate_bps: int) -> None:
        reserved = self.reserved
        for hop in path_links(path):
            left = reserved.get(hop, 0) - rate_bps
            if left:
                reserved[hop] = left
            else:
                reserved.pop(hop, None)

    def set_up(self, a: str, b: str, up: bool) -> None:
        """The declared link a-b is up (or down) now."""
        pair = frozenset((a, b))
        if up:
            self.down.discard(pair)
        else:
            self.down.add(pair)
        for sw in (a, b):
            self._nbrs[sw] = tuple(
                n for n in self.declared.neighbors(sw) if frozenset((sw, n)) not in self.down
            )
        # a and b changed degree: theirs and their neighbours' transit lists may change
        near = {a, b, *self.declared.neighbors(a), *self.declared.neighbors(b)}
        for sw in near:
            self._transit[sw] = self._transit_of(sw)

    def up(self, u: str, v: str) -> bool:
        return self.declared.has_link(u, v) and frozenset((u, v)) not in self.down

    def neighbors(self, switch: str) -> tuple[str, ...]:
        """The switches joined to `switch` by a link that is up, sorted by name."""
        return self._nbrs[switch]

    def transit(self, switch: str) -> tuple[str, ...]:
        """The neighbours of `switch` (over links that are up) that a path can cross: those
        with two links up or more, sorted by name."""
        return self._transit[switch]

    def residual(self, u: str, v: str) -> int:
        """Capacity minus reserved on the directed link u->v (0 if it is down or absent)."""
        if not self.up(u, v):
            return 0
        return max(0, self.capacity[(u, v)] - self.reserved.get((u, v), 0))


def admit_on(load: LinkLoad, src: str, dst: str, rate_bps: int) -> tuple[str, ...] | None:
    """What `admit` returns for switches `src` and `dst` (no preferred path, fewest hops), from
    `load`; None where `admit` refuses (call it for the error: it names the bottleneck).

    A breadth-first search back from `dst` over directed links with room, stopped at `src`'s
    level, then the lexicographically smallest of the shortest paths, walked from `src`: the
    path `shortest_path` finds, for what the links it reaches cost.

    The search crosses only switches with two links up or more (`LinkLoad.transit`): a leaf
    (a site under its aggregation switch) is only ever a path's end, so it looks at src itself
    and the core, not at every site (at 10,000 sites, ~100 switches instead of ~10,000). A
    leaf's distance is never one less than a neighbour's, so the walk is the same.
    """
    if src == dst:
        return (src,)
    nbrs, transit, residual = load.neighbors, load.transit, load.residual
    src_nbrs = set(nbrs(src))
    dist = {dst: 0}
    level = [dst]
    depth = 0
    while level and src not in dist:
        depth += 1
        found = []
        for v in level:
            if v in src_nbrs and src not in dist and residual(src, v) >= rate_bps:
                dist[src] = depth
            for u in transit(v):
                if u not in dist and residual(u, v) >= rate_bps:
                    dist[u] = depth
                    found.append(u)
        level = found
    if src not in dist:
        return None
    path = [src]
    here = src
    while here != dst:
        want = dist[here] - 1
        here = min(n for n in nbrs(here) if dist.get(n) == want and residual(here, n) >= rate_bps)
        path.append(here)
    return tuple(path)


def fits_on_path(load: LinkLoad, path: Sequence[str], own_bps: int, rate_bps: int) -> bool:
    """Whether a reservation of `own_bps` on `path` can change to `rate_bps` there (what
    `resize_check` decides). Raises UnknownLinkError for a hop that is down or absent."""
    for u, v in path_links(path):
        if not load.up(u, v):
            raise UnknownLinkError(u, v)
        others = load.reserved.get((u, v), 0) - own_bps
        if max(0, load.capacity[(u, v)] - others) < rate_bps:
            return False
    return True
