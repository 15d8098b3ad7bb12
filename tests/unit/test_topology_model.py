"""The topology model: deterministic port numbering, validation, lookups, link failures."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from topology.errors import (
    AdmissionError,
    DuplicateError,
    NoPathError,
    TopologyError,
    UnknownLinkError,
    UnknownNodeError,
)
from topology.model import Attachment, HostSpec, Link, Site, Switch, Topology

M = 1_000_000


def triangle(hosts: tuple[HostSpec, ...] | None = None) -> Topology:
    switches = [Switch("s1", 1), Switch("s2", 2), Switch("s3", 3)]
    links = [Link("s1", "s2", 100 * M), Link("s2", "s3", 100 * M), Link("s1", "s3", 50 * M, 5.0)]
    sites = [Site("mec1", "s1", 4.0, 2**30), Site("s3", "s3", 2.0, 2**30)]
    if hosts is None:
        hosts = (
            HostSpec("h1", "s1", ip="10.0.0.1"),
            HostSpec("ue1", "s1", kind="ue"),
            HostSpec("agent3", "s3", kind="agent"),
        )
    return Topology.build(switches, links, sites, hosts)


def test_ports_are_numbered_links_first_then_hosts_in_order() -> None:
    topo = triangle()
    assert [(ln.a, ln.a_port, ln.b, ln.b_port) for ln in topo.links] == [
        ("s1", 1, "s2", 1),
        ("s2", 2, "s3", 1),
        ("s1", 2, "s3", 2),
    ]
    assert [(a.host, a.switch, a.port) for a in topo.attachments] == [
        ("h1", "s1", 3),
        ("ue1", "s1", 4),
        ("agent3", "s3", 3),
    ]
    assert topo.attachment("h1") == Attachment("h1", "s1", 3, ip="10.0.0.1")


def test_port_numbering_is_deterministic() -> None:
    assert triangle().links == triangle().links
    assert triangle().attachments == triangle().attachments


def test_explicit_ports_are_kept_and_skipped_by_assignment() -> None:
    topo = Topology.build(
        [Switch("s1", 1), Switch("s2", 2), Switch("s3", 3)],
        [Link("s1", "s2", M, a_port=1), Link("s1", "s3", M)],
        hosts=[HostSpec("h1", "s1", port=2), HostSpec("h2", "s1")],
    )
    # s1: 1 (explicit link), 2 (explicit host) taken; the s1-s3 link gets 3, h2 gets 4.
    assert topo.port_to("s1", "s2") == 1
    assert topo.port_to("s1", "s3") == 3
    assert topo.port_to("s2", "s1") == 1
    assert [(a.host, a.port) for a in topo.attachments_on("s1")] == [("h1", 2), ("h2", 4)]


def test_accessors() -> None:
    topo = triangle()
    assert [s.name for s in topo.switches] == ["s1", "s2", "s3"]
    assert topo.switch("s2") == Switch("s2", 2)
    assert topo.switch_by_dpid(3).name == "s3"
    assert topo.site("mec1").switch == "s1"
    assert topo.link("s3", "s1") is topo.link("s1", "s3")
    assert topo.link("s3", "s1").latency_ms == 5.0
    assert topo.has_link("s2", "s1") and not topo.has_link("s1", "s1")
    assert topo.port_to("s3", "s1") == 2
    assert topo.neighbors("s1") == ("s2", "s3")
    assert [a.host for a in topo.attachments_on("s1")] == ["h1", "ue1"]
    assert topo.attachments_on("s2") == ()
    assert "3 switches" in repr(topo)


def test_link_port_on_and_other() -> None:
    link = triangle().link("s2", "s3")
    assert link.port_on("s2") == 2 and link.port_on("s3") == 1
    assert link.other("s2") == "s3" and link.other("s3") == "s2"
    with pytest.raises(UnknownNodeError):
        link.port_on("s1")
    with pytest.raises(UnknownNodeError):
        link.other("s1")


def test_lookup_errors_name_what_is_missing() -> None:
    topo = triangle()
    with pytest.raises(UnknownNodeError, match="'nope'") as exc:
        topo.switch("nope")
    assert exc.value.name == "nope"
    with pytest.raises(UnknownNodeError, match="0x63"):
        topo.switch_by_dpid(99)
    with pytest.raises(UnknownNodeError):
        topo.site("s1")
    with pytest.raises(UnknownNodeError):
        topo.attachment("ghost")
    with pytest.raises(UnknownNodeError):
        topo.neighbors("ghost")
    with pytest.raises(UnknownNodeError):
        topo.attachments_on("ghost")
    with pytest.raises(UnknownLinkError) as link_exc:
        triangle().with_link_down("s1", "s2").link("s2", "s1")
    assert (link_exc.value.u, link_exc.value.v) == ("s2", "s1")


def test_resolve_maps_switch_site_and_host_to_a_switch() -> None:
    topo = triangle()
    assert topo.resolve("s2") == "s2"
    assert topo.resolve("mec1") == "s1"
    assert topo.resolve("s3") == "s3"  # a site may carry its own switch's name
    assert topo.resolve("ue1") == "s1"
    assert topo.resolve("agent3") == "s3"
    with pytest.raises(UnknownNodeError, match="'elsewhere'"):
        topo.resolve("elsewhere")


def test_graph_is_an_independent_copy_with_attributes() -> None:
    topo = triangle()
    g = topo.graph
    assert sorted(g.nodes) == ["s1", "s2", "s3"]
    assert g.nodes["s2"]["dpid"] == 2
    assert g.edges["s3", "s1"]["capacity_bps"] == 50 * M
    assert g.edges["s1", "s3"]["latency_ms"] == 5.0
    assert g.edges["s1", "s3"]["ports"] == {"s1": 2, "s3": 2}
    g.remove_edge("s1", "s2")
    assert topo.graph.has_edge("s1", "s2")


def test_link_down_keeps_every_port_number() -> None:
    topo = triangle()
    down = topo.with_link_down("s2", "s1")
    assert not down.has_link("s1", "s2") and topo.has_link("s1", "s2")
    assert down.port_to("s1", "s3") == 2 and down.port_to("s3", "s2") == 1
    assert down.attachments == topo.attachments
    assert down.neighbors("s1") == ("s3",)
    both = topo.without_links([("s1", "s2"), ("s3", "s1")])
    assert both.neighbors("s1") == ()
    with pytest.raises(UnknownLinkError):
        down.with_link_down("s1", "s2")


def test_model_objects_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        triangle().links[0].capacity_bps = 1  # type: ignore[misc]


_SW = [Switch("s1", 1), Switch("s2", 2)]


@pytest.mark.parametrize(
    ("switches", "links", "sites", "hosts", "error", "text"),
    [
        (_SW + [Switch("s1", 9)], [], [], [], DuplicateError, "switch name 's1'"),
        (_SW + [Switch("s9", 2)], [], [], [], DuplicateError, "dpid 0x2"),
        ([Switch("s1", -1)], [], [], [], TopologyError, "64-bit"),
        (_SW, [Link("s1", "sX", M)], [], [], UnknownNodeError, "'sX'"),
        (_SW, [Link("s1", "s1", M)], [], [], TopologyError, "self-loop"),
        (_SW, [Link("s1", "s2", M), Link("s2", "s1", M)], [], [], DuplicateError, "twice"),
        (_SW, [Link("s1", "s2", 0)], [], [], TopologyError, "capacity_bps > 0"),
        (_SW, [Link("s1", "s2", M, -1.0)], [], [], TopologyError, "latency_ms >= 0"),
        (_SW, [], [Site("m", "sX", 1.0, 1)], [], UnknownNodeError, "'sX'"),
        (_SW, [], [Site("m", "s1", 1.0, 1)] * 2, [], DuplicateError, "site name 'm'"),
        (_SW, [], [Site("s2", "s1", 1.0, 1)], [], DuplicateError, "another switch"),
        (_SW, [], [Site("m", "s1", 0.0, 1)], [], TopologyError, "cpus > 0"),
        (_SW, [], [], [HostSpec("h", "sX")], UnknownNodeError, "'sX'"),
        (_SW, [], [], [HostSpec("h", "s1"), HostSpec("h", "s2")], DuplicateError, "'h'"),
        (_SW, [], [], [HostSpec("s2", "s1")], DuplicateError, "switch or site"),
        (_SW, [], [], [HostSpec("h", "s1", kind="vm")], TopologyError, "kind 'vm'"),
        (_SW, [], [], [HostSpec("h", "s1", port=-3)], TopologyError, "outside"),
        (
            _SW,
            [Link("s1", "s2", M, a_port=4)],
            [],
            [HostSpec("h", "s1", port=4)],
            DuplicateError,
            "port 4 on s1",
        ),
    ],
)
def test_validation_errors(
    switches: list[Switch],
    links: list[Link],
    sites: list[Site],
    hosts: list[HostSpec],
    error: type[Exception],
    text: str,
) -> None:
    with pytest.raises(error, match=text):
        Topology.build(switches, links, sites, hosts)


def test_errors_are_topology_errors_and_picklable() -> None:
    errors: list[TopologyError] = [
        UnknownNodeError("x", "site"),
        UnknownLinkError("a", "b"),
        NoPathError("a", "b", "disconnected"),
        AdmissionError("a", "b", 40 * M, ("c", "b"), 25 * M, 100 * M, 75 * M, detail="why"),
    ]
    for err in errors:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
        assert copy.__dict__ == err.__dict__
