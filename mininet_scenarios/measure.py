"""Measurements taken inside an emulation: real TCP transfers, switch counters."""

from __future__ import annotations

import json
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ground.runner import CommandError, Runner, SubprocessRunner
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

    `pace_bps` makes the sender pace itself (SO_MAX_PACING_RATE, iperf3 --fq-rate). The server
    serves one test (`-1`) and is stopped afterwards if it is still there; a transfer that
    fails says why, with both ends' messages.
    """
    argv = ["iperf3", "-c", emu.ip(server), "-p", str(port), "-t", str(seconds), "-J"]
    argv += ["--fq-rate", str(pace_bps)] if pace_bps else []
    with tempfile.TemporaryDirectory(prefix="mecmig-iperf3-") as tmp:
        log_path = str(Path(tmp) / f"server-{server}-{port}.log")
        srv = emu.spawn_on(server, ["iperf3", "-s", "-p", str(port), "-1"], log_path)
        result = None
        try:
            for _ in range(20):  # the server needs a moment to listen
                result = emu.run_on(client, argv, check=False, timeout=seconds + 30)
                if result.ok and '"sum_received"' in result.stdout:
                    break
                if not srv.alive():  # it served (and failed) one test: retrying cannot help
                    break
                time.sleep(0.2)
        except CommandError as exc:  # the client hung past its timeout
            raise EmulationError(f"iperf3 {client} -> {server}:{port}: {exc}") from exc
        finally:
            served = result is not None and result.ok
            if srv.wait(5 if served else 0.1) is None:  # after its one test it ends by itself
                srv.stop(timeout=5)
            server_log = srv.tail(5).strip()
    assert result is not None
    try:
        if not result.ok:
            raise ValueError(f"exit {result.returncode}")
        data: dict[str, Any] = json.loads(result.stdout)
        return float(data["end"]["sum_received"]["bits_per_second"])
    except (ValueError, KeyError) as exc:
        said = _iperf3_error(result.stdout) or (result.stderr or result.stdout).strip()[-300:]
        raise EmulationError(
            f"iperf3 {client} -> {server}:{port} failed ({exc}): {said}"
            + (f"; server: {server_log}" if server_log else "")
        ) from exc


def _iperf3_error(out: str) -> str:
    """The 'error' field of iperf3's JSON output, if it has one."""
    try:
        return str(json.loads(out).get("error", ""))
    except (ValueError, AttributeError):
        return ""


def wait_answering(emu: Emulation, host: str, ip: str, port: int, timeout: float = 20.0) -> None:
    """Wait until a memhog service at `ip`:`port` answers PING with PONG from inside `host`;
    EmulationError (with the last attempt's error) if it does not within `timeout`."""
    script = f"exec 3<>/dev/tcp/{ip}/{port} && echo PING >&3 && head -c4 <&3"
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        try:
            result = emu.run_on(
                host, ["timeout", "2", "bash", "-c", script], check=False, timeout=10
            )
            if "PONG" in result.stdout:
                return
            said = f"exit {result.returncode}: {result.stderr.strip()[-200:]}"
        except CommandError as exc:
            said = str(exc)
        if time.monotonic() >= deadline:
            raise EmulationError(f"{ip}:{port} does not answer from {host} ({said})")
        time.sleep(0.2)


