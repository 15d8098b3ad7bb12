"""Links that have their declared capacity: tc HTB on both ends of every switch-to-switch link.

A scenario link is a veth pair between two OVS bridges; the userspace datapath transmits through
each end's qdisc (checked with `tc -s class show`: the bytes OVS forwards are counted there), so
an end's egress qdisc shapes one direction of the link, and both ends shape both directions.

Each end gets the same hierarchy:

    1:    htb, unclassified traffic to 1:20
    1:1   rate = ceil = the link's capacity
    1:10  reserved and control: IP with DSCP 46 (EF, what the controller's reservations set at
          their first switch), LLDP (the controller's link discovery) and ARP; priority 0, a
          guaranteed rate of the capacity minus the best-effort floor, may borrow up to all of it
    1:20  best effort: everything else; priority 1, a guaranteed floor (1 % of the capacity) so
          that it never starves, may borrow whatever 1:10 leaves

so traffic that a reservation's meter admitted keeps its rate while best-effort traffic saturates
the link. Best effort queues 30 full frames' bytes, the reserved class 45 (see
BEST_EFFORT_QUEUE_PACKETS for why).

The functions here are pure (a link -> its tc commands); `apply` is the one place they run, through
the injected runner. Latency (`latency_ms`) is not emulated: this kernel has no netem (nor fq, for
departure-time pacing); see the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ground.defaults import RESERVED_DSCP
from ground.runner import CommandError, Runner
from mininet_scenarios.record import switch_interface
from topology.model import Link

ROOT_HANDLE = "1:"
PARENT_CLASS = "1:1"
RESERVED_CLASS = "1:10"
BEST_EFFORT_CLASS = "1:20"
BEST_EFFORT_FLOOR = 0.01  # the share of the capacity best effort is guaranteed
MIN_FLOOR_BPS = 8_000  # ... at least this (a 10 kbit/s link still lets ARP through)
QUANTUM_BYTES = 1514  # one full Ethernet frame per round (explicit: HTB's r2q guess warns)
# HTB's bucket (burst, cburst): the userspace datapath hands the kernel up to 32 frames at once;
# a bucket smaller than that throttles each batch and the link runs below its rate at 500 Mbit/s
BURST_SECONDS = 0.001
MIN_BURST_BYTES = 64 * 1514
# The leaves' FIFOs. Every frame the datapath sends out of a port is charged to that port's one
# packet socket until the qdisc lets it go, and the socket holds ~200 KB (net.core.wmem_default,
# ~80 frames): once best effort queues that much, the datapath's sends fail and it drops frames of
# every class alike (measured: a 40 Mbit/s reservation got 1 Mbit/s beside a flood with 825-frame
# leaves). So best effort queues few frames and drops the rest in the qdisc. The reserved class
# must stay under the socket too: it had about 100 ms of the capacity (up to 1000 frames), and a
# reserved TCP stream near the link's rate (a migration's copy, post-copy's pages) queued past
# the socket, so the datapath dropped a third of its segments and TCP ran at half the link (52.7
# MB/s against 97 for the same stream unreserved; 110.8 MB/s with 30 frames). The two leaves
# together now queue 75 frames, under the socket's ~80: drops happen in the qdisc, per class.
# The leaves count bytes (bfifo), those frames' worth at 1514 bytes: the fabric carries jumbo
# frames (the scenario's `network.fabric_mtu`), and 75 of 9014 bytes would hold six times what
# the socket does.
BEST_EFFORT_QUEUE_PACKETS = 30
RESERVED_QUEUE_PACKETS = 45
FULL_FRAME_BYTES = 1514
ETH_P_LLDP = "0x88cc"
_CLASS_SENT = re.compile(
    r"^class htb (\S+) .*?\n\s*Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", re.M | re.S
)


@dataclass(frozen=True)
class Shape:
    """One direction of a link: the qdisc on `dev` (the sending switch's end) at `rate_bps`."""

    dev: str
    rate_bps: int
    link: str  # 'a->b', for messages


class ShapingError(Exception):
    """tc refused a command (what, on which interface, and why)."""


def link_shapes(links: Iterable[Link]) -> list[Shape]:
    """Both directions of every link: a's end shapes a->b, b's end shapes b->a."""
    out = []
    for ln in links:
        out.append(Shape(switch_interface(ln.a, ln.a_port), ln.capacity_bps, f"{ln.a}->{ln.b}"))
        out.append(Shape(switch_interface(ln.b, ln.b_port), ln.capacity_bps, f"{ln.b}->{ln.a}"))
    return out


def best_effort_floor_bps(rate_bps: int) -> int:
    """What best effort is guaranteed on a link of `rate_bps` (the rest is 1:10's)."""
    return min(rate_bps // 2, max(MIN_FLOOR_BPS, int(rate_bps * BEST_EFFORT_FLOOR)))


def burst_bytes(rate_bps: int) -> int:
    return max(MIN_BURST_BYTES, int(rate_bps * BURST_SECONDS / 8))


def htb_commands(shape: Shape) -> list[list[str]]:
    """The tc commands that shape `shape.dev`'s egress (replacing whatever root qdisc it had)."""
    if shape.rate_bps < 2 * MIN_FLOOR_BPS:
        raise ValueError(f"{shape.link}: {shape.rate_bps} bit/s is too small to shape")
    dev, rate = shape.dev, shape.rate_bps
    floor = best_effort_floor_bps(rate)
    burst = str(burst_bytes(rate))
    limits = {
        RESERVED_CLASS: RESERVED_QUEUE_PACKETS * FULL_FRAME_BYTES,
        BEST_EFFORT_CLASS: BEST_EFFORT_QUEUE_PACKETS * FULL_FRAME_BYTES,
    }

    def klass(parent: str, classid: str, guaranteed: int, *extra: str) -> list[str]:
        return [
            *("tc", "class", "replace", "dev", dev, "parent", parent, "classid", classid),
            *("htb", "rate", f"{guaranteed}bit", "ceil", f"{rate}bit"),
            *("burst", burst, "cburst", burst, "quantum", str(QUANTUM_BYTES), *extra),
        ]

    def leaf(classid: str) -> list[str]:
        handle = classid.split(":")[1] + ":"
        return [
            *("tc", "qdisc", "replace", "dev", dev, "parent", classid, "handle", handle),
            *("bfifo", "limit", str(limits[classid])),
        ]

    def to_reserved(protocol: str, prio: int, *match: str) -> list[str]:
        return [
            *("tc", "filter", "add", "dev", dev, "parent", ROOT_HANDLE, "protocol", protocol),
            *("prio", str(prio), "u32", *match, "flowid", RESERVED_CLASS),
        ]

    default = BEST_EFFORT_CLASS.split(":")[1]
    tos = f"0x{RESERVED_DSCP << 2:02x}"  # DSCP is the TOS byte's upper six bits
    return [
        ["tc", "qdisc", "replace", "dev", dev, "root", "handle", ROOT_HANDLE, "htb"]
        + ["default", default],
        klass(ROOT_HANDLE, PARENT_CLASS, rate),
        klass(PARENT_CLASS, RESERVED_CLASS, rate - floor, "prio", "0"),
        klass(PARENT_CLASS, BEST_EFFORT_CLASS, floor, "prio", "1"),
        leaf(RESERVED_CLASS),
        leaf(BEST_EFFORT_CLASS),
        to_reserved("ip", 1, "match", "ip", "dsfield", tos, "0xfc"),
        to_reserved(ETH_P_LLDP, 2, "match", "u32", "0", "0"),
        to_reserved("arp", 3, "match", "u32", "0", "0"),
    ]


def apply(runner: Runner, shapes: Sequence[Shape]) -> None:
    """Shape every end in `shapes` (root namespace); ShapingError names the first that fails."""
    for shape in shapes:
        for argv in htb_commands(shape):
            try:
                runner.run(argv, timeout=10)
            except CommandError as exc:
                raise ShapingError(
                    f"cannot shape {shape.link} ({shape.dev}) to {shape.rate_bps} bit/s: {exc}"
                ) from exc


@dataclass(frozen=True)
class ClassCounters:
    """What one HTB class of a shaped end has sent (and dropped) since it was made."""

    bytes: int
    packets: int
    dropped: int


def class_stats_command(dev: str) -> list[str]:
    """`tc -s class show dev DEV`: each class's counters (parsed by `parse_class_stats`)."""
    return ["tc", "-s", "class", "show", "dev", dev]


def parse_class_stats(text: str) -> dict[str, ClassCounters]:
    """Class id -> its counters, from `tc -s class show` output (classes of other kinds left
    out)."""
    return {
        m.group(1): ClassCounters(int(m.group(2)), int(m.group(3)), int(m.group(4)))
        for m in _CLASS_SENT.finditer(text)
    }


def class_stats(runner: Runner, dev: str) -> dict[str, ClassCounters]:
    """The counters of `dev`'s HTB classes now: proof that what the switch sent went through
    the shaper (and into which class)."""
    return parse_class_stats(runner.run(class_stats_command(dev), timeout=10).stdout)
