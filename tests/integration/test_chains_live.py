"""Service function chains moved whole, on real OVS, os-ken, runc and CRIU (scenarios/chains.yaml):
each function is a runc container forwarding the chain's packets in user space
(workloads/sfcfwd.py: its flow table in its memory), the last one serves.

- A client at ue2 keeps ONE TCP connection to the 3-function chain's server (memhog, a PING every
  5 ms) through fw3 and ids3, both directions, while the chain moves mec1 -> mec2 -> mec1 ... under
  every pattern (and strategies in turn): the connection survives every move, the server's
  counter never goes back and its memory fingerprint is unchanged.
- Both forwarders kept their state: the same process history (`started`), the same seeded
  memory, and flow counters for the client's connection that only grew across the moves, in
  both directions, at least one per request answered.
- Each move switched the chain's steering once; wait-for-me froze the functions together.
- A failure of one function (its destination's restore refused) rolls the whole chain back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.netns import Plug
from migration.timeline import Outcome
from orchestration.chain_migration import ChainMigrationError
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import ChainRecord
from orchestration.orchestrator import Orchestrator
from tests.integration.live import ROOT, orchestrated
from topology.scenario import Scenario
from workloads import workload_path
from workloads.sfcfwd import expected_fingerprint

TRIPLE = ("fw3", "ids3", "counter3")
MOVES = (  # pattern, strategy
    ("wait-for-me", "precopy"),
    ("round-robin", "cold"),
    ("async", "postcopy"),
    ("wait-for-me", "hybrid"),
)


@dataclass
class Bed:
    sc: Scenario
    orch: Orchestrator
    ue: Any


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    with orchestrated("chains.yaml", tmp_path_factory.mktemp("agents")) as o:
        yield Bed(o.sc, o.orch, o.tb.emu.host("ue2"))


def stats(bed: Bed, function: str) -> dict[str, Any]:
    """The forwarder's STATS, asked from the UE (UDP to its own address)."""
    ip = str(bed.sc.instance(function).ip)
    out = bed.ue.cmd(f"{sys.executable} {workload_path('sfcfwd')} --ask {ip}")
    try:
        data: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        raise AssertionError(f"{function} does not answer STATS: {out!r}") from None
    return data


def client_flows(st: dict[str, Any], ue_ip: str, server: str) -> tuple[int, int]:
    """Packets of the client's TCP connection counted (to the server, back to the client)."""
    there = sum(v[0] for k, v in st["flows"].items() if k.startswith(f"tcp {ue_ip}:")
                and f">{server}:7000" in k)  # fmt: skip
    back = sum(v[0] for k, v in st["flows"].items() if k.startswith(f"tcp {server}:7000>")
               and f">{ue_ip}:" in k)  # fmt: skip
    return there, back


