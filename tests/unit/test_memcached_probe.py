"""The memcached probe: its arithmetic on recorded requests, and one connection to a small
in-process memcached stand-in (text protocol `set`/`incr`) that can stall, as a frozen service
does; Debian's memcached itself runs in tests/integration/test_request_response_live.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from workloads import memcached_probe
from workloads.memcached_probe import MemcachedProbe, MemcachedProbeResult, Request, summarize

MS = 1_000_000


def _summary(requests: list[Request], end_ms: float = 100.0, **kw: object) -> MemcachedProbeResult:
    args: dict[str, object] = dict(
        host="h",
        port=1,
        mode="rr",
        interval_ms=5.0,
        gap_ms=15.0,
        start_ns=0,
        end_ns=int(end_ms * MS),
        connections=1,
        broken=False,
    )
    args.update(kw)
    return summarize(requests, **args)  # type: ignore[arg-type]


def test_the_longest_silence_between_replies_is_the_downtime() -> None:
    reqs = [
        Request(0, 0 * MS, 1 * MS, 1),
        Request(1, 5 * MS, 6 * MS, 2),
        Request(2, 10 * MS, 71 * MS, 3),  # answered 61 ms late: the client waited
        Request(3, 76 * MS, 77 * MS, 4),
    ]
    r = _summary(reqs, end_ms=80)
    assert r.downtime_ms == pytest.approx(65 - 5)
    assert [(g.start_s, g.end_s, g.waiting) for g in r.gaps] == [(0.006, 0.071, True)]
    assert r.gaps[0].ms == pytest.approx(65)
    assert r.counter_consistent and r.replies == 4 and r.failures == 0
    assert r.first_value == 1 and r.last_value == 4


def test_a_silence_without_a_request_outstanding_is_not_waiting() -> None:
    reqs = [Request(0, 0, 1 * MS, 1), Request(1, 40 * MS, 41 * MS, 2)]  # the client paused
    r = _summary(reqs, end_ms=42)
    assert [g.waiting for g in r.gaps] == [False]


def test_a_request_never_answered_runs_to_the_end() -> None:
    reqs = [Request(0, 0, 1 * MS, 1), Request(1, 5 * MS)]
    r = _summary(reqs, end_ms=500)
    assert r.downtime_ms == pytest.approx(499 - 5)
    assert r.failures == 1 and r.gaps[-1].waiting


@pytest.mark.parametrize(
    ("values", "ok"),
    [([1, 2, 3], True), ([1, 3], False), ([1, 2, 2], False), ([2, 3], False)],
)
def test_each_reply_is_the_previous_one_plus_one(values: list[int], ok: bool) -> None:
    reqs = [Request(i, i * 5 * MS, i * 5 * MS + MS, v) for i, v in enumerate(values)]
    assert _summary(reqs).counter_consistent is ok


def test_json_form_reads_back() -> None:
    reqs = [Request(0, 0, MS, 1), Request(1, 5 * MS, 90 * MS, 2)]
    doc = json.loads(json.dumps(_summary(reqs).to_dict()))
    assert "requests" not in doc
    assert MemcachedProbeResult.gaps_of(doc)[0].waiting is True


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        MemcachedProbe("h", 1, 0)
    with pytest.raises(ValueError, match="mode"):
        MemcachedProbe("h", 1, mode="burst")
    with pytest.raises(ValueError, match="key"):
        MemcachedProbe("h", 1, key="has space")


class FakeMemcached:
    """`set` and `incr` of the text protocol on 127.0.0.1; `stall()` stops answering (the
    kernel keeps the requests, as it does for a frozen process) until `resume()`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.values: dict[bytes, int] = {}
        self.go = threading.Event()
        self.go.set()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stall(self) -> None:
        self.go.clear()

    def resume(self) -> None:
        self.go.set()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                self.go.wait()
                words = line.split()
                if words[0] == b"SET":  # Redis (inline commands)
                    self.values[words[1]] = int(words[2])
                    conn.sendall(b"+OK\r\n")
                elif words[0] == b"INCR" and words[1] in self.values:
                    self.values[words[1]] += 1
                    conn.sendall(b":%d\r\n" % self.values[words[1]])
                elif words[0] == b"set":
                    data = reader.readline()
                    self.values[words[1]] = int(data)
                    conn.sendall(b"STORED\r\n")
                elif words[0] == b"incr" and words[1] in self.values:
                    self.values[words[1]] += int(words[2])
                    conn.sendall(b"%d\r\n" % self.values[words[1]])
                else:
                    conn.sendall(b"NOT_FOUND\r\n")