class Probe:
    """`python -m workloads.probe IP PORT --json` inside host `host` until stopped (SIGTERM):
    one TCP connection, a PING every `interval_ms`; `extra` are more of its options. `module`:
    another probe with the same command line (workloads.memcached_probe: request/response)."""

    def __init__(
        self,
        emu: Emulation,
        host: str,
        ip: str,
        port: int,
        *,
        interval_ms: float = 5.0,
        extra: Sequence[str] = (),
        module: str = "workloads.probe",
    ) -> None:
        argv = [sys.executable, "-m", module, ip, str(port)]
        argv += ["--interval-ms", f"{interval_ms:g}", "--duration", "0", "--json", *extra]
        self._dir = tempfile.TemporaryDirectory(prefix="mecmig-probe-")
        log_path, out_path = Path(self._dir.name) / "probe.log", Path(self._dir.name) / "out.json"
        self.proc = emu.spawn_on(host, argv, str(log_path), stdout_path=str(out_path))

    def alive(self) -> bool:
        return self.proc.alive()

    def failure(self) -> str:
        """Why it ended (exit code, the end of its stderr), for error messages."""
        return f"probe exited {self.proc.returncode}: {self.proc.tail(10).strip()[-500:]}"

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM, then its JSON result; EmulationError if it printed none."""
        self.proc.stop(timeout=timeout, sig=signal.SIGTERM)
        out = self.proc.stdout()
        try:
            data: dict[str, Any] = json.loads(out)
        except ValueError as exc:
            raise EmulationError(self.failure()) from exc
        return data

    def close(self) -> None:
        """Kill it if it still runs, and remove its files."""
        self.proc.kill()
        self._dir.cleanup()


def interface_counters(runner: Runner, interface: str) -> dict[str, int]:
    """Open vSwitch's counters of one of its interfaces (rx/tx packets, bytes, dropped, ...):
    a packet the userspace datapath could not send or did not read shows here, not in tc."""
    out = runner.run(["ovs-vsctl", "get", "Interface", interface, "statistics"], timeout=10)
    return {k: int(v) for k, v in re.findall(r"([a-z_]+)=(\d+)", out.stdout)}


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


DATAGRAM_BYTES = 1400  # a flood's UDP payload per datagram
FLOOD_TCP_STREAMS = 4


class Flood:
    """Traffic that saturates a link while something else is measured, in the background:
    iperf3 from `client` to `server` for `seconds`, either UDP at `udp_bps` or, without it,
    FLOOD_TCP_STREAMS parallel TCP streams; `finish` waits for it and returns the rate the
    server received."""

    def __init__(
        self,
        emu: Emulation,
        client: str,
        server: str,
        port: int,
        seconds: float,
        *,
        udp_bps: int | None = None,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mecmig-flood-")
        tmp = Path(self._dir.name)
        kind = "UDP" if udp_bps else "TCP"
        self.udp = udp_bps is not None
        self.label = f"{kind} flood {client} -> {server}:{port}"
        self.seconds = seconds
        self.server = emu.spawn_on(
            server,
            ["iperf3", "-s", "-p", str(port), "-1", "-J"],
            str(tmp / "server.log"),
            stdout_path=str(tmp / "server.json"),
        )
        argv = ["iperf3", "-c", emu.ip(server), "-p", str(port), "-t", f"{seconds:g}", "-J"]
        if udp_bps is not None:
            argv += ["-u", "-b", str(udp_bps), "-l", str(DATAGRAM_BYTES)]
        else:
            argv += ["-P", str(FLOOD_TCP_STREAMS)]
        self.client = None
        for _ in range(20):  # the server needs a moment to listen
            time.sleep(0.2)
            spawned = emu.spawn_on(
                client, argv, str(tmp / "client.log"), stdout_path=str(tmp / "client.json")
            )
            time.sleep(0.3)
            if spawned.alive() or spawned.returncode == 0:
                self.client = spawned
                break
        if self.client is None:
            self.close()
            raise EmulationError(f"{self.label} did not start: {spawned.tail(5).strip()}")

    def finish(self) -> float:
        """Wait for the flood to end; the server's received rate (bit/s)."""
        assert self.client is not None
        try:
            if self.client.wait(self.seconds + 20) is None:
                raise EmulationError(f"{self.label} did not end")
            if self.server.wait(10) is None:
                raise EmulationError(f"{self.label}: its server did not end")
            out = self.server.stdout()
            try:
                end = json.loads(out)["end"]
                if not self.udp:
                    return float(end["sum_received"]["bits_per_second"])
                # a UDP server's JSON says 0 bytes (iperf3 3.12): count the datagrams it got
                total = end["sum"]
                got = int(total["packets"]) - int(total["lost_packets"])
                return got * DATAGRAM_BYTES * 8 / float(total["seconds"])
            except (ValueError, KeyError, TypeError) as exc:
                said = _iperf3_error(out) or self.server.tail(5).strip()
                raise EmulationError(f"{self.label} failed ({exc}): {said}") from exc
        finally:
            self.close()

    def close(self) -> None:
        """Stop both ends if they still run, and remove their files."""
        for proc in (self.client, self.server):
            if proc is not None:
                proc.kill()
        self._dir.cleanup()
