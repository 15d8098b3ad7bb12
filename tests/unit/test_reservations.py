"""Bandwidth reservations on the software fabric: admitted traffic leaves its first switch through
its meter and follows its admitted path; admission, resize and release; failures and moves."""

from __future__ import annotations

import pytest

from controller.fabricsim import Trace
from controller.ofmsg import CookieKind, MeterMod, cookie, cookie_kind
from controller.reservations import default_burst_kb
from controller.state import FabricState, StateError
from tests.unit.controller_helpers import (
    DEFAULT,
    Fabric,
    M,
    assert_delivered_once,
    ip_packet,
    make_state,
    switch_names,
    to_batch,
)
from topology.errors import AdmissionError


def send_7000(fabric: Fabric, dport: int = 7000, src: str = "hmec1", dst: str = "hmec3") -> Trace:
    return fabric.send(src, ip_packet(fabric.state, src, dst, dport=dport))


def meters_by_switch(trace: Trace) -> list[tuple[str, tuple[int, ...]]]:
    return [(hop.switch, hop.meters) for hop in trace.hops]


def reservation_flows(fabric: Fabric, rid: int) -> list[tuple[str, object]]:
    ck = cookie(CookieKind.RESERVATION, rid)
    return [(sw, e) for sw, e in fabric.all_flows() if e.cookie == ck]


def desired_configs(state: FabricState) -> dict[str, list[object]]:
    return {sw: state.switch_config(sw) for sw in switch_names(state)}


@pytest.fixture
def fabric() -> Fabric:
    return Fabric(make_state())  # three-sites


def test_reserved_traffic_leaves_s1_through_its_meter_and_follows_its_path(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, proto="tcp", dst_port=7000)
    assert (rec.id, rec.meter_id, rec.path) == (1, 1, ("s1", "core", "s3"))
    fabric.apply_plan(plan)

    trace = send_7000(fabric)
    assert_delivered_once(trace, "hmec3")
    assert meters_by_switch(trace) == [("s1", (1,)), ("core", ()), ("s3", ())]
    # carried by the reservation's flows at every switch, not by the forwarding table
    pkt = ip_packet(state, "hmec1", "hmec3", dport=7000)
    for sw in rec.path:
        assert fabric.sim.table(sw).lookup(pkt, 0).entries[0].cookie == rec.cookie

    assert fabric.meters("s1") == {1: (40_000, default_burst_kb(40 * M))}
    assert all(fabric.meters(sw) == {} for sw in ("s2", "s3", "core"))


def test_traffic_the_reservation_does_not_select_takes_normal_forwarding(fabric: Fabric) -> None:
    state = fabric.state
    fabric.apply_plan(state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)[1])
    for trace in (
        send_7000(fabric, dport=7001),
        fabric.send("hmec1", ip_packet(state, "hmec1", "hmec3", proto="udp", dport=7000)),
        fabric.send("hmec1", ip_packet(state, "hmec1", "hmec3", proto="icmp")),
        fabric.send("hmec1", ip_packet(state, "hmec1", "hmec2", dport=7000)),
    ):
        assert trace.meters == set()
        assert trace.delivered_to and len(trace.delivered_to) == 1
    # the reverse direction is not reserved either (links are full-duplex)
    back = fabric.send("hmec3", ip_packet(state, "hmec3", "hmec1", dport=7000))
    assert_delivered_once(back, "hmec1")
    assert back.meters == set()


def test_reservation_between_sites_resolves_to_their_agents(fabric: Fabric) -> None:
    rec, plan = fabric.state.reserve("mec1", "mec3", 10 * M, dst_port=7000)
    assert (rec.src, rec.dst) == ("hmec1", "hmec3")
    fabric.apply_plan(plan)
    assert send_7000(fabric).meters == {rec.id}


