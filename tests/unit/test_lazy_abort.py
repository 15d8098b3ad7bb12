"""Aborting a post-copy source (agent.lazy.abort_lazy_dump): the page server is cut by a
connection that ends without PS_IOV_CLOSE (CRIU, with our patch 0002, then resumes the tasks
with their network unlocked); signals are the last resort, since they leave the tasks mute."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Any

from agent.lazy import LazyDump, abort_lazy_dump, cut_page_server


class PageServer:
    """A listener standing in for CRIU's page server: it 'fails the transfer' and ends when a
    client connects and hangs up without a word."""

    def __init__(self, answers: bool = True) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.ended = threading.Event()
        self.signals: list[tuple[signal.Signals, bool]] = []
        if answers:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            if conn.recv(24) == b"":  # end of file before any command
                self.ended.set()

    # the process interface LazyDump needs
    def alive(self) -> bool:
        return not self.ended.is_set()

    def wait(self, timeout: float | None = None) -> int | None:
        return 1 if self.ended.wait(timeout) else None

    def stop(
        self, timeout: float = 10.0, sig: signal.Signals = signal.SIGINT, group: bool = False
    ) -> int:
        self.signals.append((sig, group))
        self.ended.set()
        return -int(sig)

    def kill(self, group: bool = False) -> None:
        self.stop(sig=signal.SIGKILL, group=group)


def dump_of(server: PageServer) -> LazyDump:
    proc: Any = server
    return LazyDump(proc, 0.1, 0, server.address)


def test_a_lazy_dump_is_aborted_by_cutting_its_page_server_not_by_signals() -> None:
    server = PageServer()
    assert abort_lazy_dump(dump_of(server), wait_s=5) == "page server ended: the service runs on"
    assert server.signals == []


def test_a_page_server_that_does_not_end_is_killed_with_its_group() -> None:
    server = PageServer(answers=False)  # busy with another client: the cut changes nothing
    assert abort_lazy_dump(dump_of(server), wait_s=0.2) == "page server killed"
    assert server.signals == [(signal.SIGINT, True)]


def test_cutting_a_page_server_where_nothing_listens_says_so() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cut_page_server(f"127.0.0.1:{port}", timeout=1) is False
