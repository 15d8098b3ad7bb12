"""The controller is transactional (issue 10, item 2): the model is committed only once the
switches confirmed a change; when a switch refuses (or does not answer), the model goes back to
where it was, the switches that were sent anything get the difference reversed, and the caller
gets a 502 naming the switch, with nothing left behind.

The switches are `SimulatedSwitch`es: os-ken serialises what they are sent, they apply it to a
software flow table (meters modelled) and answer barriers and errors on an event thread of their
own, as OVS does; each can be told to refuse chosen messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller import runtime as runtime_module
from controller.api_models import ReservationRequest
from controller.facade import Northbound
from controller.ofmsg import (
    PRIO_HOLD,
    CookieKind,
    FlowMod,
    Message,
    MeterMod,
    cookie,
)
from controller.rest import create_app
from controller.runtime import SwitchError
from controller.state import FabricState
from tests.unit.controller_helpers import (
    THREE_SITES,
    SwitchedRuntime,
    assert_delivered_once,
    ip_packet,
    make_state,
    refuse_first,
)

RES = {"src": "mec1", "dst": "mec3", "rate": "10Mbit", "match": {"dst_port": 7000}}
RES1 = cookie(CookieKind.RESERVATION, 1)


class World:
    """three-sites.yaml over software switches, the facade and the REST app, a state file."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_file = tmp_path / "state.json"
        self.fabric = SwitchedRuntime(make_state(THREE_SITES), self.state_file)
        self.nb = Northbound(self.fabric.rt)
        self.http = TestClient(create_app(self.nb))

    @property
    def state(self) -> FabricState:
        return self.fabric.state

    def refuse(self, switch: str, pred: Callable[[Message], bool]) -> None:
        self.fabric.switches[switch].refuse = pred

    def sent_since(self, switch: str, mark: int) -> list[Message]:
        return self.fabric.switches[switch].messages(since=mark)

    def marks(self) -> dict[str, int]:
        return {name: len(sw.wire) for name, sw in self.fabric.switches.items()}

    def observe(self) -> dict[str, Any]:
        """The model (all of it), what it saved, and every switch's flows and meters."""
        saved = json.loads(self.state_file.read_text()) if self.state_file.exists() else None
        return {
            "model": self.fabric.rt.call(self.state.snapshot),
            "saved": saved,
            "tables": self.fabric.tables(),
        }

    def close(self) -> None:
        for timer in list(self.nb.holds._timers.values()):
            timer.cancel()
        self.fabric.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def _is_meter_add(msg: Message) -> bool:
    return isinstance(msg, MeterMod) and msg.command == "add"


def _is_flow(command: str, flow_cookie: int | None = None) -> Callable[[Message], bool]:
    def pred(msg: Message) -> bool:
        return (
            isinstance(msg, FlowMod)
            and msg.command == command
            and (flow_cookie is None or msg.cookie == flow_cookie)
        )

    return pred


def _bad_gateway(response: Any, switch: str) -> dict[str, Any]:
    assert response.status_code == 502, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "context"}
    assert body["context"]["switches"] == [switch]
    assert body["context"]["undone"] is True and body["context"]["unconfirmed"] == []
    assert f"{switch}: " in body["error"] and "refused" in body["error"]
    assert body["error"].endswith("the change was undone")
    return body


# ------------------------------------------------------------------------------ reservations


def test_a_reservation_whose_meter_is_refused_leaves_nothing_behind(world: World) -> None:
    before = world.observe()
    world.refuse("s1", refuse_first(_is_meter_add))
    _bad_gateway(world.http.post("/v1/reservations", json=RES), "s1")
    assert world.observe() == before
    assert world.http.get("/v1/reservations").json() == []
    # the switch behaves again: the same request goes through, with the id never given out
    response = world.http.post("/v1/reservations", json=RES)
    assert response.status_code == 201, response.text
    assert response.json()["id"] == 1
    assert world.fabric.meters() == {"s1": {1: (10_000, 3000)}}


