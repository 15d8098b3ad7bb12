"""What the location service's REST tests share: the controller's app as the controller builds
it (the real facade over a runtime with every switch simulated, the location routers mounted),
a notifier that keeps what it is given, and a real HTTP subscriber."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from controller.facade import Northbound
from controller.location_api import location_routers
from controller.location_events import Notification
from controller.location_service import LocationService, Notifier
from controller.rest import create_app
from tests.unit.controller_helpers import SCENARIOS, SwitchedRuntime, make_state

CITY = SCENARIOS / "city.yaml"
ZONES = "/location/v2/queries/zones"
USERS = "/location/v2/queries/users"
ZONAL = "/location/v2/subscriptions/zonalTraffic"
TRACKING = "/location/v2/subscriptions/userTracking"
PLAYBACK = "/v1/mobility/playback"
CAR = "acr:10.0.0.100"


class Kept:
    """A notifier that keeps the notifications (nothing leaves the process)."""

    def __init__(self) -> None:
        self.notes: list[Notification] = []
        self.forgotten: list[str] = []

    def send(self, notes: Sequence[Notification]) -> None:
        self.notes.extend(notes)

    def forget(self, subscription_id: str) -> None:
        self.forgotten.append(subscription_id)

    def close(self) -> None:
        pass


class World:
    """The controller's REST app over `scenario`, its location service notifying `notifier`."""

    def __init__(self, notifier: Notifier, scenario: Path = CITY) -> None:
        self.fabric = SwitchedRuntime(make_state(scenario))
        self.nb = Northbound(self.fabric.rt)
        self.location = LocationService(self.fabric.state.scenario, notifier)
        self.app = create_app(self.nb, location_routers(self.location))
        self.http = TestClient(self.app)

    def close(self) -> None:
        self.location.close()
        self.fabric.close()


def zonal(zone: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "zonalTrafficSubscription": {
            "callbackReference": {"notifyURL": url},
            "zoneId": zone,
            **extra,
        }
    }


def tracking(address: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "userTrackingSubscription": {
            "callbackReference": {"notifyURL": url},
            "address": address,
            **extra,
        }
    }


class Subscriber:
    """A real HTTP server on 127.0.0.1 (a free port) that records every POST: its path and
    JSON body, in the order they arrived. `status` answers them (204 unless set; a callable
    is asked per request with how many came before)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status: int | Callable[[int], int] = 204
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with owner._lock:
                    n = len(owner.received)
                    owner.received.append((self.path, body))
                status = owner.status(n) if callable(owner.status) else owner.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> list[dict[str, Any]]:
        """The notifications POSTed to `path`, in order."""
        with self._lock:
            return [body["zonalPresenceNotification"] for p, body in self.received if p == path]

    def wait(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return
            time.sleep(0.01)
        raise AssertionError(f"{len(self.received)} POSTs arrived, not {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
