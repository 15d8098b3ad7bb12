"""Measurements taken inside an emulation: real TCP transfers, switch counters."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ground.runner import SubprocessRunner
from mininet_scenarios.emulation import Emulation, EmulationError


def goodput_bps(
    emu: Emulation,
    client: str,
    server: str,
    port: int,
    seconds: float,
    pace_bps: int | None = None,
) -> float:
    """Receiver-side goodput of an iperf3 TCP bulk transfer from `client` to `server`.

    `pace_bps` makes the sender pace itself (SO_MAX_PACING_RATE, iperf3 --fq-rate).
    """
    srv = emu.host(server)
    pidfile = f"/tmp/mecmig-iperf3-{server}-{port}.pid"
    srv.cmd(f"iperf3 -s -p {port} -1 -D --pidfile {pidfile}")
    pace = f"--fq-rate {pace_bps}" if pace_bps else ""
    out = ""
    try:
        for _ in range(20):  # the server needs a moment to listen
            out = emu.host(client).cmd(
                f"iperf3 -c {emu.ip(server)} -p {port} -t {seconds} -J {pace}"
            )
            if '"sum_received"' in out:
                break
            time.sleep(0.2)
    finally:
        srv.cmd(f"kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}")
    try:
        result: dict[str, Any] = json.loads(out)
        return float(result["end"]["sum_received"]["bits_per_second"])
    except (ValueError, KeyError) as exc:
        raise EmulationError(f"iperf3 {client} -> {server}:{port} failed: {out[-500:]}") from exc


def ofctl(switch: str, *args: str) -> str:
    """`ovs-ofctl -O OpenFlow13 <args> <switch>` output (for checks, not for steering)."""
    return SubprocessRunner().run(["ovs-ofctl", "-O", "OpenFlow13", *args, switch]).stdout


def port_tx_packets(switch: str, port: int) -> int:
    """Packets the switch has sent out of `port`."""
    out = ofctl(switch, "dump-ports")
    match = re.search(rf"port\s+{port}:.*?tx pkts=(\d+)", out, re.S)
    if match is None:
        raise EmulationError(f"no port {port} on {switch}")
    return int(match.group(1))
