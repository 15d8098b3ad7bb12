"""The migration phase machine against in-memory sites, network and clock: phase order, pre-copy
stop rules and boost, rollback at every failure point before the point of no return, and what
happens after it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ground.defaults import DOWNTIME_BUDGET_MS, PAGE_SERVER_PORT
from migration.engine import (
    DUMP_ESTIMATE_S,
    MIGRATION_PORT,
    PAGES_AHEAD_FROM_BPS,
    RESTORE_ESTIMATE_S,
    RETRY_STEP_S,
    UNREACHABLE_GRACE_S,
    Migration,
    MigrationError,
    Plan,
)
from migration.network import Grant
from migration.site import MAX_PACE_BPS, MIN_PACE_BPS, SiteUnreachable
from migration.stoprule import MAX_ROUNDS, MIN_DELTA_BYTES, final_rate_bps
from migration.timeline import MigrationRecord, Outcome, PhaseRecord
from tests.unit.migration_fakes import (
    MB,
    RELOCATE_S,
    SITE_DURATIONS,
    FakeClock,
    FakeNetwork,
    FakeSite,
    connect,
    make_spec,
)

GB = 1000 * MB
INSTANCE = "svc"
SRC, DST = "mec1", "mec2"
SRC_PORT, DST_PORT = 3, 100
DUMP_S = SITE_DURATIONS["checkpoint"]
RATE = 50_000_000  # what the tests' plans ask for (not the engine's default, which may change)

COLD_PHASES = [
    "prepare",
    "reserve",
    "freeze_dump",
    "transfer",
    "switch",
    "restore",
    "release",
    "cleanup",
]


@dataclass
class World:
    clock: FakeClock
    src: FakeSite
    dst: FakeSite
    net: FakeNetwork
    plan: Plan
    events: list[tuple[str, str | None]] = field(default_factory=list)
    journal: list[tuple[str, str]] = field(default_factory=list)

    def listener(self, event: str, record: MigrationRecord, phase: PhaseRecord | None) -> None:
        assert isinstance(record, MigrationRecord)
        self.events.append((event, phase.name if phase else None))

    def migration(self) -> Migration:
        return Migration(
            self.plan,
            self.net,
            self.clock,
            self.listener,
            migration_id="mig-test-1",
            sleep=self.clock.advance,
        )


def make_world(
    strategy: str = "cold",
    *,
    src: dict[str, Any] | None = None,
    dst: dict[str, Any] | None = None,
    net: dict[str, Any] | None = None,
    budget_ms: float = DOWNTIME_BUDGET_MS,
    rate_bps: int = RATE,
    predicted_bytes: int = 0,
    dirty_tracking: bool = False,
) -> World:
    clock = FakeClock()
    journal: list[tuple[str, str]] = []
    s = FakeSite(SRC, "192.168.1.1", clock, journal=journal, **(src or {}))
    d = FakeSite(DST, "192.168.1.2", clock, journal=journal, **(dst or {}))
    connect(s, d)
    s.create(make_spec(INSTANCE, port=SRC_PORT))
    s.calls.clear()
    journal.clear()
    n = FakeNetwork(clock=clock, journal=journal, **(net or {}))
    plan = Plan(
        instance=INSTANCE,
        source=s,
        destination=d,
        destination_site=DST,
        destination_port=DST_PORT,
        strategy=strategy,
        budget_ms=budget_ms,
        rate_bps=rate_bps,
        dirty_tracking=dirty_tracking,
        predicted_bytes=predicted_bytes,
    )
    return World(clock, s, d, n, plan, journal=journal)


def phase_names(record: MigrationRecord) -> list[str]:
    return [p.name for p in record.phases]


def ph(record: MigrationRecord, name: str) -> PhaseRecord:
    rec = record.phase(name)
    assert rec is not None, f"no phase {name}"
    return rec


def sends(site: FakeSite) -> list[bool]:
    """The `delta` flag of each send."""
    return [c[4] for c in site.ops("send")]


def assert_runs_at_destination(w: World) -> None:
    inst = w.dst.instances[INSTANCE]
    assert (inst.status, inst.link) == ("running", True)
    assert inst.spec.port == DST_PORT
    assert INSTANCE not in w.src.instances


# ---------------------------------------------------------------------------------- cold


def test_cold_happy_path_phases_state_and_network() -> None:
    w = make_world()
    record = w.migration().run()

    assert phase_names(record) == COLD_PHASES
    assert all(p.ok for p in record.phases)
    assert record.outcome is Outcome.DONE and record.error is None
    assert record.mode == "stop-and-copy"
    assert_runs_at_destination(w)
    # the destination was prepared with the source's spec at the destination port
    ((_, prepared),) = w.dst.ops("prepare_target")
    assert prepared == make_spec(INSTANCE, port=DST_PORT)
    # one final dump (stopping the service), one full send to the destination's agent
    assert w.src.ops("checkpoint") == [("checkpoint", INSTANCE, False, False)]
    assert w.src.ops("send") == [("send", INSTANCE, w.dst.address, MIGRATION_PORT, False)]
    assert ("set_link", INSTANCE, False) in w.src.calls
    assert w.src.ops("resume") == [] and w.dst.ops("destroy") == []
    # network: reserved for the migration port, traffic switched once, reservation released
    grant = Grant(1, RATE)
    assert w.net.calls == [
        ("reserve", SRC, DST, RATE, MIGRATION_PORT, record.id),
        ("relocate", INSTANCE, DST, DST_PORT),
        ("release", grant),
    ]
    assert w.net.grants == {}
    assert ph(record, "reserve").detail["granted_bps"] == RATE
    assert ph(record, "switch").detail["switchover_ms"] == RELOCATE_S * 1000


FAST = 1_000_000_000  # a link from which cold sends its pages ahead (PAGES_AHEAD_FROM_BPS)


def test_cold_pages_go_ahead_to_the_destinations_page_server() -> None:
    """Cold on a fast link: before the freeze the destination listens and runs a page server
    on the plan's page-server port; the final dump sends its pages there, paced at the grant
    (dump and copy overlap), unsampled (they are not in its images); the transfer after it uses
    that receiver, and the reservation matches the agents' pair (pages and copy on two ports).
    On a slow link (zstd may pay there: only the copy after the dump compresses) and for
    pre-copy's final dump (a delta on its rounds) no pages go ahead."""
    w = make_world(rate_bps=FAST)
    record = w.migration().run()
    assert w.dst.pages_port == PAGE_SERVER_PORT
    assert w.src.pages_to == (f"{w.dst.address}:{PAGE_SERVER_PORT}", FAST)
    assert w.src.sampled == [False]
    assert [op for who, op in w.journal if op in ("start_receive", "checkpoint-final")] == [
        "start_receive", "checkpoint-final",
    ]  # fmt: skip
    assert len(w.dst.ops("start_receive")) == 1
    freeze = ph(record, "freeze_dump")
    assert freeze.detail["pages_to"] == f"{w.dst.address}:{PAGE_SERVER_PORT}"
    assert ph(record, "receive").detail == {"pages_port": PAGE_SERVER_PORT}
    assert record.phases.index(ph(record, "receive")) + 1 == record.phases.index(freeze)
    assert w.net.ops("reserve")[0][4] is None
    assert record.outcome is Outcome.DONE

    for w in (
        make_world(rate_bps=PAGES_AHEAD_FROM_BPS - 1),
        make_world("precopy", rate_bps=FAST, src={"send_bytes": [60 * MB, 1 * MB]}),
    ):
        record = w.migration().run()
        assert record.phase("receive") is None and w.src.pages_to is None
        assert ph(record, "freeze_dump").detail["pages_to"] is None
        assert w.net.ops("reserve")[0][4] == MIGRATION_PORT


