"""A whole service function chain moved speculatively (issue 12, "Chains follow as chains") over
in-memory sites that take real (scaled) time: warming runs the chain's rounds per its pattern,
ready keeps them warm, a commit ends with every function at the destination after one switch
(the final freezes only after the commit), a cancel leaves every function at its source with no
final freeze and nothing at the destination; and the follow-me driver moves a chain whole."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from migration.timeline import MigrationRecord, Outcome
from orchestration.chain_migration import ChainMigration
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import PATTERNS, ChainRecord, frozen_window
from orchestration.chain_speculation import ChainMove
from orchestration.follow_me import Commit, Followed, FollowMe, Start
from orchestration.follower import Follower, orchestrator_launcher
from orchestration.orchestrator import Orchestrator
from orchestration.prediction import known_dwell, known_path
from orchestration.speculation import SpecState, Speculation
from tests.unit.migration_fakes import (
    MB,
    FakeClock,
    FakeNetwork,
    FakeSite,
    connect,
    join_migration_threads,
)
from tests.unit.test_chain_migration import CHAINS, overlap, phases, world
from tests.unit.test_follow_me import THROUGH
from tests.unit.test_speculation import eventually, finals
from topology.mobility_events import ue_mobility
from topology.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0  # real seconds a test waits for a speculation's thread at most
NEVER = 3600.0  # a warm interval that never comes in a test


def on_send(site: FakeSite, call: Callable[[int], None]) -> None:
    """`call(n)` before the site's n-th copy (1-based, all instances)."""
    send = site.send

    def hooked(*args: Any, **kw: Any) -> Any:
        call(len(site.ops("send")) + 1)
        return send(*args, **kw)

    site.send = hooked  # type: ignore[method-assign]


@dataclass
class World:
    sites: dict[str, FakeSite]
    net: FakeNetwork
    cm: ChainMigration
    spec: Speculation
    functions: list[str]

    @property
    def record(self) -> ChainRecord:
        return self.cm.record

    def summary(self) -> dict[str, Any]:
        entry = self.record.metrics["speculation"]
        assert isinstance(entry, dict)
        return entry


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "chains.yaml")


@pytest.fixture(autouse=True)
def _join() -> Iterator[None]:
    yield
    join_migration_threads()


def make_world(
    scenario: Scenario,
    chain: str = "triple",
    pattern: str = "wait-for-me",
    strategy: str = "precopy",
    *,
    warm_interval_s: float = NEVER,
    max_warm_rounds: int = 3,
    **mec2: Any,
) -> World:
    orch, sites, net = world(scenario, **mec2)
    cm = plan_chain_migration(
        orch, chain, "mec2", pattern=pattern, strategy=strategy, network_aware=True
    )
    spec = Speculation(
        ChainMove(cm),
        warm_interval_s=warm_interval_s,
        max_warm_rounds=max_warm_rounds,
        poll_s=0.005,
    )
    return World(sites, net, cm, spec, CHAINS[chain])


def names(rec: MigrationRecord) -> list[str]:
    return [p.name for p in rec.phases]


def assert_at_source_untouched(w: World, reason: str) -> None:
    """Cancelled: every function serves at the source, none went through its final freeze,
    nothing is left at the destination, nothing reserved, the steering never moved."""
    src, dst = w.sites["mec1"], w.sites["mec2"]
    assert w.spec.state is SpecState.CANCELLED, w.spec.reason
    for fn in w.functions:
        assert src.instances[fn].status == "running" and src.instances[fn].link, fn
        assert fn not in dst.instances, fn
        member = w.record.members[fn]
        assert member.outcome is Outcome.ROLLED_BACK, fn
        assert "freeze_dump" not in names(member) and "switch" not in names(member), fn
        assert member.point_of_no_return_ms is None
    assert finals(src) == [] and src.ops("stop") == []
    assert dst.ops("restore") == []
    assert w.net.ops("relocate_many") == [] and w.net.ops("relocate") == []
    assert not w.net.grants and not w.net.held
    assert w.record.outcome is Outcome.ROLLED_BACK
    assert w.record.error == f"cancelled: {reason}"
    assert w.record.point_of_no_return_ms is None
    assert [p.name for p in w.record.phases] == ["rollback"]
    s = w.summary()
    assert (s["outcome"], s["reason"], s["state"]) == ("cancelled", reason, "cancelled")


