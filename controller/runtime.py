"""The controller's moving parts between the pure decisions and the switches.

One worker thread does everything that reads or changes the `FabricState` and sends its plans, one
job at a time: REST requests wait for their job, OpenFlow event handlers only enqueue theirs. The
os-ken event thread therefore never blocks, and can always deliver the barrier replies and errors
that the worker waits for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from controller.ofencode import encode
from controller.ofmsg import Barrier, FlowMod, Message
from controller.plan import Plan
from controller.state import FabricState
from controller.store import StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")
BARRIER_TIMEOUT_S = 5.0


class SwitchError(Exception):
    """A switch refused messages, or did not confirm them in time."""


@dataclass
class Execution:
    """What sending a plan took: messages, switches and the time to the last barrier reply."""

    flow_mods: int
    switches: list[str]
    elapsed_ms: float


class Runtime:
    """Datapaths, the worker, barrier bookkeeping, and persistence around one FabricState."""

    def __init__(self, state: FabricState, store: StateStore) -> None:
        self.state = state
        self.store = store
        self.datapaths: dict[int, Any] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mecmig-worker")
        self._lock = threading.Lock()  # guards the three dicts below (event thread vs worker)
        self._barriers: dict[tuple[int, int], threading.Event] = {}
        self._sent: dict[tuple[int, int], str] = {}
        self._errors: dict[tuple[int, int], str] = {}  # (dpid, xid) of a refused message -> why

    # ------------------------------------------------------------------ the worker

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Run `job` on the worker; log if it fails and nobody waits for it."""
        future = self._worker.submit(job)
        future.add_done_callback(_log_failure)
        return future

    def call(self, job: Callable[[], T], timeout: float = 30.0) -> T:
        """Run `job` on the worker and return its result (or raise its exception)."""
        return self._worker.submit(job).result(timeout)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def save(self) -> None:
        self.store.save(self.state.to_dict())

    # ------------------------------------------------------------------ sending

    def execute(self, plan: Plan, *, wait: bool = True) -> Execution:
        """Send a plan stage by stage; with `wait`, each stage is confirmed by barriers first.

        Switches that are not connected are skipped: they get their whole config on connect.
        Raises SwitchError if a switch refused a message or did not answer its barrier; the
        stages after the one that failed are not sent (make-before-break: the old paths stay
        when the new ones were refused).
        """
        start = time.monotonic()
        flow_mods = 0
        touched: list[str] = []
        skipped: set[str] = set()
        mine: set[tuple[int, int]] = set()  # (dpid, xid): an error counts only for its own call
        with self._lock:
            self._errors.clear()
        for stage in plan:
            pending: list[tuple[str, threading.Event]] = []
            for sw, msgs in stage.items():
                dp = self.datapaths.get(self.state.dpid(sw))
                if dp is None:
                    skipped.add(sw)
                    continue
                touched.append(sw)
                flow_mods += sum(isinstance(m, FlowMod) for m in msgs)
                for msg in msgs:
                    mine.add((dp.id, self.send(dp, msg, sw)))
                if wait:
                    pending.append((sw, self._barrier(dp, sw)))
            for sw, done in pending:
                if not done.wait(BARRIER_TIMEOUT_S):
                    raise SwitchError(
                        f"switch {sw} did not answer a barrier in {BARRIER_TIMEOUT_S}s"
                    )
            if wait:  # the barriers came back after any error the stage caused
                self._raise_refusals(mine)
        elapsed_ms = (time.monotonic() - start) * 1000
        if skipped:
            log.info(
                "not connected, skipped (they get their whole config on connect): %s",
                ", ".join(sorted(skipped)),
            )
        with self._lock:
            self._errors.clear()
        return Execution(flow_mods, sorted(set(touched)), elapsed_ms)

    def _raise_refusals(self, mine: set[tuple[int, int]]) -> None:
        with self._lock:
            errors = [self._errors.pop(key) for key in list(self._errors) if key in mine]
        if errors:
            raise SwitchError("; ".join(errors))

    def send(self, dp: Any, msg: Message, sw: str) -> int:
        """Send one message, remembering what it was so a switch error can name it; its xid."""
        wire = encode(dp, msg)
        dp.set_xid(wire)
        if not isinstance(msg, Barrier):
            with self._lock:
                self._sent[(dp.id, wire.xid)] = f"{sw}: {getattr(msg, 'describe', msg.__repr__)()}"
                if len(self._sent) > 10000:  # only recent messages can still be refused
                    self._sent.pop(next(iter(self._sent)))
        dp.send_msg(wire)
        return int(wire.xid)

    def _barrier(self, dp: Any, sw: str) -> threading.Event:
        wire = encode(dp, Barrier())
        dp.set_xid(wire)
        done = threading.Event()
        with self._lock:
            self._barriers[(dp.id, wire.xid)] = done
        dp.send_msg(wire)
        return done

    # ------------------------------------------------------------------ called by the event thread

    def barrier_reply(self, dpid: int, xid: int) -> None:
        with self._lock:
            done = self._barriers.pop((dpid, xid), None)
        if done is not None:
            done.set()

    def switch_error(self, dpid: int, xid: int, detail: str) -> None:
        with self._lock:
            what = self._sent.get((dpid, xid), f"dpid {dpid:#x} xid {xid}")
            self._errors[(dpid, xid)] = f"{what} refused: {detail}"
            if len(self._errors) > 10000:  # refusals of messages no call waits for
                self._errors.pop(next(iter(self._errors)))
        log.error("switch refused %s: %s", what, detail)


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        exc = future.exception()
        log.error("controller job failed: %s", exc, exc_info=exc)
