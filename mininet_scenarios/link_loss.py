"""Packet loss on the path between two sites' MEC hosts (seed 003, Table III), without netem.

This kernel has no netem (see the README), so loss is iptables' `statistic` match: each packet
is dropped with probability P, independently (`--mode random`). The rule sits in the receiving
MEC host's network namespace, in a chain of its own that INPUT jumps to for packets from the
sending MEC host's address:

    INPUT        -s <sender's agent IP>/32 -j MECMIG-LOSS      (counts every packet it sees)
    MECMIG-LOSS  -m statistic --mode random --probability P -j DROP

So the packets are lost *after* they crossed the emulated links, as on a lossy wire: the sender
sent them (TCP must detect the loss and retransmit), unlike a drop in the sender's OUTPUT,
which TCP sees at once as a local error. Only traffic between the two MEC hosts is touched:
their agents' migration copies (agent to agent, `MIGRATION_PORT`), nothing of the instances
(their own namespaces) or of the UE.

Direction: `forward` (the default) drops what the source sends to the destination, i.e. the
migration's data; ACKs come back whole. This is seed 003's setup (its repository's netem was
the egress qdisc of one device). `both` also drops the destination's packets to the source.

`LinkLoss` is a context manager: it installs the rules on entry (none for P = 0) and removes
exactly what it made on exit, on error too; `counters()` reads how many packets each rule saw
and dropped (the measured drop rate). The emulation's host namespaces are its own, so a rule a
crash leaves behind goes with the namespace when the emulation is torn down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from ground.runner import CommandError
from topology.scenario import Scenario
from topology.world import agent_host

if TYPE_CHECKING:
    from mininet_scenarios.emulation import Emulation

CHAIN = "MECMIG-LOSS"
DIRECTIONS = ("forward", "both")
IPTABLES = ("iptables", "-w", "5")  # wait for the xtables lock (CRIU's locks take it too)
MAX_LOSS_PCT = 100.0
_COUNTER_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$")


class LossError(Exception):
    """A loss rule could not be installed (which host, which command, why)."""


@dataclass(frozen=True)
class LossRule:
    """One direction: `host` (a MEC host) drops packets from `source_ip` with `probability`."""

    host: str
    source_ip: str
    probability: float

    @property
    def jump(self) -> list[str]:
        """INPUT's rule, without the command (-I / -D / -C goes in front)."""
        return ["INPUT", "-s", f"{self.source_ip}/32", "-j", CHAIN]

    def install(self) -> list[list[str]]:
        """The commands that make the chain, its drop rule, then INPUT's jump to it."""
        return [
            [*IPTABLES, "-N", CHAIN],
            [*IPTABLES, "-A", CHAIN, "-m", "statistic", "--mode", "random"]
            + ["--probability", probability_text(self.probability), "-j", "DROP"],
            [*IPTABLES, "-I", *self.jump[:1], "1", *self.jump[1:]],
        ]

    def remove(self) -> list[list[str]]:
        """The commands that undo `install` (each may fail when its part was never made)."""
        return [[*IPTABLES, "-D", *self.jump], [*IPTABLES, "-F", CHAIN], [*IPTABLES, "-X", CHAIN]]


def probability_text(p: float) -> str:
    """iptables' --probability (a fraction, at most 11 decimals as it parses it)."""
    return f"{p:.11f}".rstrip("0").rstrip(".") or "0"


def loss_rules(
    source: str, destination: str, ips: dict[str, str], loss_pct: float, direction: str = "forward"
) -> list[LossRule]:
    """The rules for `loss_pct` % loss between two sites (`ips`: site -> its agent's address);
    none at 0 %. ValueError for a loss outside [0, 100] or an unknown direction."""
    if not 0.0 <= loss_pct <= MAX_LOSS_PCT:
        raise ValueError(f"packet loss {loss_pct:g} % is not between 0 and {MAX_LOSS_PCT:g} %")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}: one of {', '.join(DIRECTIONS)}")
    if source == destination:
        raise ValueError(f"no path from {source} to itself")
    if loss_pct == 0:
        return []
    p = loss_pct / 100.0
    rules = [LossRule(agent_host(destination), ips[source], p)]
    if direction == "both":
        rules.append(LossRule(agent_host(source), ips[destination], p))
    return rules


