"""The os-ken application: the only module that handles OpenFlow events.

It is thin on purpose: every decision is taken by `FabricState` on the runtime's worker thread; the
handlers here only translate events into jobs, and deliver barrier replies and switch errors.

Run it with `mecmig controller --scenario FILE`, or load it into an existing os-ken process next
to your own apps (with `os_ken.topology.switches` and `--observe-links`), configured through
MECMIG_SCENARIO, MECMIG_REST_HOST, MECMIG_REST_PORT, MECMIG_STATE_FILE and MECMIG_EXTENSIONS
(see controller/settings.py; `orchestration.service:mount` adds `/v1/migrations`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.ofproto import ofproto_v1_3
from os_ken.topology import event as topo_event

from controller.arp import OP_REQUEST, arp_reply, parse_arp
from controller.extensions import load_extension, mount_extension
from controller.facade import Northbound
from controller.hold import held_host_id
from controller.location_api import location_routers
from controller.location_service import LocationService
from controller.location_webhook import WebhookSender
from controller.ofmsg import PacketOut
from controller.rest import create_app
from controller.rest_server import RestServer
from controller.runtime import Runtime, SwitchError
from controller.settings import Settings
from controller.state import FabricState
from controller.store import StateStore
from ground import heap
from topology.scenario import load_scenario

log = logging.getLogger("mecmig.controller")
WATCH_PERIOD_S = 0.2  # how often connections are checked (see MecController.end_dead_connections)
F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A")  # the app
E = TypeVar("E")  # the event

# os-ken's decorator is untyped; it only tags the function (`callers`) and returns it as it is.
ev_handler: Callable[..., Callable[[F], F]] = set_ev_cls


def guarded(handler: Callable[[A, E], None]) -> Callable[[A, E], None]:
    """An exception escaping an os-ken handler silently drops the switch: log it instead."""

    @functools.wraps(handler)
    def wrapper(self: A, ev: E) -> None:
        try:
            handler(self, ev)
        except Exception:  # noqa: BLE001 - last line of defence of the event loop
            log.exception("handler %s failed on %s", handler.__name__, type(ev).__name__)

    return wrapper


def connection_alive(dp: Any) -> bool:
    """Whether os-ken's connection to a switch still stands.

    On native threads (os-ken 4's default hub) os-ken does not notice a switch that closed its
    connection: its receive loop ends and closes the socket, but the connection then waits for
    its send thread (`hub.kill` does nothing on threads), which sleeps until something is sent;
    without echo requests (os-ken's default) nothing is, so the datapath never reaches
    DEAD_DISPATCHER and stays registered, in os-ken's apps and in ours. A closed socket is
    what tells. (Objects that are not os-ken datapaths, e.g. test stubs, count as alive.)
    """
    if getattr(dp, "state", None) == DEAD_DISPATCHER or getattr(dp, "is_active", True) is False:
        return False
    sock = getattr(dp, "socket", None)
    return sock is None or sock.fileno() != -1


def end_connection(dp: Any) -> None:
    """End an os-ken datapath's connection: its DEAD_DISPATCHER state change goes to every app,
    and its send thread, which may sleep for ever (see `connection_alive`), is woken to end."""
    if not hasattr(dp, "close"):
        return
    dp.close()
    try:
        dp.send(b"", close_socket=True)  # returns at once if the send thread is already gone
    except Exception:  # noqa: BLE001 - whatever the socket says, the connection is over
        log.debug("waking the send thread of dpid=%s failed", dp.id, exc_info=True)


class MecController(app_manager.OSKenApp):  # type: ignore[misc]
    """Topology, forwarding, SFC steering, reservations and relocation for one scenario."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = Settings.from_env()
        scenario = load_scenario(self.settings.scenario)
        state = FabricState(scenario)
        store = StateStore(self.settings.state_file)
        saved = store.load()
        if saved is not None:
            state.restore(saved)
            log.info("restored %d reservation(s) from %s", len(state.reservations), store.path)
        self.runtime = Runtime(state, store, alive=connection_alive, ended=self._connection_ended)
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None
        self.northbound = Northbound(self.runtime)
        rest_url = f"http://{self.settings.rest_host}:{self.settings.rest_port}"
        # the location service (ETSI MEC013 under /location/v2): its own lock and sender threads
        self.location = LocationService(scenario, WebhookSender())
        routers = [
            *location_routers(self.location),
            *(
                mount_extension(
                    load_extension(spec), self.northbound, scenario, rest_url, self.location
                )
                for spec in self.settings.extensions
            ),
        ]
        self.rest = RestServer(
            create_app(self.northbound, routers, token=self.settings.token()),
            self.settings.rest_host,
            self.settings.rest_port,
        )

    def start(self) -> Any:
        kept = heap.settle()  # the state and the app, built: out of the collector's passes
        log.debug("%d objects set aside from garbage collection", kept)
        thread = super().start()
        self.rest.start()
        self._watching.set()
        self._watcher = threading.Thread(
            target=self._watch_connections, name="mecmig-connections", daemon=True
        )
        self._watcher.start()
        log.info("scenario %s; REST API on %s/v1", self.runtime.state.scenario.name, self.rest.url)
        return thread

    def stop(self) -> None:
        self._watching.clear()
        if self._watcher is not None:
            self._watcher.join(2 * WATCH_PERIOD_S)
        self.rest.stop()
        self.location.close()
        self.runtime.shutdown()
        super().stop()

    # ------------------------------------------------------------------ connections

    def _watch_connections(self) -> None:
        while self._watching.is_set():
            try:
                self.end_dead_connections()
            except Exception:  # noqa: BLE001 - the watch must go on
                log.exception("checking the switch connections failed")
            time.sleep(WATCH_PERIOD_S)

    def end_dead_connections(self) -> list[int]:
        """End the connections whose switch went away and that os-ken has not noticed (see
        `connection_alive`): they leave `runtime.datapaths`, and os-ken's apps get their
        DEAD_DISPATCHER state change (the topology app unregisters the switch and its links, so
        that its next connection is a new switch, with its ports, and not a "multiple
        connection"). Health's reading ends them too (`Runtime.connected`). The dpids ended."""
        return [
            dpid for dpid in list(self.runtime.datapaths) if self.runtime.connected(dpid) is None
        ]

    def _connection_ended(self, dp: Any) -> None:
        name = self.runtime.state.switch_name(dp.id)
        log.warning("switch %s (dpid=%#x): connection closed; forgotten", name, dp.id)
        end_connection(dp)

    # ------------------------------------------------------------------ switches

    @ev_handler(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        name = self.runtime.state.switch_name(dp.id)
        if name is None:
            log.warning("switch dpid=%#x is not in the scenario; leaving it alone", dp.id)
            return
        old = self.runtime.register(dp)
        if old is not None:
            # A switch has one connection to us: the older one is dead, whether os-ken noticed
            # or not. End it now, so that os-ken's topology app does not keep it registered.
            log.warning(
                "switch %s (dpid=%#x) reconnected; ending its previous connection", name, dp.id
            )
            end_connection(old)
        log.info("switch %s (dpid=%#x) connected; re-syncing it", name, dp.id)

        def job() -> None:
            try:
                done = self.runtime.sync_switch(name, dp)
            except SwitchError as exc:  # it gets another chance when it reconnects
                log.error("switch %s not in sync: %s", name, exc)
                return
            if done is not None:
                log.info("switch %s in sync (%.1f ms)", name, done.elapsed_ms)

        self.runtime.submit(job)

    @ev_handler(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev: Any) -> None:
        dp, dpid = ev.datapath, ev.datapath.id
        gone = ev.state == DEAD_DISPATCHER and dpid is not None
        if gone and self.runtime.forget(dp):  # not a newer connection's
            log.warning("switch dpid=%#x disconnected", dpid)

    @ev_handler(
        [ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPMeterConfigStatsReply],
        [CONFIG_DISPATCHER, MAIN_DISPATCHER],
    )
    @guarded
    def _multipart_reply(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        self.runtime.multipart_reply(msg.datapath.id, msg.xid, list(msg.body), more)

    @ev_handler(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _barrier_reply(self, ev: Any) -> None:
        self.runtime.barrier_reply(ev.msg.datapath.id, ev.msg.xid)

    @ev_handler(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        self.runtime.switch_error(msg.datapath.id, msg.xid, f"type={msg.type} code={msg.code}")

    # ------------------------------------------------------------------ links

    @ev_handler(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _port_status(self, ev: Any) -> None:
        msg = ev.msg
        dp, port = msg.datapath, msg.desc
        ofp = dp.ofproto
        down = msg.reason == ofp.OFPPR_DELETE or bool(port.state & ofp.OFPPS_LINK_DOWN)
        self.runtime.submit(lambda: self._port_changed(dp.id, port.port_no, down))

    def _port_changed(self, dpid: int, port_no: int, down: bool) -> None:
        st = self.runtime.state
        sw = st.switch_name(dpid)
        if sw is None:
            return
        for link in st.declared.links:
            if sw in (link.a, link.b) and link.port_on(sw) == port_no:
                plan = st.link_down(link.a, link.b) if down else st.link_up(link.a, link.b)
                if plan:
                    log.warning("link %s-%s %s", link.a, link.b, "down" if down else "up")
                    self.runtime.execute(plan, wait=False)
                    self.runtime.save()

    @ev_handler(topo_event.EventLinkAdd)
    @guarded
    def _link_add(self, ev: Any) -> None:
        self._discovered(ev.link, up=True)

    @ev_handler(topo_event.EventLinkDelete)
    @guarded
    def _link_delete(self, ev: Any) -> None:
        self._discovered(ev.link, up=False)

    def _discovered(self, link: Any, up: bool) -> None:
        src, dst = link.src, link.dst

        def job() -> None:
            st = self.runtime.state
            a, b = st.switch_name(src.dpid), st.switch_name(dst.dpid)
            if a is None or b is None or not st.declared.has_link(a, b):
                log.warning(
                    "discovered link %#x:%d-%#x:%d is not in the scenario (no capacity "
                    "known); not used",
                    src.dpid,
                    src.port_no,
                    dst.dpid,
                    dst.port_no,
                )
                return
            if st.declared.port_to(a, b) != src.port_no:
                log.warning(
                    "link %s-%s found on port %d of %s, scenario says %d",
                    a,
                    b,
                    src.port_no,
                    a,
                    st.declared.port_to(a, b),
                )
            plan = st.link_up(a, b) if up else st.link_down(a, b)
            if plan:
                log.warning("link %s-%s %s (discovery)", a, b, "up" if up else "down")
                self.runtime.execute(plan, wait=False)

        self.runtime.submit(job)

    # ------------------------------------------------------------------ hosts and ARP

    @ev_handler(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        if held_host_id(msg.cookie) is not None:  # an instance's traffic, held while frozen
            self.northbound.held_packet(msg.cookie, bytes(msg.data), msg.datapath.id)
            return
        arp = parse_arp(msg.data)
        if arp is None:
            return
        dpid, in_port, data = msg.datapath.id, msg.match["in_port"], bytes(msg.data)
        if not self._arp_now(dpid, in_port, arp):
            self.runtime.submit(lambda: self._arp(dpid, in_port, arp, data))

    def _arp_now(self, dpid: int, in_port: int, arp: Any) -> bool:
        """Answer an ARP request here, on the event thread, when it teaches nothing (its sender
        is known at that port) and its target is known: not after what the worker is doing. A
        warm replica just made primary asks for its client's MAC with its first reply; behind
        the promotions of a handover (each waiting for its barriers) that took 10-25 ms, the
        client's whole gap (tests/integration/test_replicas_live.py)."""
        if arp.op != OP_REQUEST:
            return False
        st = self.runtime.state
        sw = st.switch_name(dpid)
        if sw is None or st.is_link_port(sw, in_port):
            return False
        mac = st.arp_answer(arp.sender_mac, arp.sender_ip, sw, in_port, arp.target_ip)
        dp = self.runtime.connected(dpid)
        if mac is None or dp is None:
            return False
        self.runtime.send(dp, PacketOut(in_port, arp_reply(arp, mac)), sw)
        return True

    def _arp(self, dpid: int, in_port: int, arp: Any, data: bytes) -> None:
        st = self.runtime.state
        sw = st.switch_name(dpid)
        if sw is None or st.is_link_port(sw, in_port):
            return
        plan = st.learn_host(arp.sender_mac, arp.sender_ip, sw, in_port)
        if plan:
            self.runtime.execute(plan, wait=False)
            self.runtime.save()
        if arp.op != OP_REQUEST:
            return
        dp = self.runtime.connected(dpid)
        target = st.host_by_ip(arp.target_ip)
        if target is not None and target.mac and dp is not None:
            self.runtime.send(dp, PacketOut(in_port, arp_reply(arp, target.mac)), sw)
            return
        # unknown target: hand the request to every host port once (never to a link port)
        for host in st.hosts.values():
            other = self.runtime.connected(st.dpid(host.switch))
            if other is not None and (host.switch, host.port) != (sw, in_port):
                self.runtime.send(other, PacketOut(host.port, data), host.switch)
