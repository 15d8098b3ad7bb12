"""Serving an ASGI app (the controller's REST API) with uvicorn in a thread of its own."""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger("controller.rest")


class RestServerError(Exception):
    """The REST server could not start (e.g. its port is in use) or stop."""


# ------------------------------------------------------------------------------ the server


KEEP_ALIVE_S = 75


class RestServer:
    """Serves an ASGI app with uvicorn in a daemon thread (loopback by default).

    The listening socket is bound in `start()` itself, so a port in use fails there with a clear
    `RestServerError`, and port 0 picks a free port (see `port` and `url` after `start()`).
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.host = host
        self._port = port
        self._config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off"
        )
        # Idle keep-alive connections stay open longer than a migration's pauses between its
        # calls (uvicorn's default of 5 s raced with clients reusing them: a reset request)
        self._config.timeout_keep_alive = KEEP_ALIVE_S
        # Bounds stop(): open requests get this long before their connections are dropped.
        self._config.timeout_graceful_shutdown = 5
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. `http://127.0.0.1:8080`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP: asyncio then sets TCP_NODELAY on every connection (else each reply
        # waits ~40 ms for the client's delayed ACK)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(self._config.backlog)
        except OSError as exc:
            sock.close()
            raise RestServerError(
                f"REST API cannot listen on {self.host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        return sock

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except (Exception, SystemExit) as exc:  # uvicorn calls sys.exit() when startup fails
            self._failure = exc
            log.exception("REST server on %s stopped with an error", self.url)
        finally:
            sock.close()

    def start(self, timeout: float = 10.0) -> None:
        """Bind, start serving in a daemon thread, and return once requests are answered."""
        if self._thread is not None:
            raise RestServerError(f"REST server on {self.url} already started")
        sock = self._bind()
        self._port = int(sock.getsockname()[1])
        self._failure = None
        # A uvicorn.Server runs once: a fresh one lets a stopped RestServer start again.
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(
            target=self._run, args=(self._server, sock), name=f"rest-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._thread = None
                raise RestServerError(f"REST server on {self.url} failed to start: {self._failure}")
            if time.monotonic() > deadline:
                self.stop()
                raise RestServerError(f"REST server on {self.url} did not start in {timeout} s")
            time.sleep(0.01)
        log.info("REST API on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (open requests get up to 5 s) and join the thread; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            self._server.force_exit = True
            thread.join(timeout)
        if thread.is_alive():
            raise RestServerError(f"REST server on {self.url} did not stop in {2 * timeout} s")

    def __enter__(self) -> RestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
