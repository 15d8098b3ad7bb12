"""workloads.http_poll's one request: its body, or why it failed (a reset is what a replica that
never saw a connection answers to a packet of it)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from workloads.http_poll import request


@contextmanager
def server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection TCP server on localhost that runs `answer` on the connection."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def serve() -> None:
        conn, _ = lsock.accept()
        conn.recv(4096)
        answer(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        t.join(5)
        lsock.close()


def _ok(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n42\n")
    conn.close()


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # linger 0: a RST, not a FIN


def _not_found(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.0 404 Not Found\r\n\r\n")
    conn.close()


def test_a_reply_gives_its_first_line_of_body() -> None:
    with server(_ok) as port:
        assert request("127.0.0.1", port, "/counter") == ("42", "")


def test_a_reset_connection_says_reset() -> None:
    with server(_reset) as port:
        assert request("127.0.0.1", port, "/counter") == (None, "reset")


def test_a_closed_port_says_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # bound, never listening: nothing there
    assert request("127.0.0.1", port, "/counter") == (None, "refused")


def test_a_server_that_never_answers_says_timeout() -> None:
    with server(lambda conn: threading.Event().wait(0.5) or conn.close()) as port:
        assert request("127.0.0.1", port, "/counter", timeout_s=0.1) == (None, "timeout")


def test_an_error_status_says_bad_reply() -> None:
    with server(_not_found) as port:
        assert request("127.0.0.1", port, "/counter") == (None, "bad-reply")
