"""memhog: a stateful memory workload for live-migration experiments (stdlib only, one file).

Run inside a service container as ``python3 /data/memhog.py --size 64MiB --dirty-rate 10MB/s
--port 7000``. It never imports the project: the container sees only Debian's python3.

State that a migration must carry:

* ``--size`` bytes of anonymous memory, every page touched at start (so it is all resident);
* a *fingerprint region* at the start of that memory (1 MiB, or half of ``--size`` if smaller)
  filled from ``random.Random(--seed)`` and never written again: its SHA-256 is the fingerprint
  (see :func:`expected_fingerprint`), recomputed from memory on every ``GET``;
* the rest of the memory is dirtied at ``--dirty-rate`` bytes per second: every 10 ms one byte
  is written in each of ``rate * 0.01 / PAGESIZE`` pages, walking the region cyclically
  (0 = never dirtied);
* a counter that grows by one every 10 ms tick and never resets. A frozen process does not
  count, and after a stall longer than 100 ms (a freeze, a checkpoint) ticks are not caught up,
  so ``uptime_ms / 10 - counter`` is roughly the time the process spent frozen.

Line protocol on ``--port`` (TCP, 0.0.0.0; connections stay open and can be reused)::

    GET   -> "<counter> <fingerprint-hex> <uptime-ms>\\n"
    PING  -> "PONG <counter>\\n"
    STATS -> "counter=.. uptime_ms=.. size=.. dirty_rate=.. dirtied_bytes=.. clients=..
              requests=..\\n" (one line)
    QUIT  -> closes the connection
    else  -> "ERR unknown command\\n"

Nothing is written to stdout/stderr once it runs; ``--ready-file`` gets ``"<pid> <port>\\n"``
(atomically) once the socket listens. ``--port 0`` picks a free port (read it from the ready
file). One thread, ``poll(2)`` (no epoll instance to checkpoint), non-blocking sockets.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import mmap
import os
import random
import re
import selectors
import socket
import sys
import time
from collections.abc import Sequence

TICK_S = 0.01
MAX_CATCHUP_TICKS = 10
FINGERPRINT_BYTES = 1 << 20
PAGE = mmap.PAGESIZE
MAX_LINE = 4096
MAX_OUTBUF = 1 << 20
DEFAULT_SEED = 42

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in '64MiB', '1G', '512k', '100MB', '4096' (k/M/G alone are binary; KB/MB/GB are SI)."""
    m = _SIZE_RE.match(text.lower())
    if m is None or m.group(2) not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size (e.g. 64MiB, 1G, 100MB, 4096)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_rate(text: str) -> int:
    """Bytes per second in '10MB/s', '1MiB/s', '0', '500k' (a trailing '/s' is optional)."""
    t = text.strip()
    if t.lower().endswith("/s"):
        t = t[:-2]
    return parse_size(t)


