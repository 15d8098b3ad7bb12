"""Helpers for tests that run the real controller against the real emulation."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.process import ControllerProcess
from mininet_scenarios.emulation import Emulation, emulate
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Live:
    """A controller process and the emulated network it drives."""

    ctl: ControllerProcess
    emu: Emulation


@contextlib.contextmanager
def live(scenario: str, state_file: Path | None = None) -> Iterator[Live]:
    """Controller + Mininet for `scenarios/<scenario>`, all switches connected."""
    path = ROOT / "scenarios" / scenario
    with (
        ControllerProcess(path, state_file=state_file) as ctl,
        emulate(load_scenario(path), controller=("127.0.0.1", ctl.of_port)) as emu,
    ):
        ctl.wait_switches()
        try:
            yield Live(ctl, emu)
        except BaseException:
            print("controller log:\n" + ctl.log_tail(60))
            raise


def goodput_bps(
    emu: Emulation, client: str, server: str, port: int, seconds: float, pace_bps: int | None = None
) -> float:
    """Receiver-side TCP goodput of an iperf3 bulk transfer (real packets through OVS)."""
    srv = emu.host(server)
    srv.cmd(f"iperf3 -s -p {port} -1 -D --pidfile /tmp/mecmig-iperf3-{port}.pid")
    pace = f"--fq-rate {pace_bps}" if pace_bps else ""
    out = ""
    try:
        for _ in range(20):
            out = emu.host(client).cmd(
                f"iperf3 -c {emu.ip(server)} -p {port} -t {seconds} -J {pace}"
            )
            if '"sum_received"' in out:
                break
            time.sleep(0.2)
    finally:
        srv.cmd(f"kill $(cat /tmp/mecmig-iperf3-{port}.pid) 2>/dev/null")
    result: dict[str, Any] = json.loads(out)
    return float(result["end"]["sum_received"]["bits_per_second"])


def ofctl(switch: str, *args: str) -> str:
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", *args, switch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def port_tx_packets(switch: str, port: int) -> int:
    out = ofctl(switch, "dump-ports")
    match = re.search(rf"port\s+{port}:.*?tx pkts=(\d+)", out, re.S)
    assert match, out
    return int(match.group(1))