def assert_moved_after_commit(w: World) -> None:
    """Committed: every function serves at the destination, the chain's steering moved once,
    every final freeze came after the commit."""
    src, dst = w.sites["mec1"], w.sites["mec2"]
    assert w.spec.state is SpecState.DONE, w.spec.reason
    assert w.record.outcome is Outcome.DONE, w.record.error
    for fn in w.functions:
        assert dst.instances[fn].status == "running" and dst.instances[fn].restored, fn
        assert fn not in src.instances, fn
        assert w.record.members[fn].outcome is Outcome.DONE
    (switch,) = w.net.ops("relocate_many")
    assert [m[0] for m in switch[1]] == w.functions and {m[1] for m in switch[1]} == {"mec2"}
    assert w.net.ops("relocate") == []
    assert len(finals(src)) == len(w.functions)
    commit_ms = w.summary()["commit_requested_ms"]
    for fn in w.functions:
        freeze = w.record.members[fn].phase("freeze_dump")
        assert freeze is not None and freeze.start_ms >= commit_ms, (fn, freeze, commit_ms)
    assert w.record.point_of_no_return_ms is not None
    restores = [frozen_window(r) for r in w.record.members.values()]
    assert all(r is not None and r[1] <= w.record.point_of_no_return_ms for r in restores)
    assert not w.net.grants and not w.net.held
    s = w.summary()
    assert (s["outcome"], s["state"]) == ("done", "done")


# ---------------------------------------------------------------------------------- commit


@pytest.mark.parametrize("pattern", PATTERNS)
def test_commit_after_ready_moves_the_chain_with_one_switch_and_freezes_after_it(
    scenario: Scenario, pattern: str
) -> None:
    w = make_world(scenario, pattern=pattern)
    w.spec.start()
    assert w.spec.wait_for(SpecState.READY, timeout=WAIT) is SpecState.READY
    # ready: every function prepared at mec2 and pre-copied, all still serving at mec1
    src, dst = w.sites["mec1"], w.sites["mec2"]
    for fn in w.functions:
        assert src.instances[fn].status == "running"
        assert dst.instances[fn].prepared and dst.instances[fn].status == "absent"
        member = names(w.record.members[fn])
        assert member[:3] == ["prepare", "reserve", "precopy-1"], member
        assert "freeze_dump" not in member
    assert finals(src) == [] and w.net.ops("relocate_many") == []
    assert w.summary()["rounds_before_ready"] >= 1
    time.sleep(0.05)  # the handover comes a little later
    assert w.spec.commit() is True
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert_moved_after_commit(w)
    assert [p.name for p in w.record.phases] == ["switch"]
    if pattern == "wait-for-me":
        assert w.record.metrics["frozen_windows_overlap"] is True


def test_warm_rounds_for_every_function_then_commit(scenario: Scenario) -> None:
    w = make_world(scenario, warm_interval_s=0.01, max_warm_rounds=2)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    before = {fn: len(w.cm.ms[i].rounds) for i, fn in enumerate(w.functions)}
    eventually(lambda: w.spec.warm_rounds == 2)
    time.sleep(0.05)
    assert w.spec.warm_rounds == 2  # bounded
    for i, fn in enumerate(w.functions):
        assert len(w.cm.ms[i].rounds) == before[fn] + 2, fn
    assert finals(w.sites["mec1"]) == []
    assert w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert_moved_after_commit(w)
    for fn in w.functions:  # the final reservation sized again from the last warm round
        member = names(w.record.members[fn])
        assert member[member.index("freeze_dump") - 1] == "boost", member
    assert w.summary()["warm_rounds"] == 2


def test_commit_while_warming_waits_for_the_rounds(scenario: Scenario) -> None:
    w = make_world(scenario)
    seen: list[bool] = []

    def commit_at_first_copy(n: int) -> None:
        if n == 1:
            seen.append(w.spec.commit())

    on_send(w.sites["mec1"], commit_at_first_copy)
    w.spec.start()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert seen == [True]
    assert "ready_ms" not in w.summary() and w.summary()["warm_rounds"] == 0
    assert_moved_after_commit(w)


