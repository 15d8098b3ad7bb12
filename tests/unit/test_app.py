"""controller.app: the os-ken application, without a switch connection.

`MecController` is built from the environment as os-ken would build it, its handlers registered
by os-ken's own `register_instance`, and events dispatched through os-ken's `get_handlers` (so the
phases each handler declared are honoured). What switches say is made as bytes and parsed by
os-ken; what the app sends is serialised by os-ken and parsed back (`SwitchStub`). Switch replies
reach the app on an event thread of their own, as in a live controller.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import APIRouter
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    register_instance,
)
from os_ken.lib.packet import arp, ethernet, ipv4, packet, tcp
from os_ken.topology import event as topo_event

from controller.api_models import HoldRequest, ReservationRequest
from controller.app import MecController, connection_alive, end_connection, guarded
from controller.extensions import ExtensionError
from controller.facade import BadGateway, Northbound
from controller.flowtable import SwitchTable
from controller.ofmsg import (
    PRIO_HOLD,
    TABLE_PORT,
    Barrier,
    CookieKind,
    FlowMod,
    MeterMod,
    PacketOut,
    cookie,
)
from controller.plan import Plan
from controller.state import FabricState
from tests.unit.controller_helpers import (
    DEFAULT,
    OFP,
    READS,
    EventThread,
    SimulatedSwitch,
    SwitchStub,
    arp_request_frame,
    canonical,
    packet_in,
    port_status,
    switch_features,
)
from topology.model import Attachment
from topology.scenario import Scenario

ARP_COOKIE = cookie(CookieKind.BASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The settings a process gives the app; returns the state file."""
    state_file = tmp_path / "state.json"
    monkeypatch.setenv("MECMIG_SCENARIO", str(DEFAULT))
    monkeypatch.setenv("MECMIG_REST_HOST", "127.0.0.1")
    monkeypatch.setenv("MECMIG_REST_PORT", str(free_port()))
    monkeypatch.setenv("MECMIG_STATE_FILE", str(state_file))
    monkeypatch.delenv("MECMIG_EXTENSIONS", raising=False)
    return state_file


class Controller:
    """A MecController as os-ken runs it, and the switches that talk to it."""

    def __init__(self) -> None:
        self.app = MecController()
        register_instance(self.app)  # what AppManager does with a new app
        self.events = EventThread(self._from_switch)

    def _from_switch(self, msg: Any) -> None:
        self.dispatch(ofp_event.ofp_msg_to_ev(msg))

    @property
    def state(self) -> FabricState:
        return self.app.runtime.state

    def dispatch(self, ev: Any, phase: str = MAIN_DISPATCHER) -> int:
        """Hand `ev` to every handler os-ken would call in `phase`; how many there were."""
        handlers = list(self.app.get_handlers(ev, phase))
        for handler in handlers:
            handler(ev)
        return len(handlers)

    def connect(self, name: str, **kwargs: Any) -> SwitchStub:
        dp = SwitchStub(self.state.dpid(name), self.events, **kwargs)
        features = ofp_event.EventOFPSwitchFeatures(switch_features(dp))
        assert self.dispatch(features, CONFIG_DISPATCHER) == 1
        self.settle()
        return dp

    def connect_all(self) -> dict[str, SwitchStub]:
        return {sw.name: self.connect(sw.name) for sw in self.state.declared.switches}

    def settle(self) -> None:
        """Everything queued so far handled: the worker's jobs and the switches' answers."""
        for _ in range(2):
            self.events.drain()
            self.app.runtime.call(lambda: None)

    def close(self) -> None:
        self.app.runtime.shutdown()
        self.events.close()


@pytest.fixture
def ctl(env: Path) -> Iterator[Controller]:
    c = Controller()
    yield c
    c.close()


def arp_from(host: Attachment, target_ip: str | None) -> bytes:
    """`host` asks who has `target_ip`."""
    assert host.mac and host.ip and target_ip
    return arp_request_frame(host.mac, host.ip, target_ip)


