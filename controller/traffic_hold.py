"""Holds at run time: the flows (via the model), the held packets, their release and expiry.

A held packet is released where it was caught, through that switch's own tables (a packet-out
to OFPP_TABLE): it then takes the path it would have taken, so a chain's traffic caught before
its first function still goes through every function (sent straight to the instance's port it
would skip them: a firewall bypassed). A packet whose switch is unknown or gone goes out of the
instance's port, as before.

Runs on the runtime's worker like every other change (callers go through `Runtime.call` or
`submit`), so the buffers need no lock of their own. A packet-in of a hold flow that arrives
after its hold was released (it was queued behind the release) is sent on at once. Holding and
releasing are transactions like every change: a switch that refuses leaves the hold as it was
(flows and buffer), and the caller gets the SwitchError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from controller.api_models import HoldReleaseView, HoldView
from controller.hold import HeldPackets, held_host_id
from controller.ofmsg import TABLE_PORT, PacketOut
from controller.plan import Plan
from controller.runtime import Runtime, undo

log = logging.getLogger(__name__)


class TrafficHolds:
    """The holds in force and their packets (worker thread only, see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.held: dict[str, HeldPackets] = {}
        self.caught_at: dict[str, list[int | None]] = {}  # per held packet, its switch's dpid
        self.since: dict[str, float] = {}
        self.tokens: dict[str, int] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._next_token = 1

    def hold(self, instance: str, timeout_s: float) -> HoldView:
        """Send `instance`'s traffic to the controller until released (or `timeout_s`)."""
        self._change(lambda: self.rt.state.hold(instance))
        # packet-ins of the new flows queue behind this job on the worker: the buffer is ready
        self.held.setdefault(instance, HeldPackets())
        self.caught_at.setdefault(instance, [])
        self.since.setdefault(instance, time.monotonic())
        token = self.tokens[instance] = self._next_token
        self._next_token += 1
        timer = threading.Timer(timeout_s, self._expire, (instance, token))
        timer.daemon = True
        old = self._timers.pop(instance, None)
        if old is not None:
            old.cancel()
        self._timers[instance] = timer
        timer.start()
        log.info("holding %s's traffic (for at most %.0f s)", instance, timeout_s)
        return HoldView(instance=instance, held=True, timeout_s=timeout_s)

    def release(self, instance: str) -> HoldReleaseView:
        """Flows gone first (barriers), then the held packets out of the instance's port."""
        self._change(lambda: self.rt.state.unhold(instance))
        self.tokens.pop(instance, None)
        timer = self._timers.pop(instance, None)
        if timer is not None:
            timer.cancel()
        buf = self.held.pop(instance, None)
        since = self.since.pop(instance, None)
        where = self.caught_at.pop(instance, [])
        packets = buf.drain() if buf is not None else []
        for frame, dpid in zip(packets, where + [None] * (len(packets) - len(where)), strict=True):
            self._deliver(instance, frame, dpid)
        held_ms = (time.monotonic() - since) * 1000 if since is not None else 0.0
        if buf is not None:
            log.info(
                "released %s's traffic after %.0f ms: %d packet(s) delivered, %d dropped",
                instance,
                held_ms,
                len(packets),
                buf.dropped,
            )
        return HoldReleaseView(
            instance=instance,
            released_packets=len(packets),
            dropped_packets=buf.dropped if buf is not None else 0,
            held_ms=round(held_ms, 3),
        )

    def _change(self, plan_of: Callable[[], Plan]) -> None:
        """One transaction (see `Runtime.transaction`), not saved: holds do not survive a
        restart, and a save would cost time inside the migration's frozen window. A hold's
        flow goes to the instance's switch; the undo goes wherever the plan went."""
        before = self.rt.state.snapshot()
        try:
            self.rt.execute(plan_of())
        except BaseException as exc:
            undo(self.rt, before, exc)
            raise

    def packet_in(self, flow_cookie: int, frame: bytes, dpid: int | None = None) -> None:
        """A packet a hold flow sent us from switch `dpid`: keep it, or deliver it if its hold
        is over."""
        host_id = held_host_id(flow_cookie)
        if host_id is None:
            return
        names = [n for n, i in self.rt.state.host_ids.items() if i == host_id]
        if not names:
            return
        buf = self.held.get(names[0])
        if buf is not None:
            if buf.add(frame):
                self.caught_at.setdefault(names[0], []).append(dpid)
        else:
            self._deliver(names[0], frame, dpid)

    def _deliver(self, instance: str, frame: bytes, dpid: int | None = None) -> None:
        """Through the tables of the switch that caught it (see the module docstring), else
        out of the instance's port."""
        caught = self.rt.connected(dpid) if dpid is not None else None
        name = self.rt.state.switch_name(dpid) if dpid is not None else None
        if caught is not None and name is not None:
            self.rt.send(caught, PacketOut(TABLE_PORT, frame), name)
            return
        att = self.rt.state.hosts.get(instance)
        if att is None:
            return
        dp = self.rt.connected(self.rt.state.dpid(att.switch))
        if dp is not None:
            self.rt.send(dp, PacketOut(att.port, frame), att.switch)

    def _expire(self, instance: str, token: int) -> None:
        def job() -> None:
            if self.tokens.get(instance) == token:
                log.warning("hold of %s's traffic timed out: releasing it", instance)
                self.release(instance)

        try:
            self.rt.submit(job)
        except RuntimeError:  # the controller stopped meanwhile: nothing left to release
            log.debug("hold of %s expired after the controller stopped", instance)