def test_a_reservation_refused_at_its_last_switch_is_undone_on_the_switches_that_took_it(
    world: World,
) -> None:
    before = world.observe()
    marks = world.marks()
    world.refuse("s3", refuse_first(_is_flow("add", RES1)))
    _bad_gateway(world.http.post("/v1/reservations", json=RES), "s3")
    # s1 took the meter and its flow, core its flow: both were taken back
    s1 = world.sent_since("s1", marks["s1"])
    assert any(_is_meter_add(m) for m in s1)
    assert any(isinstance(m, MeterMod) and m.command == "delete" for m in s1[3:])
    assert any(_is_flow("delete_strict", RES1)(m) for m in world.sent_since("core", marks["core"]))
    assert world.sent_since("s2", marks["s2"]) == []  # not on the path: never touched
    assert world.observe() == before


def test_a_refused_release_keeps_the_reservation_its_meter_and_its_rate(world: World) -> None:
    rid = world.http.post("/v1/reservations", json=RES).json()["id"]
    before = world.observe()
    topology = world.http.get("/v1/topology").json()
    world.refuse("s1", refuse_first(lambda m: isinstance(m, MeterMod) and m.command == "delete"))
    _bad_gateway(world.http.delete(f"/v1/reservations/{rid}"), "s1")
    assert world.observe() == before
    assert [r["id"] for r in world.http.get("/v1/reservations").json()] == [rid]
    assert world.fabric.meters() == {"s1": {rid: (10_000, 3000)}}
    assert world.http.get("/v1/topology").json() == topology
    # and released for real once the switch takes it
    assert world.http.delete(f"/v1/reservations/{rid}").status_code == 204
    assert world.fabric.meters() == {}


def test_a_refused_resize_keeps_the_rate(world: World) -> None:
    rid = world.http.post("/v1/reservations", json=RES).json()["id"]
    before = world.observe()
    world.refuse("s1", refuse_first(lambda m: isinstance(m, MeterMod) and m.command == "modify"))
    _bad_gateway(world.http.patch(f"/v1/reservations/{rid}", json={"rate": "20Mbit"}), "s1")
    assert world.observe() == before
    assert world.http.get(f"/v1/reservations/{rid}").json()["rate_bps"] == 10_000_000


# ------------------------------------------------------------------------------ relocation


def test_a_relocation_refused_half_way_goes_back_make_before_break(world: World) -> None:
    before = world.observe()
    marks = world.marks()
    # video s1 -> s3: s3 first, then its neighbours (core, s2), then s1, then the removals
    world.refuse("core", refuse_first(_is_flow("add")))
    body = _bad_gateway(
        world.http.post("/v1/relocations", json={"instance": "video", "to": "mec3"}), "core"
    )
    assert "the change was undone" in body["error"]
    assert world.sent_since("s3", marks["s3"]), "the first ring was sent before core refused"
    assert world.observe() == before
    assert world.state.hosts["video"].switch == "s1"
    # what the switches hold still delivers the UE's traffic to video at its old place
    sim = world.fabric.sim()
    assert_delivered_once(sim.send("ue1", ip_packet(world.state, "ue1", "video")), "video")
    assert_delivered_once(sim.send("hmec3", ip_packet(world.state, "hmec3", "video")), "video")
    # and the relocation goes through once core takes it
    response = world.http.post("/v1/relocations", json={"instance": "video", "to": "mec3"})
    assert response.status_code == 200, response.text


def test_a_relocation_whose_removals_are_refused_keeps_the_old_place(world: World) -> None:
    before = world.observe()
    world.refuse("s1", refuse_first(_is_flow("delete_strict")))
    _bad_gateway(world.http.post("/v1/relocations", json={"instance": "video", "to": "mec3"}), "s1")
    assert world.observe() == before


# ------------------------------------------------------------------------------ holds


