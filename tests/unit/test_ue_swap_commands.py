"""What a lossless UE move runs in the UE (mininet_scenarios.emulation): the neighbours copied
to its new link, and its routes moved there in one `route replace` each, from what `ip` prints."""

from __future__ import annotations

from mininet_scenarios.emulation import neighbour_copies, route_moves

NEIGH = """10.0.0.21 lladdr 00:00:00:00:00:15 REACHABLE
10.0.0.5  FAILED
10.0.0.9 INCOMPLETE
10.0.0.31 lladdr 00:00:00:00:00:1f STALE
fe80::200:ff:fe00:15 lladdr 00:00:00:00:00:15 router STALE
"""


def test_only_neighbours_with_a_known_mac_are_copied() -> None:
    assert neighbour_copies(NEIGH, "car-eth1") == [
        "neigh replace 10.0.0.21 lladdr 00:00:00:00:00:15 dev car-eth1 nud reachable",
        "neigh replace 10.0.0.31 lladdr 00:00:00:00:00:1f dev car-eth1 nud reachable",
        "neigh replace fe80::200:ff:fe00:15 lladdr 00:00:00:00:00:15 dev car-eth1 nud reachable",
    ]
    assert neighbour_copies("", "car-eth1") == []


def test_each_route_is_replaced_on_the_new_link_without_its_state_flags() -> None:
    shown = (
        "default via 10.0.0.1 proto static metric 10\n"
        "10.0.0.0/24 proto kernel scope link src 10.0.0.100 linkdown\n"
    )
    assert route_moves(shown, "car-eth1") == [
        "route replace default via 10.0.0.1 proto static metric 10 dev car-eth1",
        "route replace 10.0.0.0/24 proto kernel scope link src 10.0.0.100 dev car-eth1",
    ]


def test_multipath_routes_and_blank_lines_are_left_alone() -> None:
    shown = (
        "\n10.1.0.0/16 proto static\n\tnexthop via 10.0.0.1 weight 1\n10.2.0.0/16 proto static\n"
    )
    assert route_moves(shown, "x") == ["route replace 10.2.0.0/16 proto static dev x"]