def test_a_three_function_chain_moves_whole_under_every_pattern(bed: Bed) -> None:
    for fn in TRIPLE:
        bed.orch.teardown(fn)
        bed.orch.deploy(fn)
    server = str(bed.sc.instance("counter3").ip)
    ue_ip = str(bed.sc.ue("ue2").ip)
    probe = bed.ue.popen(
        [sys.executable, "-m", "workloads.probe", server, "7000", "--duration", "0",
         "--interval-ms", "5", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    records: list[ChainRecord] = []
    try:
        time.sleep(1.5)
        before = {fn: stats(bed, fn) for fn in ("fw3", "ids3")}
        for fn, st in before.items():
            there, back = client_flows(st, ue_ip, server)
            assert there > 50 and back > 50, (fn, st["flows"])  # the chain passes through it
        where = "mec1"
        for pattern, strategy in MOVES:
            to = "mec2" if where == "mec1" else "mec1"
            record = plan_chain_migration(
                bed.orch, "triple", to, pattern=pattern, strategy=strategy
            ).run()
            assert record.outcome is Outcome.DONE, (pattern, strategy, record.error)
            assert all(bed.orch.where(fn) == to for fn in TRIPLE)
            assert [p.name for p in record.phases] == ["switch"]
            records.append(record)
            where = to
            time.sleep(1.0)
        after = {fn: stats(bed, fn) for fn in ("fw3", "ids3")}
    finally:
        probe.send_signal(signal.SIGINT)
        out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err.decode()
    result = json.loads(out)
    for r in records:
        m = r.metrics
        print(f"  {r.pattern}/{r.strategy}: chain frozen {m.get('chain_frozen_ms')} ms, spread "
              f"{m.get('freeze_spread_ms')} ms, switch {m.get('switchover_ms')} ms, per function "
              f"{m.get('function_frozen_ms')}")  # fmt: skip
    print(f"  client: {json.dumps({k: v for k, v in result.items() if k != 'gaps'})}")
    print(f"  forwarders: {json.dumps({fn: after[fn]['flows'] for fn in after})[:2000]}")
    # the client's one connection went through the chain, both ways, across every move
    assert result["same_connection"] and result["failures"] == 0, result
    assert result["counter_monotonic"] and result["fingerprint_first"] == result["fingerprint_last"]
    # every forwarder kept its state: same life, same memory, counters that only grew
    seeds = {"fw3": (42, 32 << 20), "ids3": (7, 48 << 20)}
    grown = {}
    for fn in ("fw3", "ids3"):
        b, a = before[fn], after[fn]
        assert a["started"] == b["started"] and a["fingerprint"] == expected_fingerprint(*seeds[fn])
        assert a["forwarded"] > b["forwarded"]
        (bt, bb), (at, ab) = client_flows(b, ue_ip, server), client_flows(a, ue_ip, server)
        assert at > bt and ab > bb, (fn, b["flows"], a["flows"])
        grown[fn] = (at - bt, ab - bb)
        # TCP coalesces the pipelined PINGs (Nagle): fewer packets than requests, but many
        assert min(at, ab) >= result["replies"] / 4, (fn, at, ab, result["replies"])
    # both functions saw the same packets of the connection, both ways: none skipped one
    for i in (0, 1):
        f, d = grown["fw3"][i], grown["ids3"][i]
        assert abs(f - d) <= max(10, 0.02 * f), grown
    waits = [r for r in records if r.pattern == "wait-for-me"]
    assert all(r.metrics["frozen_windows_overlap"] for r in waits)


def test_a_function_that_cannot_be_restored_rolls_the_whole_chain_back(bed: Bed) -> None:
    for fn in TRIPLE:
        if bed.orch.where(fn) != "mec1":
            bed.orch.teardown(fn)
            bed.orch.deploy(fn)
    before = {fn: stats(bed, fn) for fn in ("fw3", "ids3")}
    dest = bed.orch.site("mec2")
    real_restore = dest.restore
    calls: list[str] = []

    def refuse_second(instance: str, lazy_from: str | None = None) -> None:
        calls.append(instance)
        if len(calls) == 2:
            raise RuntimeError(f"injected: restore of {instance} refused")
        real_restore(instance, lazy_from)

    dest.restore = refuse_second  # type: ignore[method-assign]
    try:
        with pytest.raises(ChainMigrationError, match="rolled back") as info:
            plan_chain_migration(
                bed.orch, "triple", "mec2", pattern="round-robin", strategy="cold"
            ).run()
    finally:
        dest.restore = real_restore  # type: ignore[method-assign]
    record = info.value.record
    assert record.outcome is Outcome.ROLLED_BACK
    assert all(bed.orch.where(fn) == "mec1" for fn in TRIPLE)
    assert all(dest.status(fn) == "absent" for fn in TRIPLE)
    after = {fn: stats(bed, fn) for fn in ("fw3", "ids3")}
    for fn in ("fw3", "ids3"):  # the same processes, their tables intact, forwarding again
        assert after[fn]["started"] == before[fn]["started"]
        assert after[fn]["forwarded"] >= before[fn]["forwarded"]
    # and the chain carries a client's traffic again, through the same forwarders
    server = str(bed.sc.instance("counter3").ip)
    out = bed.ue.cmd(
        f"cd {ROOT} && {sys.executable} -m workloads.probe {server} 7000 --duration 2 --json"
    )
    result = json.loads(out)
    assert result["replies"] > 100 and result["failures"] == 0, result
    assert stats(bed, "fw3")["forwarded"] > after["fw3"]["forwarded"]


def _capture(interface: str, bpf: str, out: Path) -> subprocess.Popen[bytes]:
    """tcpdump in this (the root) namespace on `interface`, waiting for it to be up (a
    destination's interface is plugged in down, and tcpdump refuses a device that is down)."""
    script = (
        f"until ip -o link show {interface} 2>/dev/null | grep -q '[<,]UP[,>]'; "
        "do sleep 0.001; done; "
        f"exec tcpdump -i {interface} -n -U -s 128 -w {out} '{bpf}'"
    )
    return subprocess.Popen(["sh", "-c", script], stderr=subprocess.DEVNULL)


def _ttls(pcap: Path) -> list[int]:
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    return [int(p[IP].ttl) for p in rdpcap(str(pcap)) if IP in p]


def test_no_packet_skips_a_function_while_the_chain_moves(bed: Bed, tmp_path: Path) -> None:
    """Proven from captured packets: every function decrements the TTL of what it forwards, so a
    packet that passed both forwarders reaches the server, and the server's replies reach the
    UE, with TTL 64 - 2. Captured at the server's veth at the source and at the destination
    (its interface appears when the move prepares it) and at the UE while the 3-function chain
    moves mec1 -> mec2 under a client's requests every 2 ms: not one packet with another TTL,
    so none was steered into a half-moved chain (each switch's steering changes in one OpenFlow
    bundle, the chain's in one plan while its functions are frozen and its traffic held)."""
    for fn in TRIPLE:
        bed.orch.teardown(fn)
        bed.orch.deploy(fn)
    server = str(bed.sc.instance("counter3").ip)
    to_server = f"tcp and dst host {server} and dst port 7000"
    caps = {site: tmp_path / f"server-{site}.pcap" for site in ("mec1", "mec2")}
    sniffers = [
        _capture(_veth(bed, "counter3", site), to_server, pcap) for site, pcap in caps.items()
    ]
    ue_cap = tmp_path / "ue.pcap"
    ue_if = bed.ue.defaultIntf().name
    ue_sniffer = bed.ue.popen(
        ["tcpdump", "-i", ue_if, "-n", "-U", "-s", "128", "-w", str(ue_cap),
         f"tcp and src host {server} and src port 7000"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    probe = bed.ue.popen(
        [sys.executable, "-m", "workloads.probe", server, "7000", "--duration", "0",
         "--interval-ms", "2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    try:
        time.sleep(1.0)
        record = plan_chain_migration(
            bed.orch, "triple", "mec2", pattern="wait-for-me", strategy="precopy"
        ).run()
        assert record.outcome is Outcome.DONE, record.error
        time.sleep(1.0)
    finally:
        probe.send_signal(signal.SIGINT)
        out, _ = probe.communicate(timeout=60)
        time.sleep(0.3)
        for p in [*sniffers, ue_sniffer]:
            p.send_signal(signal.SIGINT)
        for p in [*sniffers, ue_sniffer]:
            p.wait(timeout=10)
    result = json.loads(out)
    assert result["same_connection"] and result["failures"] == 0, result
    there = {site: _ttls(pcap) for site, pcap in caps.items()}
    back = _ttls(ue_cap)
    print(
        f"\n  switch {record.metrics.get('switchover_ms')} ms; packets to the server at mec1 "
        f"{len(there['mec1'])}, at mec2 {len(there['mec2'])}, back at the UE {len(back)}; "
        f"TTLs {sorted(set(there['mec1'] + there['mec2']))} / {sorted(set(back))}"
    )
    # both sides of the move carried the connection, and every packet passed both forwarders
    assert len(there["mec1"]) > 50 and len(there["mec2"]) > 50, there
    assert len(back) > 100
    assert set(there["mec1"]) == set(there["mec2"]) == set(back) == {64 - 2}
    for fn in TRIPLE:  # the other tests deploy the chain afresh
        bed.orch.teardown(fn)


def _veth(bed: Bed, instance: str, site: str) -> str:
    """The bridge side of `instance`'s veth at `site`: the `Plug` its agent makes there (from
    the spec the orchestrator sends it, on its site's bridge), read, not restated."""
    spec = bed.orch.spec_at(instance, site)
    bridge = bed.sc.site(site).switch_name  # the agent's bridge (agent.server.build_agent)
    return Plug(spec.name, spec.ip, spec.prefix, spec.mac, bridge, spec.port).host_if