def test_a_refused_hold_holds_nothing(world: World) -> None:
    before = world.observe()
    at = world.state.hosts["video"].switch  # the one switch a hold goes to
    world.refuse(at, refuse_first(lambda m: isinstance(m, FlowMod) and m.priority == PRIO_HOLD))
    _bad_gateway(world.http.post("/v1/instances/video/hold", json={"timeout_s": 5}), at)
    assert world.observe() == before
    assert world.nb.holds.held == {} and world.nb.holds._timers == {}


def test_a_refused_hold_release_keeps_the_hold_and_its_packets(world: World) -> None:
    assert world.http.post("/v1/instances/video/hold", json={"timeout_s": 5}).status_code == 200
    before = world.observe()
    at = world.state.hosts["video"].switch
    world.refuse(at, refuse_first(_is_flow("delete_strict")))
    _bad_gateway(world.http.delete("/v1/instances/video/hold"), at)
    assert world.observe() == before
    assert "video" in world.nb.holds.held and world.state.holds == {"video"}
    assert world.http.delete("/v1/instances/video/hold").status_code == 200
    assert world.state.holds == set()


# ------------------------------------------------------------------------------ when undoing fails


def test_a_switch_that_refuses_the_undo_too_gets_its_whole_config(world: World) -> None:
    before = world.observe()
    # refuses the reservation's flow, and its removal: only the whole config (delete by kind,
    # re-add what is in force) brings it back
    world.refuse("s3", lambda m: isinstance(m, FlowMod) and m.cookie == RES1)
    _bad_gateway(world.http.post("/v1/reservations", json=RES), "s3")
    assert world.observe() == before


def test_a_switch_that_does_not_answer_is_named_and_the_model_goes_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "BARRIER_TIMEOUT_S", 0.05)
    before = world.observe()
    world.fabric.switches["s3"].answer_barriers = False
    response = world.http.post("/v1/reservations", json=RES)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["context"]["switches"] == ["s3"] and body["context"]["undone"] is False
    assert body["context"]["unconfirmed"] == ["s3"]
    assert "did not answer a barrier" in body["error"]
    assert "not confirmed by s3" in body["error"]
    after = world.observe()
    assert after["model"] == before["model"] and after["saved"] == before["saved"]
    # the switches that answered are back as they were
    assert {k: v for k, v in after["tables"].items() if k != "s3"} == {
        k: v for k, v in before["tables"].items() if k != "s3"
    }


# ------------------------------------------------------------------------------ the mechanism


def test_anything_failing_while_sending_rolls_back_too(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = world.observe()
    real = runtime_module.encode
    calls = [0]

    def encode(dp: Any, msg: Message) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise TypeError("cannot encode")
        return real(dp, msg)

    monkeypatch.setattr(runtime_module, "encode", encode)
    with pytest.raises(TypeError):
        world.nb.reserve(ReservationRequest.model_validate(RES))
    monkeypatch.setattr(runtime_module, "encode", real)
    assert world.observe() == before


def test_a_transaction_saves_only_what_the_switches_confirmed(world: World) -> None:
    rt = world.fabric.rt
    assert not world.state_file.exists()

    def job() -> None:
        with rt.transaction() as tx:
            _, plan = rt.state.reserve("mec1", "mec3", 10**6)
            tx.execute(plan)

    world.refuse("s1", refuse_first(_is_meter_add))
    with pytest.raises(SwitchError) as failure:
        rt.call(job)
    assert failure.value.undone and failure.value.switches == ("s1",)
    assert not world.state_file.exists()
    rt.call(job)
    assert [r["id"] for r in json.loads(world.state_file.read_text())["reservations"]] == [1]


def test_a_model_error_inside_a_transaction_sends_nothing(world: World) -> None:
    rt = world.fabric.rt
    marks = world.marks()
    before = world.observe()

    def job() -> None:
        with rt.transaction():
            rt.state.next_reservation += 5  # a change half made ...
            raise ValueError("... then a refusal of the model's own")

    with pytest.raises(ValueError):
        rt.call(job)
    assert world.observe() == before
    assert world.marks() == marks
