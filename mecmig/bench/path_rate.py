"""The rate of the path a migration's bytes take: one TCP stream from the source's MEC host to
the destination's, the way the agents' copies and CRIU's page server send them.

`mecmig bench migration` measures it once per testbed for issue 13's total-time goal (post-copy
total <= 1.2 x bytes / this rate), and the live test of post-copy's pull rate compares the pages'
rate with it.
"""

from __future__ import annotations

import sys
from typing import Any

from topology.scenario import Scenario
from topology.world import agent_host

PROBE_PORT = 7199
PROBE_MIB = 128  # ~1.1 s at a gigabit: long past TCP's slow start
TRIES = 2  # the best of these: a stream is slowed by the testbed's other work, never sped up

RECEIVER = f"""
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PROBE_PORT}))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
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
s = socket.create_connection((sys.argv[1], {PROBE_PORT}))
b = bytes(1 << 20)
for _ in range({PROBE_MIB}):
    s.sendall(b)
s.close()
"""


class PathRateError(RuntimeError):
    """The stream between the two MEC hosts did not complete."""


def stream_bps(emu: Any, scenario: Scenario, src: str, dst: str) -> float:
    """Bytes per second of one TCP stream of PROBE_MIB MiB from `src`'s MEC host to `dst`'s
    (`emu`: the running emulation, whose `host(name)` has Mininet's `popen`)."""
    ip = str(scenario.site(dst).agent_ip)
    rx = emu.host(agent_host(dst)).popen([sys.executable, "-c", RECEIVER], text=True)
    try:
        if rx.stdout is None or rx.stdout.readline().strip() != "ready":
            raise PathRateError(f"the receiver at {dst} did not start")
        tx = emu.host(agent_host(src)).popen([sys.executable, "-c", SENDER, ip])
        if tx.wait(120) != 0:
            raise PathRateError(f"the stream {src} -> {dst} failed")
        n, seconds = rx.stdout.readline().split()
        rx.wait(10)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    if int(n) != PROBE_MIB << 20 or float(seconds) <= 0:
        raise PathRateError(f"the stream {src} -> {dst} carried {n} bytes in {seconds} s")
    return int(n) / float(seconds)


def path_rate_bps(emu: Any, scenario: Scenario, src: str, dst: str, tries: int = TRIES) -> float:
    """The best of `tries` streams from `src` to `dst`, in bytes per second."""
    return max(stream_bps(emu, scenario, src, dst) for _ in range(tries))
