"""Re-syncing a switch that (re)connects: `FabricState.resync` on what the switch holds.

A switch is a software `SwitchTable` holding whatever an earlier life left (flows and meters of
released reservations, holds, hosts elsewhere, other apps' flows and meters); the model is a
`FabricState`. After applying `resync`, the switch holds exactly what a fresh switch gets from
`switch_config`, plus what is not mecmig's; resyncing again sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from controller import runtime as runtime_module
from controller.flowtable import Entry, SwitchTable, TableSnapshot
from controller.ofmsg import (
    CONTROLLER_PORT,
    PRIO_HOST,
    TABLE_CLASSIFY,
    TABLE_FORWARD,
    Barrier,
    CookieKind,
    FlowMod,
    Match,
    MeterMod,
    Output,
    cookie,
)
from controller.plan import SwitchConfig, reconcile
from controller.runtime import SwitchError
from controller.state import FabricState
from tests.unit.controller_helpers import (
    DEFAULT,
    OFP,
    OFP_PARSER,
    READS,
    THREE_SITES,
    M,
    SimulatedSwitch,
    SwitchedRuntime,
    error_msg,
    flow_stats_reply,
    make_state,
    switch_names,
)

LLDP = FlowMod(  # os-ken's topology app's flow: not mecmig's (cookie 0)
    "add",
    table=TABLE_CLASSIFY,
    priority=0xFFFF,
    match=Match.of(eth_type=0x88CC, eth_dst="01:80:c2:00:00:0e"),
    actions=(Output(CONTROLLER_PORT),),
)
OTHER_APPS_METER = MeterMod("add", 0xFF00, 1000, 100)


def booted(state: FabricState, switch: str) -> SwitchTable:
    """A switch that connected to `state`'s controller: its whole config."""
    table = SwitchTable(switch)
    table.apply(state.switch_config(switch))
    return table


def resync(state: FabricState, table: SwitchTable) -> list[object]:
    msgs = state.resync(table.name, table.flows(), table.meters)
    table.apply(msgs)
    return msgs


def expected(state: FabricState, switch: str, *extra: FlowMod | MeterMod) -> TableSnapshot:
    table = booted(state, switch)
    table.apply(extra)
    return table.snapshot()


@pytest.mark.parametrize("path", [DEFAULT, THREE_SITES], ids=["default", "three-sites"])
def test_an_empty_switch_gets_the_model_and_a_second_resync_sends_nothing(path: object) -> None:
    state = make_state(path)  # type: ignore[arg-type]
    state.reserve("mec1", "mec2", 20 * M, dst_port=5202)
    state.hold("video")
    for sw in switch_names(state):
        table = SwitchTable(sw)
        assert resync(state, table)
        assert table.snapshot() == expected(state, sw), table.dump()
        assert state.resync(sw, table.flows(), table.meters) == []


def test_a_switch_already_in_line_gets_nothing(tmp_path: object) -> None:
    state = make_state(DEFAULT)
    state.reserve("mec1", "mec2", 20 * M)
    for sw in switch_names(state):
        assert state.resync(sw, booted(state, sw).flows(), booted(state, sw).meters) == []


def test_what_an_earlier_life_left_goes_and_other_apps_flows_and_meters_stay() -> None:
    before = make_state(DEFAULT)
    kept, _ = before.reserve("mec1", "mec2", 20 * M, dst_port=5202)
    gone, _ = before.reserve("mec1", "mec2", 10 * M, dst_port=5203)
    before.hold("video")
    switch = kept.path[0]
    table = booted(before, switch)
    table.apply([OTHER_APPS_METER, LLDP])
    assert set(table.meters) == {kept.id, gone.id, OTHER_APPS_METER.meter_id}

    # the controller restarts from its state file after `gone` was released and the hold ended
    after = make_state(DEFAULT)
    after.restore({**before.to_dict(), "reservations": [_saved(before, kept.id)]})
    msgs = resync(after, table)
    assert MeterMod("delete", gone.id) in msgs
    assert table.snapshot() == expected(after, switch, OTHER_APPS_METER, LLDP), table.dump()
    assert not any(
        e.cookie == cookie(CookieKind.HOLD, before.host_ids["video"]) for e in table.flows()
    )
    assert resync(after, table) == []


