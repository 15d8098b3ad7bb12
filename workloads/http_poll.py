"""Client of a stateless HTTP service, what a user of a replicated service sees: a GET on a NEW
TCP connection every ``interval_ms`` (no keep-alive: each request may land on another replica),
until SIGTERM or ``--duration``. A request not answered within ``--timeout-ms`` (1000) failed.
It never imports the project (it runs in a UE's namespace).

Printed at the end (``--json``): ``requests``, ``ok``, ``failures``, ``max_gap_ms`` (the longest
time between two successful replies, minus the interval: the interruption a user sees; a silence
to the end counts), ``gaps`` (``[start_ms, end_ms]`` of every gap over 2 intervals, since the
start), ``bodies_changed`` (when the reply's first line of body went backwards, a sign that
another process answered: ``[t_ms, before, after]``), ``failed`` (``[t_ms, why]`` of the first
100 failures: ``reset`` (a RST, e.g. from a replica that never saw the connection), ``refused``,
``timeout``, ``error`` (another socket error), ``bad-reply``), ``first`` and ``last`` bodies; with
``--samples`` also ``samples``: ``[reply_s, body]`` of every successful request, ``reply_s`` on
CLOCK_MONOTONIC (shared with the host: a Mininet host is a network namespace only), ``body``
its first line as an integer when it is one.

CLI: ``python -m workloads.http_poll HOST PORT --path /counter --interval-ms 5 --duration 0``.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

TIMEOUT_S = 1.0  # a request not answered by then failed


@dataclass
class PollResult:
    requests: int = 0
    ok: int = 0
    failures: int = 0
    failed: list[list[float | str]] = field(default_factory=list)
    max_gap_ms: float = 0.0
    gaps: list[list[float]] = field(default_factory=list)
    bodies_changed: list[list[object]] = field(default_factory=list)
    first: str | None = None
    last: str | None = None
    samples: list[list[float | int | None]] | None = None


def get(host: str, port: int, path: str, timeout_s: float = TIMEOUT_S) -> str | None:
    """One GET on a new connection; the reply's body (first line), None if it failed."""
    body, _ = request(host, port, path, timeout_s)
    return body


def request(
    host: str, port: int, path: str, timeout_s: float = TIMEOUT_S
) -> tuple[str | None, str]:
    """One GET on a new connection: (the reply's body (first line), "") or (None, why it
    failed: reset, refused, timeout, error, bad-reply)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except ConnectionResetError:
        return None, "reset"
    except ConnectionRefusedError:
        return None, "refused"
    except TimeoutError:
        return None, "timeout"
    except OSError:
        return None, "error"
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        return None, "bad-reply"
    return body.decode(errors="replace").split("\n", 1)[0], ""


def poll(
    host: str,
    port: int,
    path: str,
    interval_ms: float,
    stop: threading.Event,
    duration_s: float,
    timeout_s: float = TIMEOUT_S,
    samples: bool = False,
) -> PollResult:
    res = PollResult(samples=[] if samples else None)
    t0 = time.monotonic()
    last_ok = t0
    interval = interval_ms / 1000.0
    previous: str | None = None
    next_at = t0
    while not stop.is_set() and (duration_s <= 0 or time.monotonic() - t0 < duration_s):
        res.requests += 1
        body, why = request(host, port, path, timeout_s)
        now = time.monotonic()
        if body is None:
            res.failures += 1
            if len(res.failed) < 100:
                res.failed.append([round((now - t0) * 1000, 1), why])
        else:
            res.ok += 1
            gap = now - last_ok
            if gap > 2 * interval:
                res.gaps.append([round((last_ok - t0) * 1000, 1), round((now - t0) * 1000, 1)])
            res.max_gap_ms = max(res.max_gap_ms, (gap - interval) * 1000)
            last_ok = now
            if res.samples is not None:
                res.samples.append([round(now, 5), _number(body)])
            if res.first is None:
                res.first = body
            if previous is not None and _went_back(previous, body):
                res.bodies_changed.append([round((now - t0) * 1000, 1), previous, body])
            previous = res.last = body
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))
    end = time.monotonic()
    res.max_gap_ms = round(max(res.max_gap_ms, (end - last_ok - interval) * 1000), 1)
    return res


def _number(body: str) -> int | None:
    try:
        return int(body)
    except ValueError:
        return None


def _went_back(before: str, after: str) -> bool:
    try:
        return int(after) < int(before)
    except ValueError:
        return after != before


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="http_poll", description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--path", default="/counter")
    p.add_argument("--interval-ms", type=float, default=5.0)
    p.add_argument("--duration", type=float, default=0.0, help="seconds; 0: until SIGTERM")
    p.add_argument("--timeout-ms", type=float, default=TIMEOUT_S * 1000)
    p.add_argument("--json", action="store_true")
    p.add_argument("--samples", action="store_true", help="with --json: every reply's time")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    timeout_s = args.timeout_ms / 1000.0
    res = poll(
        args.host, args.port, args.path, args.interval_ms, stop, args.duration, timeout_s,
        samples=args.samples,
    )  # fmt: skip
    if args.json:
        print(json.dumps(asdict(res)))
    else:
        print(f"{res.ok}/{res.requests} ok, longest gap {res.max_gap_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