def test_reservation_on_one_switch_meters_and_delivers_there(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("ue1", "fw", 10 * M, proto="udp", dst_port=5000)
    assert rec.path == ("s1",)
    fabric.apply_plan(plan)
    trace = fabric.send("ue1", ip_packet(state, "ue1", "fw", proto="udp", dport=5000))
    assert_delivered_once(trace, "fw")
    assert meters_by_switch(trace) == [("s1", (rec.id,))]


def test_unknown_hosts_are_refused_without_a_trace(fabric: Fabric) -> None:
    state = fabric.state
    before = desired_configs(state)
    with pytest.raises(StateError):
        state.reserve("nobody", "hmec3", 10 * M)
    with pytest.raises(ValueError):
        state.reserve("hmec1", "hmec3", 0)
    assert state.reservations == {} and state.next_reservation == 1
    assert desired_configs(state) == before


def test_a_reservation_that_does_not_fit_changes_nothing(fabric: Fabric) -> None:
    state = fabric.state
    fabric.apply_plan(state.reserve("hmec1", "hmec3", 60 * M, dst_port=7000)[1])
    reservations, next_id = dict(state.reservations), state.next_reservation
    desired, configs = state.desired(), desired_configs(state)
    snapshot = fabric.snapshot()

    # s1 sends at most 100 + 50 Mbit/s, 60 of which are taken
    with pytest.raises(AdmissionError) as info:
        state.reserve("hmec1", "hmec3", 100 * M, dst_port=7001)
    assert info.value.rate_bps == 100 * M

    assert state.reservations == reservations and state.next_reservation == next_id
    assert state.desired() == desired and desired_configs(state) == configs
    assert fabric.snapshot() == snapshot
    # and the next reservation that fits gets the next id
    rec, _ = state.reserve("hmec1", "hmec3", 10 * M, dst_port=7001)
    assert rec.id == next_id


def test_a_reservation_that_only_fits_elsewhere_takes_the_other_path(fabric: Fabric) -> None:
    state = fabric.state
    first, plan = state.reserve("hmec1", "hmec3", 60 * M, dst_port=7000)
    fabric.apply_plan(plan)
    second, plan = state.reserve("hmec1", "hmec3", 50 * M, dst_port=7001)
    fabric.apply_plan(plan)
    assert first.path == ("s1", "core", "s3")
    assert second.path == ("s1", "s2", "s3")  # s1->core has only 40 Mbit/s left

    one, two = send_7000(fabric, 7000), send_7000(fabric, 7001)
    assert_delivered_once(one, "hmec3")
    assert_delivered_once(two, "hmec3")
    assert meters_by_switch(one) == [("s1", (1,)), ("core", ()), ("s3", ())]
    assert meters_by_switch(two) == [("s1", (2,)), ("s2", ()), ("s3", ())]
    assert fabric.meters("s1") == {
        1: (60_000, default_burst_kb(60 * M)),
        2: (50_000, default_burst_kb(50 * M)),
    }
    # unreserved traffic still takes the shortest path
    assert send_7000(fabric, 7002).switches == ("s1", "core", "s3")


def test_resize_up_modifies_the_meter_and_nothing_else(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    flows = {sw: set(fabric.flows(sw)) for sw in switch_names(state)}

    bigger, plan = state.resize(rec.id, 90 * M)
    assert bigger.path == rec.path and bigger.rate_bps == 90 * M
    sent = [m for stage in plan for msgs in stage.values() for m in msgs]
    assert all(isinstance(m, MeterMod) and m.command == "modify" for m in sent), sent
    fabric.apply_plan(plan)

    assert fabric.meters("s1") == {rec.id: (90_000, default_burst_kb(90 * M))}
    assert {sw: set(fabric.flows(sw)) for sw in switch_names(state)} == flows
    assert send_7000(fabric).meters == {rec.id}

    smaller, plan = state.resize(rec.id, 5 * M, burst_kb=100)
    fabric.apply_plan(plan)
    assert fabric.meters("s1") == {rec.id: (5_000, 100)}
    assert smaller.burst_kb == 100


def test_resize_that_does_not_fit_leaves_the_rate(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    other, plan = state.reserve("hmec1", "hmec3", 30 * M, dst_port=7001)
    assert other.path == rec.path  # both on s1->core->s3: 70 Mbit/s left for rec on s1->core
    fabric.apply_plan(plan)
    ceiling = 70 * M
    desired = state.desired()
    with pytest.raises(AdmissionError):
        state.resize(rec.id, ceiling + 1)
    assert state.reservations[rec.id] == rec
    assert state.desired() == desired
    assert fabric.meters("s1")[rec.id][0] == 40_000
    # exactly what is left is fine
    fabric.apply_plan(state.resize(rec.id, ceiling)[1])
    assert fabric.meters("s1")[rec.id][0] == ceiling // 1000
    with pytest.raises(KeyError):
        state.resize(99, 10 * M)


def test_release_removes_meter_and_flows(fabric: Fabric) -> None:
    state = fabric.state
    before = fabric.snapshot()
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    assert reservation_flows(fabric, rec.id)

    fabric.apply_plan(state.release(rec.id))
    assert reservation_flows(fabric, rec.id) == []
    assert fabric.meters("s1") == {}
    assert fabric.snapshot() == before
    trace = send_7000(fabric)
    assert_delivered_once(trace, "hmec3")
    assert trace.meters == set()
    assert state.reservations == {}
    with pytest.raises(KeyError):
        state.release(rec.id)


def test_release_of_one_reservation_leaves_the_others(fabric: Fabric) -> None:
    state = fabric.state
    one, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    before_two = fabric.snapshot()
    two, plan = state.reserve("hmec1", "hmec2", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.release(two.id))
    assert fabric.snapshot() == before_two
    assert send_7000(fabric).meters == {one.id}


def test_every_flow_of_a_reservation_carries_its_cookie(fabric: Fabric) -> None:
    state = fabric.state
    recs = [
        state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000),
        state.reserve("hmec1", "hmec3", 60 * M, dst_port=7001),  # only fits via s2
        state.reserve("hmec2", "hmec1", 10 * M, proto="udp", dst_port=7002),
    ]
    for _, plan in recs:
        fabric.apply_plan(plan)
    ours = [
        (sw, e) for sw, e in fabric.all_flows() if cookie_kind(e.cookie) == CookieKind.RESERVATION
    ]
    for rec, _ in recs:
        mine = [(sw, e) for sw, e in ours if e.cookie == cookie(CookieKind.RESERVATION, rec.id)]
        assert sorted(sw for sw, _ in mine) == sorted(rec.path)
        assert [e.meter for sw, e in mine if sw == rec.path[0]] == [rec.id]
        assert all(e.meter is None for sw, e in mine if sw != rec.path[0])
    assert len(ours) == sum(len(rec.path) for rec, _ in recs)


def test_link_down_on_its_path_readmits_it_on_another_path(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.link_down("s1", "core"))

    moved = state.reservations[rec.id]
    assert moved.path == ("s1", "s2", "s3")
    trace = send_7000(fabric)
    assert_delivered_once(trace, "hmec3")
    assert meters_by_switch(trace) == [("s1", (rec.id,)), ("s2", ()), ("s3", ())]
    assert [sw for sw, _ in reservation_flows(fabric, rec.id)] == ["s1", "s2", "s3"]
    assert fabric.meters("s1") == {rec.id: (40_000, default_burst_kb(40 * M))}

    # back up: it stays where it is (still fits), and everything else uses the link again
    fabric.apply_plan(state.link_up("s1", "core"))
    assert state.reservations[rec.id].path == ("s1", "s2", "s3")
    assert send_7000(fabric, 7001).switches == ("s1", "core", "s3")


def test_link_down_elsewhere_leaves_the_reservation_alone(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    flows = reservation_flows(fabric, rec.id)
    fabric.apply_plan(state.link_down("s2", "s3"))
    assert state.reservations[rec.id] == rec
    assert reservation_flows(fabric, rec.id) == flows


def test_link_down_without_room_elsewhere_keeps_the_reservation_until_the_link_is_back(
    fabric: Fabric,
) -> None:
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 60 * M, dst_port=7000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.link_down("s1", "core"))  # s1->s2 has only 50 Mbit/s

    assert state.reservations[rec.id].path == rec.path
    # everything else is routed around the failure
    assert_delivered_once(send_7000(fabric, 7001), "hmec3")
    # and the controller keeps working
    fabric.apply_plan(state.relocate("video", "s2")[2])
    other, plan = state.reserve("hmec2", "hmec3", 10 * M, dst_port=7000)
    fabric.apply_plan(plan)

    fabric.apply_plan(state.link_up("s1", "core"))
    trace = send_7000(fabric)
    assert_delivered_once(trace, "hmec3")
    assert meters_by_switch(trace) == [("s1", (rec.id,)), ("core", ()), ("s3", ())]


def test_reservation_follows_its_destination_when_it_is_relocated(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("ue1", "video", 10 * M, dst_port=9000)
    assert rec.path == ("s1",)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.relocate("video", "s3")[2])

    assert state.reservations[rec.id].path == ("s1", "core", "s3")
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=9000))
    assert_delivered_once(trace, "video")
    assert meters_by_switch(trace) == [("s1", (rec.id,)), ("core", ()), ("s3", ())]


