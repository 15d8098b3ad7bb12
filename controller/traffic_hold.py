"""Holds at run time: the flows (via the model), the held packets, their release and expiry.

Runs on the runtime's worker like every other change (callers go through `Runtime.call` or
`submit`), so the buffers need no lock of their own. A packet-in of a hold flow that arrives
after its hold was released (it was queued behind the release) is sent on at once.
"""

from __future__ import annotations

import logging
import threading
import time

from controller.api_models import HoldReleaseView, HoldView
from controller.hold import HeldPackets, held_host_id
from controller.ofmsg import PacketOut
from controller.runtime import Runtime

log = logging.getLogger(__name__)


class TrafficHolds:
    """The holds in force and their packets (worker thread only, see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.held: dict[str, HeldPackets] = {}
        self.since: dict[str, float] = {}
        self.tokens: dict[str, int] = {}
        self._next_token = 1

    def hold(self, instance: str, timeout_s: float) -> HoldView:
        """Send `instance`'s traffic to the controller until released (or `timeout_s`)."""
        plan = self.rt.state.hold(instance)
        self.held.setdefault(instance, HeldPackets())
        self.since.setdefault(instance, time.monotonic())
        self.rt.execute(plan)
        token = self.tokens[instance] = self._next_token
        self._next_token += 1
        timer = threading.Timer(timeout_s, self._expire, (instance, token))
        timer.daemon = True
        timer.start()
        log.info("holding %s's traffic (for at most %.0f s)", instance, timeout_s)
        return HoldView(instance=instance, held=True, timeout_s=timeout_s)

    def release(self, instance: str) -> HoldReleaseView:
        """Flows gone first (barriers), then the held packets out of the instance's port."""
        plan = self.rt.state.unhold(instance)
        self.rt.execute(plan)
        self.tokens.pop(instance, None)
        buf = self.held.pop(instance, None)
        since = self.since.pop(instance, None)
        packets = buf.drain() if buf is not None else []
        for frame in packets:
            self._deliver(instance, frame)
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

    def packet_in(self, flow_cookie: int, frame: bytes) -> None:
        """A packet a hold flow sent us: keep it, or deliver it if its hold is over."""
        host_id = held_host_id(flow_cookie)
        if host_id is None:
            return
        names = [n for n, i in self.rt.state.host_ids.items() if i == host_id]
        if not names:
            return
        buf = self.held.get(names[0])
        if buf is not None:
            buf.add(frame)
        else:
            self._deliver(names[0], frame)

    def _deliver(self, instance: str, frame: bytes) -> None:
        att = self.rt.state.hosts.get(instance)
        if att is None:
            return
        dp = self.rt.datapaths.get(self.rt.state.dpid(att.switch))
        if dp is not None:
            self.rt.send(dp, PacketOut(att.port, frame), att.switch)

    def _expire(self, instance: str, token: int) -> None:
        def job() -> None:
            if self.tokens.get(instance) == token:
                log.warning("hold of %s's traffic timed out: releasing it", instance)
                self.release(instance)

        self.rt.submit(job)