def test_cold_calls_in_order_across_sites_and_network() -> None:
    w = make_world()
    w.migration().run()
    ops = [
        (who, op)
        for who, op in w.journal
        if op not in ("cpu_jiffies", "spec") and not op.startswith("status")
    ]
    assert ops == [
        (DST, "prepare_target"),
        ("network", "reserve"),
        (SRC, "checkpoint-final"),
        (DST, "start_receive"),
        (SRC, "send"),
        (DST, "finish_receive"),
        (SRC, "set_link"),
        ("network", "relocate"),
        (DST, "restore"),
        ("network", "release"),
        (SRC, "destroy"),
    ]


def test_cold_record_timings_and_json() -> None:
    w = make_world()
    record = w.migration().run()

    ms = {p.name: p.duration_ms for p in record.phases}
    assert ms == pytest.approx(
        {
            "prepare": 10.0,
            "reserve": 0.0,
            "freeze_dump": 50.0,
            "transfer": 100.0,
            "switch": 20.0,
            "restore": 200.0,
            "release": 0.0,
            "cleanup": 5.0,
        }
    )
    restore = record.phase("restore")
    assert restore is not None
    assert record.point_of_no_return_ms == pytest.approx(restore.end_ms)
    assert record.point_of_no_return_ms == pytest.approx(380.0)
    assert record.total_ms == pytest.approx(385.0)
    assert record.metrics["frozen_ms"] == pytest.approx(50 + 100 + 20 + 200)
    assert record.metrics["rounds"] == 0
    assert record.metrics["source_cpu_util"] == pytest.approx(0.25)
    assert record.bytes_transferred == 64 * MB

    data = record.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["outcome"] == "done"
    assert back["total_ms"] == pytest.approx(385.0)
    assert back["bytes_transferred"] == 64 * MB
    assert back["point_of_no_return_ms"] == pytest.approx(380.0)
    assert [p["name"] for p in back["phases"]] == COLD_PHASES
    assert back["phases"][2]["duration_ms"] == pytest.approx(50.0)


def test_cold_listener_events_in_order() -> None:
    w = make_world()
    w.migration().run()
    expected: list[tuple[str, str | None]] = []
    for name in COLD_PHASES:
        expected += [("phase_started", name), ("phase_done", name)]
        if name == "restore":
            expected.append(("point_of_no_return", None))
    expected.append(("finished", None))
    assert w.events == expected


@pytest.mark.parametrize("budget_ms", [1000.0, 500.0])
def test_cold_reservation_sized_from_predicted_bytes(budget_ms: float) -> None:
    w = make_world(predicted_bytes=64 * MB, budget_ms=budget_ms)
    record = w.migration().run()
    want = int(final_rate_bps(64 * MB, budget_ms, DUMP_ESTIMATE_S, RESTORE_ESTIMATE_S, RATE))
    window = max(budget_ms / 1000 - DUMP_ESTIMATE_S - RESTORE_ESTIMATE_S, 0.01)
    assert want == int(64 * MB * 1.1 * 8 / window) > RATE
    assert w.net.ops("reserve")[0][3] == want
    assert ph(record, "reserve").detail == {"rate_bps": want, "granted_bps": want}
    assert w.net.ops("release") == [("release", Grant(1, want))]


def test_cold_reservation_never_below_the_plan_rate() -> None:
    w = make_world(predicted_bytes=1 * MB)
    w.migration().run()
    assert w.net.ops("reserve")[0][3] == RATE


def test_precopy_ignores_predicted_bytes_for_the_first_reservation() -> None:
    w = make_world("precopy", src={"send_bytes": [60 * MB, 8 * MB, 1 * MB]}, predicted_bytes=GB)
    w.migration().run()
    assert w.net.ops("reserve")[0][3] == RATE


def test_without_network_no_reservation_no_switch() -> None:
    w = make_world()
    record = Migration(w.plan, None, w.clock, migration_id="mig-test-2").run()
    assert record.outcome is Outcome.DONE
    assert "release" not in phase_names(record)  # nothing was granted
    assert ph(record, "reserve").detail["granted_bps"] is None
    assert_runs_at_destination(w)


def test_network_refuses_the_reservation() -> None:
    w = make_world(net={"refuse": True})
    record = w.migration().run()
    assert record.outcome is Outcome.DONE
    assert_runs_at_destination(w)
    assert [c[0] for c in w.net.calls] == ["reserve", "relocate"]
    assert ph(record, "reserve").detail["granted_bps"] is None
    assert "release" not in phase_names(record)


def test_network_refuses_precopy_iterates_at_plan_rate_and_skips_boost() -> None:
    w = make_world("precopy", src={"send_bytes": [60 * MB, 8 * MB, 1 * MB]}, net={"refuse": True})
    record = w.migration().run()
    assert record.outcome is Outcome.DONE
    assert "boost" not in phase_names(record)
    assert record.metrics["rounds"] == 3
    assert [c[0] for c in w.net.calls] == ["reserve", "relocate"]


def test_unknown_strategy_is_a_value_error() -> None:
    w = make_world()
    with pytest.raises(ValueError, match="unknown strategy 'teleport'"):
        Migration(replace(w.plan, strategy="teleport"), w.net, w.clock, migration_id="m")
    assert w.dst.calls == [] and w.net.calls == []


def test_the_caller_names_the_migration() -> None:
    w = make_world()
    mig = Migration(w.plan, w.net, w.clock, migration_id="mig-from-caller")
    assert mig.record.id == "mig-from-caller"
    assert mig.run().id == "mig-from-caller"
    assert w.net.calls[0][:3] == ("reserve", SRC, DST) and w.net.calls[0][-1] == "mig-from-caller"
    with pytest.raises(ValueError, match="needs an id"):
        Migration(w.plan, w.net, w.clock, migration_id="")


