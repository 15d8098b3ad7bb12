"""agent.page_relay over loopback: CRIU's page-server stream passes to the destination whole and
is kept whole at the source; a cut destination fails the relay (so CRIU's dump fails and the
service runs on); the kept stream is replayed into a page server over a socket pair."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.page_relay import PageRelay, PageServerError, replay_pages

STREAM = os.urandom(3 * (1 << 20) + 12345)  # several of the relay's pieces, and a partial one


class Destination:
    """A page server stand-in: takes everything, answers `reply` once its client is done
    (or, with `cut_after`, hangs up after that many bytes)."""

    def __init__(self, reply: bytes = b"\x00\x00\x00\x00", cut_after: int | None = None):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.got = bytearray()
        self.reply, self.cut_after = reply, cut_after
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, self.listener:
            while data := conn.recv(1 << 16):
                self.got += data
                if self.cut_after is not None and len(self.got) >= self.cut_after:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    return  # a reset: the link or the destination gone
            conn.sendall(self.reply)


def criu_stand_in(address: str, data: bytes) -> bytes:
    """What CRIU does: connect, send the stream, hang up its side, read the answers."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = bytearray()
        while chunk := sock.recv(4096):
            answer += chunk
    return bytes(answer)


def test_the_stream_reaches_the_destination_and_stays_here(tmp_path: Path) -> None:
    dest = Destination()
    relay = PageRelay(f"127.0.0.1:{dest.port}", tmp_path / "pages.stream", pace_bps=10**10)
    address = relay.start()
    assert address.startswith("127.0.0.1:")
    assert criu_stand_in(address, STREAM) == dest.reply
    stats = relay.close()
    dest.thread.join(5)
    assert bytes(dest.got) == STREAM
    assert (tmp_path / "pages.stream").read_bytes() == STREAM
    assert stats.bytes == len(STREAM) and stats.seconds >= 0


def test_a_cut_destination_fails_the_relay_and_criu_sees_it(tmp_path: Path) -> None:
    dest = Destination(cut_after=1 << 20)
    relay = PageRelay(f"127.0.0.1:{dest.port}", tmp_path / "pages.stream")
    address = relay.start()
    # CRIU's send or read fails, or its flush gets no answer: its dump fails
    with contextlib.suppress(OSError):
        assert criu_stand_in(address, STREAM * 4) == b""
    with pytest.raises(PageServerError, match="page relay to 127.0.0.1"):
        relay.close()


def test_no_destination_fails_the_relay(tmp_path: Path) -> None:
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there
    relay = PageRelay(f"127.0.0.1:{port}", tmp_path / "pages.stream")
    address = relay.start()
    # CRIU gets no answer (its first, to opening the pages, fails its dump) or an error
    with contextlib.suppress(OSError):
        assert criu_stand_in(address, STREAM) == b""
    with pytest.raises(PageServerError):
        relay.close()


class ReplaySpawner:
    """Stands in for `criu page-server --ps-socket FD`: reads the socket to its end."""

    def __init__(self) -> None:
        self.argv: list[str] = []
        self.got = bytearray()

    def spawn(self, argv: Sequence[str], log_path: str, **kw: Any) -> Any:
        self.argv = list(argv)
        fd = int(argv[argv.index("--ps-socket") + 1])
        assert fd in kw["pass_fds"]
        sock = socket.socket(fileno=os.dup(fd))
        thread = threading.Thread(target=self.read, args=(sock,), daemon=True)
        thread.start()
        spawner = self

        class Proc:
            def wait(self, timeout: float | None = None) -> int:
                thread.join(timeout)
                return 0 if bytes(spawner.got) == STREAM else 1

            def kill(self, group: bool = False) -> None:
                return None

            def tail(self, lines: int = 20) -> str:
                return ""

        return Proc()

    def read(self, sock: socket.socket) -> None:
        with sock:
            while data := sock.recv(1 << 16):
                self.got += data


def test_replay_feeds_the_kept_stream_to_a_local_page_server(tmp_path: Path) -> None:
    record = tmp_path / "pages.stream"
    record.write_bytes(STREAM)
    images = tmp_path / "images"
    spawner = ReplaySpawner()
    sent = replay_pages(Path("/opt/criu"), record, images, tmp_path / "work", spawner)  # type: ignore[arg-type]
    assert sent == len(STREAM) and bytes(spawner.got) == STREAM
    assert spawner.argv[:4] == ["/opt/criu", "page-server", "-D", str(images.resolve())]
