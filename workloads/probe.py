"""Client-side downtime probe for a memhog instance: what a user sees during a migration.

A :class:`Probe` keeps ONE TCP connection to memhog's line protocol and sends ``PING`` every
``interval_ms`` without waiting for the previous reply (requests are pipelined, replies come back
in order). A frozen server (SIGSTOP, a CRIU dump, the copy, the restore) simply answers late: the
kernel, or the restored socket, keeps the requests, so the connection survives and the burst of
late replies marks the end of the interruption. Only when the connection breaks (EOF, reset,
or no reply for ``stall_timeout_ms``) does the probe open a new one, retrying every interval.

Every request is recorded (send and reply time from ``time.monotonic_ns``, the counter in the
reply). :meth:`Probe.stop` returns a :class:`ProbeResult`:

* ``downtime_ms``: the longest gap between two consecutive successful replies, minus the
  interval (the client-observed interruption). A silence from the last reply to the end of the
  run counts too (a service that never came back); no reply at all gives the whole run.
* ``gaps``: ``(start_ms, end_ms)`` of each silence longer than 3 x interval, in ms since start.
* ``failures``: requests never answered (lost with a broken connection, malformed, or still
  unanswered ``drain_ms`` after stop) plus failed connection attempts (``connect_failures``).
* ``counter_monotonic``: the counter never went backwards (across reconnects too).
* ``same_connection``: the first connection carried the whole run (no reconnect, no break).

The probe also sends one ``GET`` on the first connection and one just before it stops, so the
result carries the memory fingerprint at both ends (``fingerprint_first``/``fingerprint_last``).

CLI: ``python -m workloads.probe HOST PORT --interval-ms 5 --duration 10 --json``.
"""

from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from types import FrameType
from typing import Any

from workloads.probe_thread import NS_PER_MS, Broken, ProbeThread

DEFAULT_INTERVAL_MS = 5.0
DEFAULT_STALL_TIMEOUT_MS = 10_000.0
DEFAULT_CONNECT_TIMEOUT_MS = 500.0
DEFAULT_DRAIN_MS = 200.0
MAX_OUTSTANDING = 10_000
_NS_PER_MS = NS_PER_MS


@dataclass
class Sample:
    """One request: sent at `send_ns` on connection `conn`; `reply_ns` None if never answered."""

    seq: int
    conn: int
    kind: str  # "PING" or "GET"
    send_ns: int
    reply_ns: int | None = None
    counter: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    host: str
    port: int
    interval_ms: float
    duration_ms: float
    downtime_ms: float
    gaps: list[tuple[float, float]]
    sent: int
    replies: int
    failures: int
    connect_failures: int
    reconnects: int
    counter_monotonic: bool
    same_connection: bool
    first_counter: int | None
    last_counter: int | None
    rtt_ms_median: float | None
    rtt_ms_max: float | None
    start_ns: int = 0  # time.monotonic_ns() at the start: gaps are relative to it
    fingerprint_first: str | None = None
    fingerprint_last: str | None = None
    samples: list[Sample] = field(default_factory=list, repr=False)

    @property
    def fingerprint_stable(self) -> bool | None:
        """Both fingerprints seen and equal (None if either is missing)."""
        if self.fingerprint_first is None or self.fingerprint_last is None:
            return None
        return self.fingerprint_first == self.fingerprint_last

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; every request only with `samples`."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"}
        d["gaps"] = [list(g) for g in self.gaps]
        d["fingerprint_stable"] = self.fingerprint_stable
        if samples:
            d["samples"] = [asdict(s) for s in self.samples]
        return d


