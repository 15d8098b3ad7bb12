"""Stop-and-copy's pages straight to the destination while CRIU dumps them, with a copy kept here.

`runc checkpoint --page-server ADDR:PORT` makes CRIU send the memory pages to a `criu
page-server` instead of writing them: at the destination (`start_page_server`), they arrive
while the dump runs, and only the small rest of the images is copied after it. But then the
source holds no pages, and a migration that fails after its dump must still restore the
service here from its own dump. So CRIU's connection goes through a `PageRelay` in this agent:
it passes the stream on to the destination (paced at the reservation's rate if asked) and
writes what CRIU sent to a file beside the instance, before passing it on: a dump that
succeeded has its whole stream in that file. `replay_pages` feeds that file to a local `criu
page-server` (over a socket pair: `--ps-socket`), which writes the pages images as the
destination's did, and the service can be restored from its images as before. A relay that
fails (the destination gone, the link cut) closes CRIU's connection: the dump fails and CRIU
lets the service run on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.runc import criu_ready
from agent.transfer_wire import pace_socket, tune_socket
from ground.runner import Spawned, SubprocessRunner

log = logging.getLogger(__name__)
CHUNK = 1 << 20
ACCEPT_TIMEOUT_S = 120.0  # CRIU connects once it has frozen and collected the first pages
CONNECT_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 20.0
REPLAY_TIMEOUT_S = 300.0
PAGE_SERVER_LOG = "page-server.log"


class PageServerError(Exception):
    """A page server or the relay to one failed (what, and why)."""


@dataclass(frozen=True)
class RelayStats:
    """What a relay passed on: CRIU's bytes to the page server, and how long it took."""

    bytes: int
    seconds: float


class PageRelay:
    """One dump's page-server connection (see the module docstring). `start` returns the
    address CRIU is to connect to; `close` ends it and says what moved (PageServerError if
    the stream was cut)."""

    def __init__(self, peer: str, record: Path, pace_bps: int | None = None) -> None:
        host, _, port = peer.rpartition(":")
        self.peer = (host, int(port))
        self.record = record
        self.pace_bps = pace_bps
        self.sent = 0
        self.error: str | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._t0 = 0.0
        self._t1 = 0.0

    def start(self) -> str:
        self.record.unlink(missing_ok=True)
        listener = socket.create_server(("127.0.0.1", 0), backlog=1)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._run, name="page-relay", daemon=True)
        self._thread.start()
        return f"127.0.0.1:{listener.getsockname()[1]}"

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self._stop.is_set():
                raise PageServerError("relay closed")

    def _run(self) -> None:
        try:
            criu = self._accept()
            self._keep(criu)
            self._t0 = time.monotonic()
            dest = socket.create_connection(self.peer, timeout=CONNECT_TIMEOUT_S)
            self._keep(dest)
            dest.settimeout(None)
            tune_socket(dest)
            if self.pace_bps is not None:
                pace_socket(dest, self.pace_bps)
            back = threading.Thread(target=self._back, args=(dest, criu), daemon=True)
            back.start()
            self._forward(criu, dest)
            back.join()
            self._t1 = time.monotonic()
        except (OSError, PageServerError) as exc:
            self.error = self.error or f"{type(exc).__name__}: {exc}"
            self._abort()

    def _accept(self) -> socket.socket:
        assert self._listener is not None
        deadline = time.monotonic() + ACCEPT_TIMEOUT_S
        with self._listener:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                conn.settimeout(None)
                return conn
        raise PageServerError("CRIU never connected")

    def _forward(self, criu: socket.socket, dest: socket.socket) -> None:
        """CRIU's stream to the destination, each piece written to the record first (so that a
        dump the destination acknowledged is whole in it)."""
        buf = memoryview(bytearray(CHUNK))
        with open(self.record, "wb", buffering=0) as out:
            while n := criu.recv_into(buf):
                out.write(buf[:n])
                dest.sendall(buf[:n])
                self.sent += n
        dest.shutdown(socket.SHUT_WR)

    def _back(self, dest: socket.socket, criu: socket.socket) -> None:
        """The page server's few answers (has-parent, flush status) back to CRIU."""
        try:
            while data := dest.recv(4096):
                criu.sendall(data)
            criu.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.error = self.error or f"from the page server: {exc}"
            self._abort()

    def _abort(self) -> None:
        self._stop.set()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self, timeout: float = 10.0) -> RelayStats:
        """End the relay (it is done once CRIU has hung up); PageServerError if it failed."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.error = self.error or "still relaying"
                self._abort()
                self._thread.join(5.0)
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()
        if self.error is not None:
            raise PageServerError(f"page relay to {self.peer[0]}:{self.peer[1]}: {self.error}")
        return RelayStats(self.sent, max(0.0, self._t1 - self._t0))


def page_server_argv(criu: Path, images: Path, *, work: Path) -> list[str]:
    """`criu page-server` writing into `images` (its log in `work`)."""
    return [
        str(criu),
        "page-server",
        "-D",
        str(images.resolve()),
        "-W",
        str(work.resolve()),
        "-o",
        PAGE_SERVER_LOG,
    ]


def start_page_server(
    criu: Path, images: Path, work: Path, address: str, port: int, spawner: SubprocessRunner
) -> Spawned:
    """Destination: a `criu page-server` on `address`:`port` writing a dump's pages into
    `images` (emptied first); returns once it listens."""
    if images.exists():
        for old in images.iterdir():
            old.unlink()
    images.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    argv = page_server_argv(criu, images, work=work)
    argv += ["--address", address, "--port", str(port)]
    read_fd, write_fd = os.pipe()
    try:
        proc = spawner.spawn(
            [*argv, "--status-fd", str(write_fd)],
            str(work / "page-server.out"),
            pass_fds=[write_fd],
        )
    finally:
        os.close(write_fd)
    if not criu_ready(read_fd, READY_TIMEOUT_S):
        proc.kill(group=True)
        raise PageServerError(f"criu page-server on port {port} did not start: {proc.tail()}")
    return proc


def finish_page_server(proc: Spawned, timeout: float) -> None:
    """Wait for a page server whose client is done; PageServerError unless it ended well (a
    stream cut short is not flushed: CRIU's page server then exits non-zero)."""
    code = proc.wait(timeout)
    if code is None:
        proc.kill(group=True)
        raise PageServerError(f"criu page-server still running after {timeout:.0f} s")
    if code != 0:
        raise PageServerError(f"criu page-server exited {code}: {proc.tail()}")


def replay_pages(
    criu: Path, record: Path, images: Path, work: Path, spawner: SubprocessRunner
) -> int:
    """Write a relayed dump's pages images into `images` from its `record` (see the module
    docstring); the bytes replayed."""
    work.mkdir(parents=True, exist_ok=True)
    ours, theirs = socket.socketpair()
    try:
        argv = page_server_argv(criu, images, work=work)
        proc = spawner.spawn(
            [*argv, "--ps-socket", str(theirs.fileno())],
            str(work / "page-server.out"),
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        sent = 0
        with open(record, "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                ours.sendall(chunk)  # its answers are a few bytes: the buffer holds them
                sent += len(chunk)
        ours.shutdown(socket.SHUT_WR)
        finish_page_server(proc, REPLAY_TIMEOUT_S)
        return sent
    except OSError as exc:
        raise PageServerError(f"replaying the pages of {record}: {exc}") from exc
    finally:
        ours.close()
        theirs.close()
