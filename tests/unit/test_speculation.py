"""A speculative migration against in-memory sites: it warms (pre-copy rounds while the source
serves), waits ready with the delta kept warm, then commits (the only freeze) or is cancelled
(the rollback: nothing at the destination, the source never frozen for good)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from migration.engine import Migration, Plan
from migration.timeline import MigrationRecord, Outcome
from orchestration.speculation import SpecState, Speculation
from tests.unit.migration_fakes import (
    MB,
    FakeClock,
    FakeNetwork,
    FakeSite,
    connect,
    join_migration_threads,
    make_spec,
)

INSTANCE = "svc"
RATE = 50_000_000
# at 50 Mbit/s and a 1 s budget: 64 MB, 8 MB, then 1 MB fits (0.05 + 0.18 + 0.3 s): 3 rounds
CONVERGING = (64 * MB, 8 * MB, 1 * MB)
WAIT = 5.0  # real seconds a test waits for the speculation's thread at most


class HookedSite(FakeSite):
    """A fake site that calls `on_send(n)` before its n-th copy (1-based)."""

    on_send: Callable[[int], None] | None = None

    def send(self, *args: Any, **kw: Any) -> Any:
        if self.on_send is not None:
            self.on_send(len(self.ops("send")) + 1)
        return super().send(*args, **kw)


@dataclass
class World:
    clock: FakeClock
    src: HookedSite
    dst: HookedSite
    net: FakeNetwork
    mig: Migration
    spec: Speculation
    finished: list[str]

    @property
    def record(self) -> MigrationRecord:
        return self.mig.record

    def phases(self) -> list[str]:
        return [p.name for p in self.record.phases]

    def summary(self) -> dict[str, Any]:
        entry = self.record.metrics["speculation"]
        assert isinstance(entry, dict)
        return entry


def make_world(
    strategy: str = "precopy",
    *,
    src: dict[str, Any] | None = None,
    warm_interval_s: float = 10.0,
    max_warm_rounds: int = 3,
    max_wait_s: float = 300.0,
) -> World:
    clock = FakeClock()
    s = HookedSite(
        "mec1",
        "192.168.1.1",
        clock,
        send_bytes=CONVERGING,
        **({"dirty_tracking": True} | (src or {})),
    )
    d = HookedSite("mec2", "192.168.1.2", clock)
    connect(s, d)
    s.create(make_spec(INSTANCE, port=3))
    s.calls.clear()
    net = FakeNetwork(clock=clock)
    plan = Plan(
        instance=INSTANCE,
        source=s,
        destination=d,
        destination_site="mec2",
        destination_port=100,
        strategy=strategy,
        budget_ms=1000.0,
        rate_bps=RATE,
        dirty_tracking=s.dirty_tracking,
        predicted_bytes=64 * MB,
    )
    finished: list[str] = []

    def listener(event: str, record: MigrationRecord, phase: Any) -> None:
        if event == "finished":  # what the record says when the orchestrator notes it
            finished.append(json.dumps(record.to_dict()))

    mig = Migration(plan, net, clock, listener, migration_id="mig-spec-1", sleep=clock.advance)
    spec = Speculation(
        mig,
        clock=clock,
        warm_interval_s=warm_interval_s,
        max_warm_rounds=max_warm_rounds,
        max_wait_s=max_wait_s,
        poll_s=0.005,
    )
    return World(clock, s, d, net, mig, spec, finished)


@pytest.fixture(autouse=True)
def _join() -> Iterator[None]:
    yield
    join_migration_threads()


def eventually(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def finals(site: FakeSite) -> list[tuple[Any, ...]]:
    """The source's final dumps (a checkpoint that does not leave it running)."""
    return [c for c in site.ops("checkpoint") if c[2] is False]


def assert_cancelled_cleanly(w: World, reason: str) -> None:
    assert w.spec.state is SpecState.CANCELLED
    # the source: serving, never through a final freeze (pre-dumps only), resumed as it was
    assert w.src.instances[INSTANCE].status == "running" and w.src.instances[INSTANCE].link
    assert w.src.ops("checkpoint") == [] and finals(w.src) == []
    assert w.src.resumed in ([], ["still running"])
    assert w.src.ops("lazy_checkpoint") == [] and w.src.ops("stop") == []
    # the destination: nothing left, no restore ever; the reservation released
    assert INSTANCE not in w.dst.instances and w.dst.ops("restore") == []
    assert w.dst.ops("destroy") == [("destroy", INSTANCE)]
    assert w.net.grants == {} and w.net.ops("relocate") == []
    # the record
    assert "freeze_dump" not in w.phases() and "switch" not in w.phases()
    assert w.phases()[-1] == "rollback" and w.record.phases[-1].ok is True
    assert w.record.outcome is Outcome.ROLLED_BACK
    assert w.record.error == f"cancelled: {reason}"
    assert w.record.point_of_no_return_ms is None
    s = w.summary()
    assert (s["outcome"], s["reason"], s["state"]) == ("cancelled", reason, "cancelled")
    # the listener saw the whole story, JSON-serialisable
    assert len(w.finished) == 1
    noted = json.loads(w.finished[0])
    assert noted["metrics"]["speculation"]["outcome"] == "cancelled"
    assert noted["metrics"]["speculation"]["reason"] == reason
    json.dumps(w.record.to_dict())


