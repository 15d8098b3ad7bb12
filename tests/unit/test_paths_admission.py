"""Path computation and bandwidth admission over small hand-made topologies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground.units import fmt_bps
from topology.admission import (
    UNCONSTRAINED,
    LinkLoad,
    admit,
    admit_on,
    path_residual,
    reserved_per_link,
    residual,
    resize_check,
)
from topology.errors import AdmissionError, NoPathError, UnknownLinkError, UnknownNodeError
from topology.model import HostSpec, Link, Reservation, Site, Switch, Topology
from topology.paths import path_links, shortest_path, widest_path

M = 1_000_000
G = 1_000_000_000


def build(links: list[Link], n: int = 4) -> Topology:
    switches = [Switch(f"s{i}", i) for i in range(1, n + 1)]
    return Topology.build(switches, links, [Site("mec1", "s1", 2.0, 2**30)], [HostSpec("ue", "s4")])


def square(direct: int = 100 * M) -> Topology:
    """s1-s4 direct, plus s1-s2-s4 and s1-s3-s4; the s3 links are declared first on purpose."""
    return build(
        [
            Link("s1", "s3", 100 * M),
            Link("s3", "s4", 100 * M),
            Link("s1", "s2", 100 * M),
            Link("s2", "s4", 100 * M),
            Link("s1", "s4", direct),
        ]
    )


def res(rid: int, path: tuple[str, ...], rate: int) -> Reservation:
    return Reservation(rid, path[0], path[-1], path, rate)


def test_path_links_are_directed_hops() -> None:
    assert path_links(("a", "b", "c")) == [("a", "b"), ("b", "c")]
    assert path_links(("a",)) == []


def test_shortest_by_hops_resolves_site_and_host_names() -> None:
    topo = square()
    assert shortest_path(topo, "s1", "s4") == ("s1", "s4")
    assert shortest_path(topo, "mec1", "ue") == ("s1", "s4")
    assert shortest_path(topo, "mec1", "s1") == ("s1",)
    with pytest.raises(UnknownNodeError):
        shortest_path(topo, "nowhere", "s4")
    with pytest.raises(ValueError, match="weight"):
        shortest_path(topo, "s1", "s4", weight="cost")


def test_equal_cost_tie_goes_to_lexicographically_smallest_path() -> None:
    topo = square().with_link_down("s1", "s4")
    assert shortest_path(topo, "s1", "s4") == ("s1", "s2", "s4")
    assert shortest_path(topo, "s4", "s1") == ("s4", "s2", "s1")
    assert shortest_path(topo, "s1", "s4", weight="latency") == ("s1", "s2", "s4")


def test_shortest_by_latency_may_take_more_hops() -> None:
    topo = build([Link("s1", "s4", M, 10.0), Link("s1", "s2", M, 2.0), Link("s2", "s4", M, 3.0)])
    assert shortest_path(topo, "s1", "s4") == ("s1", "s4")
    assert shortest_path(topo, "s1", "s4", weight="latency") == ("s1", "s2", "s4")


def test_missing_latency_counts_as_zero_then_fewer_hops_win() -> None:
    topo = build([Link("s1", "s4", M, 1.0), Link("s1", "s2", M), Link("s2", "s4", M)])
    assert shortest_path(topo, "s1", "s4", weight="latency") == ("s1", "s2", "s4")
    flat = build([Link("s1", "s4", M), Link("s1", "s2", M), Link("s2", "s4", M)])
    assert shortest_path(flat, "s1", "s4", weight="latency") == ("s1", "s4")


def test_latency_sums_are_exact_so_float_noise_does_not_break_ties() -> None:
    # 0.1 + 0.2 != 0.15 + 0.15 in floats; both are 0.3 ms, so the lexicographic rule decides.
    links = [Link("s1", "s2", M, 0.1), Link("s2", "s4", M, 0.2)]
    links += [Link("s1", "s3", M, 0.15), Link("s3", "s4", M, 0.15)]
    assert shortest_path(build(links), "s1", "s4", weight="latency") == ("s1", "s2", "s4")


def test_exclude_is_directed() -> None:
    topo = square()
    assert shortest_path(topo, "s1", "s4", exclude=[("s4", "s1")]) == ("s1", "s4")
    blocked = [("s1", "s4"), ("s1", "s2")]
    assert shortest_path(topo, "s1", "s4", exclude=blocked) == ("s1", "s3", "s4")
    everything = blocked + [("s1", "s3")]
    with pytest.raises(NoPathError, match="excluded") as exc:
        shortest_path(topo, "mec1", "s4", exclude=everything)
    assert (exc.value.src, exc.value.dst) == ("mec1", "s4")


def test_widest_path_is_not_the_shortest() -> None:
    topo = build(
        [
            Link("s1", "s4", 10 * M),
            Link("s1", "s2", G),
            Link("s2", "s4", G),
            Link("s1", "s3", G),
            Link("s3", "s2", G),
        ]
    )
    assert shortest_path(topo, "s1", "s4") == ("s1", "s4")
    assert widest_path(topo, "s1", "s4") == (("s1", "s2", "s4"), G)
    assert widest_path(topo, "s2", "s2") == (("s2",), UNCONSTRAINED)


def test_widest_path_prefers_fewer_hops_then_lexicographic() -> None:
    # s1-s3-s2-s4 is as wide as s1-s2-s4 but longer; s1-s2-s4 and s1-s3-s4 tie on both.
    links = [Link("s1", "s2", G), Link("s2", "s4", G), Link("s1", "s3", G), Link("s3", "s4", G)]
    topo = build([*links, Link("s3", "s2", G), Link("s1", "s4", M)])
    assert widest_path(topo, "s1", "s4") == (("s1", "s2", "s4"), G)
    assert widest_path(topo, "s4", "s1") == (("s4", "s2", "s1"), G)


def test_widest_path_uses_directional_residuals() -> None:
    topo = square()
    left = residual(topo, [res(1, ("s1", "s2", "s4"), 90 * M), res(2, ("s1", "s4"), 50 * M)])
    assert widest_path(topo, "s1", "s4", left) == (("s1", "s3", "s4"), 100 * M)
    assert widest_path(topo, "s4", "s1", left) == (("s4", "s1"), 100 * M)
    with pytest.raises(NoPathError):
        widest_path(build([Link("s1", "s2", M)]), "s1", "s4")


def test_residual_is_per_direction_and_clamped() -> None:
    topo = square()
    booked = [res(1, ("s1", "s4"), 30 * M), res(2, ("s1", "s4"), 20 * M)]
    booked.append(res(3, ("s2", "s4"), 150 * M))
    assert reserved_per_link(booked) == {("s1", "s4"): 50 * M, ("s2", "s4"): 150 * M}
    left = residual(topo, booked)
    assert left[("s1", "s4")] == 50 * M
    assert left[("s4", "s1")] == 100 * M
    assert left[("s2", "s4")] == 0
    assert len(left) == 2 * len(topo.links)


def test_path_residual_names_the_tightest_directed_link() -> None:
    topo = square()
    booked = [res(1, ("s2", "s4"), 60 * M), res(2, ("s1", "s2"), 60 * M)]
    assert path_residual(topo, ("s1", "s2", "s4"), booked) == (40 * M, ("s1", "s2"))
    assert path_residual(topo, ("s4", "s2", "s1"), booked) == (100 * M, ("s4", "s2"))
    assert path_residual(topo, ("s3",), booked) == (UNCONSTRAINED, None)
    with pytest.raises(UnknownLinkError):
        path_residual(topo, ("s2", "s3"), booked)


def test_admit_takes_a_longer_path_when_the_shortest_is_full() -> None:
    topo = square()
    booked = [res(1, ("s1", "s4"), 80 * M)]
    assert admit(topo, "s1", "s4", 20 * M, booked) == ("s1", "s4")
    assert admit(topo, "mec1", "ue", 40 * M, booked) == ("s1", "s2", "s4")
    assert admit(topo, "s4", "s1", 100 * M, booked) == ("s4", "s1")  # the other direction is free
    assert admit(topo, "s1", "s1", 10 * G, booked) == ("s1",)


def test_admit_by_latency_among_paths_that_fit() -> None:
    links = [Link("s1", "s4", 10 * M, 9.0), Link("s1", "s2", G, 2.0), Link("s2", "s4", G, 3.0)]
    topo = build([*links, Link("s1", "s3", G, 1.0), Link("s3", "s4", G, 1.0)])
    assert admit(topo, "s1", "s4", 5 * M, []) == ("s1", "s4")
    assert admit(topo, "s1", "s4", 20 * M, []) == ("s1", "s2", "s4")
    assert admit(topo, "s1", "s4", 5 * M, [], weight="latency") == ("s1", "s3", "s4")
    assert admit(topo, "s1", "s4", 500 * M, [], weight="latency") == ("s1", "s3", "s4")


def test_admit_keeps_the_preferred_path_while_it_fits() -> None:
    topo = square()
    prefer = ("s1", "s3", "s4")
    assert admit(topo, "s1", "s4", 50 * M, [], prefer=prefer) == prefer
    full = [res(1, ("s3", "s4"), 60 * M)]
    assert admit(topo, "s1", "s4", 50 * M, full, prefer=prefer) == ("s1", "s4")
    broken = topo.with_link_down("s3", "s4")
    assert admit(broken, "s1", "s4", 50 * M, [], prefer=prefer) == ("s1", "s4")
    with pytest.raises(ValueError, match="does not lead"):
        admit(topo, "s1", "s4", 50 * M, [], prefer=("s2", "s4"))


def test_admit_failure_names_the_bottleneck_of_the_widest_path() -> None:
    topo = Topology.build(
        [Switch("mec1", 1), Switch("core", 2), Switch("mec2", 3)],
        [Link("mec1", "core", 100 * M), Link("core", "mec2", 100 * M)],
    )
    booked = [res(1, ("core", "mec2"), 75 * M)]
    with pytest.raises(AdmissionError) as exc:
        admit(topo, "mec1", "mec2", 40 * M, booked)
    err = exc.value
    assert str(err) == (
        "cannot admit 40.0 Mbit/s from mec1 to mec2: bottleneck link core->mec2 has "
        "25.0 Mbit/s residual (capacity 100.0 Mbit/s, reserved 75.0 Mbit/s)"
    )
    assert (err.src, err.dst, err.rate_bps) == ("mec1", "mec2", 40 * M)
    assert (err.bottleneck, err.residual_bps) == (("core", "mec2"), 25 * M)
    assert (err.capacity_bps, err.reserved_bps) == (100 * M, 75 * M)


def test_admit_failure_reports_the_best_path_of_several() -> None:
    topo = square(direct=10 * M)
    booked = [res(1, ("s1", "s2"), 70 * M), res(2, ("s3", "s4"), 90 * M)]
    with pytest.raises(AdmissionError) as exc:
        admit(topo, "s1", "s4", 50 * M, booked)
    assert (exc.value.bottleneck, exc.value.residual_bps) == (("s1", "s2"), 30 * M)


def test_admit_without_any_path_and_bad_rates() -> None:
    topo = square().without_links([("s1", "s2"), ("s1", "s3"), ("s1", "s4")])
    with pytest.raises(AdmissionError, match="no path") as exc:
        admit(topo, "s1", "s4", M, [])
    assert exc.value.bottleneck is None and exc.value.residual_bps == 0
    with pytest.raises(ValueError, match="rate_bps"):
        admit(square(), "s1", "s4", 0, [])


def test_link_down_removes_paths() -> None:
    topo = square()
    assert shortest_path(topo.with_link_down("s1", "s4"), "s1", "s4") == ("s1", "s2", "s4")
    cut = topo.without_links([("s1", "s4"), ("s2", "s4"), ("s4", "s3")])
    with pytest.raises(NoPathError):
        shortest_path(cut, "s1", "s4")
    # A reservation stranded on the dead link no longer counts anywhere.
    assert ("s1", "s4") not in residual(cut, [res(1, ("s1", "s4"), M)])


def test_resize_check_ignores_the_reservations_own_amount() -> None:
    topo = square()
    mine = res(7, ("s1", "s4"), 50 * M)
    booked = [mine, res(8, ("s1", "s4"), 30 * M), res(9, ("s4", "s1"), 100 * M)]
    resize_check(topo, mine, 70 * M, booked)
    resize_check(topo, mine, 10 * M, booked)
    with pytest.raises(AdmissionError, match="resizing reservation 7") as exc:
        resize_check(topo, mine, 71 * M, booked)
    assert (exc.value.bottleneck, exc.value.residual_bps) == (("s1", "s4"), 70 * M)
    assert exc.value.reserved_bps == 30 * M
    resize_check(topo, res(1, ("s2",), 5 * M), 10 * G, booked)
    with pytest.raises(ValueError):
        resize_check(topo, mine, 0, booked)


def test_fmt_bps() -> None:
    assert fmt_bps(40 * M) == "40.0 Mbit/s"
    assert fmt_bps(1_500_000_000) == "1.5 Gbit/s"
    assert fmt_bps(800_000) == "800.0 kbit/s"
    assert fmt_bps(999_960_000) == "1.0 Gbit/s"
    assert fmt_bps(512) == "512 bit/s"


# `admit_on` (the state's admission, over kept link loads) against `admit` (from scratch)


@st.composite
def loaded_fabrics(draw: st.DrawFn) -> tuple[Topology, list[Reservation], set[tuple[str, str]]]:
    """A random core (a ring with chords) with leaves hanging off it and off each other,
    some links down, some reserved."""
    cores = draw(st.integers(2, 6))
    leaves = draw(st.integers(1, 8))
    n = cores + leaves
    names = [f"s{i}" for i in range(1, n + 1)]
    ring = [(i, (i + 1) % cores) for i in range(cores)]
    # chords, a few of them to leaves: a leaf whose second link is down is a leaf until it is up
    chords = draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=4))
    # a leaf hangs under a core switch or under an earlier leaf
    under = [draw(st.integers(0, i - 1)) for i in range(cores, n)]
    ends = [*ring, *chords, *zip(under, range(cores, n), strict=True)]
    pairs = {(names[min(i, j)], names[max(i, j)]) for i, j in ends if i != j}
    caps = [10, 20, 40]
    links = [Link(a, b, draw(st.sampled_from(caps)) * M) for a, b in sorted(pairs)]
    down = set(draw(st.sets(st.sampled_from(sorted(pairs)), max_size=3)))
    topo = Topology.build([Switch(s, i + 1) for i, s in enumerate(names)], links)
    up_topo = topo.without_links(sorted(down))
    reservations: list[Reservation] = []
    for k in range(draw(st.integers(0, 6))):
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        try:
            path = shortest_path(up_topo, a, b)
        except NoPathError:
            continue
        reservations.append(Reservation(k + 1, a, b, path, draw(st.sampled_from([5, 10])) * M))
    return topo, reservations, down


@settings(max_examples=300, deadline=None)
@given(loaded_fabrics(), st.data())
def test_admit_on_finds_the_path_admit_finds(
    fabric: tuple[Topology, list[Reservation], set[tuple[str, str]]], data: st.DataObject
) -> None:
    topo, reservations, down = fabric
    load = LinkLoad(topo)
    for a, b in sorted(down):
        load.set_up(a, b, False)
    for r in reservations:
        load.add(r.path, r.rate_bps)
    names = [sw.name for sw in topo.switches]
    src, dst = data.draw(st.sampled_from(names)), data.draw(st.sampled_from(names))
    rate = data.draw(st.sampled_from([1, 5, 10, 20, 40])) * M
    up_topo = topo.without_links(sorted(down))
    try:
        expected: tuple[str, ...] | None = admit(up_topo, src, dst, rate, reservations)
    except AdmissionError:
        expected = None
    assert admit_on(load, src, dst, rate) == expected
    if down:  # a link coming back up is seen as well
        a, b = sorted(down)[0]
        load.set_up(a, b, True)
        rest = topo.without_links(sorted(down - {(a, b)}))
        try:
            expected = admit(rest, src, dst, rate, reservations)
        except AdmissionError:
            expected = None
        assert admit_on(load, src, dst, rate) == expected
