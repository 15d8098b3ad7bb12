"""The controller of `mecmig bench scale` without a network: its REST app, facade, runtime and
state as a live controller runs them, every switch a software switch of `controller.flowtable`
(the tables the unit tests run packets through).

Every message the runtime sends is encoded and serialised by os-ken as on a real connection,
and a barrier is answered at once. What a switch does with the messages is its own work, not
the controller's (OVS does it in another process): each switch keeps them, and `settle()`
applies them to its table after the operation's time is taken; a message the table refuses is
counted (`refused`) and answered with an error, as OVS would. The tables start with nothing:
booting a thousand switches with every host's entry would measure the software switch, not the
controller (deletes of entries never installed are harmless, as on OVS).

Requests go as a client's do: HTTP/1.1 over one kept-alive loopback connection to the app served
by uvicorn (`RestServer`, as the controller serves it), timed from the request's first byte to
the reply's last. As the controller does once it is built, the long-lived state is set aside from
the garbage collector's passes (`ground.heap.settle`).
"""

from __future__ import annotations

import http.client
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from os_ken.ofproto import ofproto_protocol, ofproto_v1_3

from controller.facade import Northbound
from controller.flowtable import FlowTableError, SwitchTable
from controller.ofmsg import Barrier, Message
from controller.rest import create_app
from controller.rest_server import RestServer
from controller.runtime import Encoded, Runtime
from controller.state import FabricState
from controller.store import StateStore
from ground import heap


class SoftSwitch(ofproto_protocol.ProtocolDesc):  # type: ignore[misc]
    """What the runtime uses of os-ken's Datapath, over a software flow table."""

    def __init__(self, dpid: int, name: str, runtime: Runtime) -> None:
        super().__init__(ofproto_v1_3.OFP_VERSION)
        self.id = dpid
        self.name = name
        self.rt = runtime
        self.table = SwitchTable(name)
        self.xid = 0
        self.refused = 0
        self.inbox: list[tuple[Message, int]] = []  # sent, not applied yet

    def set_xid(self, msg: Any) -> int:
        self.xid = (self.xid + 1) & ofproto_v1_3.MAX_XID
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg: Any, close_socket: bool = False) -> None:
        msg.serialize()  # what os-ken's Datapath does before it queues the bytes
        if isinstance(msg, self.ofproto_parser.OFPBarrierRequest):
            self.rt.barrier_reply(self.id, msg.xid)

    def apply(self) -> None:
        """Run what was sent on the table, in order; a refusal is counted and reported as the
        switch's error would be."""
        inbox, self.inbox = self.inbox, []
        for msg, xid in inbox:
            try:
                self.table.apply([msg])
            except FlowTableError as exc:
                self.refused += 1
                self.rt.switch_error(self.id, xid, f"refused: {exc}")


class SoftRuntime(Runtime):
    """A Runtime whose switches are `SoftSwitch`es: what it sends is also applied to them."""

    def send(self, dp: Any, msg: Message, sw: str, encoded: Encoded | None = None) -> int:
        xid = super().send(dp, msg, sw, encoded)
        if not isinstance(msg, Barrier) and isinstance(dp, SoftSwitch):
            dp.inbox.append((msg, xid))
        return xid


@dataclass(frozen=True)
class Reply:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LoopbackClient:
    """One kept-alive HTTP/1.1 connection to a server on this host."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, url: str, json: Any = None) -> Reply:
        headers = {}
        body = None
        if json is not None:
            body = _dumps(json)
            headers["Content-Type"] = "application/json"
        self._conn.request(method, url, body=body, headers=headers)
        response = self._conn.getresponse()
        return Reply(response.status, response.read())

    def close(self) -> None:
        self._conn.close()


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


class SoftController:
    """REST app + facade + runtime + state over software switches, and a state file; the app
    served over loopback HTTP."""

    def __init__(self, state: FabricState) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mecmig-scale-")
        self.rt = SoftRuntime(state, StateStore(Path(self._dir.name) / "state.json"))
        self.switches = {
            sw.name: SoftSwitch(sw.dpid, sw.name, self.rt) for sw in state.declared.switches
        }
        for switch in self.switches.values():
            self.rt.register(switch)
        self.nb = Northbound(self.rt)
        self.server = RestServer(create_app(self.nb), port=0)
        self.server.start()
        self.http = LoopbackClient(self.server.port)
        heap.settle()

    @property
    def state(self) -> FabricState:
        return self.rt.state

    def refused(self) -> int:
        self.settle()
        return sum(sw.refused for sw in self.switches.values())

    def settle(self) -> None:
        """Every switch applies what it was sent (on the worker, after what sent it)."""

        def job() -> None:
            for switch in self.switches.values():
                if switch.inbox:
                    switch.apply()

        self.rt.call(job)

    def link(self, a: str, b: str, *, up: bool) -> int:
        """A link event as the app handles a port status: plan, send without waiting, save.
        Returns the flow-mods sent."""

        def job() -> int:
            plan = self.rt.state.link_up(a, b) if up else self.rt.state.link_down(a, b)
            done = self.rt.execute(plan, wait=False)
            self.rt.save()
            return done.flow_mods

        return self.rt.call(job)

    def close(self) -> None:
        for timer in list(self.nb.holds._timers.values()):
            timer.cancel()
        self.http.close()
        self.server.stop()
        self.rt.shutdown()
        self._dir.cleanup()