def test_reservation_follows_its_source_when_it_is_relocated(fabric: Fabric) -> None:
    state = fabric.state
    rec, plan = state.reserve("video", "hmec3", 10 * M, dst_port=9000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.relocate("video", "s2")[2])
    moved = state.reservations[rec.id]
    assert moved.path[0] == "s2" and moved.path[-1] == "s3"
    trace = fabric.send("video", ip_packet(state, "video", "hmec3", dport=9000))
    assert_delivered_once(trace, "hmec3")
    assert meters_by_switch(trace)[0] == ("s2", (rec.id,))
    assert fabric.meters("s1") == {} and set(fabric.meters("s2")) == {rec.id}


def test_a_destination_that_moves_where_no_path_has_room_is_never_misdelivered(
    fabric: Fabric,
) -> None:
    state = fabric.state
    fabric.apply_plan(state.reserve("ue1", "hmec2", 95 * M, dst_port=7000)[1])  # via core
    rec, plan = state.reserve("ue1", "video", 60 * M, dst_port=9000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.relocate("video", "s3")[2])  # s1 has 5 + 50 Mbit/s left

    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=9000))
    assert_delivered_once(trace, "video")  # best effort, and never to whoever took its old port
    assert rec.id not in trace.meters
    assert reservation_flows(fabric, rec.id) == []


