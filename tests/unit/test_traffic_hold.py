"""Holds at run time (controller.traffic_hold) over a recording stand-in for the runtime: the
order of flows and packet-outs, late packet-ins, limits, expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from controller.hold import MAX_HELD_PACKETS
from controller.ofmsg import PRIO_HOLD, CookieKind, FlowMod, PacketOut, cookie
from controller.plan import Plan
from controller.state import FabricState
from controller.traffic_hold import TrafficHolds
from tests.unit.controller_helpers import DEFAULT, make_state


class RecordingRuntime:
    """What TrafficHolds uses of `controller.runtime.Runtime`, recording what it is asked."""

    def __init__(self, state: FabricState) -> None:
        self.state = state
        self.datapaths = {state.dpid(sw.name): f"dp-{sw.name}" for sw in state.declared.switches}
        self.log: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def connected(self, dpid: int) -> Any | None:
        return self.datapaths.get(dpid)

    def execute(self, plan: Plan, *, wait: bool = True) -> None:
        with self.lock:
            self.log.append(("execute", plan))

    def send(self, dp: Any, msg: Any, sw: str) -> None:
        with self.lock:
            self.log.append(("send", (sw, msg)))

    def submit(self, job: Callable[[], Any]) -> None:
        job()

    def packet_outs(self) -> list[tuple[str, PacketOut]]:
        return [entry for kind, entry in self.log if kind == "send"]


def _holds() -> tuple[TrafficHolds, RecordingRuntime]:
    rt = RecordingRuntime(make_state(DEFAULT))
    return TrafficHolds(rt), rt  # type: ignore[arg-type]


def _hold_cookie(rt: RecordingRuntime, name: str) -> int:
    return cookie(CookieKind.HOLD, rt.state.host_ids[name])


def test_hold_installs_flows_then_release_removes_them_before_delivering_in_order() -> None:
    holds, rt = _holds()
    view = holds.hold("video", 30)
    assert view.held and view.timeout_s == 30
    (kind, plan), *_ = rt.log
    added = [m for stage in plan for msgs in stage.values() for m in msgs]
    assert kind == "execute" and added
    assert all(isinstance(m, FlowMod) and m.priority == PRIO_HOLD for m in added)

    for i in range(3):
        holds.packet_in(_hold_cookie(rt, "video"), f"frame-{i}".encode())
    assert rt.packet_outs() == []  # kept, not sent

    rt.state.relocate("video", "s2", 9)  # the migration moved it meanwhile
    released = holds.release("video")
    assert released.released_packets == 3 and released.dropped_packets == 0
    kinds = [kind for kind, _ in rt.log]
    assert kinds == ["execute", "execute", "send", "send", "send"]  # flows gone, then packets
    assert rt.packet_outs() == [("s2", PacketOut(9, f"frame-{i}".encode())) for i in range(3)]


def test_a_packet_in_after_the_release_is_delivered_at_once() -> None:
    holds, rt = _holds()
    holds.hold("video", 30)
    holds.release("video")
    holds.packet_in(_hold_cookie(rt, "video"), b"late")
    att = rt.state.hosts["video"]
    assert rt.packet_outs() == [(att.switch, PacketOut(att.port, b"late"))]


def test_other_cookies_and_unknown_hosts_are_ignored() -> None:
    holds, rt = _holds()
    holds.hold("video", 30)
    holds.packet_in(cookie(CookieKind.RESERVATION, 1), b"not ours")
    holds.packet_in(cookie(CookieKind.HOLD, 999), b"nobody")
    assert holds.release("video").released_packets == 0


def test_beyond_the_limit_packets_are_dropped_and_counted() -> None:
    holds, rt = _holds()
    holds.hold("video", 30)
    for _ in range(MAX_HELD_PACKETS + 5):
        holds.packet_in(_hold_cookie(rt, "video"), b"x")
    released = holds.release("video")
    assert (released.released_packets, released.dropped_packets) == (MAX_HELD_PACKETS, 5)


def test_release_without_a_hold_is_harmless() -> None:
    holds, rt = _holds()
    released = holds.release("video")
    assert released.released_packets == 0 and released.held_ms == 0.0


def test_a_hold_nobody_releases_ends_by_its_timeout() -> None:
    holds, rt = _holds()
    holds.hold("video", 0.05)
    holds.packet_in(_hold_cookie(rt, "video"), b"kept")
    deadline = time.monotonic() + 5
    while "video" in holds.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "video" not in holds.held and "video" not in rt.state.holds
    assert [msg.data for _, msg in rt.packet_outs()] == [b"kept"]


def test_an_old_timer_does_not_end_a_newer_hold() -> None:
    holds, rt = _holds()
    holds.hold("video", 0.05)
    holds.release("video")
    holds.hold("video", 30)  # a new hold before the first one's timer fires
    time.sleep(0.2)
    assert "video" in holds.held and "video" in rt.state.holds