class Probe(ProbeThread[ProbeResult]):
    """Ping a memhog instance over one persistent TCP connection; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        interval_ms: float = DEFAULT_INTERVAL_MS,
        stall_timeout_ms: float = DEFAULT_STALL_TIMEOUT_MS,
        connect_timeout_ms: float = DEFAULT_CONNECT_TIMEOUT_MS,
        drain_ms: float = DEFAULT_DRAIN_MS,
        fingerprint: bool = True,
    ) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        super().__init__()
        self.host = host
        self.port = port
        self.interval_ms = interval_ms
        self.stall_timeout_ms = stall_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.drain_ms = drain_ms
        self.fingerprint = fingerprint
        self.samples: list[Sample] = []
        self._inbuf = bytearray()
        self._connections = 0
        self._connect_failures = 0
        self._fp_first: str | None = None
        self._fp_last: str | None = None

    # -- the probe thread (ProbeThread runs it) -------------------------------------------

    def _loop(self) -> None:
        interval_ns = int(self.interval_ms * _NS_PER_MS)
        next_send = time.monotonic_ns()
        while not self._stop.is_set():
            if self._sock is None:
                if not self._connect():
                    self._stop.wait(self.interval_ms / 1000)
                    continue
                next_send = time.monotonic_ns()
            now = time.monotonic_ns()
            try:
                if now >= next_send:
                    if len(self._pending) < MAX_OUTSTANDING:
                        self._send("PING")
                    next_send += interval_ns
                    if next_send <= now:  # fell behind: skip, never burst
                        next_send = now + interval_ns
                self._check_stall()
                timeout = max(0.0, (next_send - time.monotonic_ns()) / 1e9)
                self._receive(timeout)
            except Broken:
                self._break()

    def _drain(self) -> None:
        """After stop: ask for the final fingerprint, wait a little for outstanding replies."""
        if self._sock is None:
            return
        deadline = time.monotonic_ns() + int(self.drain_ms * _NS_PER_MS)
        try:
            if self.fingerprint:
                self._send("GET")
            while self._pending:
                left = deadline - time.monotonic_ns()
                if left <= 0:
                    break
                self._receive(left / 1e9)
        except Broken:
            self._break()

    def _connect(self) -> bool:
        try:
            sock = socket.create_connection(
                (self.host, self.port), timeout=self.connect_timeout_ms / 1000
            )
        except OSError:
            self._connect_failures += 1
            return False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._sock = sock
        self._inbuf.clear()
        self._connections += 1
        self._sel.register(sock, selectors.EVENT_READ)
        if self.fingerprint and self._connections == 1:
            try:
                self._send("GET")
            except Broken:
                self._break()
                return False
        return True

    def _send(self, kind: str) -> None:
        assert self._sock is not None
        sample = Sample(len(self.samples), self._connections, kind, time.monotonic_ns())
        try:
            # A 5-byte request always fits the send buffer unless it is full of 200k of them.
            sent = self._sock.send(kind.encode() + b"\n")
        except (BlockingIOError, InterruptedError):
            return  # send buffer full (a long freeze): skip this one, it is not a request
        except OSError as exc:
            raise Broken from exc
        if sent == 0:
            raise Broken
        self.samples.append(sample)
        self._pending.append(sample)

    def _receive(self, timeout: float) -> None:
        assert self._sock is not None
        if not self._sel.select(timeout):
            return
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise Broken from exc
        if not data:
            raise Broken
        now = time.monotonic_ns()
        self._inbuf += data
        while True:
            nl = self._inbuf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._inbuf[:nl]).decode(errors="replace").split()
            del self._inbuf[: nl + 1]
            if not self._pending:
                continue  # an answer to nothing: ignore
            sample = self._pending.popleft()
            counter: int | None = None
            try:
                if sample.kind == "PING" and len(line) == 2 and line[0] == "PONG":
                    counter = int(line[1])
                elif sample.kind == "GET" and len(line) == 3:
                    counter = int(line[0])
                    if self._fp_first is None:
                        self._fp_first = line[1]
                    self._fp_last = line[1]
            except ValueError:
                counter = None
            if counter is None:
                continue  # malformed: stays unanswered, counts as a failure
            sample.reply_ns = now
            sample.counter = counter

    # -- the result --------------------------------------------------------------------------

    def result(self) -> ProbeResult:
        """The summary of everything recorded so far (call after stop())."""
        start = self._start_ns
        end = self._stop_ns or time.monotonic_ns()
        interval = self.interval_ms
        answered = [s for s in self.samples if s.reply_ns is not None]
        reply_times = sorted(s.reply_ns for s in answered if s.reply_ns is not None)
        counters = [s.counter for s in answered if s.counter is not None]  # in request order
        gaps: list[tuple[float, float]] = []
        longest_ns = 0
        ends = reply_times[1:] + [end] if reply_times else []
        for a, b in zip(reply_times, ends, strict=True):
            longest_ns = max(longest_ns, b - a)
            if b - a > 3 * interval * _NS_PER_MS:
                gaps.append(((a - start) / _NS_PER_MS, (b - start) / _NS_PER_MS))
        if reply_times:
            downtime = max(0.0, longest_ns / _NS_PER_MS - interval)
        else:
            downtime = (end - start) / _NS_PER_MS
        monotonic = all(b >= a for a, b in zip(counters, counters[1:], strict=False))
        rtts = [(s.reply_ns - s.send_ns) / _NS_PER_MS for s in answered if s.reply_ns is not None]
        return ProbeResult(
            host=self.host,
            port=self.port,
            interval_ms=interval,
            duration_ms=(end - start) / _NS_PER_MS,
            downtime_ms=downtime,
            gaps=gaps,
            start_ns=start,
            sent=len(self.samples),
            replies=len(answered),
            failures=len(self.samples) - len(answered) + self._connect_failures,
            connect_failures=self._connect_failures,
            reconnects=max(0, self._connections - 1),
            counter_monotonic=monotonic,
            same_connection=self._connections == 1 and not self._broken,
            first_counter=counters[0] if counters else None,
            last_counter=counters[-1] if counters else None,
            rtt_ms_median=statistics.median(rtts) if rtts else None,
            rtt_ms_max=max(rtts) if rtts else None,
            fingerprint_first=self._fp_first,
            fingerprint_last=self._fp_last,
            samples=list(self.samples),
        )


def _summary(r: ProbeResult) -> str:
    gaps = ", ".join(f"{a:.0f}-{b:.0f}" for a, b in r.gaps) or "none"
    return (
        f"{r.host}:{r.port} for {r.duration_ms / 1000:.1f} s every {r.interval_ms:g} ms: "
        f"{r.replies}/{r.sent} replies, {r.failures} failures, {r.reconnects} reconnects\n"
        f"downtime {r.downtime_ms:.1f} ms; gaps (ms since start): {gaps}\n"
        f"counter {r.first_counter} -> {r.last_counter} "
        f"({'monotonic' if r.counter_monotonic else 'WENT BACKWARDS'}); "
        f"same connection: {'yes' if r.same_connection else 'no'}; "
        f"fingerprint stable: {r.fingerprint_stable}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.probe",
        description="Measure client-observed downtime of a memhog instance.",
    )
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--interval-ms", type=float, default=DEFAULT_INTERVAL_MS)
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds; 0 = until SIGINT/SIGTERM"
    )
    parser.add_argument("--stall-timeout-ms", type=float, default=DEFAULT_STALL_TIMEOUT_MS)
    parser.add_argument("--connect-timeout-ms", type=float, default=DEFAULT_CONNECT_TIMEOUT_MS)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--samples", action="store_true", help="include every request in JSON")
    parser.add_argument("--output", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    probe = Probe(
        args.host,
        args.port,
        interval_ms=args.interval_ms,
        stall_timeout_ms=args.stall_timeout_ms,
        connect_timeout_ms=args.connect_timeout_ms,
    ).start()
    done.wait(args.duration if args.duration > 0 else None)
    result = probe.stop()
    doc = json.dumps(result.to_dict(samples=args.samples))
    if args.output:
        with open(args.output, "w") as f:
            f.write(doc + "\n")
    print(doc if args.json else _summary(result), flush=True)
    return 0 if result.replies else 1


if __name__ == "__main__":
    sys.exit(main())
