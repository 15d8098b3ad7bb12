"""controller.runtime: the worker, sending plans with barriers, switch errors, shutdown.

The switches are `SwitchStub`s (os-ken serialises everything sent to them) that answer barriers
and refuse messages on a thread of their own, as os-ken's event loop delivers what OVS says.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import runtime as runtime_module
from controller.ofmsg import (
    TABLE_FORWARD,
    Barrier,
    FlowMod,
    Match,
    Message,
    MeterMod,
    Output,
)
from controller.plan import Plan
from controller.runtime import Runtime, SwitchError
from controller.store import StateStore
from tests.unit.controller_helpers import (
    DEFAULT,
    OFP_PARSER,
    EventThread,
    SwitchStub,
    canonical,
    make_state,
)


def flow(port: int, mac: str = "02:00:0a:00:00:0c") -> FlowMod:
    return FlowMod(
        "add",
        table=TABLE_FORWARD,
        priority=100,
        match=Match.of(eth_dst=mac),
        actions=(Output(port),),
    )


class Fabric:
    """A runtime over the default scenario, its switches stubbed, a journal of the wire."""

    def __init__(self, tmp_path: Path, reply_delay_s: float = 0.0) -> None:
        self.rt = Runtime(make_state(DEFAULT), StateStore(tmp_path / "state.json"))
        self.journal: list[tuple[str, str, Any]] = []
        self.reply_delay_s = reply_delay_s
        self._lock = threading.Lock()
        self.events = EventThread(self._deliver)
        self.switches: dict[str, SwitchStub] = {}

    def connect(self, name: str, **kwargs: Any) -> SwitchStub:
        fabric = self

        class Journaled(SwitchStub):
            def send_msg(self, msg: Any, close_socket: bool = False) -> None:
                with fabric._lock:
                    fabric.journal.append(("send", name, type(msg).__name__))
                super().send_msg(msg, close_socket)

        dp = Journaled(self.rt.state.dpid(name), self.events, **kwargs)
        self.rt.register(dp)
        self.switches[name] = dp
        return dp

    def _deliver(self, msg: Any) -> None:
        name = self.rt.state.switch_name(msg.datapath.id)
        if isinstance(msg, OFP_PARSER.OFPBarrierReply):
            time.sleep(self.reply_delay_s)
            with self._lock:
                self.journal.append(("reply", str(name), msg.xid))
            self.rt.barrier_reply(msg.datapath.id, msg.xid)
        elif isinstance(msg, OFP_PARSER.OFPErrorMsg):
            with self._lock:
                self.journal.append(("error", str(name), msg.xid))
            self.rt.switch_error(msg.datapath.id, msg.xid, f"type={msg.type} code={msg.code}")

    def close(self) -> None:
        self.rt.shutdown()
        self.events.close()


@pytest.fixture
def fabric(tmp_path: Path) -> Iterator[Fabric]:
    f = Fabric(tmp_path)
    yield f
    f.close()


# ------------------------------------------------------------------------------ the worker


def test_jobs_run_one_at_a_time_in_order_on_the_worker(fabric: Fabric) -> None:
    ran: list[tuple[int, str]] = []
    running = [0]
    overlap = []

    def job(i: int) -> int:
        running[0] += 1
        overlap.append(running[0])
        time.sleep(0.002)
        ran.append((i, threading.current_thread().name))
        running[0] -= 1
        return i

    futures = [fabric.rt.submit(lambda i=i: job(i)) for i in range(20)]  # type: ignore[misc]
    assert fabric.rt.call(lambda: job(20)) == 20
    assert [f.result(1) for f in futures] == list(range(20))
    assert [i for i, _ in ran] == list(range(21))
    assert len({name for _, name in ran}) == 1 and ran[0][1].startswith("mecmig-worker")
    assert ran[0][1] != threading.current_thread().name
    assert max(overlap) == 1


def test_call_raises_the_jobs_own_exception(fabric: Fabric) -> None:
    def job() -> None:
        raise KeyError("no reservation 9")

    with pytest.raises(KeyError, match="no reservation 9"):
        fabric.rt.call(job)


def test_a_failed_job_nobody_waits_for_is_logged(
    fabric: Fabric, caplog: pytest.LogCaptureFixture
) -> None:
    def job() -> None:
        raise RuntimeError("lost in the worker")

    with caplog.at_level(logging.ERROR, logger="controller.runtime"):
        future = fabric.rt.submit(job)
        with pytest.raises(RuntimeError):
            future.result(5)
        fabric.rt.call(lambda: None)
    assert "controller job failed: lost in the worker" in caplog.text


def test_shutdown_cancels_queued_jobs_waits_for_the_running_one_and_stops_the_worker(
    fabric: Fabric,
) -> None:
    started, release = threading.Event(), threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(5)
        return "finished"

    first = fabric.rt.submit(blocking)
    queued = fabric.rt.submit(lambda: "never")
    assert started.wait(5)
    stopper = threading.Thread(target=fabric.rt.shutdown)
    stopper.start()
    deadline = time.monotonic() + 5
    while not queued.cancelled() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert queued.cancelled() and stopper.is_alive()  # still waiting for the running job
    release.set()
    stopper.join(5)
    assert not stopper.is_alive() and first.result(0) == "finished"
    assert not any(t.name.startswith("mecmig-worker") and t.is_alive() for t in _workers(fabric))
    with pytest.raises(RuntimeError):
        fabric.rt.submit(lambda: None)


def _workers(fabric: Fabric) -> list[threading.Thread]:
    return list(fabric.rt._worker._threads)


def test_save_writes_the_state_to_its_store(fabric: Fabric, tmp_path: Path) -> None:
    fabric.rt.state.reserve("ue1", "video", 1_000_000)
    fabric.rt.save()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved == json.loads(json.dumps(fabric.rt.state.to_dict()))


# ------------------------------------------------------------------------------ sending plans


def _sent(dp: SwitchStub) -> list[Message]:
    return dp.messages()


def test_execute_sends_stage_after_stage_each_confirmed_by_barriers(tmp_path: Path) -> None:
    fabric = Fabric(tmp_path, reply_delay_s=0.02)
    try:
        s1, s2, core = (fabric.connect(n) for n in ("s1", "s2", "core"))
        meter = MeterMod("add", 7, rate_kbps=1000, burst_kb=300)
        plan: Plan = [
            {"s1": [meter, flow(3), flow(4, "02:00:0a:00:00:0b")], "core": [flow(1)]},
            {"s2": [flow(1)], "s1": [flow(1, "02:00:0a:00:00:02")]},
        ]
        done = fabric.rt.execute(plan)

        assert _sent(s1) == [
            meter,
            flow(3),
            flow(4, "02:00:0a:00:00:0b"),
            Barrier(),
            flow(1, "02:00:0a:00:00:02"),
            Barrier(),
        ]
        assert _sent(core) == [flow(1), Barrier()]
        assert _sent(s2) == [flow(1), Barrier()]
        # nothing of the second stage went out before both barriers of the first were answered
        journal = fabric.journal
        replies = [i for i, e in enumerate(journal) if e[0] == "reply"]
        first_of_stage_2 = next(i for i, e in enumerate(journal) if e[:2] == ("send", "s2"))
        assert len(replies) == 4 and replies[1] < first_of_stage_2
        assert journal[-1][0] == "reply"  # and execute returned only after the last one
        assert done.flow_mods == 5
        assert done.switches == ["core", "s1", "s2"]
        assert done.elapsed_ms >= 2 * 20
    finally:
        fabric.close()


def test_without_waiting_no_barriers_are_sent(fabric: Fabric) -> None:
    s1 = fabric.connect("s1")
    done = fabric.rt.execute([{"s1": [flow(3)]}, {"s1": [flow(4)]}], wait=False)
    assert _sent(s1) == [flow(3), flow(4)]
    assert done.flow_mods == 2 and done.switches == ["s1"]


def test_a_refused_message_fails_the_call_with_a_switch_error_naming_it(fabric: Fabric) -> None:
    fabric.connect("s1", refuse=lambda m: isinstance(m, MeterMod))
    fabric.connect("core")
    meter = MeterMod("add", 7, rate_kbps=1000)
    with pytest.raises(SwitchError) as failure:
        fabric.rt.execute([{"s1": [meter, flow(3)], "core": [flow(1)]}])
    text = str(failure.value)
    assert f"s1: {meter!r} refused: type=12 code=1" in text  # OFPET_METER_MOD_FAILED, EXISTS
    assert "core" not in text


def test_a_refused_stage_stops_the_plan_before_the_next_stage(fabric: Fabric) -> None:
    # make-before-break: if the new path was refused, the old one must not be removed
    s1 = fabric.connect("s1", refuse=lambda m: isinstance(m, FlowMod) and m.command == "add")
    s2 = fabric.connect("s2")
    removal = FlowMod("delete_strict", table=TABLE_FORWARD, priority=100, match=flow(3).match)
    with pytest.raises(SwitchError):
        fabric.rt.execute([{"s1": [flow(3)]}, {"s2": [removal]}])
    assert _sent(s1) == [flow(3), Barrier()]
    assert _sent(s2) == []


def test_an_error_from_an_earlier_call_does_not_fail_the_next_one(fabric: Fabric) -> None:
    fabric.connect("s1", refuse=lambda m: isinstance(m, MeterMod))
    fabric.rt.execute([{"s1": [MeterMod("add", 7, rate_kbps=1000)]}], wait=False)
    fabric.events.drain()
    fabric.connect("s1")  # reconnected, behaving
    assert fabric.rt.execute([{"s1": [flow(3)]}]).switches == ["s1"]


def test_a_late_error_for_an_earlier_calls_message_does_not_fail_this_one(
    fabric: Fabric,
) -> None:
    # OVS answers in order: the error for a message of an earlier call (not waited for) can
    # arrive while a later call waits for its barrier; it is not the later call's failure.
    fabric.connect("s1", refuse=lambda m: isinstance(m, MeterMod))
    fabric.events.pause()
    fabric.rt.execute([{"s1": [MeterMod("add", 7, rate_kbps=1000)]}], wait=False)
    result: list[Any] = []
    later = threading.Thread(
        target=lambda: result.append(_outcome(lambda: fabric.rt.execute([{"s1": [flow(3)]}])))
    )
    later.start()
    deadline = time.monotonic() + 5
    while len(fabric.switches["s1"].wire) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)  # the later call's flow and barrier are out
    fabric.events.resume()
    later.join(5)
    assert [e[0] for e in fabric.journal if e[0] != "send"] == ["error", "reply"]
    (outcome,) = result
    assert not isinstance(outcome, Exception), outcome
    assert outcome.switches == ["s1"]


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - handed to the test thread
        return exc


def test_a_switch_that_does_not_answer_its_barrier_fails_the_call(
    fabric: Fabric, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "BARRIER_TIMEOUT_S", 0.05)
    fabric.connect("s1", answer_barriers=False)
    with pytest.raises(SwitchError, match=r"switch s1 did not answer a barrier in 0.05s"):
        fabric.rt.execute([{"s1": [flow(3)]}])


def test_a_switch_that_is_not_connected_is_skipped_and_reported(
    fabric: Fabric, caplog: pytest.LogCaptureFixture
) -> None:
    s1 = fabric.connect("s1")
    plan: Plan = [{"s1": [flow(3)], "s2": [flow(1), flow(2)]}, {"core": [flow(1)]}]
    with caplog.at_level(logging.INFO, logger="controller.runtime"):
        done = fabric.rt.execute(plan)
    assert _sent(s1) == [flow(3), Barrier()]
    assert done.switches == ["s1"] and done.flow_mods == 1
    assert "not connected" in caplog.text and "core, s2" in caplog.text
    assert done.skipped == []  # none of them was ever connected: nothing went missing


def test_a_switch_that_was_connected_and_is_gone_is_reported_as_pending(fabric: Fabric) -> None:
    fabric.connect("s1")
    s2 = fabric.connect("s2")
    fabric.rt.forget(s2)
    done = fabric.rt.execute([{"s1": [flow(3)], "s2": [flow(1)], "core": [flow(1)]}])
    assert done.switches == ["s1"] and done.skipped == ["s2"]


def test_an_error_for_a_message_it_did_not_send_names_the_switch_and_xid(
    fabric: Fabric, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="controller.runtime"):
        fabric.rt.switch_error(0x64, 4711, "type=1 code=2")
    assert "dpid 0x64 xid 4711" in caplog.text and "type=1 code=2" in caplog.text
    fabric.rt.barrier_reply(0x64, 4711)  # a reply nobody waits for is ignored


def test_send_names_each_message_for_its_error(
    fabric: Fabric, caplog: pytest.LogCaptureFixture
) -> None:
    s1 = fabric.connect("s1", refuse=lambda m: isinstance(m, FlowMod))
    msg = flow(3)
    with caplog.at_level(logging.ERROR, logger="controller.runtime"):
        fabric.rt.send(s1, msg, "s1")
        fabric.events.drain()
    assert s1.messages() == [canonical(msg)]
    assert f"switch refused s1: {msg.describe()}: type=12 code=1" in caplog.text
    # errors belong to the call that sent the message: a later call starts clean
    assert fabric.rt.execute([{"s1": [Barrier()]}]).switches == ["s1"]


def test_a_switchs_flow_mods_of_a_stage_go_in_one_atomic_ordered_bundle(fabric: Fabric) -> None:
    """Two or more flow mods for one switch in a stage: one bundle (atomic, ordered: a packet
    meets the table before or after them, never half-changed), committed before the barrier;
    the meter they use is added before the bundle opens, a meter delete goes after its commit;
    a lone flow mod goes as it is."""
    s1, core = fabric.connect("s1"), fabric.connect("core")
    meter = MeterMod("add", 7, rate_kbps=1000, burst_kb=300)
    removal = FlowMod("delete_strict", table=TABLE_FORWARD, priority=100, match=flow(9).match)
    gone = MeterMod("delete", 5)
    fabric.rt.execute([{"s1": [meter, flow(3), flow(4, "02:00:0a:00:00:0b"), removal, gone],
                        "core": [flow(1)]}])  # fmt: skip
    assert _sent(s1) == [meter, flow(3), flow(4, "02:00:0a:00:00:0b"), removal, gone, Barrier()]
    assert s1.bundles() == [[canonical(flow(3)), canonical(flow(4, "02:00:0a:00:00:0b")),
                             canonical(removal)]]  # fmt: skip
    kinds = [type(m).__name__ for m in s1.parsed()]
    assert kinds == ["OFPMeterMod", "ONFBundleCtrlMsg", "BundleAdd", "BundleAdd", "BundleAdd",
                     "ONFBundleCtrlMsg", "OFPMeterMod", "OFPBarrierRequest"]  # fmt: skip
    opened, committed = (m for m in s1.parsed() if isinstance(m, OFP_PARSER.ONFBundleCtrlMsg))
    assert opened.bundle_id == committed.bundle_id
    assert core.bundles() == [] and _sent(core) == [flow(1), Barrier()]


def test_a_message_refused_in_a_bundle_fails_the_call_naming_it(fabric: Fabric) -> None:
    fabric.connect("s1", refuse=lambda m: isinstance(m, FlowMod) and m.actions == flow(4).actions)
    with pytest.raises(SwitchError) as failure:
        fabric.rt.execute([{"s1": [flow(3), flow(4)]}])
    text = str(failure.value)
    assert "actions:output:4 refused" in text and "output:3" not in text, text