def test_a_reservation_left_behind_by_its_destination_follows_when_a_link_comes_back(
    fabric: Fabric,
) -> None:
    state = fabric.state
    rec, plan = state.reserve("ue1", "video", 60 * M, dst_port=9000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.link_down("s1", "core"))
    fabric.apply_plan(state.relocate("video", "s3")[2])  # only s1->s2 (50 Mbit/s) is left
    assert reservation_flows(fabric, rec.id) == []

    fabric.apply_plan(state.link_up("s1", "core"))
    assert state.reservations[rec.id].path == ("s1", "core", "s3")
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=9000))
    assert_delivered_once(trace, "video")
    assert meters_by_switch(trace) == [("s1", (rec.id,)), ("core", ()), ("s3", ())]


def test_a_reservation_left_without_room_follows_when_another_is_released(
    fabric: Fabric,
) -> None:
    state = fabric.state
    big, plan = state.reserve("ue1", "hmec2", 95 * M, dst_port=7000)  # via core
    fabric.apply_plan(plan)
    rec, plan = state.reserve("ue1", "video", 60 * M, dst_port=9000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.relocate("video", "s3")[2])  # s1 has 5 + 50 Mbit/s left
    assert reservation_flows(fabric, rec.id) == []

    fabric.apply_plan(state.resize(big.id, 50 * M)[1])  # not enough room yet: 45 + 5
    assert reservation_flows(fabric, rec.id) == []
    fabric.apply_plan(state.release(big.id))  # room again on s1 -> core
    assert state.reservations[rec.id].path == ("s1", "core", "s3")
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=9000))
    assert_delivered_once(trace, "video")
    assert meters_by_switch(trace) == [("s1", (rec.id,)), ("core", ()), ("s3", ())]


