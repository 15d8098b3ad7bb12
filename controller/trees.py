"""The forwarding trees, kept and repaired rather than rebuilt: next hops towards every switch.

Every host's MAC is forwarded along the shortest-path tree rooted at its switch, exactly as
`controller.forwarding.next_hops` (a breadth-first search over the links that are up, in the
order the scenario declares them) gives it. Keeping one such tree per switch would cost switches
squared; `Forest` keeps far less, because a switch with a single link (a leaf: a MEC site under
its aggregation switch) never lies on anyone else's path:

- the next hop of a leaf, towards anything it reaches, is its one neighbour;
- the tree rooted at a leaf is its neighbour's tree, plus the neighbour's hop back to the leaf;
- so only trees rooted at core switches (two links or more), over core switches, are kept,
  computed when first needed. With sites under aggregation switches that is aggregation switches
  squared: linear in sites when an aggregation switch serves about sqrt(sites) of them.

A `Forest` is immutable (its memo of trees aside): a link event makes a new one that shares every
tree the event cannot change, and the old one stays valid, so the flows before and after an event
can both be read, and a snapshot is one reference.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from topology.model import Topology

Adjacency = Mapping[str, tuple[str, ...]]


class Forest:
    """Next hops towards every switch over the links that are up (see the module doc)."""

    __slots__ = ("adj", "cores", "_trees", "_core_adj")

    def __init__(
        self,
        adj: Adjacency,
        trees: dict[str, dict[str, str]] | None = None,
        core_adj: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.adj = adj  # switch -> its neighbours over links that are up, in declaration order
        self.cores = tuple(sw for sw, nbrs in adj.items() if len(nbrs) >= 2)
        self._trees: dict[str, dict[str, str]] = trees if trees is not None else {}
        # core switch -> its core neighbours (made when first needed)
        self._core_adj = core_adj

    @classmethod
    def of(cls, topo: Topology, down: Collection[frozenset[str]] = ()) -> Forest:
        """The forest of `topo` without the links in `down`."""
        adj: dict[str, list[str]] = {sw.name: [] for sw in topo.switches}
        for ln in topo.links:
            if down and frozenset((ln.a, ln.b)) in down:
                continue
            adj[ln.a].append(ln.b)
            adj[ln.b].append(ln.a)
        return cls({sw: tuple(nbrs) for sw, nbrs in adj.items()})

    def with_links(
        self, topo: Topology, pairs: Collection[tuple[str, str]], down: Collection[frozenset[str]]
    ) -> Forest:
        """This forest after the links `pairs` went down or came up (`down`: every link down
        now). Trees are kept when the core graph (core switches and the links between them) is
        the same; else they are computed again as they are needed."""
        ends = {sw for pair in pairs for sw in pair}
        adj = dict(self.adj)
        for sw in ends:
            adj[sw] = tuple(
                ln.other(sw) for ln in topo.links_of(sw) if frozenset((ln.a, ln.b)) not in down
            )
        same_status = all((len(self.adj[e]) >= 2) == (len(adj[e]) >= 2) for e in ends)
        core_link = any(len(adj[a]) >= 2 and len(adj[b]) >= 2 for a, b in pairs)
        keep = same_status and not core_link
        core_adj = None
        if same_status and self._core_adj is not None:  # the same cores: patch the ends
            core_adj = dict(self._core_adj)
            for e in ends:
                if len(adj[e]) >= 2:
                    core_adj[e] = tuple(w for w in adj[e] if len(adj[w]) >= 2)
        return Forest(adj, dict(self._trees) if keep else None, core_adj)

    def same_core_graph(self, other: Forest, pairs: Collection[tuple[str, str]]) -> bool:
        """Whether `other` is this forest after `pairs` changed without changing the core graph
        (then every core tree is the same in both)."""
        ends = {sw for pair in pairs for sw in pair}
        if any((len(self.adj[e]) >= 2) != (len(other.adj[e]) >= 2) for e in ends):
            return False
        return not any(len(self.adj[a]) >= 2 and len(self.adj[b]) >= 2 for a, b in pairs)

    def same_cores(self, other: Forest, pairs: Collection[tuple[str, str]]) -> bool:
        """Whether the switches at `pairs` are core in both forests or in neither."""
        ends = {sw for pair in pairs for sw in pair}
        return all((len(self.adj[e]) >= 2) == (len(other.adj[e]) >= 2) for e in ends)

    def is_core(self, switch: str) -> bool:
        return len(self.adj[switch]) >= 2

    def anchor(self, root: str) -> str | None:
        """The switch whose core tree serves `root`: itself if core, else its one neighbour
        (None: `root` has no link up)."""
        nbrs = self.adj[root]
        if len(nbrs) >= 2:
            return root
        return nbrs[0] if nbrs else None

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
        """Core switch -> its neighbours that are core, in declaration order."""
        if self._core_adj is None:
            adj = self.adj
            self._core_adj = {
                sw: tuple(w for w in adj[sw] if len(adj[w]) >= 2) for sw in self.cores
            }
        return self._core_adj

    def parent(self, root: str, switch: str) -> str | None:
        """The next hop from `switch` towards `root`; None at `root` or where it is unreachable."""
        if switch == root:
            return None
        anchor = self.anchor(root)
        if anchor is None:
            return None
        if switch == anchor:
            return root
        adj = self.adj
        nbrs = adj[switch]
        if len(nbrs) == 1:
            only = nbrs[0]
            if only in (root, anchor):
                return only
            return only if len(adj[anchor]) >= 2 and only in self.tree(anchor) else None
        if not nbrs or len(adj[anchor]) < 2:
            return None
        return self.tree(anchor).get(switch)

    def reaches(self, root: str, switch: str) -> bool:
        return switch == root or self.parent(root, switch) is not None

    def leaves_of(self, switch: str) -> list[str]:
        """The leaves hanging off `switch`."""
        adj = self.adj
        return [n for n in adj[switch] if len(adj[n]) == 1]

    def distances(self, source: str) -> dict[str, int]:
        """Hops from `source` to every switch it reaches (itself at 0)."""
        adj = self.adj
        dist = {source: 0}
        level = [source]
        d = 0
        while level:
            d += 1
            found: list[str] = []
            for v in level:
                for w in adj[v]:
                    if w not in dist:
                        dist[w] = d
                        found.append(w)
            level = found
        return dist
