"""The rate of the path a migration's bytes take: one TCP stream from the source's MEC host to
the destination's, the way the agents' copies and CRIU's page server send them.

`mecmig bench migration` measures it once per testbed for issue 13's total-time goal (post-copy
total <= 1.2 x bytes / this rate), and the live test of post-copy's pull rate compares the pages'
rate with it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ground.runner import CommandError
from topology.scenario import Scenario
from topology.world import agent_host

PROBE_PORT = 7199
PROBE_MIB = 128  # ~1.1 s at a gigabit: long past TCP's slow start
TRIES = 2  # the best of these: a stream is slowed by the testbed's other work, never sped up
STALL_S = 20  # either end gives up after this long without progress

RECEIVER = f"""
import socket, time
STALL_S = {STALL_S}
s = socket.socket()
s.settimeout(STALL_S)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PROBE_PORT}))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(STALL_S)  # a path that dies mid-stream ends this, not the benchmark
n, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    if t0 is None:
        t0 = time.monotonic()
    n += len(b)
print(n, time.monotonic() - t0, flush=True)
"""
SENDER = f"""
import socket, sys
s = socket.create_connection((sys.argv[1], {PROBE_PORT}), timeout={STALL_S})
b = bytes(1 << 20)
for _ in range({PROBE_MIB}):
    s.sendall(b)
s.close()
"""


class PathRateError(RuntimeError):
    """The stream between the two MEC hosts did not complete."""


def stream_bps(emu: Any, scenario: Scenario, src: str, dst: str) -> float:
    """Bytes per second of one TCP stream of PROBE_MIB MiB from `src`'s MEC host to `dst`'s
    (`emu`: the running emulation: its `spawn_on` and `run_on` start programs in a host).
    PathRateError if it did not complete; neither end is left running."""
    ip = str(scenario.site(dst).agent_ip)
    with tempfile.TemporaryDirectory(prefix="mecmig-path-rate-") as tmp:
        out, log = Path(tmp) / "receiver.out", Path(tmp) / "receiver.log"
        rx = emu.spawn_on(
            agent_host(dst), [sys.executable, "-c", RECEIVER], str(log), stdout_path=str(out)
        )
        try:
            _wait_ready(rx, dst)
            emu.run_on(
                agent_host(src), [sys.executable, "-c", SENDER, ip], timeout=PROBE_MIB + STALL_S
            )
            rx.wait(STALL_S)  # it ends within STALL_S of the stream's end
            words = rx.stdout().split()[1:]  # after "ready"
        except (CommandError, OSError) as exc:
            raise PathRateError(f"the stream {src} -> {dst}: {exc}") from exc
        finally:
            if rx.alive():
                rx.kill()
            said = rx.tail(3).strip()
    if len(words) != 2 or int(words[0]) != PROBE_MIB << 20 or float(words[1]) <= 0:
        detail = " ".join(words) or said or "nothing"
        raise PathRateError(f"the stream {src} -> {dst} ended early: {detail}")
    return int(words[0]) / float(words[1])


def _wait_ready(rx: Any, dst: str) -> None:
    deadline = time.monotonic() + STALL_S
    while not rx.stdout().startswith("ready\n"):
        if not rx.alive() or time.monotonic() > deadline:
            raise PathRateError(f"the receiver at {dst} did not start: {rx.tail(3).strip()}")
        time.sleep(0.02)


def path_rate_bps(emu: Any, scenario: Scenario, src: str, dst: str, tries: int = TRIES) -> float:
    """The best of `tries` streams from `src` to `dst`, in bytes per second."""
    return max(stream_bps(emu, scenario, src, dst) for _ in range(tries))
