"""Reserved traffic is marked DSCP 46 (EF) at its first switch, so that a shaped link
(mininet_scenarios.shaping) sends it first; the decision code returns the marking as OpenFlow
actions, checked here as messages and on the software fabric."""

from __future__ import annotations

from controller.ofmsg import FlowMod, Output, SetField
from controller.reservations import ReservationRecord, reservation_flows
from ground.defaults import RESERVED_DSCP
from tests.unit.controller_helpers import Fabric, M, ip_packet, make_state


def test_the_first_switch_meters_marks_then_forwards_the_others_only_forward() -> None:
    state = make_state()  # three-sites
    topo = state.declared
    rec = ReservationRecord(
        id=5,
        src="hmec1",
        dst="hmec3",
        rate_bps=40 * M,
        burst_kb=12_000,
        path=("s1", "core", "s3"),
        ip_src=str(state.hosts["hmec1"].ip),
        ip_dst=str(state.hosts["hmec3"].ip),
        dst_port=7000,
    )
    first, meter, flows = reservation_flows(topo, rec, topo.attachment("hmec3"))
    assert first == "s1" and meter.meter_id == 5
    [(s1, f1), (core, f2), (s3, f3)] = flows
    assert (s1, core, s3) == ("s1", "core", "s3")
    assert isinstance(f1, FlowMod) and f1.meter == 5
    assert f1.actions == (SetField("ip_dscp", 46), Output(topo.port_to("s1", "core")))
    assert RESERVED_DSCP == 46
    assert f2.actions == (Output(topo.port_to("core", "s3")),) and f2.meter is None
    assert f3.actions == (Output(topo.attachment("hmec3").port),) and f3.meter is None


def test_reserved_packets_arrive_marked_ef_and_other_traffic_unmarked() -> None:
    fabric = Fabric(make_state())
    state = fabric.state
    rec, plan = state.reserve("hmec1", "hmec3", 40 * M, proto="tcp", dst_port=7000)
    fabric.apply_plan(plan)

    reserved = fabric.send("hmec1", ip_packet(state, "hmec1", "hmec3", dport=7000))
    [(host, pkt)] = reserved.delivered
    assert host == "hmec3" and pkt.get("ip_dscp") == RESERVED_DSCP
    assert reserved.meters == {rec.meter_id}

    other = fabric.send("hmec1", ip_packet(state, "hmec1", "hmec3", dport=7001))
    [(host, pkt)] = other.delivered
    assert host == "hmec3" and "ip_dscp" not in pkt and other.meters == set()

    back = fabric.send("hmec3", ip_packet(state, "hmec3", "hmec1", sport=7000))
    [(host, pkt)] = back.delivered
    assert host == "hmec1" and "ip_dscp" not in pkt  # the ACKs' direction is not reserved