@pytest.fixture()
def server() -> Iterator[FakeMemcached]:
    s = FakeMemcached()
    yield s
    s.close()


@pytest.mark.parametrize("mode", ["rr", "pipelined"])
def test_one_connection_through_a_stall(server: FakeMemcached, mode: str) -> None:
    probe = MemcachedProbe("127.0.0.1", server.port, 5.0, mode=mode).start()
    time.sleep(0.2)
    server.stall()
    time.sleep(0.3)
    server.resume()
    time.sleep(0.2)
    r = probe.stop()
    assert r.same_connection and r.counter_consistent and r.failures == 0
    assert r.replies > 40 and r.first_value == 1 and r.last_value == r.replies
    assert 280 < r.downtime_ms < 450
    longest = max(r.gaps, key=lambda g: g.ms)
    assert longest.waiting and longest.start_s >= r.start_s
    if mode == "rr":  # one request at a time: nothing was sent while it waited
        assert r.sent == r.replies
    else:
        assert r.sent == r.replies  # every pipelined request was answered after the stall


def test_a_redis_counter_is_probed_the_same_way(server: FakeMemcached) -> None:
    probe = MemcachedProbe("127.0.0.1", server.port, 5.0, protocol="redis").start()
    time.sleep(0.2)
    r = probe.stop()
    assert r.same_connection and r.counter_consistent and r.failures == 0
    assert r.replies > 10 and r.last_value == r.replies
    assert list(server.values.values()) == [r.replies]
    with pytest.raises(ValueError, match="protocol"):
        MemcachedProbe("h", 1, protocol="gopher")


def test_an_http_server_is_probed_with_keep_alive_gets() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        wbufsize = 1 << 16  # the response in one write (flushed after each request)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = b"<h1>404</h1>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        probe = MemcachedProbe("127.0.0.1", httpd.server_address[1], 5.0, protocol="http")
        probe.start()
        time.sleep(0.2)
        r = probe.stop()
    finally:
        httpd.shutdown()
    assert r.same_connection and r.counter_consistent and r.failures == 0
    assert r.replies > 10 and r.last_value == r.replies


def test_a_postgres_sequence_is_probed_over_the_simple_query_protocol() -> None:
    import struct

    def msg(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("!i", 4 + len(payload)) + payload

    ready = msg(b"Z", b"I")
    queries: list[bytes] = []

    def serve(sock: socket.socket) -> None:
        conn, _ = sock.accept()
        with conn:
            n = struct.unpack("!i", conn.recv(4))[0]
            conn.recv(n - 4)  # the start-up message
            conn.sendall(msg(b"R", struct.pack("!i", 0)) + msg(b"S", b"a\0b\0") + ready)
            value = 0
            buf = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!i", buf[1:5])[0]:
                    n = struct.unpack("!i", buf[1:5])[0]
                    sql, buf = buf[5 : 1 + n].rstrip(b"\0"), buf[1 + n :]
                    queries.append(sql)
                    if sql.startswith(b"SELECT nextval"):
                        value += 1
                        text = str(value).encode()
                        row = msg(b"D", struct.pack("!hi", 1, len(text)) + text)
                        conn.sendall(msg(b"T", b"\0\1") + row + msg(b"C", b"SELECT 1\0") + ready)
                    else:
                        conn.sendall(msg(b"C", b"CREATE SEQUENCE\0") + ready)

    with socket.create_server(("127.0.0.1", 0)) as sock:
        threading.Thread(target=serve, args=(sock,), daemon=True).start()
        probe = MemcachedProbe("127.0.0.1", sock.getsockname()[1], 5.0, protocol="postgres")
        probe.start()
        time.sleep(0.2)
        r = probe.stop()
    assert r.same_connection and r.counter_consistent and r.failures == 0
    assert r.replies > 10 and r.last_value == r.replies
    assert queries[0].startswith(b"CREATE SEQUENCE mecmig_")
    assert queries[1].startswith(b"SELECT nextval('mecmig_")


def test_cli_prints_json(server: FakeMemcached, capsys: pytest.CaptureFixture[str]) -> None:
    code = memcached_probe.main(["127.0.0.1", str(server.port), "--duration", "0.2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["replies"] > 10 and doc["counter_consistent"]
    assert doc["mode"] == "rr" and doc["same_connection"]


def test_cli_without_a_server_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed below: nobody listens there
    code = memcached_probe.main(["127.0.0.1", str(port), "--duration", "0.1"])
    assert code == 1
    assert "0/0 replies" in capsys.readouterr().out
