"""Client-side downtime probe for a memcached (or Redis: ``--protocol redis``) instance: one
connection, a request every 5 ms.

A request/response service stalls its client differently from memhog's pipelined PINGs: with
one request outstanding at a time (``--mode rr``, the default, as most clients are written), a
request the service never answers stops the client until something else happens, and a reply
lost on the way back waits for the service's TCP retransmission. :class:`MemcachedProbe` keeps
ONE TCP connection and sends ``incr <key> 1`` (the key set to 0 first) every ``interval_ms``,
after the previous reply in ``rr`` mode, regardless of it in ``pipelined`` mode. The counter
memcached returns is the service's state: each reply must be the previous one plus one (a lost
or replayed request, or memory that did not survive, breaks that).

Every request is recorded (send and reply time from ``time.monotonic_ns``, which all processes
of the machine share, so a test can place each gap inside the migration that caused it).
:meth:`MemcachedProbe.stop` returns a :class:`MemcachedProbeResult`:

* ``downtime_ms``: the longest gap between two consecutive replies, minus the interval; a
  silence from the last reply to the end of the run counts too.
* ``gaps``: each silence longer than ``gap_ms`` (default 3 x interval) as ``(start_s, end_s)``
  on the monotonic clock, with ``waiting``: whether a request was outstanding meanwhile.
* ``counter_consistent``: every reply was the previous one plus one.
* ``same_connection``: the first connection carried the whole run.

CLI (from the UE's namespace): ``python -m workloads.memcached_probe HOST PORT --interval-ms 5
--duration 10 --json``; ``--duration 0`` runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from types import FrameType
from typing import Any

from workloads.probe_thread import NS_PER_MS, Broken, ProbeThread

DEFAULT_INTERVAL_MS = 5.0
DEFAULT_STALL_TIMEOUT_MS = 60_000.0
DEFAULT_CONNECT_TIMEOUT_MS = 2_000.0
DEFAULT_DRAIN_MS = 500.0
MODES = ("rr", "pipelined")


@dataclass(frozen=True)
class CounterProtocol:
    """How to set a counter to 0 and increment it: memcached's text protocol, or Redis's."""

    init: bytes  # %s: the key
    init_reply: bytes
    incr: bytes
    reply_prefix: bytes  # before the counter's digits in a reply line


PG = b"PG"  # reply_prefix of PostgreSQL (see MemcachedProbe._pg_*)
HTTP = b"HTTP/1.1 "  # reply_prefix of the HTTP "counter" (see MemcachedProbe._http_reply)
PROTOCOLS = {
    "memcached": CounterProtocol(b"set %s 0 0 1\r\n0\r\n", b"STORED\r\n", b"incr %s 1\r\n", b""),
    "redis": CounterProtocol(b"SET %s 0\r\n", b"+OK\r\n", b"INCR %s\r\n", b":"),
    # a keep-alive GET of /: no state on the server side to count; the replies are counted
    "http": CounterProtocol(b"", b"", b"GET / HTTP/1.1\r\nHost: mecmig\r\n\r\n", HTTP),
    # PostgreSQL's simple-query protocol, trust authentication: SELECT nextval() of a sequence
    "postgres": CounterProtocol(b"", b"", b"", PG),
}
MAX_OUTSTANDING = 10_000
_NS_PER_MS = NS_PER_MS


@dataclass
class Request:
    """One ``incr``: sent at `send_ns`; `reply_ns` and `value` stay None if never answered."""

    seq: int
    send_ns: int
    reply_ns: int | None = None
    value: int | None = None


@dataclass(frozen=True)
class Gap:
    """A silence between two replies (monotonic seconds); `waiting`: a request was unanswered
    all along (the client could do nothing but wait)."""

    start_s: float
    end_s: float
    waiting: bool

    @property
    def ms(self) -> float:
        return (self.end_s - self.start_s) * 1000.0


@dataclass(frozen=True)
class MemcachedProbeResult:
    host: str
    port: int
    mode: str
    interval_ms: float
    start_s: float  # monotonic seconds when the probe started
    duration_ms: float
    downtime_ms: float
    gaps: list[Gap]
    sent: int
    replies: int
    failures: int
    reconnects: int
    counter_consistent: bool
    same_connection: bool
    first_value: int | None
    last_value: int | None
    rtt_ms_median: float | None
    rtt_ms_max: float | None
    requests: list[Request] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the individual requests)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "requests"}
        d["gaps"] = [
            {"start_s": g.start_s, "end_s": g.end_s, "waiting": g.waiting} for g in self.gaps
        ]
        return d

    @staticmethod
    def gaps_of(doc: dict[str, Any]) -> list[Gap]:
        """The gaps of a result read back from its JSON form."""
        return [Gap(g["start_s"], g["end_s"], g["waiting"]) for g in doc["gaps"]]


class MemcachedProbe(ProbeThread[MemcachedProbeResult]):
    """``incr`` a memcached counter over one TCP connection; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        interval_ms: float = DEFAULT_INTERVAL_MS,
        *,
        mode: str = "rr",
        key: str | None = None,
        gap_ms: float | None = None,
        stall_timeout_ms: float = DEFAULT_STALL_TIMEOUT_MS,
        connect_timeout_ms: float = DEFAULT_CONNECT_TIMEOUT_MS,
        drain_ms: float = DEFAULT_DRAIN_MS,
        protocol: str = "memcached",
    ) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        super().__init__()
        self.host = host
        self.port = port
        self.interval_ms = interval_ms
        self.mode = mode
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        self.protocol = PROTOCOLS[protocol]
        self.key = (key or f"mecmig:probe:{os.getpid()}:{time.monotonic_ns()}").encode()
        if len(self.key) > 250 or any(c <= 32 or c == 127 for c in self.key):
            raise ValueError("a memcached key is at most 250 printable characters, no spaces")
        self.gap_ms = 3 * interval_ms if gap_ms is None else gap_ms
        self.stall_timeout_ms = stall_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.drain_ms = drain_ms
        self.requests: list[Request] = []
        self._inbuf = bytearray()
        self._connections = 0
        self._connect_failures = 0
        self._http_count = 0

    thread_name = "memcached-probe"

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
                may_send = not self._pending if self.mode == "rr" else True
                if may_send and now >= next_send:
                    if len(self._pending) < MAX_OUTSTANDING:
                        self._send()
                    next_send += interval_ns
                    if next_send <= now:  # fell behind (a long wait): never burst
                        next_send = now + interval_ns
                self._check_stall()
                if self.mode == "rr" and self._pending:
                    timeout = 0.05  # waiting for the reply; wake up for stop and stall checks
                else:
                    timeout = max(0.0, (next_send - time.monotonic_ns()) / 1e9)
                self._receive(timeout)
            except Broken:
                self._break()

    def _drain(self) -> None:
        if self._sock is None:
            return
        deadline = time.monotonic_ns() + int(self.drain_ms * _NS_PER_MS)
        try:
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
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.protocol.reply_prefix == PG:
                self._pg_start(sock)
            elif self._connections == 0 and self.protocol.init:  # the counter starts at 0
                sock.sendall(self.protocol.init % self.key)
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = sock.recv(64)
                    if not chunk:
                        raise OSError("connection closed")
                    reply += chunk
                if reply != self.protocol.init_reply:
                    raise OSError(f"set {self.key.decode()}: {reply!r}")
        except OSError:
            sock.close()
            self._connect_failures += 1
            return False
        sock.setblocking(False)
        self._sock = sock
        self._inbuf.clear()
        self._connections += 1
        self._sel.register(sock, selectors.EVENT_READ)
        return True

    def _send(self) -> None:
        assert self._sock is not None
        req = Request(len(self.requests), time.monotonic_ns())
        try:
            incr = self.protocol.incr
            if self.protocol.reply_prefix == PG:
                incr = _pg_query(f"SELECT nextval('{self._pg_sequence}')")
            sent = self._sock.send(incr % self.key if b"%s" in incr else incr)
        except (BlockingIOError, InterruptedError):
            return  # send buffer full (a long freeze, pipelined): skip this one
        except OSError as exc:
            raise Broken from exc
        if sent == 0:
            raise Broken
        self.requests.append(req)
        self._pending.append(req)

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
        while (value := self._reply()) is not None:
            if not self._pending:
                continue  # an answer to nothing: ignore
            req = self._pending.popleft()
            req.reply_ns = now
            req.value = value

    def _reply(self) -> int | None:
        """The next complete reply's counter, taken off the input (None: none complete yet)."""
        if self.protocol.reply_prefix == HTTP:
            return self._http_reply()
        if self.protocol.reply_prefix == PG:
            return self._pg_reply()
        end = self._inbuf.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(self._inbuf[:end])
        del self._inbuf[: end + 2]
        prefix = self.protocol.reply_prefix
        digits = line[len(prefix) :] if line.startswith(prefix) else b""
        if not digits.isdigit():  # ERROR, NOT_FOUND (the key is gone), SERVER_ERROR ...
            raise Broken
        return int(digits)

    @property
    def _pg_sequence(self) -> str:
        return "mecmig_" + "".join(c if c.isalnum() else "_" for c in self.key.decode())

    def _pg_start(self, sock: socket.socket) -> None:
        """Start-up (user and database postgres, trust) and, on the first connection, the
        sequence the probe counts with; OSError if the server refuses."""
        body = b"user\0postgres\0database\0postgres\0\0"
        sock.sendall(struct.pack("!ii", 8 + len(body), 196608) + body)
        self._pg_wait(sock)
        if self._connections == 0:
            sock.sendall(_pg_query(f"CREATE SEQUENCE {self._pg_sequence}"))
            self._pg_wait(sock)

    def _pg_wait(self, sock: socket.socket) -> None:
        """Read messages until ReadyForQuery; OSError on an error or an authentication we do
        not speak."""
        buf = b""
        while True:
            while len(buf) < 5 or len(buf) < 1 + struct.unpack("!i", buf[1:5])[0]:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
            payload, buf = buf[5 : 1 + length], buf[1 + length :]
            if kind == b"E":
                raise OSError(f"postgres: {payload!r}")
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise OSError("postgres wants a password (trust expected)")
            if kind == b"Z":
                return

    def _pg_reply(self) -> int | None:
        """A query's messages up to ReadyForQuery; its first row's first column."""
        pos, value = 0, None
        while True:
            if len(self._inbuf) < pos + 5:
                return None
            kind = bytes(self._inbuf[pos : pos + 1])
            length = struct.unpack("!i", self._inbuf[pos + 1 : pos + 5])[0]
            if len(self._inbuf) < pos + 1 + length:
                return None
            payload = bytes(self._inbuf[pos + 5 : pos + 1 + length])
            pos += 1 + length
            if kind == b"E":
                raise Broken
            if kind == b"D" and value is None:  # DataRow: int16 columns, int32 size, bytes
                size = struct.unpack("!i", payload[2:6])[0]
                value = int(payload[6 : 6 + size])
            if kind == b"Z":
                del self._inbuf[:pos]
                if value is None:
                    raise Broken
                return value

    def _http_reply(self) -> int | None:
        """An HTTP/1.1 response (any status; its body by Content-Length); its counter is how
        many responses this connection has had (the server has no counter to show)."""
        end = self._inbuf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._inbuf[:end]).split(b"\r\n")
        if not head[0].startswith(b"HTTP/1.1 "):
            raise Broken
        length = 0
        for h in head[1:]:
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(self._inbuf) < end + 4 + length:
            return None
        del self._inbuf[: end + 4 + length]
        self._http_count += 1
        return self._http_count

    # -- the result --------------------------------------------------------------------------

    def result(self) -> MemcachedProbeResult:
        """The summary of everything recorded so far (call after stop())."""
        return summarize(
            self.requests,
            host=self.host,
            port=self.port,
            mode=self.mode,
            interval_ms=self.interval_ms,
            gap_ms=self.gap_ms,
            start_ns=self._start_ns,
            end_ns=self._stop_ns or time.monotonic_ns(),
            connections=self._connections,
            broken=self._broken,
            connect_failures=self._connect_failures,
        )