def test_phases_can_be_driven_one_by_one() -> None:
    w = make_world()
    m = w.migration()
    m.prepare()
    assert m.grant == Grant(1, RATE)
    m.final_dump()
    assert m.dumped_final and w.src.instances[INSTANCE].status == "stopped"
    m.transfer()
    m.switch()
    assert m.switched and not m.past_point_of_no_return
    m.restore()
    assert m.past_point_of_no_return
    m.release()
    assert m.grant is None and w.net.grants == {}
    m.cleanup()
    assert_runs_at_destination(w)
    assert m.record.outcome is Outcome.RUNNING  # only run() finishes a record


def test_rollback_can_be_called_alone() -> None:
    w = make_world()
    m = w.migration()
    m.prepare()
    m.final_dump()
    m.transfer()
    m.rollback(RuntimeError("operator said no"))
    assert w.src.instances[INSTANCE].status == "running"
    assert w.src.resumed == ["restored from its final dump"]
    assert INSTANCE not in w.dst.instances
    assert w.net.grants == {} and w.net.ops("relocate") == []


# ---------------------------------------------------------------------------------- precopy


def test_precopy_stops_on_budget_rule() -> None:
    w = make_world("precopy", src={"send_bytes": [60 * MB, 8 * MB, 1 * MB, 1 * MB]})
    record = w.migration().run()

    assert record.outcome is Outcome.DONE
    assert phase_names(record) == [
        "prepare",
        "reserve",
        "precopy-1",
        "precopy-2",
        "precopy-3",
        "boost",
        "freeze_dump",
        "transfer",
        "switch",
        "restore",
        "release",
        "cleanup",
    ]
    assert record.metrics["stop_reason"] == "final iteration fits the 1000 ms budget"
    assert record.metrics["rounds"] == 3
    # first round full, the others (and the final transfer) deltas
    assert sends(w.src) == [False, True, True, True]
    assert [c[2] for c in w.src.ops("checkpoint")] == [True, True, True, False]
    assert [ph(record, f"precopy-{i}").bytes for i in (1, 2, 3)] == [
        60 * MB,
        8 * MB,
        1 * MB,
    ]
    assert ph(record, "transfer").detail["mode"] == "delta"
    assert record.bytes_transferred == 70 * MB
    assert_runs_at_destination(w)


@pytest.mark.parametrize(
    ("send_bytes", "rounds", "reason"),
    [
        ([60 * MB, 80 * MB], 2, "delta grows: the service dirties faster than we copy"),
        (
            [60 * MB, 50 * MB, 42 * MB, 35 * MB, 29 * MB, 24 * MB, 20 * MB, 17 * MB],
            MAX_ROUNDS,
            f"iteration cap ({MAX_ROUNDS})",
        ),
        ([60 * MB, 8 * MB, MIN_DELTA_BYTES - 1], 3, f"delta below {MIN_DELTA_BYTES} bytes"),
        ([60 * MB], 2, "not converging: rounds no longer shrink"),
    ],
    ids=["growth-guard", "max-rounds", "min-delta", "not-converging"],
)
def test_precopy_other_stop_rules(send_bytes: list[int], rounds: int, reason: str) -> None:
    # a 300 ms budget cannot be met (restore alone is estimated at 300 ms): other rules decide
    budget = 1000.0 if reason.startswith(("delta grows", "iteration", "not conv")) else 300.0
    w = make_world("precopy", src={"send_bytes": send_bytes}, budget_ms=budget)
    record = w.migration().run()
    assert record.outcome is Outcome.DONE
    assert record.metrics["stop_reason"] == reason
    assert record.metrics["rounds"] == rounds
    assert sends(w.src) == [False] + [True] * rounds  # rounds-1 delta rounds + final delta


@pytest.mark.parametrize(
    ("send_bytes", "budget_ms"),
    [([60 * MB, 8 * MB, 1 * MB], 1000.0), ([60 * MB, 80 * MB], 1000.0), ([60 * MB], 500.0)],
    ids=["fits-budget", "growth", "cap"],
)
def test_boost_resizes_to_final_rate_before_final_dump(
    send_bytes: list[int], budget_ms: float
) -> None:
    w = make_world("precopy", src={"send_bytes": send_bytes}, budget_ms=budget_ms)
    record = w.migration().run()

    last = send_bytes[min(int(record.metrics["rounds"]), len(send_bytes)) - 1]
    want = int(final_rate_bps(last, budget_ms, DUMP_S, RESTORE_ESTIMATE_S, RATE))
    assert w.net.ops("resize") == [("resize", Grant(1, RATE), want)]
    boost = record.phase("boost")
    assert boost is not None and boost.ok
    assert boost.detail == {"from_bps": RATE, "want_bps": want, "granted_bps": want}
    # the boosted reservation is the one released
    assert w.net.ops("release") == [("release", Grant(1, want))]
    # resize comes after the last pre-copy round and before the freezing dump
    order = [op for _, op in w.journal]
    resize_at = order.index("resize")
    assert "checkpoint-final" not in order[:resize_at]
    assert order[resize_at + 1] == "checkpoint-final"


def test_boost_value_when_the_budget_rule_did_not_stop() -> None:
    w = make_world("precopy", src={"send_bytes": [60 * MB, 80 * MB]})
    w.migration().run()
    window = 1.0 - DUMP_S - RESTORE_ESTIMATE_S
    expected = int(80 * MB * 1.1 * 8 / window)
    assert expected > RATE
    assert w.net.ops("resize")[0][2] == expected


def test_budget_rule_stop_never_boosts_above_the_grant() -> None:
    # predicted downtime <= budget at the granted rate means the final rate is below it
    w = make_world("precopy", src={"send_bytes": [60 * MB, 8 * MB, 1 * MB]})
    w.migration().run()
    assert w.net.ops("resize")[0][2] == RATE


def test_network_grants_less_stop_rule_uses_the_grant() -> None:
    send_bytes = [60 * MB, 8 * MB, 2 * MB, 1 * MB]
    asked = make_world("precopy", src={"send_bytes": send_bytes})
    assert asked.migration().run().metrics["rounds"] == 3  # 2 MB fits at 50 Mbit/s
    w = make_world("precopy", src={"send_bytes": send_bytes}, net={"max_bps": 20_000_000})
    record = w.migration().run()
    assert record.metrics["rounds"] == 4  # ... but not at the 20 Mbit/s granted
    assert ph(record, "reserve").detail == {
        "rate_bps": RATE,
        "granted_bps": 20_000_000,
    }
    boost = record.phase("boost")
    assert boost is not None and boost.detail["from_bps"] == 20_000_000


