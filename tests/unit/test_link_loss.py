"""mininet_scenarios.link_loss without a network: the rules' commands, their counters, and
that LinkLoss removes exactly what it made, on a failure too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from ground.runner import CommandError, Result
from mininet_scenarios.emulation import Emulation
from mininet_scenarios.link_loss import (
    CHAIN,
    LinkLoss,
    LossError,
    LossRule,
    loss_rules,
    parse_counters,
    probability_text,
)

IPS = {"mec1": "10.0.0.1", "mec2": "10.0.0.2"}

INPUT = """Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
   30244  1573012 MECMIG-LOSS  0    --  *      *       10.0.0.1             0.0.0.0/0
"""
LOSS_CHAIN = (
    "Chain MECMIG-LOSS (1 references)\n"
    "    pkts      bytes target     prot opt in     out     source               destination\n"
    "    1477    76804 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0"
    "            statistic mode random probability 0.05000000000\n"
)


class Hosts:
    """Runs nothing: records each host's commands; `fail` makes the matching one fail."""

    def __init__(self, fail: tuple[str, str] | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = fail
        self.chains: dict[str, set[str]] = {}

    def run_on(self, name: str, argv: Sequence[str], *, check: bool = True, **_: Any) -> Result:
        argv = list(argv)
        self.calls.append((name, argv))
        chains = self.chains.setdefault(name, set())
        if self.fail is not None and name == self.fail[0] and self.fail[1] in argv:
            if check:
                raise CommandError(argv, 1, "iptables: Chain already exists.")
            return Result(tuple(argv), 1, "", "no", 0.0)
        if "-N" in argv:
            chains.add(argv[-1])
        if "-X" in argv:
            chains.discard(argv[-1])
        out = "".join(f"-N {c}\n" for c in sorted(chains)) if argv[-1] == "-S" else ""
        return Result(tuple(argv), 0, out, "", 0.0)


def test_rules_forward_only_by_default_both_on_request() -> None:
    assert loss_rules("mec1", "mec2", IPS, 0.0) == []
    (fwd,) = loss_rules("mec1", "mec2", IPS, 5.0)
    assert fwd == LossRule("hmec2", "10.0.0.1", 0.05)  # the destination drops the source's
    both = loss_rules("mec1", "mec2", IPS, 1.0, "both")
    assert [(r.host, r.source_ip) for r in both] == [("hmec2", "10.0.0.1"), ("hmec1", "10.0.0.2")]
    for bad in (-1.0, 100.5):
        with pytest.raises(ValueError, match="not between"):
            loss_rules("mec1", "mec2", IPS, bad)
    with pytest.raises(ValueError, match="direction"):
        loss_rules("mec1", "mec2", IPS, 1.0, "backward")
    with pytest.raises(ValueError, match="itself"):
        loss_rules("mec1", "mec1", IPS, 1.0)


def test_commands_make_a_chain_of_their_own_and_undo_it() -> None:
    rule = LossRule("hmec2", "10.0.0.1", 0.001)
    made = rule.install()
    assert made[0][-2:] == ["-N", CHAIN]
    assert made[1][3:] == [
        "-A", CHAIN, "-m", "statistic", "--mode", "random", "--probability", "0.001", "-j", "DROP",
    ]  # fmt: skip
    assert made[2][3:] == ["-I", "INPUT", "1", "-s", "10.0.0.1/32", "-j", CHAIN]
    undo = rule.remove()
    assert [argv[3] for argv in undo] == ["-D", "-F", "-X"]
    assert undo[0][4:] == ["INPUT", "-s", "10.0.0.1/32", "-j", CHAIN]
    assert probability_text(0.05) == "0.05" and probability_text(0.001) == "0.001"
    assert probability_text(1.0) == "1" and probability_text(0.0) == "0"


def test_counters_read_from_iptables_listings() -> None:
    assert parse_counters(INPUT, LOSS_CHAIN, "10.0.0.1") == (30244, 1477)
    assert parse_counters(INPUT, LOSS_CHAIN, "10.0.0.9") == (0, 1477)
    assert parse_counters("", "", "10.0.0.1") == (0, 0)


def test_link_loss_installs_on_entry_and_removes_on_exit() -> None:
    hosts = Hosts()
    with LinkLoss(cast(Emulation, hosts), IPS, "mec1", "mec2", 5.0) as loss:
        assert [r.host for r in loss.installed] == ["hmec2"]
        assert hosts.chains["hmec2"] == {CHAIN}
    assert hosts.chains["hmec2"] == set() and loss.installed == []
    assert {name for name, _ in hosts.calls} == {"hmec2"}


def test_zero_loss_runs_nothing() -> None:
    hosts = Hosts()
    with LinkLoss(cast(Emulation, hosts), IPS, "mec1", "mec2", 0.0) as loss:
        assert loss.counters() == []
    assert hosts.calls == []


def test_a_failure_removes_what_was_made_and_leaves_a_strangers_chain() -> None:
    hosts = Hosts(fail=("hmec1", "-N"))  # the reverse rule's chain cannot be made
    hosts.chains["hmec1"] = {CHAIN}  # somebody else's
    with (
        pytest.raises(LossError, match="hmec1"),
        LinkLoss(cast(Emulation, hosts), IPS, "mec1", "mec2", 1.0, direction="both"),
    ):
        pass
    assert hosts.chains["hmec2"] == set()  # the forward rule, made whole, removed
    assert hosts.chains["hmec1"] == {CHAIN}  # not ours: untouched
    assert not any(name == "hmec1" and ("-X" in argv or "-D" in argv) for name, argv in hosts.calls)