def test_a_reservation_left_without_room_follows_when_another_shrinks(fabric: Fabric) -> None:
    state = fabric.state
    big, plan = state.reserve("ue1", "hmec2", 95 * M, dst_port=7000)
    fabric.apply_plan(plan)
    rec, plan = state.reserve("ue1", "video", 60 * M, dst_port=9000)
    fabric.apply_plan(plan)
    fabric.apply_plan(state.relocate("video", "s3")[2])
    fabric.apply_plan(state.resize(big.id, 30 * M)[1])  # 70 Mbit/s free on s1 -> core
    assert state.reservations[rec.id].path == ("s1", "core", "s3")
    trace = fabric.send("ue1", ip_packet(state, "ue1", "video", dport=9000))
    assert meters_by_switch(trace) == [("s1", (rec.id,)), ("core", ()), ("s3", ())]


def test_reservations_of_the_same_traffic_share_one_meter_at_their_summed_rate(
    fabric: Fabric,
) -> None:
    """Two migrations between the same two agents: one meter, the rates add up."""
    state = fabric.state
    a, plan = state.reserve("hmec1", "hmec3", 10 * M, dst_port=7000, owner="mig-1")
    fabric.apply_plan(plan)
    b, plan = state.reserve("hmec1", "hmec3", 20 * M, dst_port=7000, owner="mig-2")
    fabric.apply_plan(plan)
    assert fabric.meters("s1") == {a.id: (30_000, a.burst_kb + b.burst_kb)}
    trace = send_7000(fabric)
    assert_delivered_once(trace, "hmec3")
    assert meters_by_switch(trace)[0] == ("s1", (a.id,))

    fabric.apply_plan(state.release(a.id))  # the next one's meter takes over, at its own rate
    assert fabric.meters("s1") == {b.id: (20_000, b.burst_kb)}
    trace = send_7000(fabric)
    assert_delivered_once(trace, "hmec3")
    assert meters_by_switch(trace)[0] == ("s1", (b.id,))
    fabric.apply_plan(state.release(b.id))
    assert fabric.meters("s1") == {} and reservation_flows(fabric, b.id) == []


def test_reservations_in_the_default_scenario() -> None:
    state = make_state(DEFAULT)
    fabric = Fabric(state)
    rec, plan = state.reserve("mec1", "mec2", 100 * M, dst_port=7000)
    assert rec.path == ("s1", "core", "s2")
    fabric.apply_plan(plan)
    assert_delivered_once(send_7000(fabric, src="hmec1", dst="hmec2"), "hmec2")
    with pytest.raises(AdmissionError):
        state.reserve("mec1", "mec2", 1, dst_port=7001)  # one path only, and it is full
    fabric.apply_plan(state.release(rec.id))
    assert fabric.meters("s1") == {}


def test_a_switch_that_missed_a_release_is_cleaned_up_by_its_full_config(fabric: Fabric) -> None:
    """s1 was disconnected while reservation 1 went away: on reconnect it gets its full config,
    which must remove the reservation's meter as well as its flows."""
    state = fabric.state
    fresh = Fabric(make_state())
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, dst_port=7000)
    fabric.apply_plan(plan)
    for stage in state.release(rec.id):
        fabric.apply(to_batch(state, {sw: msgs for sw, msgs in stage.items() if sw != "s1"}))
    assert fabric.meters("s1") == {rec.id: (40_000, default_burst_kb(40 * M))}

    fabric.apply({state.dpid("s1"): state.switch_config("s1")})  # s1 reconnects
    assert fabric.snapshot() == fresh.snapshot()