def _packet_outs(dp: SwitchStub) -> list[PacketOut]:
    return [m for m in dp.messages() if isinstance(m, PacketOut)]


# ------------------------------------------------------------------------------ registration


def test_handlers_are_registered_with_os_ken_for_their_events_and_phases(ctl: Controller) -> None:
    expected = {
        ofp_event.EventOFPSwitchFeatures: [CONFIG_DISPATCHER],
        ofp_event.EventOFPStateChange: [MAIN_DISPATCHER, DEAD_DISPATCHER],
        ofp_event.EventOFPBarrierReply: [CONFIG_DISPATCHER, MAIN_DISPATCHER],
        ofp_event.EventOFPErrorMsg: [CONFIG_DISPATCHER, MAIN_DISPATCHER],
        ofp_event.EventOFPPortStatus: [MAIN_DISPATCHER],
        ofp_event.EventOFPPacketIn: [MAIN_DISPATCHER],
        ofp_event.EventOFPFlowStatsReply: [CONFIG_DISPATCHER, MAIN_DISPATCHER],
        ofp_event.EventOFPMeterConfigStatsReply: [CONFIG_DISPATCHER, MAIN_DISPATCHER],
        topo_event.EventLinkAdd: [],
        topo_event.EventLinkDelete: [],
    }
    handlers = ctl.app.event_handlers
    assert set(handlers) == set(expected)
    for ev_cls, phases in expected.items():
        (handler,) = handlers[ev_cls]
        assert handler.callers[ev_cls].dispatchers == phases, ev_cls.__name__
        assert handler.__self__ is ctl.app


# ------------------------------------------------------------------------------ switches


def test_a_connecting_switch_is_read_then_gets_what_it_lacks_confirmed(ctl: Controller) -> None:
    ctl.state.reserve("mec1", "mec2", 20_000_000)
    dp = ctl.connect("s1")  # a stub: it holds nothing
    assert ctl.app.runtime.datapaths[0x1] is dp
    assert dp.reads() == ["OFPFlowStatsRequest", "OFPMeterConfigStatsRequest"]
    expected = [canonical(m) for m in ctl.state.resync("s1", [], {})]
    assert dp.messages() == [*expected, Barrier()]
    assert {m.command for m in expected if isinstance(m, FlowMod | MeterMod)} == {"add"}
    assert [m for m in expected if isinstance(m, MeterMod)] == list(
        ctl.state.desired()["s1"].meters.values()
    )


def test_a_reconnecting_switch_ends_up_holding_exactly_the_model(ctl: Controller) -> None:
    kept, _ = ctl.state.reserve("mec1", "mec2", 20_000_000, dst_port=5202)
    gone, _ = ctl.state.reserve("mec1", "mec2", 10_000_000, dst_port=5203)
    ctl.state.hold("video")
    sw = SimulatedSwitch(0x1, "s1", ctl.events)
    sw.table.apply(ctl.state.switch_config("s1"))  # what it held when it went away
    ctl.state.release(gone.id)  # while it was away
    ctl.state.unhold("video")
    ctl.dispatch(ofp_event.EventOFPSwitchFeatures(switch_features(sw)), CONFIG_DISPATCHER)
    ctl.settle()
    fresh = SwitchTable("s1")
    fresh.apply(ctl.state.switch_config("s1"))
    assert sw.table.snapshot() == fresh.snapshot(), sw.table.dump()
    assert set(sw.table.meters) == {kept.id}
    assert not sw.refused
    # connecting again changes nothing: it is read, and sent nothing but a barrier
    sw.clear()
    ctl.dispatch(ofp_event.EventOFPSwitchFeatures(switch_features(sw)), CONFIG_DISPATCHER)
    ctl.settle()
    assert sw.messages() == [Barrier()]
    assert sw.table.snapshot() == fresh.snapshot()