def test_boost_granted_less_than_wanted() -> None:
    w = make_world("precopy", src={"send_bytes": [60 * MB, 80 * MB]}, net={"max_bps": 90_000_000})
    record = w.migration().run()
    boost = record.phase("boost")
    assert boost is not None
    assert boost.detail["want_bps"] > 90_000_000
    assert boost.detail["granted_bps"] == 90_000_000
    assert w.net.ops("release") == [("release", Grant(1, 90_000_000))]


# ---------------------------------------------------------------------------------- pacing


def test_rounds_are_paced_at_the_reservation_the_frozen_delta_copy_is_not() -> None:
    """Every pre-copy round at the reservation's rate; the frozen copy after them (what they
    left) unpaced, in the meter's burst (even when boosted); a cold copy, all of the memory
    frozen, paced."""
    w = make_world("precopy", src={"send_bytes": [60 * MB, 80 * MB]})
    record = w.migration().run()
    assert ph(record, "boost").detail["granted_bps"] > RATE
    assert w.src.paces == [RATE] * int(record.metrics["rounds"]) + [None]
    cold = make_world()
    cold.migration().run()
    assert cold.src.paces == [RATE]


def test_copies_are_unpaced_without_a_reservation() -> None:
    w = make_world()
    Migration(w.plan, None, w.clock, migration_id="mig-test-2").run()
    refused = make_world("precopy", src={"send_bytes": [60 * MB, 8 * MB]}, net={"refuse": True})
    rounds = int(refused.migration().run().metrics["rounds"])
    assert w.src.paces == [None] and refused.src.paces == [None] * (rounds + 1)


@pytest.mark.parametrize(
    ("granted", "pace"),
    [(20_000_000, 20_000_000), (500, MIN_PACE_BPS), (0, None), (MAX_PACE_BPS + 1, MAX_PACE_BPS)],
    ids=["granted-less", "below-a-site's-least", "no-rate", "beyond-a-site's-most"],
)
def test_a_copy_is_paced_at_the_grant_within_what_a_site_takes(
    granted: int, pace: int | None
) -> None:
    w = make_world(net={"max_bps": granted}, rate_bps=MAX_PACE_BPS + 1)
    w.migration().run()
    assert w.src.paces == [pace]


# ---------------------------------------------------------------------------------- rollback


@dataclass(frozen=True)
class FailCase:
    id: str
    strategy: str = "cold"
    src: dict[str, Any] = field(default_factory=dict)
    dst: dict[str, Any] = field(default_factory=dict)
    net: dict[str, Any] = field(default_factory=dict)
    failed_phase: str = ""
    switched: bool = False
    stopped: bool = False  # the final dump had stopped the service
    reserved: bool = True
    touched: bool = True  # a dump of ours ran at the source: the rollback resumes it
    prepared: bool = True  # the destination holds our target: the rollback wipes it
    error: str = "injected failure"


PRECOPY = {"send_bytes": [60 * MB, 8 * MB, 1 * MB]}
FAIL_CASES = [
    FailCase("prepare_target", dst={"fail_at": "prepare_target"}, failed_phase="prepare",
             reserved=False, touched=False, prepared=False),
    FailCase("reserve", net={"fail_at": {"reserve"}}, failed_phase="reserve", reserved=False,
             touched=False),
    FailCase("checkpoint-leave-running", "precopy",
             src={**PRECOPY, "fail_at": "checkpoint-leave-running"}, failed_phase="precopy-1"),
    FailCase("checkpoint-leave-running-round-2", "precopy",
             src={**PRECOPY, "fail_at": "checkpoint-leave-running", "fail_on": 2},
             failed_phase="precopy-2"),
    FailCase("precopy-send", "precopy", src={**PRECOPY, "fail_at": "send", "fail_on": 2},
             failed_phase="precopy-2"),
    FailCase("boost", "precopy", src=PRECOPY, net={"fail_at": {"resize"}}, failed_phase="boost"),
    FailCase("checkpoint-final", src={"fail_at": "checkpoint-final"}, failed_phase="freeze_dump"),
    FailCase("checkpoint-final-precopy", "precopy", src={**PRECOPY, "fail_at": "checkpoint-final"},
             failed_phase="freeze_dump"),
    FailCase("start_receive", dst={"fail_at": "start_receive"}, failed_phase="transfer",
             stopped=True),
    FailCase("send", src={"fail_at": "send"}, failed_phase="transfer", stopped=True),
    FailCase("send-precopy-final", "precopy", src={**PRECOPY, "fail_at": "send", "fail_on": 4},
             failed_phase="transfer", stopped=True),
    FailCase("finish_receive", dst={"fail_at": "finish_receive"}, failed_phase="transfer",
             stopped=True),
    FailCase("set_link", src={"fail_at": "set_link"}, failed_phase="switch", stopped=True),
    FailCase("relocate", net={"fail_at": {"relocate"}}, failed_phase="switch", switched=True,
             stopped=True),
    FailCase("restore", dst={"fail_at": "restore"}, failed_phase="restore", switched=True,
             stopped=True),
    FailCase("restored-but-not-running", dst={"after_restore_status": "stopped"},
             failed_phase="restore", switched=True, stopped=True,
             error="restored instance is stopped"),
    FailCase("status-after-restore", dst={"fail_at": "status-after-restore"},
             failed_phase="restore", switched=True, stopped=True),
]  # fmt: skip


@pytest.mark.parametrize("case", FAIL_CASES, ids=[c.id for c in FAIL_CASES])
def test_rollback_before_point_of_no_return(case: FailCase) -> None:
    w = make_world(case.strategy, src=case.src, dst=case.dst, net=case.net)
    m = w.migration()
    with pytest.raises(MigrationError, match="rolled back") as excinfo:
        m.run()
    record = excinfo.value.record
    assert record is m.record
    assert record.outcome is Outcome.ROLLED_BACK
    assert record.error is not None and case.error in record.error
    assert record.point_of_no_return_ms is None
    assert ("point_of_no_return", None) not in w.events
    assert w.events[-1] == ("finished", None)

    # the phase that failed, then the rollback, and nothing else after it
    failed = [p for p in record.phases if p.ok is False]
    assert [p.name for p in failed] == [case.failed_phase]
    assert phase_names(record)[-2:] == [case.failed_phase, "rollback"]
    rollback = record.phase("rollback")
    assert rollback is not None and rollback.ok
    how = "restored from its final dump" if case.stopped else "still running"
    how = how if case.touched else "untouched"
    assert rollback.detail["steps"] == [
        "destination wiped",
        "page server stopped",
        how,
        "source resumed",
        "traffic back",
        "held traffic delivered",
        "reservation released",
    ]

    # the service runs at the source again, with its link up; resumed exactly once
    inst = w.src.instances[INSTANCE]
    assert (inst.status, inst.link) == ("running", True)
    assert w.src.resumed == ([how] if case.touched else [])
    assert w.src.ops("destroy") == []
    # the destination holds nothing, receives nothing; only a target of ours is wiped there
    assert INSTANCE not in w.dst.instances and w.dst.incoming == {}
    assert w.dst.ops("destroy") == ([("destroy", INSTANCE)] if case.prepared else [])
    # the reservation (if one was made) is released; nothing left in force
    assert w.net.grants == {}
    assert len(w.net.ops("release")) == (1 if case.reserved else 0)
    # traffic: switched back to the source site and port iff it had been switched
    relocations = [c[1:] for c in w.net.ops("relocate")]
    if case.switched:
        assert relocations == [(INSTANCE, DST, DST_PORT), (INSTANCE, SRC, SRC_PORT)]
    else:
        assert relocations == []


