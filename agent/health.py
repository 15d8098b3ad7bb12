"""When a service has started: its process runs, every declared TCP port accepts connections,
and its health command (if any) exits 0 — checked from outside, within its start timeout.

Ports are read from the kernel's socket table of the service's own network namespace
(`/proc/PID/net/tcp` and `tcp6` of its first process: state 0A is LISTEN), so the check needs
no route to the service and sends it nothing. The health command runs inside the container
(`runc exec`), as the service's user would see the world.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.runc import Runc, RuncError
from ground.instance_health import HEALTH_COMMAND_TIMEOUT_S

LISTEN = "0A"
POLL_S = 0.05


class Unhealthy(Exception):
    """It did not start: why (the caller adds the service's last log lines)."""


def listening_ports(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """The TCP ports something listens on in the network namespace of process `pid`."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass(frozen=True)
class Check:
    """What must hold for `name` to count as started."""

    name: str
    ports: Sequence[int]
    health: Sequence[str]
    timeout_s: float


def wait_healthy(
    runc: Runc,
    check: Check,
    *,
    proc: Path = Path("/proc"),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until `check` holds; the seconds it took. Unhealthy (saying what was missing) if
    the process ends or the timeout passes first."""
    t0 = clock()
    deadline = t0 + check.timeout_s
    missing = "nothing checked yet"
    while True:
        state = runc.state(check.name) or {}
        status = str(state.get("status", "absent"))
        if status != "running":
            raise Unhealthy(f"its process is {status}: it exited")
        pid = int(state.get("pid") or 0)
        closed = sorted(set(check.ports) - listening_ports(pid, proc)) if pid else []
        if closed:
            missing = f"nothing listens on TCP port {', '.join(map(str, closed))}"
        elif check.health:
            try:
                runc.exec(check.name, list(check.health), timeout=HEALTH_COMMAND_TIMEOUT_S)
                return clock() - t0
            except RuncError as exc:
                missing = f"its health command {' '.join(check.health)!r} failed: {exc.detail}"
        else:
            return clock() - t0
        if clock() >= deadline:
            raise Unhealthy(f"not healthy after {check.timeout_s:g} s: {missing}")
        sleep(POLL_S)