def test_a_switch_that_cannot_be_read_gets_all_of_mecmigs_flows_replaced(
    ctl: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("controller.runtime.READ_TIMEOUT_S", 0.05)
    dp = SwitchStub(0x1, ctl.events)
    monkeypatch.setattr(dp, "_answer_read", lambda parsed: isinstance(parsed, READS))  # silent
    ctl.dispatch(ofp_event.EventOFPSwitchFeatures(switch_features(dp)), CONFIG_DISPATCHER)
    ctl.settle()
    expected = [canonical(m) for m in ctl.state.switch_config("s1")]
    assert dp.messages() == [*expected, Barrier()]


def test_a_switch_not_in_the_scenario_is_left_alone(
    ctl: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = SwitchStub(0x999, ctl.events)
    with caplog.at_level(logging.WARNING, logger="mecmig.controller"):
        ctl.dispatch(ofp_event.EventOFPSwitchFeatures(switch_features(stranger)), CONFIG_DISPATCHER)
        ctl.settle()
    assert stranger.wire == []
    assert 0x999 not in ctl.app.runtime.datapaths
    assert "dpid=0x999 is not in the scenario" in caplog.text


def _dead(dp: SwitchStub) -> Any:
    ev = ofp_event.EventOFPStateChange(dp)
    ev.state = DEAD_DISPATCHER  # as os-ken sets it
    return ev


def test_a_disconnected_switch_is_forgotten_but_not_its_newer_connection(ctl: Controller) -> None:
    old = ctl.connect("s1")
    new = ctl.connect("s1")  # reconnected before os-ken noticed the old connection die
    assert ctl.dispatch(_dead(old), DEAD_DISPATCHER) == 1
    assert ctl.app.runtime.datapaths[0x1] is new
    ctl.dispatch(_dead(new), DEAD_DISPATCHER)
    assert 0x1 not in ctl.app.runtime.datapaths


class Closable(SwitchStub):
    """A stub that records being ended as os-ken's Datapath is (close, then a send to wake)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended: list[str] = []

    def close(self) -> None:
        self.ended.append("close")

    def send(self, buf: bytes, close_socket: bool = False) -> bool:
        self.ended.append(f"send {buf!r} close_socket={close_socket}")
        return True


def test_a_reconnecting_switch_ends_its_previous_connection(ctl: Controller) -> None:
    old = Closable(0x1, ctl.events)
    ctl.dispatch(ofp_event.EventOFPSwitchFeatures(switch_features(old)), CONFIG_DISPATCHER)
    new = ctl.connect("s1")
    assert old.ended == ["close", "send b'' close_socket=True"]
    assert ctl.app.runtime.datapaths[0x1] is new


@pytest.fixture
def os_ken_connection() -> Iterator[tuple[Any, socket.socket, threading.Thread]]:
    """A real os-ken Datapath serving one end of a loopback TCP connection; the other end."""
    import os_ken.base.app_manager  # noqa: F401 - os-ken's own import order
    from os_ken.controller.controller import Datapath

    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        conn, addr = server.accept()
    dp = Datapath(conn, addr)
    dp.id = 0x1
    serving = threading.Thread(target=dp.serve, daemon=True)
    serving.start()
    assert peer.recv(8)[1] == OFP.OFPT_HELLO
    yield dp, peer, serving
    peer.close()
    end_connection(dp)
    serving.join(2)


def test_os_ken_never_notices_a_closed_connection_and_the_app_ends_it(
    ctl: Controller,
    os_ken_connection: tuple[Any, socket.socket, threading.Thread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dp, peer, serving = os_ken_connection
    rt = ctl.app.runtime
    assert rt.register(dp) is None
    assert connection_alive(dp)
    assert ctl.app.northbound.health().switches_connected == 0  # connected, not yet in sync
    monkeypatch.setattr(rt, "read_switch", lambda dp, sw: ([], [], {}))
    monkeypatch.setattr(rt, "execute", lambda plan: None)  # this peer answers nothing
    rt.call(lambda: rt.sync_switch("s1", dp))
    assert ctl.app.northbound.health().switches_connected == 1
    peer.close()  # the switch went away (its bridge deleted, or its controller changed)
    deadline = time.monotonic() + 5
    while dp.socket.fileno() != -1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # the cause: os-ken's receive loop ended, but the connection never ends on native threads
    assert serving.is_alive() and dp.state != DEAD_DISPATCHER and dp.is_active
    assert not connection_alive(dp)
    assert ctl.app.end_dead_connections() == [0x1]
    serving.join(2)
    assert not serving.is_alive() and dp.state == DEAD_DISPATCHER
    assert 0x1 not in ctl.app.runtime.datapaths
    assert ctl.app.end_dead_connections() == []


def test_health_that_reports_a_switch_gone_has_ended_its_connection(
    ctl: Controller,
    os_ken_connection: tuple[Any, socket.socket, threading.Thread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Health reads the connection as gone before the watcher's next look: by then os-ken
    has had its DEAD_DISPATCHER, so a switch that reconnects at once is a new switch (in the
    CI run that found it, a rebuilt emulation's core switch came back 0.19 s later and
    os-ken's topology app logged "Multiple connections")."""
    dp, peer, serving = os_ken_connection
    rt = ctl.app.runtime
    rt.register(dp)
    monkeypatch.setattr(rt, "read_switch", lambda dp, sw: ([], [], {}))
    monkeypatch.setattr(rt, "execute", lambda plan: None)
    rt.call(lambda: rt.sync_switch("s1", dp))
    assert ctl.app.northbound.health().switches_connected == 1
    peer.close()
    deadline = time.monotonic() + 5
    while dp.socket.fileno() != -1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dp.state != DEAD_DISPATCHER  # nothing ended it yet (no watcher runs here)
    assert ctl.app.northbound.health().switches_connected == 0
    assert dp.state == DEAD_DISPATCHER
    assert 0x1 not in rt.datapaths
    serving.join(2)
    assert not serving.is_alive()
    assert ctl.app.end_dead_connections() == []


def test_the_app_watches_connections_while_it_runs(
    env: Path, os_ken_connection: tuple[Any, socket.socket, threading.Thread]
) -> None:
    dp, peer, serving = os_ken_connection
    app = MecController()
    app.start()
    try:
        app.runtime.register(dp)
        peer.close()
        serving.join(5)
        assert not serving.is_alive()
        assert 0x1 not in app.runtime.datapaths
    finally:
        app.stop()


def test_a_handler_that_raises_is_logged_and_not_propagated(
    ctl: Controller, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    dp = ctl.connect("s1")

    def boom(dpid: int, xid: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ctl.app.runtime, "barrier_reply", boom)
    reply = ofp_event.EventOFPBarrierReply(SimpleNamespace(datapath=dp, xid=7))
    with caplog.at_level(logging.ERROR, logger="mecmig.controller"):
        assert ctl.dispatch(reply) == 1  # no exception reaches os-ken's event loop
    assert "handler _barrier_reply failed on EventOFPBarrierReply" in caplog.text
    assert "RuntimeError: boom" in caplog.text
    # the next event is handled as usual
    ctl.dispatch(_dead(dp), DEAD_DISPATCHER)
    assert 0x1 not in ctl.app.runtime.datapaths


def test_guarded_keeps_the_handlers_name_and_swallows_only_exceptions() -> None:
    calls: list[Any] = []

    def handler(app: object, ev: object) -> None:
        calls.append(ev)
        raise ValueError("bad event")

    wrapped = guarded(handler)
    assert wrapped.__name__ == "handler"
    wrapped(object(), "ev")  # logged, not raised
    assert calls == ["ev"]

    def interrupted(app: object, ev: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guarded(interrupted)(object(), "ev")


def test_a_refused_reservation_fails_with_bad_gateway_naming_the_switch(ctl: Controller) -> None:
    ctl.connect("s1", refuse=lambda m: isinstance(m, MeterMod) and m.command == "add")
    ctl.connect("s2")
    ctl.connect("core")
    req = ReservationRequest(src="ue1", dst="hmec2", rate="10Mbit")
    with pytest.raises(BadGateway) as failure:
        ctl.app.northbound.reserve(req)
    assert failure.value.status == 502
    assert "s1: MeterMod(command='add', meter_id=1" in str(failure.value)
    assert "type=12 code=1" in str(failure.value)


# ------------------------------------------------------------------------------ ARP


def test_an_arp_request_for_a_known_host_is_answered_out_of_its_in_port(ctl: Controller) -> None:
    s1 = ctl.connect("s1")
    ue, video = ctl.state.hosts["ue1"], ctl.state.hosts["video"]
    s1.clear()
    frame = arp_from(ue, video.ip)
    assert ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(s1, ue.port, frame, ARP_COOKIE)))
    ctl.settle()

    assert s1.messages() == [PacketOut(ue.port, _only(_packet_outs(s1)).data)]
    reply = packet.Packet(_only(_packet_outs(s1)).data)
    eth, answer = reply.get_protocol(ethernet.ethernet), reply.get_protocol(arp.arp)
    assert (eth.src, eth.dst) == (video.mac, ue.mac)
    assert answer.opcode == arp.ARP_REPLY
    assert (answer.src_mac, answer.src_ip) == (video.mac, video.ip)
    assert (answer.dst_mac, answer.dst_ip) == (ue.mac, ue.ip)


def test_an_arp_request_that_teaches_nothing_is_answered_while_the_worker_is_busy(
    ctl: Controller,
) -> None:
    """Its sender known at that port, its target known: answered on the event thread, not after
    the job the worker is on (a handover's promotions wait for their barriers)."""
    s1 = ctl.connect("s1")
    ue, video = ctl.state.hosts["ue1"], ctl.state.hosts["video"]
    s1.clear()
    free = _occupy_worker(ctl)
    try:
        frame = arp_from(ue, video.ip)
        ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(s1, ue.port, frame, ARP_COOKIE)))
        answer = packet.Packet(_only(_packet_outs(s1)).data).get_protocol(arp.arp)
        assert (answer.opcode, answer.src_mac, answer.dst_ip) == (arp.ARP_REPLY, video.mac, ue.ip)
    finally:
        free.set()
    ctl.settle()
    assert len(_packet_outs(s1)) == 1  # answered once


