"""controller.trees: the distances a moved host's plan is staged by, searched over the core only,
are those of a search over every switch."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.trees import Forest
from topology.model import Link, Switch, Topology

M = 1_000_000


@st.composite
def fabrics(draw: st.DrawFn) -> tuple[Topology, set[frozenset[str]]]:
    """A ring with chords, leaves under it and under one another, an island of two switches,
    some links down."""
    cores = draw(st.integers(2, 6))
    leaves = draw(st.integers(0, 8))
    n = cores + leaves
    names = [f"s{i}" for i in range(1, n + 3)]
    ends = [(i, (i + 1) % cores) for i in range(cores)]
    ends += draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3))
    ends += [(draw(st.integers(0, i - 1)), i) for i in range(cores, n)]
    ends.append((n, n + 1))  # two switches and a link, nothing else
    pairs = sorted({(names[min(i, j)], names[max(i, j)]) for i, j in ends if i != j})
    topo = Topology.build(
        [Switch(s, i + 1) for i, s in enumerate(names)], [Link(a, b, M) for a, b in pairs]
    )
    down = draw(st.sets(st.sampled_from(pairs), max_size=3))
    return topo, {frozenset(p) for p in down}


@settings(max_examples=300, deadline=None)
@given(fabrics(), st.data())
def test_distances_to_the_wanted_switches_are_those_of_a_search_over_all(
    fabric: tuple[Topology, set[frozenset[str]]], data: st.DataObject
) -> None:
    topo, down = fabric
    forest = Forest.of(topo, down)
    names = [sw.name for sw in topo.switches]
    source = data.draw(st.sampled_from(names))
    wanted = data.draw(st.sets(st.sampled_from(names)))
    every = forest.distances(source)
    assert forest.distances_to(source, wanted) == {w: every[w] for w in wanted if w in every}
