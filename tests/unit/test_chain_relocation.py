"""A chain's functions moved in one change (`FabricState.relocate_many`, `POST
/v1/relocations/batch`): every move checked before any is made, one plan for all, and the
chain's traffic through every function at the new place once it is applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.fabricsim import LoopError
from controller.facade import Northbound
from controller.rest import create_app
from controller.state import StateError, UnknownName
from tests.unit.controller_helpers import (
    THREE_SITES,
    Fabric,
    SwitchedRuntime,
    assert_delivered_once,
    forward,
    ip_packet,
    make_state,
)


def chain_legs(fabric: Fabric) -> list[tuple[str, dict[str, object], str]]:
    """(sender, packet, who must get it) for every leg of ue1 -> fw -> video and back."""
    state = fabric.state
    fw_mac, video_mac, ue_mac = (state.hosts[h].mac or "" for h in ("fw", "video", "ue1"))
    request = ip_packet(state, "ue1", "video", dport=8080)
    reply = ip_packet(state, "video", "ue1", sport=8080, dport=40000)
    return [
        ("ue1", request, "fw"),
        ("fw", forward(request, fw_mac, video_mac), "video"),
        ("video", reply, "fw"),
        ("fw", forward(reply, fw_mac, ue_mac), "ue1"),
    ]


def test_both_functions_move_in_one_plan_and_the_chain_runs_through_them_there() -> None:
    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    moved, plan = state.relocate_many([("fw", "mec3", 20), ("video", "mec3", 21)])
    assert [(old.switch, new.switch, new.port) for old, new in moved] == [
        ("s1", "s3", 20),
        ("s1", "s3", 21),
    ]

    def no_loops(_i: int, _stage: object) -> None:
        for sender, pkt, _ in chain_legs(fabric):
            try:
                trace = fabric.send(sender, pkt)
            except LoopError as exc:
                pytest.fail(f"{sender}: loops mid-change: {exc}")
            assert len(trace.delivered_to) <= 1, trace

    fabric.apply_plan(plan, after_stage=no_loops)
    for sender, pkt, receiver in chain_legs(fabric):
        trace = fabric.send(sender, pkt)
        assert_delivered_once(trace, receiver)
        assert trace.hops[-1].switch == ("s3" if receiver != "ue1" else state.hosts["ue1"].switch)
    assert {state.hosts["fw"].port, state.hosts["video"].port} == {20, 21}


def test_functions_may_trade_ports_in_one_change() -> None:
    state = make_state(THREE_SITES)
    fw, video = state.hosts["fw"], state.hosts["video"]
    assert fw.switch == video.switch
    moved, _ = state.relocate_many([("fw", fw.switch, video.port), ("video", fw.switch, fw.port)])
    assert (state.hosts["fw"].port, state.hosts["video"].port) == (video.port, fw.port)
    assert len(moved) == 2


@pytest.mark.parametrize(
    ("moves", "error", "words"),
    [
        ([("fw", "mec3", 20), ("ghost", "mec3", 21)], UnknownName, "no host called 'ghost'"),
        ([("fw", "mec3", 20), ("video", "nowhere", 21)], UnknownName, "no site or switch"),
        ([("fw", "mec3", 20), ("video", "mec3", 20)], StateError, "asked for fw and video"),
        ([("fw", "mec3", 20), ("fw", "mec2", 21)], StateError, "only once"),
        ([("fw", "mec3", 20), ("video", "mec3", None)], None, ""),  # a free port: fine
        ([], StateError, "no moves"),
    ],
)
def test_a_move_that_cannot_be_made_changes_nothing(
    moves: list[tuple[str, str, int | None]], error: type[Exception] | None, words: str
) -> None:
    state = make_state(THREE_SITES)
    before = state.snapshot()
    if error is None:
        state.relocate_many(moves)
        assert state.hosts["video"].port not in (20, state.hosts["fw"].port)
        return
    with pytest.raises(error, match=words):
        state.relocate_many(moves)
    assert state.snapshot() == before


def test_a_move_onto_the_port_of_a_host_that_stays_is_refused() -> None:
    state = make_state(THREE_SITES)
    ue = state.hosts["ue1"]
    before = state.snapshot()
    with pytest.raises(StateError, match="taken by ue1"):
        state.relocate_many([("fw", ue.switch, 30), ("video", ue.switch, ue.port)])
    assert state.snapshot() == before


# ------------------------------------------------------------------------------ REST


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    fabric = SwitchedRuntime(make_state(THREE_SITES), tmp_path / "state.json")
    yield TestClient(create_app(Northbound(fabric.rt)))
    fabric.close()


def test_rest_moves_a_chain_in_one_change(http: TestClient) -> None:
    body = {"moves": [{"instance": "fw", "to": "mec3"}, {"instance": "video", "to": "mec3"}]}
    response = http.post("/v1/relocations/batch", json=body)
    assert response.status_code == 200, response.text
    view = response.json()
    assert [(m["instance"], m["new_switch"]) for m in view["moves"]] == [
        ("fw", "s3"),
        ("video", "s3"),
    ]
    assert view["moves"][0]["new_port"] != view["moves"][1]["new_port"]
    assert view["flow_mods"] > 0 and view["switchover_ms"] >= 0 and view["switches_pending"] == []
    where = {i["name"]: i["switch"] for i in http.get("/v1/instances").json()}
    assert where["fw"] == where["video"] == "s3"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"moves": []}, 422),
        ({"moves": [{"instance": "fw", "to": "mec3"}] * 17}, 422),
        ({"moves": [{"instance": "fw", "to": "mec3"}, {"instance": "ghost", "to": "mec3"}]}, 404),
        ({"moves": [{"instance": "fw", "to": "mec3", "port": 0}]}, 422),
    ],
)
def test_rest_refuses_a_bad_batch_and_moves_nothing(
    http: TestClient, body: dict[str, object], status: int
) -> None:
    before = http.get("/v1/instances").json()
    response = http.post("/v1/relocations/batch", json=body)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert http.get("/v1/instances").json() == before


def test_a_held_chain_packet_released_where_it_was_caught_still_meets_the_firewall() -> None:
    """While video (the chain's server) is held, a packet from the UE to it is caught at the
    UE's switch, before fw. Released through that switch's tables (what the controller sends:
    a packet-out to OFPP_TABLE there, test_app), it goes to fw first, as the chain says; sent
    out of video's port instead, it would have skipped the firewall."""
    from controller.ofmsg import CONTROLLER_PORT

    state = make_state(THREE_SITES)
    fabric = Fabric(state)
    request = ip_packet(state, "ue1", "video", dport=8080)
    ue_switch = state.hosts["ue1"].switch
    fabric.apply_plan(state.hold("video"))
    held = fabric.send("ue1", request)
    assert held.delivered_to == () and [s for s, _ in held.packet_ins] == [ue_switch]
    fabric.apply_plan(state.unhold("video"))
    released = fabric.sim.inject(ue_switch, CONTROLLER_PORT, request)
    assert_delivered_once(released, "fw")