def test_an_arp_request_from_a_standby_or_a_new_place_waits_for_the_worker(
    ctl: Controller,
) -> None:
    """A warm replica's port (its instance's MAC, another place) and a host seen at a new port
    are the worker's to handle (nothing learned from a standby; a move learned first)."""
    dps = ctl.connect_all()
    video, ue = ctl.state.hosts["video"], ctl.state.hosts["ue1"]
    ctl.app.runtime.call(lambda: ctl.app.runtime.execute(ctl.state.add_standby("video", "s2")[1]))
    standby = ctl.state.standbys["video"]["s2"]
    for dp in dps.values():
        dp.clear()
    free = _occupy_worker(ctl)
    try:
        frame = arp_request_frame(video.mac, video.ip, ue.ip)
        from_standby = packet_in(dps["s2"], standby.port, frame, ARP_COOKIE)
        ctl.dispatch(ofp_event.EventOFPPacketIn(from_standby))
        moved = arp_from(ue, video.ip)
        ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(dps["s2"], 9, moved, ARP_COOKIE)))
        assert _packet_outs(dps["s2"]) == []  # nothing yet: both wait behind the job
    finally:
        free.set()
    ctl.settle()
    assert ctl.state.host_by_mac(ue.mac) is not None
    assert (ctl.state.hosts["ue1"].switch, ctl.state.hosts["ue1"].port) == ("s2", 9)
    assert len(_packet_outs(dps["s2"])) == 2  # then both answered