def summarize(
    requests: Sequence[Request],
    *,
    host: str,
    port: int,
    mode: str,
    interval_ms: float,
    gap_ms: float,
    start_ns: int,
    end_ns: int,
    connections: int,
    broken: bool,
    connect_failures: int = 0,
) -> MemcachedProbeResult:
    """What the requests say: gaps, downtime, whether the counter went up by one each time."""
    answered = [r for r in requests if r.reply_ns is not None]
    replies = sorted(r.reply_ns for r in answered if r.reply_ns is not None)
    gaps: list[Gap] = []
    longest_ns = 0
    ends = replies[1:] + [end_ns] if replies else []
    for a, b in zip(replies, ends, strict=True):
        longest_ns = max(longest_ns, b - a)
        if b - a > gap_ms * _NS_PER_MS:
            # a request sent at the gap's start (within two intervals) still open at its end
            soon = a + int(2 * interval_ms * _NS_PER_MS)
            waiting = any(
                r.send_ns <= soon and (r.reply_ns is None or r.reply_ns >= b) for r in requests
            )
            gaps.append(Gap(a / 1e9, b / 1e9, waiting))
    if replies:
        downtime = max(0.0, longest_ns / _NS_PER_MS - interval_ms)
    else:
        downtime = (end_ns - start_ns) / _NS_PER_MS
    values = [r.value for r in answered if r.value is not None]  # in request order
    consistent = all(b == a + 1 for a, b in zip(values, values[1:], strict=False))
    if values and values[0] != 1 and connections == 1:
        consistent = False  # the counter was set to 0 just before the first request
    rtts = [(r.reply_ns - r.send_ns) / _NS_PER_MS for r in answered if r.reply_ns is not None]
    return MemcachedProbeResult(
        host=host,
        port=port,
        mode=mode,
        interval_ms=interval_ms,
        start_s=start_ns / 1e9,
        duration_ms=(end_ns - start_ns) / _NS_PER_MS,
        downtime_ms=downtime,
        gaps=gaps,
        sent=len(requests),
        replies=len(answered),
        failures=len(requests) - len(answered) + connect_failures,
        reconnects=max(0, connections - 1),
        counter_consistent=consistent,
        same_connection=connections == 1 and not broken,
        first_value=values[0] if values else None,
        last_value=values[-1] if values else None,
        rtt_ms_median=statistics.median(rtts) if rtts else None,
        rtt_ms_max=max(rtts) if rtts else None,
        requests=list(requests),
    )


