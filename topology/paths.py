"""Deterministic path computation over a `Topology`: shortest (hops or latency) and widest.

Every function returns paths as tuples of switch names; endpoints may be switch, site or host
names. Among equally good paths the lexicographically smallest sequence of names wins, so the
controller and the tests always agree on the path.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from topology.errors import NoPathError
from topology.model import Topology

# Bottleneck of a single-switch path: no link is crossed, so nothing limits the rate.
UNCONSTRAINED = 2**63 - 1
WEIGHTS = ("hops", "latency")

# cost(u, v) of crossing directed link u->v, or None when it may not be crossed.
CostFn = Callable[[str, str], int | None]


def path_links(path: Sequence[str]) -> list[tuple[str, str]]:
    """The directed links ``(path[i], path[i+1])`` a path crosses, in order."""
    return [(path[i], path[i + 1]) for i in range(len(path) - 1)]


def _latency_ns(topo: Topology, u: str, v: str) -> int:
    # Integer nanoseconds keep sums exact, so 0.1 + 0.2 ms ties with 0.3 ms as it should.
    latency = topo.link(u, v).latency_ms
    return 0 if latency is None else round(latency * 1_000_000)


def _search(topo: Topology, src: str, dst: str, cost: CostFn) -> tuple[str, ...] | None:
    """Dijkstra on the key (cost, hops, path): least cost, then fewest hops, then lexicographic.

    The key grows strictly along any path (hops + 1) and the best path's prefixes are themselves
    best under it, so settling each switch once is exact. Costs must be >= 0.
    """
    heap: list[tuple[int, int, tuple[str, ...]]] = [(0, 0, (src,))]
    settled: set[str] = set()
    while heap:
        total, hops, path = heapq.heappop(heap)
        node = path[-1]
        if node in settled:
            continue
        settled.add(node)
        if node == dst:
            return path
        for nbr in topo.neighbors(node):
            if nbr in settled:
                continue
            step = cost(node, nbr)
            if step is not None:
                heapq.heappush(heap, (total + step, hops + 1, (*path, nbr)))
    return None


def shortest_path(
    topo: Topology,
    src: str,
    dst: str,
    *,
    weight: str = "hops",
    exclude: Iterable[tuple[str, str]] = (),
) -> tuple[str, ...]:
    """The shortest switch path from `src` to `dst` (switch, site or host names).

    `weight` is ``"hops"`` or ``"latency"`` (sum of ``latency_ms``; a missing latency counts
    as 0, ties then go to fewer hops). `exclude` lists DIRECTED links u->v the path may not
    cross; give both directions (or use `Topology.with_link_down`) to avoid a link entirely.
    Remaining ties go to the lexicographically smallest path. Raises NoPathError.
    """
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    s, d = topo.resolve(src), topo.resolve(dst)
    banned = set(exclude)

    def cost(u: str, v: str) -> int | None:
        if (u, v) in banned:
            return None
        return 0 if weight == "hops" else _latency_ns(topo, u, v)

    path = _search(topo, s, d, cost)
    if path is None:
        reason = f"{len(banned)} directed link(s) excluded" if banned else "disconnected"
        raise NoPathError(src, dst, reason)
    return path


def _max_bottleneck(topo: Topology, src: str, dst: str, width: CostFn) -> int | None:
    """The largest bottleneck over all src->dst paths (max-min Dijkstra), None if unreachable."""
    best = {src: UNCONSTRAINED}
    heap = [(-UNCONSTRAINED, src)]
    done: set[str] = set()
    while heap:
        neg, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        if node == dst:
            return -neg
        for nbr in topo.neighbors(node):
            w = width(node, nbr)
            if nbr in done or w is None:
                continue
            bw = min(-neg, w)
            if bw > best.get(nbr, -1):
                best[nbr] = bw
                heapq.heappush(heap, (-bw, nbr))
    return None


def widest_path(
    topo: Topology,
    src: str,
    dst: str,
    residual: Mapping[tuple[str, str], int] | None = None,
) -> tuple[tuple[str, ...], int]:
    """The path with the largest bottleneck, and that bottleneck in bit/s.

    Widths are the DIRECTED residuals in `residual` (a link direction missing from it counts at
    full capacity), or the capacities when `residual` is None. Ties go to fewer hops, then to the
    lexicographically smallest path. A single-switch path returns `UNCONSTRAINED`.
    Raises NoPathError.
    """
    s, d = topo.resolve(src), topo.resolve(dst)
    if s == d:
        return (s,), UNCONSTRAINED
    res = residual or {}

    def width(u: str, v: str) -> int:
        return res.get((u, v), topo.link(u, v).capacity_bps)

    # Max-min values do not decompose with a hop tie-break, so find the best bottleneck
    # first, then the fewest-hops path among links at least that wide.
    bottleneck = _max_bottleneck(topo, s, d, width)
    if bottleneck is None:
        raise NoPathError(src, dst, "disconnected")
    path = _search(topo, s, d, lambda u, v: 0 if width(u, v) >= bottleneck else None)
    assert path is not None, "a path of that width was just found"
    return path, bottleneck