def _occupy_worker(ctl: Controller) -> threading.Event:
    """Keep the runtime's worker on a job until the event returned is set."""
    busy, free = threading.Event(), threading.Event()

    def job() -> None:
        busy.set()
        assert free.wait(10)

    ctl.app.runtime.submit(job)
    assert busy.wait(10)
    return free


def _only(items: list[PacketOut]) -> PacketOut:
    (item,) = items
    return item


def test_an_arp_request_for_an_unknown_address_goes_to_every_other_host_port_once(
    ctl: Controller,
) -> None:
    dps = ctl.connect_all()
    for dp in dps.values():
        dp.clear()
    ue = ctl.state.hosts["ue1"]
    frame = arp_from(ue, "10.0.0.77")
    ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(dps["s1"], ue.port, frame, ARP_COOKIE)))
    ctl.settle()
    sent = {name: sorted(p.port for p in _packet_outs(dp)) for name, dp in dps.items()}
    others_on_s1 = sorted(
        h.port for h in ctl.state.hosts.values() if h.switch == "s1" and h.host != "ue1"
    )
    assert sent == {"s1": others_on_s1, "s2": [ctl.state.hosts["hmec2"].port], "core": []}
    assert all(p.data == frame for dp in dps.values() for p in _packet_outs(dp))