def _summary(r: MemcachedProbeResult) -> str:
    gaps = ", ".join(
        f"{g.ms:.0f} ms at +{g.start_s - r.start_s:.2f} s{' (waiting)' if g.waiting else ''}"
        for g in r.gaps
    )
    return (
        f"{r.host}:{r.port} {r.mode} every {r.interval_ms:g} ms for {r.duration_ms / 1000:.1f} s: "
        f"{r.replies}/{r.sent} replies, {r.failures} failures, {r.reconnects} reconnects\n"
        f"downtime {r.downtime_ms:.1f} ms; gaps: {gaps or 'none'}\n"
        f"counter {r.first_value} -> {r.last_value} "
        f"({'consistent' if r.counter_consistent else 'INCONSISTENT'}); "
        f"same connection: {'yes' if r.same_connection else 'no'}"
    )


def _pg_query(sql: str) -> bytes:
    """A simple-query message."""
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", 4 + len(body)) + body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.memcached_probe",
        description="Measure client-observed downtime of a memcached instance (one connection).",
    )
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--interval-ms", type=float, default=DEFAULT_INTERVAL_MS)
    parser.add_argument("--mode", choices=MODES, default="rr")
    parser.add_argument(
        "--protocol", choices=sorted(PROTOCOLS), default="memcached",
        help="the counter's server: memcached (incr), Redis (INCR), PostgreSQL (nextval of a "
        "sequence, trust), or any HTTP/1.1 server (GET /, replies counted)",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds; 0 = until SIGINT/SIGTERM"
    )
    parser.add_argument("--gap-ms", type=float, default=None, help="report silences above this")
    parser.add_argument("--stall-timeout-ms", type=float, default=DEFAULT_STALL_TIMEOUT_MS)
    parser.add_argument("--connect-timeout-ms", type=float, default=DEFAULT_CONNECT_TIMEOUT_MS)
    parser.add_argument("--key", default=None, help="the counter's key (default: unique)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--output", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    probe = MemcachedProbe(
        args.host,
        args.port,
        args.interval_ms,
        mode=args.mode,
        key=args.key,
        gap_ms=args.gap_ms,
        stall_timeout_ms=args.stall_timeout_ms,
        connect_timeout_ms=args.connect_timeout_ms,
        protocol=args.protocol,
    ).start()
    done.wait(args.duration if args.duration > 0 else None)
    result = probe.stop()
    doc = json.dumps(result.to_dict())
    if args.output:
        with open(args.output, "w") as f:
            f.write(doc + "\n")
    print(doc if args.json else _summary(result), flush=True)
    return 0 if result.replies else 1


if __name__ == "__main__":
    sys.exit(main())
