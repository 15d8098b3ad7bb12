"""The controller's moving parts between the pure decisions and the switches.

One worker thread does everything that reads or changes the `FabricState` and sends its plans, one
job at a time: REST requests wait for their job, OpenFlow event handlers only enqueue theirs. The
os-ken event thread therefore never blocks, and can always deliver the barrier replies and errors
that the worker waits for.

A change a caller asked for is a transaction (`Runtime.transaction`): the model is committed only
once the switches have confirmed its plan. When a switch refuses, or does not confirm, the model
goes back to where it was and the switches that were sent anything get the difference reversed;
the caller gets the `SwitchError`, and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from controller.flowtable import Entry
from controller.ofencode import bundle_add, bundle_control, encode
from controller.ofmsg import Barrier, FlowMod, Message
from controller.plan import Plan
from controller.saved_text import SavedText
from controller.state import FabricState, Snapshot
from controller.store import StateStore
from controller.switchread import (
    decode_flows,
    decode_meters,
    flow_stats_request,
    meter_config_request,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
BARRIER_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0


class SwitchError(Exception):
    """A switch refused messages, or did not confirm them in time.

    `switches` names them. Raised out of a transaction, `undone` says whether the switches were
    taken back to the last confirmed state, and `unconfirmed` names the switches that did not
    confirm that either (they get their whole config when they reconnect).
    """

    def __init__(self, message: str, switches: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.switches = switches
        self.undone = False
        self.unconfirmed: tuple[str, ...] = ()


@dataclass
class Transaction:
    """One change: the model as it was before it, and the switches its plans were sent to."""

    runtime: Runtime
    before: Snapshot
    sent: set[str] = field(default_factory=set)

    def execute(self, plan: Plan) -> Execution:
        """Send `plan` (confirmed by barriers), noting which switches it reached."""
        return self.runtime.execute(plan, sent=self.sent)


@dataclass
class Execution:
    """What sending a plan took: messages, switches and the time to the last barrier reply."""

    flow_mods: int
    switches: list[str]
    elapsed_ms: float
    # had changes, connected once and not now: they get them when they are back
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Reply:
    """The answer to one multipart request, as its parts arrive."""

    done: threading.Event = field(default_factory=threading.Event)
    bodies: list[Any] = field(default_factory=list)
    error: str | None = None


class Runtime:
    """Datapaths, the worker, barrier bookkeeping, and persistence around one FabricState.

    `datapaths` holds the newest connection of every switch that connected; `alive` says
    whether a connection still stands (the os-ken app gives it; by default every one does):
    plans skip a switch whose connection is gone, and health counts only the switches whose
    live connection was brought in line with the model (`in_sync`). A connection found dead is
    forgotten there and then and handed to `ended` (the app ends it in os-ken), so that what
    health reports as gone is gone for os-ken too, and a switch that comes back at once is a
    new switch, not a second connection.
    """

    def __init__(
        self,
        state: FabricState,
        store: StateStore,
        alive: Callable[[Any], bool] | None = None,
        ended: Callable[[Any], None] | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.datapaths: dict[int, Any] = {}
        self.seen: set[int] = set()  # switches that connected at least once (and may be gone)
        self.alive: Callable[[Any], bool] = alive or (lambda _dp: True)
        self.ended: Callable[[Any], None] = ended or (lambda _dp: None)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mecmig-worker")
        self._lock = threading.Lock()  # guards the dicts below and datapaths' changes
        self._xids = threading.Lock()  # one xid per message, whichever thread sends it
        self._barriers: dict[tuple[int, int], threading.Event] = {}
        self._replies: dict[tuple[int, int], _Reply] = {}
        self._synced: dict[int, Any] = {}  # dpid -> the connection that got the model
        self._sent: dict[tuple[int, int], tuple[str, Message | str]] = {}
        self._bundle_ids = itertools.count(1)
        self._errors: dict[tuple[int, int], str] = {}  # (dpid, xid) of a refused message -> why
        self._saved = SavedText()

    # ------------------------------------------------------------------ connections

    def register(self, dp: Any) -> Any:
        """`dp` is the switch's connection from now on; the one it replaces, if any."""
        with self._lock:
            old = self.datapaths.get(dp.id)
            self.datapaths[dp.id] = dp
            self.seen.add(dp.id)
        return old if old is not dp else None

    def forget(self, dp: Any) -> bool:
        """`dp`'s connection is gone: forget it, unless a newer one replaced it (False)."""
        dpid = dp.id
        with self._lock:
            if self.datapaths.get(dpid) is not dp:
                return False
            del self.datapaths[dpid]
            return True

    def connected(self, dpid: int) -> Any | None:
        """The switch's connection if it still stands, else None (a dead one is forgotten and
        handed to `ended`, once)."""
        dp = self.datapaths.get(dpid)
        if dp is None:
            return None
        if self.alive(dp):
            return dp
        if self.forget(dp):
            self.ended(dp)
        return None

    def in_sync(self, dpid: int) -> bool:
        """Whether the switch is connected and its connection was brought in line with the
        model (`sync_switch`; what health counts as a connected switch)."""
        dp = self.connected(dpid)
        return dp is not None and self._synced.get(dpid) is dp

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
        """The state to disk, as `state.to_dict()` (unchanged records are not encoded again)."""
        if self.store.path is not None:
            self.store.save_text(self._saved.text(self.state))

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self, *, save: bool = True) -> Iterator[Transaction]:
        """Change the model and send its plans inside this block (on the worker).

        Leaving it normally commits: the change is saved (`save`). Leaving it by an exception
        (a switch refused: SwitchError; or anything else, e.g. a model error after it changed)
        takes the model back to where it was, sends the reversed difference to the switches
        that got anything, and re-raises.

        Why a snapshot of the model rather than a plan computed first and applied after: every
        decision (admission, rerouting, desired flows) reads the model as the change leaves it,
        so the change has to be made to be planned; the records are immutable, so a snapshot
        is a few dict copies, and the reversed difference is right however much of the plan the
        switches took before one refused.
        """
        tx = Transaction(self, self.state.snapshot())
        try:
            yield tx
        except BaseException as exc:
            undo(self, tx.before, exc, tx.sent)
            raise
        if save:
            self.save()

    # ------------------------------------------------------------------ sending

    def execute(self, plan: Plan, *, wait: bool = True, sent: set[str] | None = None) -> Execution:
        """Send a plan stage by stage; with `wait`, each stage is confirmed by barriers first.

        Switches that are not connected are skipped: they get their whole config on connect.
        Raises SwitchError if a switch refused a message or did not answer its barrier; the
        stages after the one that failed are not sent (make-before-break: the old paths stay
        when the new ones were refused). Every switch that is sent anything is added to `sent`
        before its first message goes out (what a transaction must undo).
        """
        start = time.monotonic()
        flow_mods = 0
        touched: list[str] = []
        skipped: set[str] = set()
        gone: set[str] = set()
        mine: set[tuple[int, int]] = set()  # (dpid, xid): an error counts only for its own call
        encoded: Encoded = {}
        with self._lock:
            self._errors.clear()
        for stage in plan:
            pending: list[tuple[str, threading.Event]] = []
            for sw, msgs in stage.items():
                dp = self.connected(self.state.dpid(sw))
                if dp is None:
                    skipped.add(sw)
                    if self.state.dpid(sw) in self.seen:  # it was here: it is missing now
                        gone.add(sw)
                    continue
                touched.append(sw)
                if sent is not None:
                    sent.add(sw)
                flow_mods += sum(isinstance(m, FlowMod) for m in msgs)
                for xid in self._send_switch(dp, msgs, sw, encoded):
                    mine.add((dp.id, xid))
                if wait:
                    pending.append((sw, self._barrier(dp, sw, encoded)))
            for sw, done in pending:
                if not done.wait(BARRIER_TIMEOUT_S):
                    raise SwitchError(
                        f"switch {sw} did not answer a barrier in {BARRIER_TIMEOUT_S}s", (sw,)
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
        return Execution(flow_mods, sorted(set(touched)), elapsed_ms, sorted(gone))

    def _raise_refusals(self, mine: set[tuple[int, int]]) -> None:
        with self._lock:
            keys = [key for key in list(self._errors) if key in mine]
            errors = [self._errors.pop(key) for key in keys]
        if errors:
            names = {self.state.switch_name(dpid) or f"dpid {dpid:#x}" for dpid, _ in keys}
            raise SwitchError("; ".join(errors), tuple(sorted(names)))

    def send(self, dp: Any, msg: Message, sw: str, encoded: Encoded | None = None) -> int:
        """Send one message, remembering what it was so a switch error can name it; its xid.

        `encoded`: os-ken messages made already in this plan, by message: the same message
        (a hold's flow, a host entry's delete) goes to many switches, and making an os-ken
        message costs more than copying one (`send_msg` serialises the copy afresh)."""
        wire = _encode(dp, msg, encoded)
        self._stamp(dp, wire)
        if not isinstance(msg, Barrier):
            with self._lock:
                self._sent[(dp.id, wire.xid)] = (sw, msg)
                if len(self._sent) > 10000:  # only recent messages can still be refused
                    self._sent.pop(next(iter(self._sent)))
        dp.send_msg(wire)
        return int(wire.xid)

    def _send_switch(
        self, dp: Any, msgs: list[Message], sw: str, encoded: Encoded | None = None
    ) -> list[int]:
        """One switch's messages of a stage; their xids. When its flow mods stand together
        (a make-before-break ordered difference: meter adds, flow adds, flow deletes, meter
        deletes, the rest), two or more go in one atomic, ordered bundle: a packet meets the
        switch's table as it was before or after them, never half-changed. What comes before
        and after them is sent before and after the bundle's commit."""
        at = [i for i, m in enumerate(msgs) if isinstance(m, FlowMod)]
        if len(at) < 2 or at[-1] - at[0] + 1 != len(at):
            return [self.send(dp, m, sw, encoded) for m in msgs]
        first, last = at[0], at[-1] + 1
        xids = [self.send(dp, m, sw, encoded) for m in msgs[:first]]
        bundle = next(self._bundle_ids) & 0xFFFFFFFF
        what = f"bundle {bundle} of {len(at)} flow mods"
        xids.append(self._send_wire(dp, bundle_control(dp, bundle, "OPEN"), sw, f"{what}: open"))
        for m in msgs[first:last]:
            inner = _encode(dp, m, encoded)
            xids.append(self._send_wire(dp, bundle_add(dp, bundle, inner), sw, m))
        commit = bundle_control(dp, bundle, "COMMIT")
        xids.append(self._send_wire(dp, commit, sw, f"{what}: commit"))
        xids += [self.send(dp, m, sw, encoded) for m in msgs[last:]]
        return xids

    def _stamp(self, dp: Any, wire: Any) -> None:
        """Give `wire` the switch's next xid. Under a lock: the worker sends, and so does the
        event thread (an ARP answer, `MecController._arp_now`); two messages with one xid
        would confuse whose error or barrier reply it is."""
        with self._xids:
            dp.set_xid(wire)

    def _send_wire(self, dp: Any, wire: Any, sw: str, what: Message | str) -> int:
        """Send an os-ken message made here, remembering `what` it carries for errors."""
        self._stamp(dp, wire)
        with self._lock:
            self._sent[(dp.id, wire.xid)] = (sw, what)
            if len(self._sent) > 10000:
                self._sent.pop(next(iter(self._sent)))
        dp.send_msg(wire)
        return int(wire.xid)

    def _barrier(self, dp: Any, sw: str, encoded: Encoded | None = None) -> threading.Event:
        wire = _encode(dp, BARRIER, encoded)
        self._stamp(dp, wire)
        done = threading.Event()
        with self._lock:
            self._barriers[(dp.id, wire.xid)] = done
        dp.send_msg(wire)
        return done

    # ------------------------------------------------------------------ re-sync

    def sync_switch(self, sw: str, dp: Any) -> Execution | None:
        """On the worker, for a switch that just connected as `dp`: read what it holds and send
        what makes it hold exactly the model (`FabricState.resync`; nothing if it already
        does), confirmed by a barrier. A switch that cannot be read gets all of mecmig's flows
        replaced (`switch_config`). None if `dp` is no longer the switch's live connection (a
        newer one gets its own sync). Raises SwitchError if the switch refuses or is silent.
        """
        dpid = dp.id
        if self.connected(dpid) is not dp:
            log.info("switch %s: connection replaced or gone before its sync", sw)
            return None
        try:
            flows, unreadable, meters = self.read_switch(dp, sw)
        except SwitchError as exc:
            log.warning("cannot read switch %s (%s): replacing all of its mecmig flows", sw, exc)
            msgs = self.state.switch_config(sw)
        else:
            msgs = self.state.resync(sw, flows, meters, unreadable)
            log.info(
                "switch %s held %d flow(s) and %d meter(s); %d message(s) bring it in line",
                sw,
                len(flows) + len(unreadable),
                len(meters),
                len(msgs),
            )
        done = self.execute([{sw: msgs}])
        with self._lock:
            self._synced[dpid] = dp
        return done

    def read_switch(
        self, dp: Any, sw: str
    ) -> tuple[list[Entry], list[Entry], dict[int, tuple[int, int]]]:
        """What `dp` holds: its flows (readable, and the ones that are not) and its meters."""
        flows, unreadable = decode_flows(self.request(dp, flow_stats_request(dp), sw, "flow stats"))
        meters = decode_meters(self.request(dp, meter_config_request(dp), sw, "meter config"))
        return flows, unreadable, meters

    def request(self, dp: Any, wire: Any, sw: str, what: str) -> list[Any]:
        """Send a multipart request and wait for every part of its reply: their bodies.
        SwitchError if the switch refuses it or does not answer in READ_TIMEOUT_S."""
        self._stamp(dp, wire)
        key = (dp.id, wire.xid)
        reply = _Reply()
        with self._lock:
            self._replies[key] = reply
        try:
            dp.send_msg(wire)
            if not reply.done.wait(READ_TIMEOUT_S):
                raise SwitchError(f"switch {sw} did not answer a {what} request", (sw,))
        finally:
            with self._lock:
                self._replies.pop(key, None)
        if reply.error is not None:
            raise SwitchError(f"switch {sw} refused a {what} request: {reply.error}", (sw,))
        return reply.bodies

    # ------------------------------------------------------------------ called by the event thread

    def multipart_reply(self, dpid: int, xid: int, body: list[Any], more: bool) -> None:
        """One part of the reply to `request`'s (dpid, xid); `more`: others follow."""
        with self._lock:
            reply = self._replies.get((dpid, xid))
        if reply is None:
            return
        reply.bodies.extend(body)
        if not more:
            reply.done.set()

    def barrier_reply(self, dpid: int, xid: int) -> None:
        with self._lock:
            done = self._barriers.pop((dpid, xid), None)
        if done is not None:
            done.set()

    def switch_error(self, dpid: int, xid: int, detail: str) -> None:
        with self._lock:
            reply = self._replies.get((dpid, xid))
            if reply is not None:  # a request refused: its caller says so
                reply.error = detail
                reply.done.set()
                return
            sent = self._sent.get((dpid, xid))
            what = f"dpid {dpid:#x} xid {xid}" if sent is None else _describe(*sent)
            self._errors[(dpid, xid)] = f"{what} refused: {detail}"
            if len(self._errors) > 10000:  # refusals of messages no call waits for
                self._errors.pop(next(iter(self._errors)))
        log.error("switch refused %s: %s", what, detail)


class Executes(Protocol):
    """What undoing needs of a runtime: the model, and sending a plan confirmed by barriers."""

    state: FabricState

    def execute(self, plan: Plan) -> Any: ...


def undo(
    rt: Executes, before: Snapshot, cause: BaseException, sent: Collection[str] | None = None
) -> None:
    """Take the model back to `before` and the switches that were `sent` anything (default:
    all that the change concerned) back to what `before` had installed; notes on `cause` (a
    SwitchError) whether that was confirmed. A switch that refuses the undo too gets its whole
    config (as on reconnect); one that refuses that as well is named in `cause.unconfirmed`."""
    plan = rt.state.roll_back(before, sent)
    failure = cause if isinstance(cause, SwitchError) else None
    if not plan:
        if failure is not None:
            failure.undone = True
        return
    switches = sorted({sw for stage in plan for sw in stage})
    try:
        rt.execute(plan)
    except Exception as exc:  # noqa: BLE001 - the caller's error is the one to raise
        log.error("could not undo a refused change on %s: %s", ", ".join(switches), exc)
        unconfirmed = _resync(rt, switches)
        if failure is not None:
            failure.undone = not unconfirmed
            failure.unconfirmed = tuple(unconfirmed)
        return
    log.warning("undid a refused change on %s (%s)", ", ".join(switches), cause)
    if failure is not None:
        failure.undone = True


def _resync(rt: Executes, switches: list[str]) -> list[str]:
    """Send `switches` their whole config (what a reconnecting switch gets); the ones that do
    not confirm it either, which get it again when they reconnect."""
    failed = []
    for sw in switches:
        try:
            rt.execute([{sw: rt.state.switch_config(sw)}])
        except Exception as exc:  # noqa: BLE001 - reported, and resynced on reconnect
            log.error("switch %s did not take its whole config either: %s", sw, exc)
            failed.append(sw)
    return failed


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        exc = future.exception()
        log.error("controller job failed: %s", exc, exc_info=exc)


Encoded = dict[int, tuple[Message, Any]]  # id(message) -> (it, its os-ken message)
BARRIER = Barrier()


def _encode(dp: Any, msg: Message, encoded: Encoded | None) -> Any:
    """`encode(dp, msg)`, or a copy of the os-ken message made for `msg` already, for `dp`."""
    if encoded is None:
        return encode(dp, msg)
    made = encoded.get(id(msg))
    if made is None or made[0] is not msg:
        wire = encode(dp, msg)
        encoded[id(msg)] = (msg, wire)
        return wire
    wire = copy.copy(made[1])
    wire.datapath = dp
    wire.xid = None
    return wire


def _describe(sw: str, msg: Message | str) -> str:
    if isinstance(msg, str):
        return f"{sw}: {msg}"
    return f"{sw}: {getattr(msg, 'describe', msg.__repr__)()}"