def test_arp_from_a_link_port_is_ignored(ctl: Controller) -> None:
    s1 = ctl.connect("s1")
    s1.clear()
    ue, video = ctl.state.hosts["ue1"], ctl.state.hosts["video"]
    link_port = ctl.state.declared.port_to("s1", "core")
    frame = arp_from(ue, video.ip)
    ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(s1, link_port, frame, ARP_COOKIE)))
    ctl.settle()
    assert s1.wire == []


def test_arp_from_a_new_mac_learns_the_host_routes_it_and_saves_it(
    ctl: Controller, env: Path
) -> None:
    dps = ctl.connect_all()
    for dp in dps.values():
        dp.clear()
    frame = arp_request_frame("02:00:0a:00:00:99", "10.0.0.99", "10.0.0.12")
    ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(dps["s2"], 7, frame, ARP_COOKIE)))
    ctl.settle()
    learned = ctl.state.host_by_mac("02:00:0a:00:00:99")
    assert learned is not None
    assert (learned.switch, learned.port, learned.ip) == ("s2", 7, "10.0.0.99")
    to_it = [
        m
        for dp in dps.values()
        for m in dp.messages()
        if isinstance(m, FlowMod) and m.match.get("eth_dst") == "02:00:0a:00:00:99"
    ]
    # its own switch and the core switches hold an entry for it; a site sends it up its one
    # link by its uplink entry (controller.forwarding)
    assert {m.match.get("eth_dst") for m in to_it} == {"02:00:0a:00:00:99"}
    assert len(to_it) == len({"s2", *ctl.state._index.cores})
    assert _packet_outs(dps["s2"]) == [_only(_packet_outs(dps["s2"]))]  # and it got its answer
    assert "02:00:0a:00:00:99" in env.read_text()


# ------------------------------------------------------------------------------ held traffic


def ip_frame(src: Any, dst: Any) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst.mac, src=src.mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=src.ip, dst=dst.ip, proto=6))
    pkt.add_protocol(tcp.tcp(src_port=40000, dst_port=8080, seq=1, bits=tcp.TCP_ACK))
    pkt.serialize()
    return bytes(pkt.data)


def test_a_packet_of_a_hold_flow_goes_to_the_northbounds_held_packets(
    ctl: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    s1 = ctl.connect("s1")
    s1.clear()
    held: list[tuple[int, bytes, int]] = []
    monkeypatch.setattr(ctl.app.northbound, "held_packet", lambda c, f, d: held.append((c, f, d)))
    ue, video = ctl.state.hosts["ue1"], ctl.state.hosts["video"]
    hold_cookie = cookie(CookieKind.HOLD, ctl.state.host_ids["video"])
    frame = ip_frame(ue, video)
    ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(s1, ue.port, frame, hold_cookie)))
    ctl.settle()
    assert held == [(hold_cookie, frame, s1.id)]  # with the switch that caught it
    assert s1.wire == []


