"""The routes between core switches, kept and repaired rather than rebuilt.

Forwarding goes in two steps (see `controller.forwarding`): a host's entries depend only on where
it is attached and on the declared topology, and between core switches (two declared links or
more: the aggregation switches of an operator's fabric) frames follow the shortest-path tree
rooted at the host's anchor over the links that are up. A switch with a single declared link (a
leaf: a MEC site under its aggregation switch) never lies on anyone else's path, so only trees
rooted at core switches, over core switches, are kept, computed when first needed, exactly as
`controller.forwarding.next_hops` (a breadth-first search over the links that are up, in the
order the scenario declares them) gives them. With sites under aggregation switches that is
aggregation switches squared: linear in sites when an aggregation switch serves about
sqrt(sites) of them.

A `Forest` is immutable (its memo of trees aside): a link event makes a new one that shares every
tree the event cannot change (a link with a leaf at one end changes none), and the old one stays
valid, so the routes before and after an event can both be read, and a snapshot is one
reference.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from topology.model import Topology

Adjacency = Mapping[str, tuple[str, ...]]


class Forest:
    """The routes between core switches over the links that are up (see the module doc)."""

    __slots__ = ("adj", "declared", "cores", "_core_set", "_trees", "_core_adj")

    def __init__(
        self,
        adj: Adjacency,
        declared: Adjacency,
        trees: dict[str, dict[str, str]] | None = None,
        core_adj: dict[str, tuple[str, ...]] | None = None,
        cores: tuple[str, ...] | None = None,
    ) -> None:
        self.adj = adj  # switch -> its neighbours over links that are up, in declaration order
        self.declared = declared  # switch -> its declared neighbours (shared, never changes)
        if cores is None:  # from the declared links alone: the same for every forest after
            cores = tuple(sw for sw, nbrs in declared.items() if len(nbrs) >= 2)
        self.cores = cores
        self._core_set = frozenset(self.cores)
        self._trees: dict[str, dict[str, str]] = trees if trees is not None else {}
        # core switch -> its core neighbours over links that are up (made when first needed)
        self._core_adj = core_adj

    @classmethod
    def of(cls, topo: Topology, down: Collection[frozenset[str]] = ()) -> Forest:
        """The forest of `topo` without the links in `down`."""
        declared: dict[str, list[str]] = {sw.name: [] for sw in topo.switches}
        adj: dict[str, list[str]] = {sw.name: [] for sw in topo.switches}
        for ln in topo.links:
            declared[ln.a].append(ln.b)
            declared[ln.b].append(ln.a)
            if down and frozenset((ln.a, ln.b)) in down:
                continue
            adj[ln.a].append(ln.b)
            adj[ln.b].append(ln.a)
        return cls(
            {sw: tuple(nbrs) for sw, nbrs in adj.items()},
            {sw: tuple(nbrs) for sw, nbrs in declared.items()},
        )

    def with_links(
        self, topo: Topology, pairs: Collection[tuple[str, str]], down: Collection[frozenset[str]]
    ) -> Forest:
        """This forest after the links `pairs` went down or came up (`down`: every link down
        now). Trees are kept unless one of the links joins two core switches; then they are
        computed again as they are needed."""
        ends = {sw for pair in pairs for sw in pair}
        adj = dict(self.adj)
        for sw in ends:
            adj[sw] = tuple(
                ln.other(sw) for ln in topo.links_of(sw) if frozenset((ln.a, ln.b)) not in down
            )
        core_link = self.joins_cores(pairs)
        core_adj = None
        if self._core_adj is not None:  # patch the ends
            cores = self._core_set
            core_adj = dict(self._core_adj)
            for e in ends:
                if e in cores:
                    core_adj[e] = tuple(w for w in adj[e] if w in cores)
        trees = None if core_link else self._trees
        return Forest(adj, self.declared, trees, core_adj, self.cores)

    def joins_cores(self, pairs: Collection[tuple[str, str]]) -> bool:
        """Whether one of the links `pairs` is between two core switches: only such a link
        changes the core graph (the core switches and the links up between them), and so the
        trees."""
        cores = self._core_set
        return any(a in cores and b in cores for a, b in pairs)

    def is_core(self, switch: str) -> bool:
        return switch in self._core_set

    def tree(self, core: str) -> dict[str, str]:
        """Core switch -> its next hop towards `core` (reachable core switches but `core`)."""
        tree = self._trees.get(core)
        if tree is None:
            adj = self.core_adj()
            tree = {}
            seen = {core}
            level = [core]
            while level:
                found: list[str] = []
                for v in level:
                    for w in adj[v]:
                        if w not in seen:
                            seen.add(w)
                            tree[w] = v
                            found.append(w)
                level = found
            self._trees[core] = tree
        return tree

    def core_adj(self) -> dict[str, tuple[str, ...]]:
        """Core switch -> its neighbours that are core, over links that are up, in declaration
        order."""
        if self._core_adj is None:
            adj, cores = self.adj, self._core_set
            self._core_adj = {sw: tuple(w for w in adj[sw] if w in cores) for sw in self.cores}
        return self._core_adj

    def distances_to(self, source: str, wanted: Collection[str]) -> dict[str, int]:
        """What `distances(source)` says of the switches `wanted` that `source` reaches.

        Only the core is searched: a switch with one declared link is never on a way between
        two others, so its distance is one more than its neighbour's (at 1,000 sites, 32
        aggregation switches instead of 1,032 switches)."""
        adj, core_adj, cores = self.adj, self.core_adj(), self._core_set
        # the source's every neighbour; from there on, core switches only
        dist = _search(source, lambda v: adj[v] if v == source else core_adj.get(v, ()))
        out: dict[str, int] = {}
        for sw in wanted:
            hops = dist.get(sw)
            if hops is None and sw not in cores:  # a leaf: one more than its neighbour
                near = [dist[n] for n in adj.get(sw, ()) if n in dist]
                hops = min(near) + 1 if near else None
            if hops is not None:
                out[sw] = hops
        return out

    def distances(self, source: str) -> dict[str, int]:
        """Hops from `source` to every switch it reaches over links that are up (itself at 0)."""
        return _search(source, self.adj.__getitem__)


def _search(source: str, through: Callable[[str], Iterable[str]]) -> dict[str, int]:
    """Hops from `source` to every switch a breadth-first search reaches, going on from each
    switch `v` to `through(v)`."""
    dist = {source: 0}
    level = [source]
    d = 0
    while level:
        d += 1
        found: list[str] = []
        for v in level:
            for w in through(v):
                if w not in dist:
                    dist[w] = d
                    found.append(w)
        level = found
    return dist