def test_rollback_listener_events() -> None:
    w = make_world(dst={"fail_at": "restore"})
    with pytest.raises(MigrationError):
        w.migration().run()
    assert w.events[-5:] == [
        ("phase_started", "restore"),
        ("phase_failed", "restore"),
        ("phase_started", "rollback"),
        ("phase_done", "rollback"),
        ("finished", None),
    ]


@pytest.mark.parametrize(
    ("src", "dst", "net", "failed_step"),
    [
        ({"fail_at": {"send", "resume"}}, {}, {}, "source resumed"),
        ({}, {"fail_at": {"restore", "destroy"}}, {}, "destination wiped"),
        ({}, {"fail_at": "restore"}, {"fail_at": {"relocate"}, "fail_on": 2}, "traffic back"),
        ({"fail_at": "send"}, {}, {"fail_at": {"release"}}, "reservation released"),
    ],
    ids=["resume", "destroy-destination", "switch-back", "release"],
)
def test_failing_rollback_step_gives_failed(
    src: dict[str, Any], dst: dict[str, Any], net: dict[str, Any], failed_step: str
) -> None:
    w = make_world(src=src, dst=dst, net=net)
    with pytest.raises(MigrationError, match=f"rollback incomplete.*{failed_step}: FAILED") as ei:
        w.migration().run()
    record = ei.value.record
    assert record.outcome is Outcome.FAILED
    assert record.error is not None and f"{failed_step}: FAILED" in record.error
    rollback = record.phase("rollback")
    assert rollback is not None and rollback.ok is False
    # every step was still tried, the failing one marked
    steps = rollback.detail["steps"]
    for step in ("destination wiped", "source resumed", "traffic back", "reservation released"):
        assert sum(s.startswith(step) for s in steps) == 1, steps
    assert [s.split(":")[0] for s in steps if "FAILED" in s] == [failed_step]
    assert w.events[-1] == ("finished", None)
    assert len(w.src.ops("resume")) == 1
    assert len(w.dst.ops("destroy")) == 1


# ---------------------------------------------------------------------------------- after PONR


def test_cleanup_failure_after_point_of_no_return_stands() -> None:
    w = make_world(src={"fail_at": "destroy"})
    m = w.migration()
    record = m.run()  # no exception: the migration stands

    assert record.outcome is Outcome.FAILED
    assert record.error is not None and record.error.startswith("cleanup: ")
    assert "injected failure in destroy" in record.error
    assert record.point_of_no_return_ms is not None
    assert "rollback" not in phase_names(record)
    assert phase_names(record) == COLD_PHASES
    assert ph(record, "cleanup").ok is False
    # no rollback: destination keeps serving, source not resumed, traffic not moved back
    inst = w.dst.instances[INSTANCE]
    assert (inst.status, inst.link) == ("running", True)
    assert w.dst.ops("destroy") == [] and w.src.ops("resume") == []
    assert [c[2] for c in w.net.ops("relocate")] == [DST]
    assert w.net.grants == {}
    assert w.src.instances[INSTANCE].status == "stopped"  # left behind, reported
    # metrics are still computed for a migration that stands
    assert record.metrics["frozen_ms"] == pytest.approx(370.0)
    assert w.events[-3:] == [
        ("phase_started", "cleanup"),
        ("phase_failed", "cleanup"),
        ("finished", None),
    ]


def test_a_source_agent_away_after_the_point_of_no_return_is_waited_for() -> None:
    # it crashed and its supervisor starts it again: the clean-up is tried until it answers
    w = make_world(src={"unreachable_at": "destroy", "unreachable_calls": 3})
    t0 = w.clock()
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and record.error is None
    assert record.metrics["unreachable_retries"] == 3
    assert INSTANCE not in w.src.instances  # the source's copy is gone
    assert w.clock() - t0 >= 3 * RETRY_STEP_S


def test_a_source_agent_away_for_longer_than_the_grace_fails_the_clean_up_only() -> None:
    w = make_world(src={"unreachable_at": "destroy", "unreachable_calls": 10**6})
    t0 = w.clock()
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED
    assert record.error is not None and record.error.startswith("cleanup: ")
    assert "unreachable" in record.error
    waited = w.clock() - t0
    assert UNREACHABLE_GRACE_S <= waited < UNREACHABLE_GRACE_S + 5
    assert w.dst.instances[INSTANCE].status == "running"  # the destination serves on


def test_a_restarted_source_agent_that_forgot_its_page_server_does_not_fail_postcopy() -> None:
    w = make_world(
        "postcopy",
        src={
            "unreachable_at": "finish_lazy_checkpoint",
            "unreachable_calls": 2,
            "refuse_at": "finish_lazy_checkpoint",
        },
    )
    record = w.migration().run()
    assert record.outcome is Outcome.DONE, record.error
    assert ph(record, "pages").detail["source_agent_restarted"] is True
    assert INSTANCE not in w.src.instances


def test_a_refused_page_server_finish_without_a_restart_still_fails() -> None:
    w = make_world("postcopy", src={"refuse_at": "finish_lazy_checkpoint"})
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED
    assert record.error is not None and record.error.startswith("pull_pages: ")


def test_a_dump_that_never_reached_the_source_leaves_it_untouched() -> None:
    # its agent was down: the connection was refused, so nothing at the source was frozen
    w = make_world(
        src={"unreachable_at": "checkpoint", "unreachable_delivered": False, "unreachable_calls": 1}
    )
    with pytest.raises(MigrationError) as err:
        w.migration().run()
    record = err.value.record
    assert record.outcome is Outcome.ROLLED_BACK
    assert "untouched" in ph(record, "rollback").detail["steps"]
    assert w.src.ops("resume") == []