def test_held_traffic_is_released_through_the_tables_of_the_switch_that_caught_it(
    ctl: Controller,
) -> None:
    """Through s1's own tables (OFPP_TABLE), where it entered: it then takes the path it would
    have taken (a chain's traffic through its functions), not straight to the port."""
    dps = ctl.connect_all()
    for dp in dps.values():
        dp.clear()
    ue, video = ctl.state.hosts["ue1"], ctl.state.hosts["video"]
    view = ctl.app.northbound.hold("video", HoldRequest(timeout_s=30))
    assert view.held
    for name, dp in dps.items():  # video's switch sends its traffic up (confirmed by barrier)
        holds = [m for m in dp.messages() if isinstance(m, FlowMod) and m.priority == PRIO_HOLD]
        wanted = ["add", "add"] if name == video.switch else []  # by its address and its MAC
        assert [m.command for m in holds] == wanted, name

    hold_cookie = cookie(CookieKind.HOLD, ctl.state.host_ids["video"])
    frames = [ip_frame(ue, video) + bytes([i]) for i in range(3)]
    for frame in frames:
        ctl.dispatch(ofp_event.EventOFPPacketIn(packet_in(dps["s1"], ue.port, frame, hold_cookie)))
    ctl.settle()
    assert _packet_outs(dps["s1"]) == []  # kept while frozen

    released = ctl.app.northbound.release_hold("video")
    assert released.released_packets == 3
    assert _packet_outs(dps["s1"]) == [PacketOut(TABLE_PORT, f) for f in frames]


# ------------------------------------------------------------------------------ links