def fingerprint_len(size: int) -> int:
    """Length of the fingerprint region for a buffer of `size` bytes."""
    return min(FINGERPRINT_BYTES, size // 2)


def fingerprint_data(seed: int, size: int) -> bytes:
    """The bytes written at the start of the buffer (deterministic in seed and size)."""
    return random.Random(seed).randbytes(fingerprint_len(size))


def expected_fingerprint(seed: int, size: int) -> str:
    """The fingerprint a healthy memhog started with `--seed seed --size size` reports."""
    return hashlib.sha256(fingerprint_data(seed, size)).hexdigest()


class MemHog:
    """The memory buffer, the tick (counter + dirtying) and the TCP server, in one event loop."""

    def __init__(
        self,
        size: int,
        dirty_rate: int,
        port: int,
        host: str = "0.0.0.0",
        seed: int = DEFAULT_SEED,
        ready_file: str | None = None,
    ) -> None:
        if size < 2 * PAGE:
            raise ValueError(f"--size must be at least {2 * PAGE} bytes")
        if dirty_rate < 0:
            raise ValueError("--dirty-rate must be >= 0")
        self.size = size
        self.dirty_rate = dirty_rate
        self.seed = seed
        self.ready_file = ready_file
        self.counter = 0
        self.requests = 0
        self.dirtied_bytes = 0
        self._start_wall = time.time()
        self._uptime_ms = 0
        self._pass = 0
        self._carry = 0.0

        self.mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.fp_len = fingerprint_len(size)
        self.mem[0 : self.fp_len] = fingerprint_data(seed, size)
        # The dirty region starts at the first page boundary after the fingerprint region.
        self.dirty_base = -(-self.fp_len // PAGE) * PAGE
        self.dirty_pages = (size - self.dirty_base) // PAGE
        self._cursor = 0
        self._touch_all()

        self.sel = selectors.PollSelector()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self._inbuf: dict[socket.socket, bytearray] = {}
        self._outbuf: dict[socket.socket, bytearray] = {}

    # -- memory ---------------------------------------------------------------------------

    def _touch_all(self) -> None:
        """Write every page after the fingerprint region once (a different byte per page)."""
        n = self.dirty_pages
        if n <= 0:
            return
        pattern = bytes(range(1, 256))
        data = (pattern * (n // len(pattern) + 1))[:n]
        start = self.dirty_base
        self.mem[start : start + (n - 1) * PAGE + 1 : PAGE] = data

    def _dirty(self, ticks: int) -> None:
        """Write one byte in each of the pages `ticks` ticks' worth of dirty rate covers."""
        if self.dirty_rate <= 0 or self.dirty_pages <= 0:
            return
        self._carry += self.dirty_rate * TICK_S * ticks / PAGE
        todo = int(self._carry)
        self._carry -= todo
        todo = min(todo, self.dirty_pages)
        while todo > 0:
            k = min(todo, self.dirty_pages - self._cursor)
            start = self.dirty_base + self._cursor * PAGE
            value = (self._pass % 255) + 1
            self.mem[start : start + (k - 1) * PAGE + 1 : PAGE] = bytes((value,)) * k
            self.dirtied_bytes += k * PAGE
            self._cursor += k
            todo -= k
            if self._cursor >= self.dirty_pages:
                self._cursor = 0
                self._pass += 1

    def fingerprint(self) -> str:
        view = memoryview(self.mem)
        try:
            return hashlib.sha256(view[0 : self.fp_len]).hexdigest()
        finally:
            view.release()

    def uptime_ms(self) -> int:
        """Wall-clock milliseconds since start, never decreasing."""
        now = int((time.time() - self._start_wall) * 1000)
        if now > self._uptime_ms:
            self._uptime_ms = now
        return self._uptime_ms

    # -- protocol ---------------------------------------------------------------------------

    def answer(self, line: bytes) -> bytes | None:
        """The reply to one request line (without its newline); None closes the connection."""
        cmd = line.strip().upper()
        if not cmd:
            return b""
        self.requests += 1
        if cmd == b"PING":
            return b"PONG %d\n" % self.counter
        if cmd == b"GET":
            return b"%d %s %d\n" % (self.counter, self.fingerprint().encode(), self.uptime_ms())
        if cmd == b"STATS":
            return (
                f"counter={self.counter} uptime_ms={self.uptime_ms()} size={self.size} "
                f"dirty_rate={self.dirty_rate} dirtied_bytes={self.dirtied_bytes} "
                f"clients={len(self._inbuf)} requests={self.requests}\n"
            ).encode()
        if cmd == b"QUIT":
            return None
        return b"ERR unknown command\n"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE or a connection reset before accept: try again later
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._inbuf[conn] = bytearray()
            self._outbuf[conn] = bytearray()
            self.sel.register(conn, selectors.EVENT_READ, "client")

    def _close(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        self._inbuf.pop(conn, None)
        self._outbuf.pop(conn, None)
        conn.close()

    def _flush(self, conn: socket.socket) -> None:
        out = self._outbuf[conn]
        if out:
            try:
                sent = conn.send(out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            del out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
        if len(out) > MAX_OUTBUF:
            self._close(conn)  # a client that never reads
            return
        self.sel.modify(conn, events, "client")

    def _readable(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        buf = self._inbuf[conn]
        buf += data
        out = self._outbuf[conn]
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            reply = self.answer(bytes(buf[:nl]))
            del buf[: nl + 1]
            if reply is None:
                if out:
                    with contextlib.suppress(OSError):
                        conn.send(out)
                self._close(conn)
                return
            out += reply
        if len(buf) > MAX_LINE:
            self._close(conn)
            return
        self._flush(conn)

    # -- loop ------------------------------------------------------------------------------

    def write_ready_file(self) -> None:
        if not self.ready_file:
            return
        tmp = f"{self.ready_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()} {self.port}\n")
        os.replace(tmp, self.ready_file)

    def tick(self, now: float, next_tick: float) -> float:
        """Advance the counter (and dirty memory) for the ticks due at `now`; the next deadline."""
        if now >= next_tick:
            due = int((now - next_tick) / TICK_S) + 1
            if due > MAX_CATCHUP_TICKS:  # frozen or stalled: count on from now, no catch-up
                due = 1
                next_tick = now + TICK_S
            else:
                next_tick += due * TICK_S
            self.counter += due
            self._dirty(due)
        elif next_tick - now > 2 * TICK_S:  # the monotonic clock went back (restored elsewhere)
            next_tick = now + TICK_S
        return next_tick

    def serve_forever(self) -> None:
        self.write_ready_file()
        next_tick = time.monotonic() + TICK_S
        while True:
            next_tick = self.tick(time.monotonic(), next_tick)
            timeout = max(0.0, next_tick - time.monotonic())
            for key, mask in self.sel.select(timeout):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if key.data is None:
                    self._accept()
                    continue
                if sock not in self._inbuf:
                    continue  # closed earlier in this round
                if mask & selectors.EVENT_READ:
                    self._readable(sock)
                if mask & selectors.EVENT_WRITE and sock in self._inbuf:
                    self._flush(sock)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="memhog", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("64MiB"))
    parser.add_argument("--dirty-rate", type=parse_rate, default=0, help="bytes/s, e.g. 10MB/s")
    parser.add_argument("--port", type=int, default=7000, help="0 picks a free port")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--ready-file", default=None, help="written as '<pid> <port>' once up")
    args = parser.parse_args(argv)
    try:
        hog = MemHog(args.size, args.dirty_rate, args.port, args.host, args.seed, args.ready_file)
    except (ValueError, OSError) as exc:
        print(f"memhog: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        hog.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