def test_cold_chain_speculation_is_prepare_only(scenario: Scenario) -> None:
    w = make_world(scenario, chain="pair", strategy="cold")
    w.spec.start()
    assert w.spec.wait_for(SpecState.READY, timeout=WAIT) is SpecState.READY
    for fn in w.functions:
        assert names(w.record.members[fn]) == ["prepare", "reserve"]
    assert w.sites["mec1"].ops("checkpoint") == [] and w.sites["mec1"].ops("send") == []
    assert w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert_moved_after_commit(w)


# ---------------------------------------------------------------------------------- cancel


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cancel_while_warming_leaves_every_function_at_the_source(
    scenario: Scenario, pattern: str
) -> None:
    w = make_world(scenario, pattern=pattern)

    def cancel_at_first_copy(n: int) -> None:
        if n == 1:
            w.spec.cancel("UE turned away")

    on_send(w.sites["mec1"], cancel_at_first_copy)
    w.spec.start()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert "ready_ms" not in w.summary()
    assert w.summary()["rounds_before_ready"] == 1  # the round in progress ended, no more
    assert_at_source_untouched(w, "UE turned away")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cancel_while_ready_after_warm_rounds(scenario: Scenario, pattern: str) -> None:
    w = make_world(scenario, pattern=pattern, warm_interval_s=0.01, max_warm_rounds=1)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    eventually(lambda: w.spec.warm_rounds == 1)
    assert w.spec.cancel("prediction: next site mec3")
    assert w.spec.wait_for(timeout=WAIT) is SpecState.CANCELLED
    assert_at_source_untouched(w, "prediction: next site mec3")
    assert w.spec.commit() is False


def test_a_failed_restore_after_commit_rolls_the_whole_chain_back(scenario: Scenario) -> None:
    w = make_world(scenario, fail_at="restore", fail_on=2)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.FAILED
    assert w.record.outcome is Outcome.ROLLED_BACK
    assert w.summary()["outcome"] == "failed"
    for fn in w.functions:
        assert w.sites["mec1"].instances[fn].status == "running", fn
        assert fn not in w.sites["mec2"].instances, fn
    # the steering went there and back, each in one change
    there, back = w.net.ops("relocate_many")
    assert {m[1] for m in there[1]} == {"mec2"} and {m[1] for m in back[1]} == {"mec1"}
    assert not w.net.grants and not w.net.held


# ---------------------------------------------------------------------------------- patterns


def test_round_robin_rounds_never_overlap_under_speculation(scenario: Scenario) -> None:
    w = make_world(scenario, pattern="round-robin", warm_interval_s=0.01, max_warm_rounds=2)
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    eventually(lambda: w.spec.warm_rounds == 2)
    w.spec.commit()
    assert w.spec.wait_for(timeout=WAIT) is SpecState.DONE
    assert_moved_after_commit(w)
    members = list(w.record.members.values())
    for rec in members:
        assert sum(p.startswith("precopy") for p in names(rec)) >= 3, names(rec)
    for a, b in itertools.combinations(members, 2):
        for pa in phases(a):
            for pb in phases(b):
                assert not overlap(pa, pb), (a.instance, pa, b.instance, pb)


def test_wait_for_me_runs_every_function_s_round_at_once(scenario: Scenario) -> None:
    w = make_world(scenario, pattern="wait-for-me")
    w.spec.start()
    w.spec.wait_for(SpecState.READY, timeout=WAIT)
    firsts = [w.record.members[fn].phase("precopy-1") for fn in w.functions]
    assert all(p is not None for p in firsts)
    for a, b in itertools.combinations([p for p in firsts if p is not None], 2):
        assert a.end_ms is not None and b.end_ms is not None
        assert overlap((a.start_ms, a.end_ms), (b.start_ms, b.end_ms))
    w.spec.cancel("done")
    w.spec.wait_for(timeout=WAIT)


# ---------------------------------------------------------------------------------- follower


