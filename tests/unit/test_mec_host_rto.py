"""The MEC hosts' routes get a 5 ms minimum TCP retransmission timeout (emulation.rto_min_routes):
each route `ip route show` printed is replaced by itself with `rto_min`."""

from __future__ import annotations

from mininet_scenarios.emulation import MEC_HOST_RTO_MIN_MS, rto_min_routes


def test_each_route_is_replaced_by_itself_with_rto_min() -> None:
    shown = (
        "10.0.0.0/8 dev hmec1-eth0 proto kernel scope link src 10.0.0.1 linkdown \n"
        "default via 10.0.0.254 dev hmec1-eth0 metric 100\n"
    )
    assert rto_min_routes(shown, MEC_HOST_RTO_MIN_MS) == [
        "route replace 10.0.0.0/8 dev hmec1-eth0 proto kernel scope link src 10.0.0.1 rto_min 5ms",
        "route replace default via 10.0.0.254 dev hmec1-eth0 metric 100 rto_min 5ms",
    ]


def test_an_earlier_rto_min_is_replaced_not_repeated() -> None:
    shown = "10.0.0.0/8 dev eth0 scope link rto_min lock 200ms\n10.1.0.0/16 dev eth0 rto_min 7ms\n"
    assert rto_min_routes(shown, 5) == [
        "route replace 10.0.0.0/8 dev eth0 scope link rto_min 5ms",
        "route replace 10.1.0.0/16 dev eth0 rto_min 5ms",
    ]


def test_multipath_routes_and_blank_lines_are_left_alone() -> None:
    shown = (
        "\n10.2.0.0/16 proto static\n"
        "\tnexthop via 10.0.0.2 dev eth0 weight 1\n"
        "\tnexthop via 10.0.0.3 dev eth0 weight 1\n"
        "10.3.0.0/16 dev eth0\n"
    )
    assert rto_min_routes(shown, 5) == ["route replace 10.3.0.0/16 dev eth0 rto_min 5ms"]
