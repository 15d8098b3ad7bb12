"""Delivering the location service's notifications: a POST of each to its subscription's
`callbackReference.notifyURL`.

Each subscription has a queue and a worker thread of its own, so its notifications arrive in
the order they were made and a slow or dead subscriber delays no one else. `send` never blocks:
a full queue (MAX_QUEUED) drops the notification, logged with the subscription's id. A POST
gets TIMEOUT_S; one that fails (no answer, or a status other than 2xx) is tried again up to
ATTEMPTS times in all, RETRY_S apart, then dropped and logged. Each delivery is logged at debug
only, so that the subscribers' traffic stays out of the operator's terminal.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import requests

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
ATTEMPTS = 3
RETRY_S = 0.2
MAX_QUEUED = 1024

# POST `body` as JSON to `url` within `timeout` seconds: the status (raises on no answer)
Poster = Callable[[requests.Session, str, dict[str, object], float], int]


class Notification(Protocol):
    """What is sent: `controller.location_events.Notification`, or another service's (the
    application-mobility service's, orchestration.ams) with the same fields."""

    @property
    def subscription_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def notify_url(self) -> str: ...
    @property
    def body(self) -> dict[str, object]: ...


def _post(session: requests.Session, url: str, body: dict[str, object], timeout: float) -> int:
    response = session.post(url, json=body, timeout=timeout, allow_redirects=False)
    response.close()
    return response.status_code


class _Worker:
    """One subscription's queue and the thread that empties it, in order."""

    def __init__(self, sid: str, sender: WebhookSender) -> None:
        self.sid = sid
        self.sender = sender
        self.queue: queue.Queue[Notification | None] = queue.Queue(MAX_QUEUED)
        name = f"{sender.service}-notify-{sid}"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with requests.Session() as session:
            while (note := self.queue.get()) is not None:
                self.sender.deliver(session, note)

    def stop(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:  # it ends once what it holds is sent (or dropped)
            self.queue.put(None)


class WebhookSender:
    """Sends notifications (`controller.location_events.Notification`) as JSON POSTs;
    `service` names them in its threads and its log ("location" unless told)."""

    def __init__(
        self,
        timeout_s: float = TIMEOUT_S,
        attempts: int = ATTEMPTS,
        retry_s: float = RETRY_S,
        post: Poster = _post,
        service: str = "location",
    ) -> None:
        self.timeout_s, self.attempts, self.retry_s, self.post = timeout_s, attempts, retry_s, post
        self.service = service
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.delivered = 0
        self.dropped = 0

    def send(self, notes: Sequence[Notification]) -> None:
        """Queue each for its subscription's worker; never blocks."""
        for note in notes:
            with self._lock:
                if self._closed.is_set():
                    return
                worker = self._workers.get(note.subscription_id)
                if worker is None:
                    worker = self._workers[note.subscription_id] = _Worker(
                        note.subscription_id, self
                    )
            try:
                worker.queue.put_nowait(note)
            except queue.Full:
                self._drop(note, f"{MAX_QUEUED} notifications wait already")

    def forget(self, subscription_id: str) -> None:
        """The subscription is gone: its worker ends once what it holds is sent."""
        with self._lock:
            worker = self._workers.pop(subscription_id, None)
        if worker is not None:
            worker.stop()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking notifications; give the workers `timeout_s` in all to finish."""
        self._closed.set()
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.thread.join(timeout_s / max(1, len(workers)))

    def deliver(self, session: requests.Session, note: Notification) -> bool:
        """POST one notification, trying again on failure; whether it got a 2xx."""
        why = ""
        for attempt in range(1, self.attempts + 1):
            try:
                status = self.post(session, note.notify_url, note.body, self.timeout_s)
            except requests.RequestException as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    log.debug("subscription %s: notified %s (%d)", note.subscription_id,
                              note.notify_url, status)  # fmt: skip
                    with self._lock:
                        self.delivered += 1
                    return True
                why = f"HTTP {status}"
            log.debug("subscription %s: attempt %d to %s failed: %s", note.subscription_id,
                      attempt, note.notify_url, why)  # fmt: skip
            if attempt < self.attempts and self._closed.wait(self.retry_s * attempt):
                break
        self._drop(note, f"{self.attempts} attempts failed, the last: {why}")
        return False

    def _drop(self, note: Notification, why: str) -> None:
        with self._lock:
            self.dropped += 1
        log.warning(
            "%s notification for %s subscription %s to %s dropped: %s",
            self.service,
            note.kind,
            note.subscription_id,
            note.notify_url,
            why,
        )
