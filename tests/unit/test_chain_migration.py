"""Chain migration (seed 000's patterns) over in-memory sites that take real time: one switch for
the whole chain, the patterns' timelines (wait-for-me freezes together, round-robin never runs
two functions' phases at once, async runs them unsupervised), and a failure in any function
rolling the whole chain back."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from migration.timeline import MigrationRecord, Outcome
from orchestration.chain_migration import ChainMigrationError
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import PATTERNS, ChainRecord, frozen_window
from orchestration.orchestrator import Orchestrator, OrchestratorError
from tests.unit.migration_fakes import FakeNetwork, FakeSite, connect
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
CHAINS = {"pair": ["fw", "video"], "triple": ["fw3", "ids3", "counter3"]}


class RealClock:
    """What the fakes advance: real (scaled) sleeps, so that threads really overlap."""

    def __init__(self, scale: float = 0.2) -> None:
        self.scale = scale

    def __call__(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "chains.yaml")


def world(
    scenario: Scenario, **mec2: object
) -> tuple[Orchestrator, dict[str, FakeSite], FakeNetwork]:
    clock = RealClock()
    sites = {
        name: FakeSite(name, f"192.168.0.{i}", clock, **(mec2 if name == "mec2" else {}))  # type: ignore[arg-type]
        for i, name in enumerate(["mec1", "mec2", "mec3"], start=1)
    }
    connect(*sites.values())
    net = FakeNetwork(clock=clock)  # type: ignore[arg-type]
    orch = Orchestrator(scenario, sites, net)
    for fn in itertools.chain(*CHAINS.values()):
        orch.deploy(fn)
    net.calls.clear()
    return orch, sites, net


def phases(rec: MigrationRecord) -> list[tuple[float, float]]:
    return [(p.start_ms, p.end_ms) for p in rec.phases if p.end_ms is not None]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def assert_moved(record: ChainRecord, sites: dict[str, FakeSite], functions: list[str]) -> None:
    assert record.outcome is Outcome.DONE, record.error
    for fn in functions:
        assert sites["mec2"].status(fn) == "running"
        assert sites["mec1"].status(fn) == "absent"
        assert record.members[fn].outcome is Outcome.DONE
        assert record.members[fn].point_of_no_return_ms is not None


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("chain", list(CHAINS))
def test_every_pattern_moves_the_chain_with_one_switch(
    scenario: Scenario, pattern: str, chain: str
) -> None:
    orch, sites, net = world(scenario)
    record = plan_chain_migration(
        orch, chain, "mec2", pattern=pattern, strategy="precopy", network_aware=True
    ).run()
    assert_moved(record, sites, CHAINS[chain])
    assert len(net.ops("reserve")) == len(CHAINS[chain])  # one reservation per function
    # the chain's steering moved once, every function in it, and no function moved alone
    (switch,) = net.ops("relocate_many")
    assert [m[0] for m in switch[1]] == CHAINS[chain]
    assert {m[1] for m in switch[1]} == {"mec2"}
    assert net.ops("relocate") == []
    # every function's traffic was held over its freeze and delivered after the chain served
    assert not net.held
    assert record.metrics["switchover_ms"] >= 0
    assert set(record.metrics["function_frozen_ms"]) == set(CHAINS[chain])
    # the chain's point of no return comes after every function's restore
    restores = [frozen_window(r) for r in record.members.values()]
    assert record.point_of_no_return_ms is not None
    assert all(w is not None and w[1] <= record.point_of_no_return_ms for w in restores)
    assert not net.grants  # every reservation released


def test_wait_for_me_freezes_every_function_together(scenario: Scenario) -> None:
    orch, sites, _ = world(scenario)
    record = plan_chain_migration(orch, "triple", "mec2", pattern="wait-for-me").run()
    assert_moved(record, sites, CHAINS["triple"])
    windows = [frozen_window(r) for r in record.members.values()]
    assert all(w is not None for w in windows)
    for a, b in itertools.combinations([w for w in windows if w], 2):
        assert overlap(a, b), windows
    assert record.metrics["frozen_windows_overlap"] is True
    assert record.metrics["freeze_spread_ms"] <= 10.0


def test_round_robin_never_runs_two_functions_phases_at_once(scenario: Scenario) -> None:
    orch, sites, _ = world(scenario)
    record = plan_chain_migration(
        orch, "triple", "mec2", pattern="round-robin", strategy="precopy"
    ).run()
    assert_moved(record, sites, CHAINS["triple"])
    for a, b in itertools.combinations(record.members.values(), 2):
        for pa in phases(a):
            for pb in phases(b):
                assert not overlap(pa, pb), (a.instance, pa, b.instance, pb)
    # the freezes follow one another: the third starts after two final dumps (50 ms each on
    # the fakes' clock, scaled by 0.2)
    assert record.metrics["freeze_spread_ms"] >= 2 * 50 * 0.2


def test_async_runs_the_functions_unsupervised_and_in_parallel(scenario: Scenario) -> None:
    orch, sites, _ = world(scenario)
    record = plan_chain_migration(orch, "pair", "mec2", pattern="async", strategy="cold").run()
    assert_moved(record, sites, CHAINS["pair"])
    fw, video = (record.members[f] for f in CHAINS["pair"])
    assert any(overlap(a, b) for a in phases(fw) for b in phases(video))


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize(
    ("where", "fail_at", "switched"),
    [("mec1", "checkpoint-final", False), ("mec2", "restore", True)],
    ids=["second-freeze", "second-restore"],
)
def test_one_function_failing_rolls_the_whole_chain_back(
    scenario: Scenario, pattern: str, where: str, fail_at: str, switched: bool
) -> None:
    orch, sites, net = world(scenario)
    sites[where].fail_at = {fail_at}
    sites[where].fail_on = 2  # the second function's freeze or restore
    cm = plan_chain_migration(
        orch, "triple", "mec2", pattern=pattern, strategy="cold", network_aware=True
    )
    with pytest.raises(ChainMigrationError, match="rolled back") as info:
        cm.run()
    record = info.value.record
    assert record.outcome is Outcome.ROLLED_BACK
    assert record.point_of_no_return_ms is None
    for fn in CHAINS["triple"]:
        assert sites["mec1"].status(fn) == "running", fn  # at its source, with its state
        assert sites["mec2"].status(fn) == "absent", fn
        assert record.members[fn].outcome is Outcome.ROLLED_BACK
    # the steering went there and back in one change each, or never moved
    moves = net.ops("relocate_many")
    if switched:
        assert len(moves) == 2 and {m[1] for m in moves[1][1]} == {"mec1"}
    else:
        assert moves == []
    assert net.ops("relocate") == []
    assert not net.grants and not net.held


def test_without_network_awareness_nothing_is_reserved(scenario: Scenario) -> None:
    orch, sites, net = world(scenario)
    record = plan_chain_migration(
        orch, "pair", "mec2", pattern="wait-for-me", network_aware=False
    ).run()
    assert_moved(record, sites, CHAINS["pair"])
    assert net.ops("reserve") == [] and record.network_aware is False


@pytest.mark.parametrize(
    ("chain", "to", "pattern", "words"),
    [
        ("nope", "mec2", "async", "no chain called 'nope'"),
        ("pair", "mec9", "async", "no site called 'mec9'"),
        ("pair", "mec2", "sideways", "unknown pattern 'sideways'"),
        ("pair", "mec1", "async", "already runs at mec1"),
    ],
)
def test_a_chain_migration_that_cannot_start_changes_nothing(
    scenario: Scenario, chain: str, to: str, pattern: str, words: str
) -> None:
    orch, sites, net = world(scenario)
    before = {name: dict(site.instances) for name, site in sites.items()}
    with pytest.raises(OrchestratorError, match=words):
        plan_chain_migration(orch, chain, to, pattern=pattern)
    assert {name: dict(site.instances) for name, site in sites.items()} == before
    assert net.calls == []


@pytest.mark.parametrize("aware", [False, True])
def test_the_final_iteration_runs_at_its_bandwidth_or_what_fits_the_budget_below_it(
    scenario: Scenario, aware: bool
) -> None:
    """Seed 000's limited final iteration: the rounds run under the usual reservation, then
    each function's reservation becomes the final bandwidth; with network awareness, what the
    final copy needs to fit the budget if that is less."""
    orch, sites, net = world(scenario)
    cap = 16_000_000  # 2 MB/s
    record = plan_chain_migration(
        orch, "pair", "mec2", pattern="wait-for-me", strategy="precopy",
        network_aware=aware, final_bandwidth_bps=cap,
    ).run()  # fmt: skip
    assert_moved(record, sites, CHAINS["pair"])
    rounds_rate = net.ops("reserve")[0][3]
    assert rounds_rate > cap and len(net.ops("reserve")) == 2
    # with network awareness too: 64 MB a round on the fakes does not fit a 1 s budget at
    # 2 MB/s, so the final bandwidth is what it gets
    assert [op[2] for op in net.ops("resize")] == [cap, cap]
    assert not net.grants


def test_network_awareness_takes_less_than_the_final_bandwidth_when_less_fits(
    scenario: Scenario,
) -> None:
    orch, sites, net = world(scenario)
    sites["mec1"].send_bytes = [64 * 10**6, 1000]  # the second copy: what changed, 1 kB
    record = plan_chain_migration(
        orch, "pair", "mec2", pattern="async", strategy="precopy", network_aware=True,
        final_bandwidth_bps=10**9,
    ).run()  # fmt: skip
    assert_moved(record, sites, CHAINS["pair"])
    assert all(op[2] < 10**9 for op in net.ops("resize"))


def test_the_freeze_spread_is_criu_s_own_when_every_dump_says_when_it_froze() -> None:
    from migration.timeline import PhaseRecord
    from orchestration.chain_record import ChainRecord

    def member(name: str, start: float, frozen_at: float | None) -> MigrationRecord:
        rec = MigrationRecord(name, name, "mec1", "mec2", "cold")
        rec.phases = [
            PhaseRecord("freeze_dump", start, start + 50, True, detail={"frozen_at": frozen_at}),
            PhaseRecord("restore", 300, 400, True),
        ]
        return rec

    rec = ChainRecord("c", "pair", ["a", "b"], "mec2", "wait-for-me", "cold", False)
    rec.members = {"a": member("a", 10.0, 1000.100), "b": member("b", 11.0, 1000.104)}
    rec.summarize()
    assert rec.metrics["freeze_spread_ms"] == pytest.approx(4.0, abs=0.01)
    assert rec.metrics["freeze_spread_source"] == "criu"
    rec.members["b"] = member("b", 11.0, None)  # one does not say: the dump requests' spread
    rec.summarize()
    assert rec.metrics["freeze_spread_ms"] == pytest.approx(1.0)
    assert rec.metrics["freeze_spread_source"] == "dump requests"
