"""The controller's REST server answers a small request in about a millisecond: its listening
socket is IPPROTO_TCP, so asyncio sets TCP_NODELAY on each connection. Without it every reply
waited ~44 ms for the client's delayed ACK (measured here: median 44.05 ms before, 1.1 after),
and a migration makes several such calls, some while the service is frozen."""

from __future__ import annotations

import socket
import statistics
import time

import requests
from fastapi import FastAPI

from controller.rest_server import RestServer


def test_small_requests_do_not_wait_for_a_delayed_ack() -> None:
    app = FastAPI()

    @app.post("/echo")
    def echo(body: dict[str, int]) -> dict[str, str]:
        return {"pad": "y" * 2000}  # a reply in more than one write

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = RestServer(app, "127.0.0.1", port)
    server.start()
    try:
        with requests.Session() as session:
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                session.post(f"http://127.0.0.1:{port}/echo", json={"a": 1}).raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
        assert statistics.median(times) < 15, times
    finally:
        server.stop()
