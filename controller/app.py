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
from controller.extensions import load_extension
from controller.facade import Northbound
from controller.hold import held_host_id
from controller.ofmsg import PacketOut
from controller.rest import create_app
from controller.rest_server import RestServer
from controller.runtime import Runtime
from controller.settings import Settings
from controller.state import FabricState
from controller.store import StateStore
from topology.scenario import load_scenario

log = logging.getLogger("mecmig.controller")
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
        self.runtime = Runtime(state, store)
        self.northbound = Northbound(self.runtime)
        rest_url = f"http://{self.settings.rest_host}:{self.settings.rest_port}"
        routers = [
            load_extension(spec)(self.northbound, scenario, rest_url)
            for spec in self.settings.extensions
        ]
        self.rest = RestServer(
            create_app(self.northbound, routers, token=self.settings.token()),
            self.settings.rest_host,
            self.settings.rest_port,
        )

    def start(self) -> Any:
        thread = super().start()
        self.rest.start()
        log.info("scenario %s; REST API on %s/v1", self.runtime.state.scenario.name, self.rest.url)
        return thread

    def stop(self) -> None:
        self.rest.stop()
        self.runtime.shutdown()
        super().stop()

    # ------------------------------------------------------------------ switches

    @ev_handler(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _switch_features(self, ev: Any) -> None:
        dp = ev.msg.datapath
        name = self.runtime.state.switch_name(dp.id)
        if name is None:
            log.warning("switch dpid=%#x is not in the scenario; leaving it alone", dp.id)
            return
        self.runtime.datapaths[dp.id] = dp
        log.info("switch %s (dpid=%#x) connected; installing its config", name, dp.id)

        def job() -> None:
            msgs = self.runtime.state.switch_config(name)
            for msg in msgs:
                self.runtime.send(dp, msg, name)

        self.runtime.submit(job)

    @ev_handler(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev: Any) -> None:
        dp, dpid = ev.datapath, ev.datapath.id
        gone = ev.state == DEAD_DISPATCHER and dpid is not None
        if gone and self.runtime.datapaths.get(dpid) is dp:  # not a newer connection's
            del self.runtime.datapaths[dpid]
            log.warning("switch dpid=%#x disconnected", dpid)

    @ev_handler(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
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
            self.northbound.held_packet(msg.cookie, bytes(msg.data))
            return
        arp = parse_arp(msg.data)
        if arp is None:
            return
        dpid, in_port, data = msg.datapath.id, msg.match["in_port"], bytes(msg.data)
        self.runtime.submit(lambda: self._arp(dpid, in_port, arp, data))

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
        dp = self.runtime.datapaths.get(dpid)
        target = st.host_by_ip(arp.target_ip)
        if target is not None and target.mac and dp is not None:
            self.runtime.send(dp, PacketOut(in_port, arp_reply(arp, target.mac)), sw)
            return
        # unknown target: hand the request to every host port once (never to a link port)
        for host in st.hosts.values():
            other = self.runtime.datapaths.get(st.dpid(host.switch))
            if other is not None and (host.switch, host.port) != (sw, in_port):
                self.runtime.send(other, PacketOut(host.port, data), host.switch)