def _saved(state: FabricState, rid: int) -> dict[str, object]:
    (rec,) = [r for r in state.to_dict()["reservations"] if r["id"] == rid]
    return rec  # type: ignore[no-any-return]


def test_meters_of_a_lost_state_file_go_when_mecmigs_flows_name_them() -> None:
    before = make_state(DEFAULT)
    for port in (5202, 5203, 5204):
        res, _ = before.reserve("mec1", "mec2", 5 * M, dst_port=port)
    table = booted(before, res.path[0])
    table.apply([OTHER_APPS_METER])
    fresh = make_state(DEFAULT)  # no state file: it gives out ids from 1 again
    resync(fresh, table)
    assert table.meters == {OTHER_APPS_METER.meter_id: (1000, 100)}
    assert table.snapshot() == expected(fresh, res.path[0], OTHER_APPS_METER)


def test_a_meter_with_other_values_is_modified_and_a_flow_that_differs_is_replaced_in_place() -> (
    None
):
    state = make_state(DEFAULT)
    res, _ = state.reserve("mec1", "mec2", 20 * M, dst_port=5202)
    switch = res.path[0]
    table = booted(state, switch)
    # the switch kept what an earlier life had: another rate, a host's flow to another port
    table.apply([MeterMod("modify", res.id, 1, 1)])
    (host_flow,) = [e for e in table.flows(TABLE_FORWARD) if e.cookie == cookie(CookieKind.HOST, 1)]
    table.apply([_as_add(replace(host_flow, actions=(Output(77),)))])
    msgs = resync(state, table)
    assert MeterMod("modify", res.id, 20_000, res.burst_kb) in msgs
    assert not [m for m in msgs if isinstance(m, FlowMod) and m.command != "add"]
    assert not [m for m in msgs if isinstance(m, MeterMod) and m.command == "delete"]
    assert table.snapshot() == expected(state, switch)


def _as_add(e: Entry) -> FlowMod:
    return FlowMod("add", e.table, e.priority, e.match, e.actions, e.goto, e.meter, e.cookie)


def test_a_flow_of_ours_that_cannot_be_read_is_replaced_or_deleted() -> None:
    state = make_state(DEFAULT)
    table = booted(state, "s1")
    stray = Entry(
        TABLE_FORWARD,
        PRIO_HOST,
        Match.of(eth_dst="02:00:00:00:00:99"),
        cookie=cookie(CookieKind.HOST, 99),
    )
    known = table.flows(TABLE_FORWARD)[0]
    odd = [replace(known, actions=()), stray]
    msgs = state.resync("s1", [e for e in table.flows() if e != known], table.meters, odd)
    assert _as_add(known) in msgs
    (delete,) = [m for m in msgs if isinstance(m, FlowMod) and m.command != "add"]
    assert (delete.command, delete.match, delete.cookie) == (
        "delete_strict",
        stray.match,
        stray.cookie,
    )


