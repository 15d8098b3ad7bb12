"""Client of seed 003's three apps across a migration by any state level: a request on a NEW
connection every ``interval_ms`` (a service started afresh has none of the old connections),
until SIGTERM or ``--duration``. It never imports the project beyond workloads.

- ``--protocol http``: ``GET --path`` (workloads.http_poll's request), the reply's first line;
- ``--protocol memcached``: ``get --key``, the reply: its value, or ``miss`` (memcached answers
  but the key is gone: the service runs, its state did not arrive).

Printed at the end (``--json``): ``requests``, ``ok``, ``failures``, ``max_gap_ms`` (the longest
time between two answers, minus the interval; a silence to the end counts), ``gaps`` (``[start_s,
end_s]`` of each over 2 intervals, CLOCK_MONOTONIC, which a Mininet host shares with the host)
and ``samples`` (``[reply_s, answer]`` of every answer).

CLI: ``python -m workloads.levels_poll HOST PORT --protocol http --path /hit/car``.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from workloads.http_poll import get as http_get

TIMEOUT_S = 1.0
PROTOCOLS = ("http", "memcached")


@dataclass
class LevelsPoll:
    requests: int = 0
    ok: int = 0
    failures: int = 0
    max_gap_ms: float = 0.0
    gaps: list[list[float]] = field(default_factory=list)
    samples: list[list[float | str]] = field(default_factory=list)


def memcached_get(host: str, port: int, key: str, timeout_s: float = TIMEOUT_S) -> str | None:
    """`get key` on a new connection: the value, 'miss', or None if memcached did not answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(f"get {key}\r\n".encode())
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    if data == b"END\r\n":
        return "miss"
    lines = data.split(b"\r\n")
    return lines[1].decode(errors="replace") if lines[0].startswith(b"VALUE ") else None


def poll(
    ask: Callable[[], str | None], interval_ms: float, stop: threading.Event, duration_s: float
) -> LevelsPoll:
    res = LevelsPoll()
    t0 = last_ok = next_at = time.monotonic()
    interval = interval_ms / 1000.0
    while not stop.is_set() and (duration_s <= 0 or time.monotonic() - t0 < duration_s):
        res.requests += 1
        answer = ask()
        now = time.monotonic()
        if answer is None:
            res.failures += 1
        else:
            res.ok += 1
            if now - last_ok > 2 * interval:
                res.gaps.append([round(last_ok, 5), round(now, 5)])
            res.max_gap_ms = max(res.max_gap_ms, (now - last_ok - interval) * 1000)
            last_ok = now
            res.samples.append([round(now, 5), answer])
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))
    res.max_gap_ms = round(max(res.max_gap_ms, (time.monotonic() - last_ok - interval) * 1000), 1)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="levels_poll", description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--protocol", choices=PROTOCOLS, default="http")
    p.add_argument("--path", default="/health")
    p.add_argument("--key", default="levels-0")
    p.add_argument("--interval-ms", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=0.0, help="seconds; 0: until SIGTERM")
    p.add_argument(
        "--timeout-ms", type=float, default=TIMEOUT_S * 1000,
        help="a request not answered by then failed (and the next one goes)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    timeout_s = args.timeout_ms / 1000.0
    if args.protocol == "http":

        def ask() -> str | None:
            return http_get(args.host, args.port, args.path, timeout_s)
    else:

        def ask() -> str | None:
            return memcached_get(args.host, args.port, args.key, timeout_s)

    res = poll(ask, args.interval_ms, stop, args.duration)
    if args.json:
        print(json.dumps(asdict(res)))
    else:
        print(f"{res.ok}/{res.requests} answered, longest gap {res.max_gap_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