def drive_scenario() -> Scenario:
    """test_follow_me's two sites and road, with a 2-function chain that the car uses."""
    return parse_scenario(
        {
            "name": "followsfc",
            "network": {"subnet": "10.0.0.0/24"},
            "sites": [{"name": "mec1"}, {"name": "mec2"}],
            "switches": [{"name": "core", "dpid": 100}],
            "links": [{"between": [s, "core"], "capacity": "100Mbit"} for s in ("mec1", "mec2")],
            "instances": [
                {
                    "name": "fwd",
                    "site": "mec1",
                    "command": "/usr/bin/python3 /data/sfcfwd.py --memory 8MiB",
                    "capabilities": ["NET_RAW"],
                    "memory": "32MiB",
                    "ip": "10.0.0.21",
                },
                {
                    "name": "kv",
                    "site": "mec1",
                    "command": "/usr/bin/python3 /data/memhog.py --size 8MiB --port 7000",
                    "memory": "32MiB",
                    "ip": "10.0.0.22",
                    "ports": [7000],
                },
            ],
            "chains": [{"name": "duo", "ue": "car", "functions": ["fwd", "kv"]}],
            "map": {
                "zones": [{"name": "za", "site": "mec1"}, {"name": "zb", "site": "mec2"}],
                "cells": [
                    {"name": "a", "zone": "za", "position": [0, 0], "range_m": 150},
                    {"name": "b", "zone": "zb", "position": [300, 0], "range_m": 160},
                ],
            },
            "ues": [{"name": "car", "attach": "mec1", "ip": "10.0.0.100", "path": THROUGH}],
        }
    )


@pytest.mark.parametrize("pattern", ["wait-for-me", "round-robin"])
def test_the_follower_moves_a_chain_whole_start_then_commit(pattern: str) -> None:
    sc = drive_scenario()
    clock = FakeClock()
    sites = {
        name: FakeSite(name, f"192.168.0.{i}", clock, send_bytes=(8 * MB, 1 * MB))
        for i, name in enumerate(("mec1", "mec2"), start=1)
    }
    connect(*sites.values())
    net = FakeNetwork(clock=clock)
    orch = Orchestrator(sc, sites, net)
    for fn in ("fwd", "kv"):
        orch.deploy(fn)
    net.calls.clear()
    mob = ue_mobility(sc, "car", until=200.0)
    policy = FollowMe(
        "car",
        [Followed("duo", "mec1", 3.0, 1.0, kind="chain")],
        known_path(mob),
        serving_site="mec1",
        dwell=known_dwell(mob),
    )
    speculate = partial(Speculation, warm_interval_s=NEVER)
    follower = Follower(policy, orchestrator_launcher(orch, pattern=pattern, speculate=speculate))
    handovers = list(mob.handovers)
    done = []
    t = 0.0
    while t <= 26.0:
        while handovers and handovers[0].t_s <= t:
            done += follower.on_handover(handovers.pop(0))
        done += follower.tick(t)
        if t == 21.0:
            spec = follower.speculations["duo"]
            assert spec.wait_for(SpecState.READY, timeout=WAIT) is SpecState.READY
            assert isinstance(spec.move, ChainMove)
            assert all(orch.where(fn) == "mec1" for fn in ("fwd", "kv"))
            assert finals(sites["mec1"]) == []
        t = round(t + 0.5, 9)
    assert [(type(d.action), d.action.service, d.result) for d in done] == [
        (Start, "duo", "started"),
        (Commit, "duo", "requested"),
    ]
    assert done[1].action.t_s == 25.0
    assert spec.wait_for(timeout=WAIT) is SpecState.DONE
    follower.tick(26.5)
    assert policy.where("duo") == "mec2" and follower.speculations == {}
    assert follower.ended == [("duo", spec)]
    for fn in ("fwd", "kv"):
        assert sites["mec2"].instances[fn].status == "running" and fn not in sites["mec1"].instances
    (switch,) = net.ops("relocate_many")
    assert [m[0] for m in switch[1]] == ["fwd", "kv"]
    assert isinstance(spec.move, ChainMove)
    record = spec.move.record
    assert record.pattern == pattern and record.outcome is Outcome.DONE
    metrics = spec.move.metrics()
    assert metrics["speculative"] is True and metrics["speculation"]["outcome"] == "done"