class PlanSpy:
    def __init__(self, ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
        self.plans: list[tuple[Plan, bool]] = []
        real = ctl.app.runtime.execute

        def execute(plan: Plan, *, wait: bool = True) -> Any:
            self.plans.append((plan, wait))
            return real(plan, wait=wait)

        monkeypatch.setattr(ctl.app.runtime, "execute", execute)


def test_a_link_whose_port_goes_down_is_routed_around_and_saved(
    ctl: Controller, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dps = ctl.connect_all()
    spy = PlanSpy(ctl, monkeypatch)
    port = ctl.state.declared.port_to("s1", "core")
    for dp in dps.values():
        dp.clear()

    down = port_status(dps["s1"], port, reason=OFP.OFPPR_MODIFY, state=OFP.OFPPS_LINK_DOWN)
    assert ctl.dispatch(ofp_event.EventOFPPortStatus(down)) == 1
    ctl.settle()
    ((plan, wait),) = spy.plans
    assert plan and wait is False
    assert not ctl.state.topo.has_link("s1", "core")
    sent = {name: dp.messages() for name, dp in dps.items()}
    for name, msgs in plan[0].items():  # what the plan says is what the switches got
        assert sent[name] == [canonical(m) for m in msgs]
    assert json.loads(env.read_text()) == json.loads(json.dumps(ctl.state.to_dict()))

    up = port_status(dps["s1"], port, reason=OFP.OFPPR_MODIFY, state=OFP.OFPPS_LIVE)
    ctl.dispatch(ofp_event.EventOFPPortStatus(up))
    ctl.settle()
    assert len(spy.plans) == 2 and ctl.state.topo.has_link("s1", "core")

    gone = port_status(
        dps["core"], ctl.state.declared.port_to("core", "s2"), reason=OFP.OFPPR_DELETE, state=0
    )
    ctl.dispatch(ofp_event.EventOFPPortStatus(gone))
    ctl.settle()
    assert len(spy.plans) == 3 and not ctl.state.topo.has_link("core", "s2")


def test_a_host_port_going_down_changes_nothing(
    ctl: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    s1 = ctl.connect("s1")
    spy = PlanSpy(ctl, monkeypatch)
    s1.clear()
    video = ctl.state.hosts["video"]
    down = port_status(s1, video.port, reason=OFP.OFPPR_MODIFY, state=OFP.OFPPS_LINK_DOWN)
    ctl.dispatch(ofp_event.EventOFPPortStatus(down))
    ctl.settle()
    assert spy.plans == [] and s1.wire == []


def _link(src: tuple[int, int], dst: tuple[int, int]) -> Any:
    end = SimpleNamespace
    return end(src=end(dpid=src[0], port_no=src[1]), dst=end(dpid=dst[0], port_no=dst[1]))


def test_discovered_links_change_the_routes_only_when_the_scenario_has_them(
    ctl: Controller, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ctl.connect_all()
    spy = PlanSpy(ctl, monkeypatch)
    st = ctl.state
    s2_port, core_port = st.declared.port_to("s2", "core"), st.declared.port_to("core", "s2")
    link = _link((0x2, s2_port), (0x64, core_port))
    with caplog.at_level(logging.WARNING, logger="mecmig.controller"):
        ctl.dispatch(topo_event.EventLinkAdd(_link((0x1, 9), (0x2, 9))))  # not declared
        ctl.dispatch(topo_event.EventLinkAdd(link))  # declared and up: nothing to do
        ctl.settle()
        assert spy.plans == []
        assert "is not in the scenario" in caplog.text
        ctl.dispatch(topo_event.EventLinkDelete(link))
        ctl.settle()
    assert len(spy.plans) == 1 and not st.topo.has_link("s2", "core")


# ------------------------------------------------------------------------------ extensions


EXTENSION_CALLS: list[tuple[Northbound, Scenario, str]] = []


def ping_extension(northbound: Northbound, scenario: Scenario, rest_url: str) -> APIRouter:
    """An extension as `MECMIG_EXTENSIONS` names it (`tests.unit.test_app:ping_extension`)."""
    EXTENSION_CALLS.append((northbound, scenario, rest_url))
    router = APIRouter(prefix="/v1")

    @router.get("/ping")
    def ping() -> dict[str, str]:
        return {"scenario": scenario.name, "rest_url": rest_url}

    return router


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_extensions_are_mounted_into_the_rest_api(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "MECMIG_EXTENSIONS", " tests.unit.test_app:ping_extension , orchestration.service:mount"
    )
    EXTENSION_CALLS.clear()
    ctl = Controller()
    try:
        ((northbound, scenario, rest_url),) = EXTENSION_CALLS
        port = ctl.app.settings.rest_port
        assert northbound is ctl.app.northbound and scenario.name == "default"
        assert rest_url == f"http://127.0.0.1:{port}"
        with ctl.app.rest:
            assert _get(f"{rest_url}/v1/ping") == {"scenario": "default", "rest_url": rest_url}
            paths = _get(f"{rest_url}/v1/openapi.json")["paths"]
        assert {"/v1/ping", "/v1/migrations", "/v1/health"} <= set(paths)
    finally:
        ctl.close()


@pytest.mark.parametrize(
    "spec",
    [
        "tests.unit.test_app",
        ":ping_extension",
        "tests.unit.test_app:",
        "tests.unit.no_such_module:mount",
        "tests.unit.test_app:no_such_function",
        "tests.unit.test_app:EXTENSION_CALLS",  # not callable
    ],
)
def test_a_bad_extension_spec_raises_an_extension_error_naming_it(
    env: Path, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    monkeypatch.setenv("MECMIG_EXTENSIONS", f"tests.unit.test_app:ping_extension,{spec}")
    with pytest.raises(ExtensionError, match=f"extension '{spec}'"):
        MecController()


# ------------------------------------------------------------------------------ lifecycle


def test_start_serves_the_api_and_stop_ends_everything(env: Path) -> None:
    app = MecController()
    app.start()
    try:
        health = _get(f"{app.rest.url}/v1/health")
        assert health["scenario"] == "default" and health["switches_connected"] == 0
        assert app.rest.port == app.settings.rest_port
    finally:
        app.stop()
    with pytest.raises(urllib.error.URLError):
        _get(f"{app.rest.url}/v1/health")
    with pytest.raises(RuntimeError):
        app.runtime.submit(lambda: None)
    assert not app.is_active


def test_saved_state_is_restored_on_start(env: Path) -> None:
    first = Controller()
    try:
        rec, plan = first.state.reserve("ue1", "hmec2", 5_000_000)
        first.app.runtime.save()
    finally:
        first.close()
    second = Controller()
    try:
        assert list(second.state.reservations) == [rec.id]
        s1 = second.connect("s1")
        assert MeterMod("add", rec.meter_id, 5000, rec.burst_kb) in s1.messages()
    finally:
        second.close()
