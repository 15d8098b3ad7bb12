"""Link shaping (mininet_scenarios.shaping): the tc commands that give each link its capacity,
one direction per end, with the reserved class (DSCP 46, LLDP, ARP) first; and the one place
that runs them, through the runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ground.defaults import RESERVED_DSCP
from ground.runner import CommandError, Result
from mininet_scenarios.shaping import (
    BEST_EFFORT_CLASS,
    RESERVED_CLASS,
    ClassCounters,
    Shape,
    ShapingError,
    apply,
    best_effort_floor_bps,
    class_stats_command,
    htb_commands,
    link_shapes,
    parse_class_stats,
)
from topology.model import Link


def _words(argv: list[str], after: str) -> str:
    return argv[argv.index(after) + 1]


def _classes(cmds: list[list[str]]) -> dict[str, list[str]]:
    return {_words(c, "classid"): c for c in cmds if c[1:3] == ["class", "replace"]}


def test_each_link_is_shaped_at_both_ends_one_direction_each() -> None:
    links = [Link("s1", "core", 100_000_000, 1.0, 3, 1), Link("s2", "core", 50_000_000, None, 2, 4)]
    assert link_shapes(links) == [
        Shape("s1-eth3", 100_000_000, "s1->core"),
        Shape("core-eth1", 100_000_000, "core->s1"),
        Shape("s2-eth2", 50_000_000, "s2->core"),
        Shape("core-eth4", 50_000_000, "core->s2"),
    ]


def test_the_root_is_htb_with_best_effort_by_default_replacing_what_was_there() -> None:
    cmds = htb_commands(Shape("s1-eth3", 100_000_000, "s1->core"))
    assert cmds[0] == [
        *("tc", "qdisc", "replace", "dev", "s1-eth3", "root", "handle", "1:", "htb"),
        *("default", "20"),
    ]
    assert BEST_EFFORT_CLASS == "1:20" and RESERVED_CLASS == "1:10"
    assert all(c[:2] == ["tc", c[1]] and c[c.index("dev") + 1] == "s1-eth3" for c in cmds)


@pytest.mark.parametrize("rate", [10_000_000, 50_000_000, 100_000_000, 200_000_000, 500_000_000])
def test_the_link_rate_caps_every_class_and_reserved_traffic_goes_first(rate: int) -> None:
    classes = _classes(htb_commands(Shape("core-eth1", rate, "core->s1")))
    assert set(classes) == {"1:1", "1:10", "1:20"}
    parent, reserved, best = classes["1:1"], classes["1:10"], classes["1:20"]
    assert _words(parent, "parent") == "1:" and _words(parent, "rate") == f"{rate}bit"
    for cls in (parent, reserved, best):
        assert _words(cls, "ceil") == f"{rate}bit"  # nobody exceeds the link
        assert int(_words(cls, "burst")) >= 64 * 1514  # a datapath batch goes out at once
        assert _words(cls, "cburst") == _words(cls, "burst")
        assert int(_words(cls, "quantum")) >= 1514
    assert _words(reserved, "parent") == _words(best, "parent") == "1:1"
    assert (_words(reserved, "prio"), _words(best, "prio")) == ("0", "1")
    floor = best_effort_floor_bps(rate)
    assert floor == rate // 100  # best effort never starves: 1 % guaranteed
    assert _words(reserved, "rate") == f"{rate - floor}bit"
    assert _words(best, "rate") == f"{floor}bit"


def test_both_classes_together_queue_less_than_the_datapaths_packet_socket_holds() -> None:
    def limits(rate: int) -> dict[str, str]:
        cmds = htb_commands(Shape("x-eth1", rate, "x->y"))
        leaves = [c for c in cmds if c[1:3] == ["qdisc", "replace"] and "parent" in c]
        assert all("bfifo" in c for c in leaves)  # bytes: the fabric's frames are jumbo
        return {_words(c, "parent"): _words(c, "limit") for c in leaves}

    # the datapath's packet socket per port holds ~80 full frames (~200 KB): past it, it drops
    # every class; in bytes, so that 9014-byte frames do not queue six times as much
    for rate in (10_000_000, 100_000_000, 1_000_000_000):
        got = limits(rate)
        assert got == {"1:10": str(45 * 1514), "1:20": str(30 * 1514)}
        assert sum(int(n) for n in got.values()) < 80 * 1514


def test_dscp_46_lldp_and_arp_are_filtered_into_the_reserved_class() -> None:
    cmds = htb_commands(Shape("s1-eth3", 100_000_000, "s1->core"))
    filters = [c for c in cmds if c[1] == "filter"]
    assert all(_words(c, "parent") == "1:" and _words(c, "flowid") == "1:10" for c in filters)
    by_protocol = {
        _words(c, "protocol"): c[c.index("u32") + 1 : c.index("flowid")] for c in filters
    }
    assert RESERVED_DSCP == 46
    # the TOS byte's upper six bits: 46 << 2 = 0xb8, ECN bits masked out
    assert by_protocol["ip"] == ["match", "ip", "dsfield", "0xb8", "0xfc"]
    assert by_protocol["0x88cc"] == ["match", "u32", "0", "0"]  # LLDP: link discovery
    assert by_protocol["arp"] == ["match", "u32", "0", "0"]
    assert len({_words(c, "prio") for c in filters}) == 3


def test_a_rate_too_small_to_split_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        htb_commands(Shape("s1-eth1", 10_000, "s1->core"))


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        self.calls.append(list(argv))
        if self.fail_on is not None and self.fail_on in argv:
            raise CommandError(argv, 2, "RTNETLINK answers: No such device")
        return Result(tuple(argv), 0, "", "", 0.0)

    def spawn(self, *a: Any, **kw: Mapping[str, Any]) -> Any:
        raise AssertionError("shaping starts nothing long-running")


def test_apply_runs_every_command_of_every_end_in_order() -> None:
    shapes = link_shapes([Link("s1", "core", 100_000_000, None, 3, 1)])
    runner = Recorder()
    apply(runner, shapes)
    assert runner.calls == htb_commands(shapes[0]) + htb_commands(shapes[1])


def test_apply_names_the_link_that_could_not_be_shaped() -> None:
    shapes = link_shapes([Link("s1", "core", 100_000_000, None, 3, 1)])
    runner = Recorder(fail_on="core-eth1")
    with pytest.raises(ShapingError, match=r"(?s)core->s1 \(core-eth1\).*No such device"):
        apply(runner, shapes)
    assert runner.calls[-1][:5] == ["tc", "qdisc", "replace", "dev", "core-eth1"]


TC_CLASS_SHOW = """\
class htb 1:1 root rate 100Mbit ceil 100Mbit burst 96896b cburst 96896b
 Sent 61349386 bytes 40522 pkt (dropped 0, overlimits 3511 requeues 0)
 backlog 0b 0p requeues 0
 lended: 38000 borrowed: 0 giants: 0
 tokens: 118750 ctokens: 118750

class htb 1:10 parent 1:1 leaf 10: prio 0 rate 99Mbit ceil 100Mbit burst 96896b cburst 96896b
 Sent 1204 bytes 14 pkt (dropped 0, overlimits 0 requeues 0)
 backlog 0b 0p requeues 0

class htb 1:20 parent 1:1 leaf 20: prio 1 rate 1Mbit ceil 100Mbit burst 96896b cburst 96896b
 Sent 61348182 bytes 40508 pkt (dropped 211, overlimits 3511 requeues 0)
 backlog 9084b 6p requeues 0
"""


def test_class_counters_are_read_from_tc_s_class_show() -> None:
    stats = parse_class_stats(TC_CLASS_SHOW)
    assert stats == {
        "1:1": ClassCounters(61349386, 40522, 0),
        "1:10": ClassCounters(1204, 14, 0),
        "1:20": ClassCounters(61348182, 40508, 211),
    }
    assert class_stats_command("s1-eth3") == ["tc", "-s", "class", "show", "dev", "s1-eth3"]
    assert parse_class_stats("") == {}