def test_reconcile_compares_matches_and_actions_as_the_switch_does() -> None:
    flow = FlowMod(
        "add",
        table=TABLE_FORWARD,
        priority=PRIO_HOST,
        match=Match.of(eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00"), eth_type=0x800),
        actions=(Output(3),),
        cookie=cookie(CookieKind.BASE),
    )
    config = SwitchConfig()
    config.add_flow(flow)
    # as a switch reports it: MAC in capitals, a max_len of its own on a port that is not
    # the controller's
    read = Entry(
        flow.table,
        flow.priority,
        Match.of(eth_type=0x800, eth_dst=("01:00:00:00:00:00".upper(), "01:00:00:00:00:00")),
        (Output(3, 0),),
        cookie=flow.cookie,
    )
    assert reconcile(config, [read], {}, lambda _: True) == []
    to_controller = replace(flow, actions=(Output(CONTROLLER_PORT, 0xFFFF),))
    config.add_flow(to_controller)
    short = replace(read, actions=(Output(CONTROLLER_PORT, 128),))
    assert reconcile(config, [short], {}, lambda _: True) == [to_controller]


# ------------------------------------------------------------------ the runtime: reading, syncing


@pytest.fixture
def switched() -> Iterator[SwitchedRuntime]:
    sr = SwitchedRuntime(make_state(DEFAULT))
    yield sr
    sr.rt.shutdown()
    sr.events.close()


def test_sync_reads_the_switch_and_brings_it_in_line_once(switched: SwitchedRuntime) -> None:
    rt, s1 = switched.rt, switched.switches["s1"]
    res, _ = rt.state.reserve("mec1", "mec2", 20 * M, dst_port=5202)
    released, _ = rt.state.reserve("mec1", "mec2", 5 * M, dst_port=5203)
    s1.table.apply(rt.state.switch_config("s1"))  # what it held before it went away
    rt.state.release(released.id)
    s1.table.apply([LLDP])
    s1.clear()
    done = rt.call(lambda: rt.sync_switch("s1", s1))
    assert done is not None and done.switches == ["s1"]
    assert s1.reads() == ["OFPFlowStatsRequest", "OFPMeterConfigStatsRequest"]
    assert switched.tables()["s1"] == expected(rt.state, "s1", LLDP)
    assert set(switched.meters()["s1"]) == {res.id}
    s1.clear()
    rt.call(lambda: rt.sync_switch("s1", s1))
    assert s1.messages() == [Barrier()]  # nothing to change: a barrier confirms it


def test_a_reply_in_parts_is_read_whole(
    switched: SwitchedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, s1 = switched.rt, switched.switches["s1"]
    flows = list(s1.table.flows())

    def in_two_parts(parsed: Any) -> bool:
        if isinstance(parsed, OFP_PARSER.OFPFlowStatsRequest):
            switched.events.post(flow_stats_reply(s1, parsed.xid, flows[:2], more=True))
            switched.events.post(flow_stats_reply(s1, parsed.xid, flows[2:]))
            return True
        return SimulatedSwitch._answer_read(s1, parsed)

    monkeypatch.setattr(s1, "_answer_read", in_two_parts)
    read, unreadable, meters = rt.call(lambda: rt.read_switch(s1, "s1"))
    assert sorted(map(repr, read)) == sorted(map(repr, flows)) and unreadable == []


def test_a_read_that_is_refused_or_unanswered_fails_naming_the_switch(
    switched: SwitchedRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, s1 = switched.rt, switched.switches["s1"]
    monkeypatch.setattr(runtime_module, "READ_TIMEOUT_S", 0.05)
    monkeypatch.setattr(s1, "_answer_read", lambda parsed: isinstance(parsed, READS))
    with pytest.raises(SwitchError, match="switch s1 did not answer a flow stats request"):
        rt.call(lambda: rt.read_switch(s1, "s1"))

    def refuse(parsed: Any) -> bool:
        switched.events.post(
            error_msg(s1, parsed.xid, OFP.OFPET_BAD_REQUEST, OFP.OFPBRC_BAD_MULTIPART)
        )
        return True

    monkeypatch.setattr(s1, "_answer_read", refuse)
    with pytest.raises(SwitchError, match="switch s1 refused a flow stats request: type=1"):
        rt.call(lambda: rt.read_switch(s1, "s1"))


def test_a_dead_connection_counts_as_not_connected_and_is_skipped(
    switched: SwitchedRuntime,
) -> None:
    rt, s1 = switched.rt, switched.switches["s1"]
    rt.alive = lambda dp: dp is not s1
    assert rt.connected(s1.id) is None and rt.connected(switched.switches["s2"].id) is not None
    s1.clear()
    done = rt.call(lambda: rt.execute([{"s1": [MeterMod("delete", 9)], "s2": []}]))
    assert done.switches == ["s2"] and s1.wire == []
    assert done.skipped == ["s1"]  # said, so that a relocation can say it is not complete
    assert rt.call(lambda: rt.sync_switch("s1", s1)) is None  # nothing sent to a dead one


def test_register_and_forget_keep_the_newest_connection(switched: SwitchedRuntime) -> None:
    rt, old = switched.rt, switched.switches["s1"]
    new = SimulatedSwitch(old.id, "s1", switched.events)
    assert rt.register(new) is old
    assert rt.register(new) is None
    assert not rt.forget(old) and rt.datapaths[old.id] is new
    assert rt.forget(new) and old.id not in rt.datapaths