# ---------------------------------------------------------------------------------- commit


def test_commit_after_ready_moves_it_with_the_only_freeze_at_commit() -> None:
    w = make_world()
    w.spec.start()
    assert w.spec.wait_for(SpecState.READY, timeout=WAIT) is SpecState.READY
    # ready: three pre-dump rounds, the service still running at the source, no freeze
    assert w.phases() == ["prepare", "reserve", "precopy-1", "precopy-2", "precopy-3", "boost"]
    assert [c[2] for c in w.src.ops("pre_dump")] == [1, 2, 3]
    assert w.src.ops("checkpoint") == [] and w.src.instances[INSTANCE].status == "running"
    assert w.dst.instances[INSTANCE].prepared and w.dst.instances[INSTANCE].status == "absent"
    assert w.summary()["rounds_before_ready"] == 3
    w.clock.advance(2.0)  # the UE's handover comes later
    assert w.spec.commit() is True
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert w.phases() == [
        "prepare", "reserve", "precopy-1", "precopy-2", "precopy-3", "boost",
        "freeze_dump", "transfer", "switch", "restore", "release", "cleanup",
    ]  # fmt: skip
    # the one freeze: the final dump, chained onto the last pre-dump (state intact), after commit
    assert finals(w.src) == [("checkpoint", INSTANCE, False, True)]
    freeze = w.record.phase("freeze_dump")
    assert freeze is not None
    commit_ms, ready_ms = w.summary()["commit_requested_ms"], w.summary()["ready_ms"]
    assert freeze.start_ms == pytest.approx(commit_ms) and commit_ms >= ready_ms + 2000
    # the instance at the destination, nothing at the source, traffic there, nothing reserved
    assert w.dst.instances[INSTANCE].status == "running" and w.dst.instances[INSTANCE].restored
    assert w.dst.instances[INSTANCE].spec == make_spec(INSTANCE, port=100)
    assert INSTANCE not in w.src.instances
    assert w.net.ops("relocate") == [("relocate", INSTANCE, "mec2", 100)]
    assert w.net.grants == {}
    assert w.record.outcome is Outcome.DONE and w.record.point_of_no_return_ms is not None
    s = w.summary()
    assert (s["outcome"], s["state"], s["warm_rounds"], s["rounds_before_ready"]) == (
        "done", "done", 0, 3,
    )  # fmt: skip
    assert s["rounds_dump_ms"] == pytest.approx(3 * 50.0)
    assert json.loads(w.finished[0])["metrics"]["speculation"]["outcome"] == "done"


def test_warm_rounds_every_interval_bounded_then_commit_boosts_again() -> None:
    w = make_world(warm_interval_s=10.0, max_warm_rounds=2)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    time.sleep(0.05)  # the fake clock stands still: no warm round
    assert w.spec.warm_rounds == 0 and len(w.src.ops("pre_dump")) == 3
    for n in (1, 2, 3):
        w.clock.advance(10.0)
        if n <= 2:
            eventually(lambda n=n: w.spec.warm_rounds == n)  # type: ignore[misc]
    time.sleep(0.05)
    assert w.spec.warm_rounds == 2  # bounded
    assert [c[2] for c in w.src.ops("pre_dump")] == [1, 2, 3, 4, 5]  # the chain goes on
    assert w.spec.state is SpecState.READY and w.src.ops("checkpoint") == []
    assert w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    names = w.phases()
    assert names[2:] == [
        "precopy-1", "precopy-2", "precopy-3", "boost", "precopy-4", "precopy-5", "boost",
        "freeze_dump", "transfer", "switch", "restore", "release", "cleanup",
    ]  # fmt: skip
    assert finals(w.src) == [("checkpoint", INSTANCE, False, True)]
    assert w.summary()["warm_rounds"] == 2


def test_commit_while_warming_waits_for_the_rounds_then_final_phase_at_once() -> None:
    w = make_world()
    seen: list[bool] = []
    w.src.on_send = lambda n: seen.append(w.spec.commit()) if n == 1 else None
    w.spec.start()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert seen == [True]
    names = w.phases()
    assert names[:6] == ["prepare", "reserve", "precopy-1", "precopy-2", "precopy-3", "boost"]
    assert names[6] == "freeze_dump" and names.count("boost") == 1
    s = w.summary()
    assert "ready_ms" not in s and s["rounds_before_ready"] == 3 and s["warm_rounds"] == 0
    assert w.dst.instances[INSTANCE].status == "running"