def test_a_rollback_waits_for_the_source_agent_to_resume_the_service() -> None:
    # the dump reached the source (its answer was lost), then the agent was away for a while
    w = make_world(src={"unreachable_at": {"checkpoint", "resume"}, "unreachable_calls": 4})
    with pytest.raises(MigrationError) as err:
        w.migration().run()
    record = err.value.record
    assert record.outcome is Outcome.ROLLED_BACK
    assert len(w.src.ops("resume")) == 1  # after 3 unanswered tries
    assert record.metrics["unreachable_retries"] == 3


def test_a_destination_agent_away_while_pages_move_is_waited_for() -> None:
    w = make_world("postcopy", dst={"unreachable_at": "finish_pages", "unreachable_calls": 2})
    record = w.migration().run()
    assert record.outcome is Outcome.DONE, record.error
    assert record.metrics["unreachable_retries"] == 2
    assert INSTANCE not in w.src.instances


def test_the_source_is_kept_while_nobody_can_say_every_page_arrived() -> None:
    # the destination's agent never answers: its memory may still come from the source's
    # page server, and destroying the source would end the service
    w = make_world("postcopy", dst={"unreachable_at": "finish_pages", "unreachable_calls": 10**6})
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED
    assert record.error is not None
    assert "cleanup: skipped: the source may still be serving pages" in record.error
    assert w.src.ops("destroy") == []
    assert w.dst.instances[INSTANCE].status == "running"


def test_the_source_goes_once_the_destination_has_every_page() -> None:
    # the source's own confirmation fails, but the destination has said every page arrived
    w = make_world("postcopy", src={"fail_at": "finish_lazy_checkpoint"})
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED
    assert record.error is not None and record.error.startswith("pull_pages: ")
    assert INSTANCE not in w.src.instances


def test_a_move_the_switches_cannot_all_take_now_rolls_back_before_the_freeze_ends() -> None:
    # the destination site's switch lost its controller: the move reaches it only when it is
    # back, and until then the clients' traffic would not reach the restored service
    from migration.network import RelocationIncomplete

    w = make_world()

    def relocate(instance: str, site: str, port: int) -> float:
        w.net._op("relocate", instance, site, port)
        raise RelocationIncomplete(instance, ["s2"], 3.0)

    w.net.relocate = relocate  # type: ignore[method-assign]
    with pytest.raises(MigrationError) as err:
        w.migration().run()
    record = err.value.record
    assert record.outcome is Outcome.ROLLED_BACK  # the move back home is as good as it gets
    assert "switches s2 are not connected" in (record.error or "")
    assert [c[2] for c in w.net.ops("relocate")] == [DST, SRC]
    assert w.src.instances[INSTANCE].status == "running"


def test_release_failure_after_point_of_no_return_still_cleans_up() -> None:
    w = make_world(net={"fail_at": {"release"}})
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED
    assert record.error is not None and record.error.startswith("release: ")
    assert [(p.name, p.ok) for p in record.phases[-2:]] == [("release", False), ("cleanup", True)]
    assert_runs_at_destination(w)
    assert w.src.ops("resume") == [] and w.dst.ops("destroy") == []


def test_both_after_point_of_no_return_errors_recorded() -> None:
    w = make_world(src={"fail_at": "destroy"}, net={"fail_at": {"release"}})
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED
    assert record.error is not None
    release, cleanup = record.error.split("; ")
    assert release.startswith("release: ") and cleanup.startswith("cleanup: ")


def _lazy_world(strategy: str) -> Any:
    return make_world(strategy)


@pytest.mark.parametrize("strategy", ["postcopy", "hybrid"])
def test_lazy_strategies_restore_first_then_pull_pages(strategy: str) -> None:
    w = _lazy_world(strategy)
    record = w.migration().run()
    names = phase_names(record)
    assert record.outcome is Outcome.DONE
    assert names.index("freeze_dump") < names.index("restore") < names.index("pages")
    assert names[-2:] == ["release", "cleanup"]
    assert w.dst.lazy_from is not None and w.dst.lazy_from.endswith(":7101")
    # the lazy-pages daemon was asked for with the receive, before the freeze, for that server
    assert w.dst.lazy_ahead == w.dst.lazy_from
    assert record.mode in ("lazy-pages", "data-delta+lazy-pages")
    if strategy == "hybrid":  # rounds move files only: no leave-running memory dump
        assert not w.src.ops("checkpoint")
        assert any(n.startswith("precopy-") for n in names)
    reserve = w.net.ops("reserve")[0]
    assert reserve[4] is None  # the agents' pair is reserved: pages come from port 7101


@pytest.mark.parametrize("strategy", ["postcopy", "hybrid"])
def test_a_lazy_dump_hands_its_images_off_without_round_trips_in_the_frozen_window(
    strategy: str,
) -> None:
    """The destination listens before the freeze; the source's agent takes the link down and
    sends the images within the dump step; the restore finishes the receive: between the
    freeze and the restore the engine calls no agent."""
    w = _lazy_world(strategy)
    record = w.migration().run()
    assert record.outcome is Outcome.DONE
    agents = [call for call in w.journal if call[0] in (SRC, DST)]
    freeze, restore = agents.index((SRC, "lazy_checkpoint")), agents.index((DST, "restore"))
    assert agents[freeze - 1] == (DST, "start_receive")  # listening before the freeze
    assert agents[freeze + 1 : restore] == [
        (SRC, "set_link"), (SRC, "send"), (DST, "finish_receive"),
    ]  # fmt: skip
    assert w.src.ops("set_link") == [("set_link", INSTANCE, False)]  # once, by the handoff
    assert ph(record, "transfer").detail["handed_off"] is True
    assert ph(record, "transfer").bytes == w.src.send_bytes[-1]
    assert "handoff_s" in ph(record, "freeze_dump").detail
    assert (ph(record, "receive").end_ms or 0.0) <= ph(record, "freeze_dump").start_ms
    assert_runs_at_destination(w)


def test_a_failed_handoff_rolls_back_with_the_source_serving() -> None:
    w = make_world("postcopy", src={"fail_at": "send"})
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert w.src.status(INSTANCE) == "running" and w.src.instances[INSTANCE].link
    assert INSTANCE not in w.dst.instances  # wiped, its receiver with it
    assert not w.net.ops("relocate")


def test_lazy_failure_before_restore_stops_the_page_server_and_resumes_the_source() -> None:
    w = make_world("postcopy", dst={"fail_at": "restore"})
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert w.src.ops("abort_lazy_checkpoint")
    assert w.src.status("svc") == "running"


