"""The controller of `mecmig bench scale` without a network: its REST app, facade, runtime and
state as a live controller runs them, every switch a software switch of `controller.flowtable`
(the tables the unit tests run packets through).

Every message the runtime sends is encoded for os-ken as on a real connection and applied to
that switch's table; a barrier is answered at once (after the messages before it), a message the
table refuses is answered with an error, as OVS would. The tables start with nothing: booting
a thousand switches with every host's entry would measure the software switch, not the
controller; the messages of each operation are applied as they come (deletes of entries never
installed are harmless, as on OVS).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from os_ken.ofproto import ofproto_protocol, ofproto_v1_3

from controller.facade import Northbound
from controller.flowtable import FlowTableError, SwitchTable
from controller.ofmsg import Barrier, Message
from controller.rest import create_app
from controller.runtime import Encoded, Runtime
from controller.state import FabricState
from controller.store import StateStore


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

    def set_xid(self, msg: Any) -> int:
        self.xid = (self.xid + 1) & ofproto_v1_3.MAX_XID
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg: Any, close_socket: bool = False) -> None:
        msg.serialize()  # what os-ken's Datapath does before it queues the bytes
        if isinstance(msg, self.ofproto_parser.OFPBarrierRequest):
            self.rt.barrier_reply(self.id, msg.xid)

    def apply(self, msg: Message, xid: int) -> None:
        """Run `msg` on the table; a refusal is reported as the switch's error would be."""
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
            dp.apply(msg, xid)
        return xid


class SoftController:
    """REST app + facade + runtime + state over software switches, and a state file."""

    def __init__(self, state: FabricState) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mecmig-scale-")
        self.rt = SoftRuntime(state, StateStore(Path(self._dir.name) / "state.json"))
        self.switches = {
            sw.name: SoftSwitch(sw.dpid, sw.name, self.rt) for sw in state.declared.switches
        }
        for switch in self.switches.values():
            self.rt.register(switch)
        self.nb = Northbound(self.rt)
        # one event loop for every request, as a server has (a TestClient outside its `with`
        # starts a thread and a loop per request: ~4 ms of each, the harness's, not the app's)
        self.http = TestClient(create_app(self.nb))
        self.http.__enter__()

    @property
    def state(self) -> FabricState:
        return self.rt.state

    def refused(self) -> int:
        return sum(sw.refused for sw in self.switches.values())

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
        self.http.__exit__(None, None, None)
        self.rt.shutdown()
        self._dir.cleanup()