def test_cold_speculation_is_prepare_only_ready_at_once() -> None:
    w = make_world("cold", src={"dirty_tracking": False})
    w.spec.start()
    assert w.spec.wait_for(SpecState.READY, timeout=WAIT) is SpecState.READY
    assert w.phases() == ["prepare", "reserve"]
    w.clock.advance(100.0)
    time.sleep(0.05)
    assert w.spec.warm_rounds == 0 and w.src.calls == [("cpu_jiffies",), ("spec", INSTANCE)]
    assert w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert w.phases()[2:] == [
        "receive", "freeze_dump", "transfer", "switch", "restore", "release", "cleanup",
    ]  # fmt: skip


def test_postcopy_speculation_cancelled_leaves_nothing() -> None:
    w = make_world("postcopy", src={"dirty_tracking": False})
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    assert w.spec.cancel("turned away")
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert w.phases() == ["prepare", "reserve", "rollback"]
    assert_cancelled_cleanly(w, "turned away")
    assert w.src.resumed == []  # never touched: nothing to resume


# ---------------------------------------------------------------------------------- cancel


def test_cancel_while_warming_after_the_round_in_progress() -> None:
    w = make_world()
    w.src.on_send = lambda n: w.spec.cancel("UE turned away") if n == 1 else None
    w.spec.start()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert w.phases() == ["prepare", "reserve", "precopy-1", "rollback"]
    assert [c[2] for c in w.src.ops("pre_dump")] == [1]
    assert_cancelled_cleanly(w, "UE turned away")
    assert w.src.resumed == ["still running"]
    s = w.summary()
    assert s["rounds_before_ready"] == 1 and "ready_ms" not in s
    assert s["rounds_dump_ms"] == pytest.approx(50.0)  # round 1's pre-dump: its pause's bound


def test_cancel_while_ready_after_warm_rounds() -> None:
    w = make_world(warm_interval_s=1.0, max_warm_rounds=5)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    w.clock.advance(1.0)
    eventually(lambda: w.spec.warm_rounds == 1)
    assert w.spec.cancel("prediction: next site mec3")
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert w.spec.warm_rounds == 1
    assert [c[2] for c in w.src.ops("pre_dump")] == [1, 2, 3, 4]
    assert_cancelled_cleanly(w, "prediction: next site mec3")
    assert w.src.resumed == ["still running"]
    assert w.summary()["warm_rounds"] == 1
    assert w.spec.commit() is False  # over: too late for anything


def test_ready_too_long_cancels_itself() -> None:
    w = make_world(max_wait_s=30.0, max_warm_rounds=0)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    w.clock.advance(29.0)
    time.sleep(0.03)
    assert w.spec.state is SpecState.READY
    w.clock.advance(1.0)
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert_cancelled_cleanly(w, "timeout: not committed within 30 s")


def test_first_request_wins() -> None:
    w = make_world()
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    assert w.spec.cancel("away") and w.spec.cancel("again")  # idempotent, the first reason kept
    assert w.spec.commit() is False
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert w.summary()["reason"] == "away"

    w = make_world()
    w.spec.start()
    assert w.spec.commit() and w.spec.commit()
    assert w.spec.cancel("too late") is False
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert w.spec.cancel("after") is False


@pytest.mark.parametrize("attempt", range(8))
def test_commit_racing_cancel_is_one_or_the_other(attempt: int) -> None:
    w = make_world()
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    go = threading.Barrier(2)
    answers: dict[str, bool] = {}

    def ask(what: str) -> None:
        go.wait()
        answers[what] = w.spec.commit() if what == "commit" else w.spec.cancel("race")

    threads = [threading.Thread(target=ask, args=(a,)) for a in ("commit", "cancel")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers["commit"] != answers["cancel"]
    end = w.spec.wait_for(timeout=WAIT)
    if answers["commit"]:
        assert end is SpecState.DONE and finals(w.src) and INSTANCE not in w.src.instances
    else:
        assert end is SpecState.CANCELLED
        assert_cancelled_cleanly(w, "race")


# ---------------------------------------------------------------------------------- failures


def test_a_failed_round_rolls_back_as_failed() -> None:
    w = make_world(src={"fail_at": "pre_dump", "fail_on": 2})
    w.spec.start()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.FAILED
    assert w.record.outcome is Outcome.ROLLED_BACK
    assert w.summary()["outcome"] == "failed" and "injected failure" in w.summary()["reason"]
    assert INSTANCE not in w.dst.instances and w.src.instances[INSTANCE].status == "running"
    assert w.spec.commit() is False and w.spec.cancel("late") is False


def test_a_failed_final_phase_rolls_back_to_the_source() -> None:
    w = make_world()
    w.dst.fail_at = {"restore"}
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.FAILED
    assert w.record.outcome is Outcome.ROLLED_BACK
    assert w.src.resumed == ["restored from its final dump"]
    assert w.src.instances[INSTANCE].status == "running" and INSTANCE not in w.dst.instances


def test_started_once_and_bounds_checked() -> None:
    w = make_world()
    w.spec.start()
    with pytest.raises(RuntimeError, match="twice"):
        w.spec.start()
    w.spec.cancel("done with it")
    w.spec.wait_for(timeout=WAIT)
    with pytest.raises(ValueError):
        Speculation(w.mig, warm_interval_s=-1.0)