def test_restart_strategy_moves_files_then_starts_afresh_at_the_destination() -> None:
    w = make_world("restart")
    record = w.migration().run()
    names = phase_names(record)
    assert record.outcome is Outcome.DONE and record.mode == "filesystem-state"
    assert names.index("precopy-1") < names.index("freeze_stop") < names.index("transfer")
    assert names.index("switch") < names.index("start")
    assert not w.src.ops("checkpoint") and w.dst.ops("start")
    assert w.dst.status("svc") == "running"
    # its frozen window: the stop to the start at the destination
    stop, start = record.phase("freeze_stop"), record.phase("start")
    assert stop is not None and start is not None and start.end_ms is not None
    assert record.metrics["frozen_ms"] == pytest.approx(start.end_ms - stop.start_ms)


def test_restart_strategy_rollback_starts_the_source_again() -> None:
    w = make_world("restart", dst={"fail_at": "start"})
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    rollback = info.value.record.phase("rollback")
    assert rollback is not None and "started again from its files" in rollback.detail["steps"]
    assert w.src.status("svc") == "running"


# ---------------------------------------------------------------------------------- pre-dumps


def test_predump_rounds_chain_and_the_final_dump_holds_only_the_rest() -> None:
    """Soft-dirty tracking at the source: rounds are pre-dumps, the final dump chains on them."""
    w = make_world(
        "precopy",
        dirty_tracking=True,
        src={"dirty_tracking": True, "send_bytes": [60 * MB, 8 * MB, 1 * MB, 1 * MB]},
    )
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and record.mode == "predump"
    assert [c[2] for c in w.src.ops("pre_dump")] == [1, 2, 3]
    # no full dump left running; the one checkpoint is the final one, on the chain
    assert w.src.ops("checkpoint") == [("checkpoint", INSTANCE, False, True)]
    assert sends(w.src) == [False, True, True, True]
    assert all(ph(record, f"precopy-{i}").detail["pre_dump"] for i in (1, 2, 3))
    assert ph(record, "freeze_dump").detail["on_predumps"] is True
    assert record.metrics["predump_rounds"] == 3 and "predump_fallback" not in record.metrics
    assert record.metrics["dirty_tracking"] is True
    assert_runs_at_destination(w)


def test_predump_unavailable_falls_back_to_full_dumps_and_says_so() -> None:
    """The plan expects dirty tracking, the source's CRIU refuses the first pre-dump."""
    w = make_world(
        "precopy", dirty_tracking=True, src={"send_bytes": [60 * MB, 8 * MB, 1 * MB, 1 * MB]}
    )
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and record.mode == "full-dump-delta"
    assert "memory tracking not supported" in record.metrics["predump_fallback"]
    assert len(w.src.ops("pre_dump")) == 1  # tried once, not per round
    assert [c[2:] for c in w.src.ops("checkpoint")] == [
        (True, False),
        (True, False),
        (True, False),
        (False, False),
    ]
    assert record.metrics["predump_rounds"] == 0
    assert_runs_at_destination(w)


def test_predump_failing_mid_chain_rolls_back() -> None:
    w = make_world(
        "precopy",
        dirty_tracking=True,
        src={
            "dirty_tracking": True,
            "send_bytes": [60 * MB, 30 * MB],
            "fail_at": "pre_dump",
            "fail_on": 2,
        },
    )
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    record = info.value.record
    assert record.outcome is Outcome.ROLLED_BACK and "predump_fallback" not in record.metrics
    assert w.src.instances[INSTANCE].status == "running"
    assert w.src.resumed == ["still running"]
    assert INSTANCE not in w.dst.instances and w.net.grants == {}


def test_predump_source_unreachable_is_no_reason_to_fall_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = make_world("precopy", dirty_tracking=True, src={"dirty_tracking": True})

    def down(instance: str, round_: int) -> None:
        raise SiteUnreachable("agent mec1 unreachable")

    monkeypatch.setattr(w.src, "pre_dump", down)
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert "predump_fallback" not in info.value.record.metrics
    assert not w.src.ops("checkpoint")


def test_hybrid_with_predumps_copies_memory_before_the_lazy_final_phase() -> None:
    w = make_world(
        "hybrid",
        dirty_tracking=True,
        src={"dirty_tracking": True, "send_bytes": [60 * MB, 8 * MB, 1 * MB, 1 * MB]},
    )
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and record.mode == "predump+lazy-pages"
    assert len(w.src.ops("pre_dump")) == record.metrics["rounds"] >= 1
    assert not w.src.ops("checkpoint")
    assert w.src.ops("lazy_checkpoint")[0][3] is True  # pages unchanged since come from images
    names = phase_names(record)
    assert names.index("restore") < names.index("pages")


def test_hybrid_without_dirty_tracking_falls_back_to_file_rounds() -> None:
    w = make_world("hybrid", dirty_tracking=True)
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and record.mode == "data-delta+lazy-pages"
    assert record.metrics["predump_fallback"]
    assert not w.src.ops("checkpoint")
    assert w.src.ops("lazy_checkpoint")[0][3] is False


# ---------------------------------------------------------------------------------- held traffic


@pytest.mark.parametrize("strategy", ["cold", "precopy", "postcopy", "hybrid", "restart"])
def test_traffic_is_held_from_the_freeze_and_delivered_after_the_restore(strategy: str) -> None:
    w = make_world(strategy, net={"holds": True})
    w.plan = replace(w.plan, hold="always")
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and w.net.held == set()
    ops = [op for _, op in w.journal]
    freeze = (
        "stop"
        if strategy == "restart"
        else ("lazy_checkpoint" if strategy in ("postcopy", "hybrid") else "checkpoint-final")
    )
    last_freeze = len(ops) - 1 - ops[::-1].index(freeze)
    restored = ops.index("start" if strategy == "restart" else "restore")
    assert ops.index("hold") == last_freeze - 1  # right before the freezing dump (or stop)
    assert restored < ops.index("release_hold")  # delivered once the destination serves
    if strategy in ("postcopy", "hybrid"):
        assert ops.index("release_hold") < ops.index("finish_pages")  # before the page pull
    deliver = ph(record, "deliver")
    assert deliver.detail["packets"] == 42
    assert phase_names(record)[-2:] == ["release", "cleanup"]
    freeze_phase = "freeze_stop" if strategy == "restart" else "freeze_dump"
    assert ph(record, freeze_phase).detail["held"] is True


def test_no_hold_without_a_network_that_can() -> None:
    w = make_world("cold")
    record = w.migration().run()
    assert "deliver" not in phase_names(record)
    assert ph(record, "freeze_dump").detail["held"] is False
    assert not w.net.ops("hold")


