"""httpstream: an HTTP/1.1 streaming server for live-migration experiments (stdlib only, one file).

Run inside a service container as ``python3 /data/httpstream.py --port 8080``. It never imports
the project: the container sees only Debian's python3.

Endpoints (keep-alive HTTP/1.1, ``ThreadingHTTPServer``, bound to 0.0.0.0)::

    GET /stream?bytes=N&rate=R  N bytes (default 1 MiB) of a deterministic body, paced to R
                                bytes/s (0 or absent = as fast as possible); Content-Length: N.
                                Byte i of the body is PATTERN[i % len(PATTERN)]: see
                                :func:`expected_body`.
    GET /counter                "<n>\\n": requests served so far, this one included (in memory)
    GET /stats                  one JSON object: requests, streams, active_streams, bytes_sent
    GET /health                 "ok\\n"

Nothing is written to stdout/stderr once it runs; ``--ready-file`` gets ``"<pid> <port>\\n"``
(atomically) once the socket listens; ``--port 0`` picks a free port.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PATTERN = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2048))
_PATTERN2 = PATTERN + PATTERN
CHUNK = len(PATTERN)
DEFAULT_STREAM_BYTES = 1 << 20


def expected_body(offset: int, length: int) -> bytes:
    """Bytes [offset, offset + length) of every /stream body."""
    out = bytearray()
    while length > 0:
        start = offset % len(PATTERN)
        n = min(length, len(PATTERN))
        out += _PATTERN2[start : start + n]
        offset += n
        length -= n
    return bytes(out)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.streams = 0
        self.active_streams = 0
        self.bytes_sent = 0

    def count_request(self) -> int:
        with self.lock:
            self.requests += 1
            return self.requests

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {
                "requests": self.requests,
                "streams": self.streams,
                "active_streams": self.active_streams,
                "bytes_sent": self.bytes_sent,
            }


STATS = Stats()


class _BadRequest(ValueError):
    pass


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    if value < 0:
        raise _BadRequest(f"{name} must be >= 0")
    return value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "httpstream/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stdio is /dev/null in a container; stay quiet everywhere

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        n = STATS.count_request()
        url = urlsplit(self.path)
        try:
            if url.path == "/counter":
                self._reply(200, b"%d\n" % n)
            elif url.path == "/stream":
                query = parse_qs(url.query)
                total = _int_param(query, "bytes", DEFAULT_STREAM_BYTES)
                rate = _int_param(query, "rate", 0)
                self._stream(total, rate)
            elif url.path == "/stats":
                self._reply(200, json.dumps(STATS.as_dict()).encode() + b"\n", "application/json")
            elif url.path == "/health":
                self._reply(200, b"ok\n")
            else:
                self._reply(404, b"not found\n")
        except _BadRequest as exc:
            self._reply(400, f"{exc}\n".encode())
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _stream(self, total: int, rate: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        with STATS.lock:
            STATS.streams += 1
            STATS.active_streams += 1
        try:
            chunk = CHUNK if rate <= 0 else max(1, min(CHUNK, rate // 100))
            start = time.monotonic()
            sent = 0
            while sent < total:
                n = min(chunk, total - sent)
                if rate > 0:
                    delay = start + sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                off = sent % len(PATTERN)
                self.wfile.write(_PATTERN2[off : off + n])
                sent += n
                with STATS.lock:
                    STATS.bytes_sent += n
        finally:
            with STATS.lock:
                STATS.active_streams -= 1


def write_ready_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()} {port}\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="httpstream", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--ready-file", default=None, help="written as '<pid> <port>' once up")
    args = parser.parse_args(argv)
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        print(f"httpstream: {exc}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    if args.ready_file:
        write_ready_file(args.ready_file, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