def parse_counters(jump_listing: str, chain_listing: str, source_ip: str) -> tuple[int, int]:
    """(packets INPUT sent to the chain from `source_ip`, packets the chain dropped), from
    `iptables -nvxL INPUT` and `iptables -nvxL MECMIG-LOSS`."""
    seen = dropped = 0
    for line in jump_listing.splitlines():
        m = _COUNTER_LINE.match(line)
        if m and m.group(3) == CHAIN and f" {source_ip} " in f" {m.group(4)} ":
            seen += int(m.group(1))
    for line in chain_listing.splitlines():
        m = _COUNTER_LINE.match(line)
        if m and m.group(3) == "DROP":
            dropped += int(m.group(1))
    return seen, dropped


@dataclass(frozen=True)
class Counted:
    """What one direction's rules counted since they were installed."""

    host: str
    source_ip: str
    probability: float
    seen: int
    dropped: int

    @property
    def measured(self) -> float | None:
        """The measured drop probability (None before a packet came)."""
        return self.dropped / self.seen if self.seen else None

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "from": self.source_ip,
            "configured_pct": round(self.probability * 100, 6),
            "seen": self.seen,
            "dropped": self.dropped,
            "measured_pct": None if self.measured is None else round(self.measured * 100, 4),
        }


class LinkLoss:
    """`loss_pct` % packet loss between two sites' MEC hosts while the context is open.

    with LinkLoss(emu, ips, "mec1", "mec2", 5.0) as loss:
        ...                       # the migration
        counted = loss.counters()
    """

    def __init__(
        self,
        hosts: Emulation,
        ips: dict[str, str],
        source: str,
        destination: str,
        loss_pct: float,
        *,
        direction: str = "forward",
    ) -> None:
        self.hosts = hosts
        self.rules = loss_rules(source, destination, ips, loss_pct, direction)
        self.loss_pct = loss_pct
        self.direction = direction
        self.made: list[tuple[LossRule, int]] = []  # each rule, and its steps made

    def install(self) -> LinkLoss:
        """Install every rule; on a failure remove what was made and raise LossError."""
        try:
            for rule in self.rules:
                self.made.append((rule, 0))
                for step, argv in enumerate(rule.install(), start=1):
                    self.hosts.run_on(rule.host, argv, timeout=15)
                    self.made[-1] = (rule, step)
        except CommandError as exc:
            self.remove()
            raise LossError(f"packet loss rule in {rule.host}: {exc}") from exc
        except BaseException:
            self.remove()
            raise
        return self

    @property
    def installed(self) -> list[LossRule]:
        """The rules installed whole."""
        return [rule for rule, step in self.made if step == len(rule.install())]

    def remove(self) -> list[str]:
        """Undo what `install` made, and only that (a chain of the same name that was there
        before is left alone), then check that none of it is left; the problems, if any."""
        problems = []
        for rule, step in reversed(self.made):
            if step == 0:  # not even its chain was made
                continue
            undo = rule.remove() if step == len(rule.install()) else rule.remove()[1:]
            try:
                for argv in undo:
                    self.hosts.run_on(rule.host, argv, check=False, timeout=15)
                left = self.hosts.run_on(rule.host, [*IPTABLES, "-S"], timeout=15).stdout
            except CommandError as exc:  # timed out, or no such host any more
                problems.append(f"{rule.host}: {exc}")
                continue
            if CHAIN in left:
                problems.append(f"{rule.host}: {CHAIN} is still there after removal")
        self.made.clear()
        return problems

    def counters(self) -> list[Counted]:
        """Each installed direction's packets seen and dropped so far."""
        out = []
        for rule in self.installed:
            listing = [*IPTABLES, "-nvxL"]
            jumps = self.hosts.run_on(rule.host, [*listing, "INPUT"], timeout=15).stdout
            chain = self.hosts.run_on(rule.host, [*listing, CHAIN], timeout=15).stdout
            seen, dropped = parse_counters(jumps, chain, rule.source_ip)
            out.append(Counted(rule.host, rule.source_ip, rule.probability, seen, dropped))
        return out

    def __enter__(self) -> LinkLoss:
        return self.install()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


def site_ips(scenario: Scenario) -> dict[str, str]:
    """Every site's agent address (its MEC host's), as LinkLoss takes them."""
    ips = {site.name: site.agent_ip for site in scenario.sites}
    missing = [name for name, ip in ips.items() if ip is None]
    if missing:
        raise ValueError(f"sites without an agent address: {', '.join(missing)}")
    return {name: str(ip) for name, ip in ips.items()}
