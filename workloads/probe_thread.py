"""What the client-side probes share (`workloads.probe` for memhog, `workloads.memcached_probe`):
a thread that runs the probe's loop over one TCP connection until stopped, the connection's
end, and the stall rule. A probe supplies `_loop`, `_drain` and `result`, and keeps its
requests (anything with a `send_ns`) in `_pending` until answered."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections import deque
from typing import Any, Generic, Protocol, Self, TypeVar

NS_PER_MS = 1_000_000
R = TypeVar("R")


class Broken(Exception):
    """The connection broke (EOF, reset, or no reply for the stall timeout)."""


class _Sent(Protocol):
    send_ns: int


class ProbeThread(Generic[R]):
    """The lifecycle of a probe: `start()`, `stop() -> result`, `run(seconds)`, or `with`."""

    thread_name = "probe"
    stall_timeout_ms: float

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._start_ns = 0
        self._stop_ns = 0
        self._sock: socket.socket | None = None
        self._sel = selectors.DefaultSelector()
        self._pending: deque[Any] = deque()
        self._broken = False

    # -- what a probe supplies ---------------------------------------------------------------

    def _loop(self) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        raise NotImplementedError

    def result(self) -> R:
        raise NotImplementedError

    # -- public API ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start probing in a thread of its own."""
        if self._thread is not None:
            raise RuntimeError("probe already started")
        self._start_ns = time.monotonic_ns()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> R:
        if self._thread is None:
            raise RuntimeError("probe not started")
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("probe thread failed") from self._error
        return self.result()

    def run(self, duration_s: float) -> R:
        """Start, probe for `duration_s` seconds, stop."""
        self.start()
        time.sleep(duration_s)
        return self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and not self._stop.is_set():
            self.stop()

    # -- the probe thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
            self._drain()
        except BaseException as exc:  # reported by stop()
            self._error = exc
        finally:
            self._stop_ns = time.monotonic_ns()
            self._disconnect()
            self._sel.close()

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._sock)
            self._sock.close()
            self._sock = None

    def _break(self) -> None:
        """The connection is gone: its unanswered requests are failures."""
        self._broken = True
        self._pending.clear()
        self._disconnect()

    def _check_stall(self) -> None:
        if self._pending and self.stall_timeout_ms > 0:
            first: _Sent = self._pending[0]
            if time.monotonic_ns() - first.send_ns > self.stall_timeout_ms * NS_PER_MS:
                raise Broken
