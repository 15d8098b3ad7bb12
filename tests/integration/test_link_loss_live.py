"""Packet loss on the path between two MEC hosts (mininet_scenarios.link_loss), measured live.

Seed 003's R3-1: the measured drop rate within ±20 % (relative) of the configured one over at
least 10^4 packets. Two measurements: end to end (a ping flood from mec1's MEC host to mec2's:
the echo requests lost, as ping counts them) at 5 %, and the loss rule's own counters over UDP
blasts at 1 % and 0.1 % (enough packets that ±20 % is at least 3.5 standard deviations: 4x10^4
at 1 %, 3x10^5 at 0.1 %). Loss 0 installs nothing, and every rule is gone afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mininet_scenarios import testbed as testbeds
from mininet_scenarios.emulation import Emulation
from mininet_scenarios.link_loss import CHAIN, LinkLoss, LossError, site_ips

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "loss.yaml"
HOSTS = ("hmec1", "hmec2")
BLAST = 200_000  # UDP datagrams per blast (the 100 Mbit/s link lets through some 20-40 %)
_PING = re.compile(r"(\d+) packets transmitted, (\d+) received")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulation]:
    with testbeds.testbed(SCENARIO) as tb:
        yield tb.emu


def rules(emu: Emulation) -> dict[str, str]:
    return {h: emu.run_on(h, ["iptables", "-w", "5", "-S"]).stdout for h in HOSTS}


def blast(emu: Emulation, ip: str) -> None:
    code = (
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range({BLAST}): s.sendto(b'x' * 16, ('{ip}', 9))"
    )
    emu.run_on("hmec1", ["python3", "-c", code], timeout=120)


def test_drop_rate_within_20_percent_and_nothing_left(emu: Emulation) -> None:
    ips = site_ips(emu.scenario)
    before = rules(emu)
    assert all(CHAIN not in text for text in before.values())

    with LinkLoss(emu, ips, "mec1", "mec2", 0.0) as none:
        assert none.rules == [] and rules(emu) == before  # 0 %: nothing installed

    with LinkLoss(emu, ips, "mec1", "mec2", 5.0) as loss:
        during = rules(emu)
        assert CHAIN in during["hmec2"] and CHAIN not in during["hmec1"]  # forward only
        ping = ["ping", "-f", "-q", "-c", "10000", ips["mec2"]]
        out = emu.run_on("hmec1", ping, check=False, timeout=300).stdout
        match = _PING.search(out)
        assert match, out
        sent, received = int(match.group(1)), int(match.group(2))
        assert sent >= 10_000
        measured = (sent - received) / sent
        print(f"5 %: ping lost {sent - received} of {sent} ({100 * measured:.3f} %)")
        assert abs(measured / 0.05 - 1) <= 0.2, out
        (counted,) = loss.counters()
        assert counted.seen >= sent and counted.dropped == sent - received  # the rule did it

    for pct, at_least in ((1.0, 40_000), (0.1, 300_000)):
        with LinkLoss(emu, ips, "mec1", "mec2", pct) as loss:
            while loss.counters()[0].seen < at_least:
                blast(emu, ips["mec2"])
            (counted,) = loss.counters()
            assert counted.measured is not None
            print(f"{pct:g} %: dropped {counted.dropped} of {counted.seen}")
            assert abs(counted.measured / (pct / 100) - 1) <= 0.2, counted

    with LinkLoss(emu, ips, "mec1", "mec2", 1.0, direction="both"):
        during = rules(emu)
        assert all(CHAIN in text for text in during.values())
    assert rules(emu) == before  # every rule and chain removed


def test_a_rule_that_cannot_be_made_leaves_nothing(emu: Emulation) -> None:
    """The reverse rule (in hmec1) fails: the forward one, made whole, is removed; the chain of
    the same name that was in hmec1's way is not ours and stays."""
    ips = site_ips(emu.scenario)
    before = rules(emu)
    emu.run_on("hmec1", ["iptables", "-w", "5", "-N", CHAIN])  # in the way
    try:
        with (
            pytest.raises(LossError, match="hmec1"),
            LinkLoss(emu, ips, "mec1", "mec2", 1.0, direction="both"),
        ):
            pass
        after = rules(emu)
        assert after["hmec2"] == before["hmec2"]
        assert f"-N {CHAIN}" in after["hmec1"]
    finally:
        emu.run_on("hmec1", ["iptables", "-w", "5", "-X", CHAIN], check=False)
    assert rules(emu) == before