def test_a_hold_that_fails_is_no_reason_to_fail_the_migration() -> None:
    w = make_world("cold", net={"holds": True, "fail_at": {"hold"}})
    record = w.migration().run()
    assert record.outcome is Outcome.DONE
    assert "deliver" not in phase_names(record) and not w.net.ops("release_hold")


def test_rollback_delivers_the_held_traffic_to_the_source() -> None:
    w = make_world("cold", net={"holds": True}, dst={"fail_at": "restore"})
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    record = info.value.record
    assert record.outcome is Outcome.ROLLED_BACK and w.net.held == set()
    ops = [op for _, op in w.journal]
    # traffic back to the source first, then the held packets (they go where it is now)
    assert ops.index("release_hold") > max(i for i, op in enumerate(ops) if op == "relocate")
    assert "held traffic delivered" in ph(record, "rollback").detail["steps"]


def test_a_failed_delivery_after_the_point_of_no_return_is_recorded() -> None:
    w = make_world("cold", net={"holds": True, "fail_at": {"release_hold"}})
    record = w.migration().run()
    assert record.outcome is Outcome.FAILED and "deliver_held" in (record.error or "")
    assert_runs_at_destination(w)  # the migration stands; the hold ends by its timeout


@pytest.mark.parametrize(
    ("strategy", "hold", "at_freeze", "held"),
    [
        ("cold", "auto", False, True),
        ("precopy", "auto", False, True),
        ("restart", "auto", False, True),
        # held before the dump, a lazy one would lose serving time for nothing: HOLD_STRATEGIES
        ("postcopy", "auto", False, False),
        ("hybrid", "auto", False, False),
        ("postcopy", "auto", True, True),  # held from the freeze on: it costs nothing
        ("hybrid", "auto", True, True),
        ("postcopy", "always", False, True),
        ("cold", "never", False, False),
        ("cold", "never", True, False),
    ],
)
def test_hold_modes(strategy: str, hold: str, at_freeze: bool, held: bool) -> None:
    w = make_world(strategy, net={"holds": True, "hold_urls": at_freeze})
    w.src.hold_network = w.net
    w.plan = replace(w.plan, hold=hold)
    record = w.migration().run()
    assert bool(w.net.ops("hold")) is held
    assert ("deliver" in phase_names(record)) is held


def test_unknown_hold_mode_is_a_value_error() -> None:
    w = make_world()
    with pytest.raises(ValueError, match="hold mode"):
        Migration(replace(w.plan, hold="sometimes"), w.net, w.clock, migration_id="m")


# ------------------------------------------------------------------ held from CRIU's freeze on


def _script_world(strategy: str, **kw: Any) -> World:
    w = make_world(strategy, net={"holds": True, "hold_urls": True, **kw.pop("net", {})}, **kw)
    w.src.hold_network = w.net
    w.plan = replace(w.plan, hold="always")
    return w


@pytest.mark.parametrize("strategy", ["cold", "precopy", "postcopy", "hybrid"])
def test_the_source_holds_from_the_freeze_when_it_can(strategy: str) -> None:
    """The agent's CRIU calls the hold URL once frozen: the engine does not hold before."""
    w = _script_world(strategy)
    record = w.migration().run()
    assert record.outcome is Outcome.DONE and w.net.held == set()
    url = "http://controller/v1/instances/svc/hold"
    assert w.src.hold_urls[-1] == url and set(w.src.hold_urls[:-1]) <= {None}
    ops = [op for _, op in w.journal]
    freeze = "lazy_checkpoint" if strategy in ("postcopy", "hybrid") else "checkpoint-final"
    assert ops.index("hold") == ops.index(freeze) + 1  # asked from inside the dump
    assert ops.index("restore") < ops.index("release_hold")
    dump = ph(record, "freeze_dump").detail
    assert dump["held"] is True and dump["held_at_freeze"] is True
    assert ph(record, "deliver").detail["packets"] == 42


def test_a_hold_script_that_got_no_answer_means_no_delivery() -> None:
    w = _script_world("cold")
    w.src.hold_network = None  # the controller did not answer the script
    record = w.migration().run()
    assert record.outcome is Outcome.DONE
    assert ph(record, "freeze_dump").detail["held"] is False
    assert "deliver" not in phase_names(record) and not w.net.ops("release_hold")


def test_a_dump_that_fails_after_its_hold_script_releases_the_hold_in_the_rollback() -> None:
    w = _script_world("cold", src={"fail_at": "checkpoint-final"})
    with pytest.raises(MigrationError) as info:
        w.migration().run()
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert w.net.ops("release_hold")  # whatever the script did: released (idempotent)
    assert "held traffic delivered" in ph(info.value.record, "rollback").detail["steps"]


def test_a_new_strategy_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from migration import strategies

    twin = replace(strategies.STRATEGIES["cold"], name="cold-twin", mode="twin")
    monkeypatch.setitem(strategies.STRATEGIES, "cold-twin", twin)
    record = make_world("cold-twin").migration().run()
    assert [p.name for p in record.phases] == COLD_PHASES
    assert record.outcome is Outcome.DONE and record.mode == "twin"


def test_the_executor_owns_the_point_of_no_return(monkeypatch: pytest.MonkeyPatch) -> None:
    from migration import strategies

    # a strategy whose steps never make the destination serve cannot pass as done
    broken = replace(strategies.STRATEGIES["cold"], name="no-restore", steps=("prepare",))
    monkeypatch.setitem(strategies.STRATEGIES, "no-restore", broken)
    w = make_world("no-restore")
    with pytest.raises(MigrationError):
        w.migration().run()


def test_a_failed_second_migration_undoes_nothing_of_the_first() -> None:
    """Another migration of the same instance holds the destination's target and has frozen
    the source: this one's prepare is refused (the target is in use), and its rollback must
    neither wipe that target nor resume the source from the other's dump."""
    w = make_world("cold", dst={"refuse_at": "prepare_target"})
    with pytest.raises(MigrationError, match="rolled back"):
        w.migration().run()
    assert w.dst.ops("destroy") == []
    assert w.src.resumed == []


def test_a_source_that_refuses_the_final_dump_is_not_resumed() -> None:
    """The source refuses the dump (the instance does not run there: another migration froze
    it): nothing of ours ran there, so the rollback leaves it alone; our own target is wiped."""
    w = make_world("cold", src={"refuse_at": "checkpoint-final"})
    m = w.migration()
    with pytest.raises(MigrationError, match="rolled back"):
        m.run()
    rollback = m.record.phase("rollback")
    assert rollback is not None and "untouched" in rollback.detail["steps"]
    assert w.src.resumed == []
    assert w.dst.ops("destroy") == [("destroy", INSTANCE)]
