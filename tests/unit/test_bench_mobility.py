"""`mecmig bench mobility`'s pure parts (issue 12): the client's gaps within a handover's window,
a move's times from its migration record, a row per handover (T_pre, T_down, dwell, seed 003's
viability, state), the statistics per policy and the goals; the policies and the drive."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mecmig.bench.mobility import (
    DEFAULT_OUT,
    FULL,
    POLICIES,
    QUICK,
    SCENARIO,
    UE,
    command_words,
    plan_from,
    policy_name,
    strategy_of,
)
from mecmig.bench.mobility_replica import Switched, poll_replies, replica_moves, stateless_rows
from mecmig.bench.mobility_rows import (
    Arrival,
    Client,
    Move,
    Reply,
    counters_monotonic,
    gaps_s,
    handover_rows,
    largest_gap_ms,
    match_moves,
    move_of,
    policy_stats,
    replica_within,
    replies_of,
    state_kept,
    summarize,
    summarize_scales,
)
from orchestration.prediction import known_dwell
from topology.mobility_events import ue_mobility
from topology.scenario import load_scenario


def _replies(times_s: list[float], counter0: int = 0) -> list[Reply]:
    return [Reply(t, counter0 + i, 1) for i, t in enumerate(times_s)]


def _steady(start: float, end: float, step: float = 0.005) -> list[float]:
    n = round((end - start) / step)
    return [start + i * step for i in range(n + 1)]


# ------------------------------------------------------------------------------ the client


def test_replies_are_the_answered_samples_in_reply_order_on_the_monotonic_clock() -> None:
    samples = [
        {"seq": 0, "conn": 1, "kind": "PING", "send_ns": 1_000_000_000, "reply_ns": 1_500_000_000,
         "counter": 5},
        {"seq": 1, "conn": 1, "kind": "PING", "send_ns": 1_005_000_000, "reply_ns": None,
         "counter": None},
        {"seq": 2, "conn": 1, "kind": "GET", "send_ns": 1_010_000_000, "reply_ns": 1_200_000_000,
         "counter": 4},
    ]  # fmt: skip
    assert replies_of(samples) == [Reply(1.2, 4, 1), Reply(1.5, 5, 1)]


def test_the_largest_gap_counts_only_silences_that_overlap_the_window() -> None:
    # replies every 5 ms, a 400 ms silence at 2.0 s and a 900 ms one at 10.0 s
    times = [*_steady(0.0, 2.0), *_steady(2.4, 10.0), *_steady(10.9, 12.0)]
    replies = _replies(times)
    assert largest_gap_ms(replies, 1.5, 3.0, 5.0) == pytest.approx(395.0, abs=0.5)
    assert largest_gap_ms(replies, 9.0, 11.5, 5.0) == pytest.approx(895.0, abs=0.5)
    assert largest_gap_ms(replies, 0.0, 12.0, 5.0) == pytest.approx(895.0, abs=0.5)
    # a window inside a silence still sees it; a quiet stretch gives (about) nothing
    assert largest_gap_ms(replies, 10.2, 10.3, 5.0) == pytest.approx(895.0, abs=0.5)
    assert largest_gap_ms(replies, 5.0, 6.0, 5.0) == pytest.approx(0.0, abs=0.01)
    assert largest_gap_ms(replies, 20.0, 21.0, 5.0) is None  # after the last reply


def test_counters_that_go_back_within_the_window_are_seen() -> None:
    replies = [Reply(1.0, 10, 1), Reply(1.1, 11, 1), Reply(1.2, 3, 1), Reply(5.0, 4, 1)]
    assert not counters_monotonic(replies, 0.0, 2.0)
    assert counters_monotonic(replies, 1.15, 6.0)


# ------------------------------------------------------------------------------ moves


def _record(
    *, dest: str = "mec2", outcome: str = "done", spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"frozen_ms": 420.0}
    if spec is not None:
        metrics["speculation"] = spec
    return {
        "destination": dest,
        "outcome": outcome,
        "error": None,
        "bytes_transferred": 30 * 2**20,
        "metrics": metrics,
        "phases": [
            {"name": "prepare", "start_ms": 10.0, "end_ms": 200.0},
            {"name": "precopy-1", "start_ms": 200.0, "end_ms": 900.0},
            {"name": "freeze_dump", "start_ms": 3000.0, "end_ms": 3200.0},
            {"name": "restore", "start_ms": 3300.0, "end_ms": 3420.0},
            {"name": "cleanup", "start_ms": 3500.0, "end_ms": 3600.0},
        ],
    }


def test_a_speculative_move_is_ready_when_its_rounds_ended_not_when_it_froze() -> None:
    m = move_of(_record(spec={"ready_ms": 950.0, "outcome": "done"}), 100.0, 99.9,
                speculative=True)  # fmt: skip
    assert m.ready_s == pytest.approx(100.95)
    assert m.freeze_s == pytest.approx(103.0) and m.serving_s == pytest.approx(103.42)
    assert m.end_s == pytest.approx(103.6) and m.frozen_ms == 420.0
    assert m.bytes == 30 * 2**20 and m.outcome == "done" and not m.cancelled
    # a commit that came while the rounds ran: ready when the commit went on
    m = move_of(_record(spec={"committing_ms": 1200.0}), 100.0, 99.9, speculative=True)
    assert m.ready_s == pytest.approx(101.2)


def test_a_move_that_starts_the_service_afresh_freezes_at_its_stop() -> None:
    record = _record()
    names = {"freeze_dump": "freeze_stop", "restore": "start"}  # restart, filesystem
    record["phases"] = [{**ph, "name": names.get(ph["name"], ph["name"])} for ph in
                        record["phases"]]  # fmt: skip
    m = move_of(record, 100.0, 100.0, speculative=False)
    assert m.freeze_s == pytest.approx(103.0) and m.serving_s == pytest.approx(103.42)
    assert m.ready_s == pytest.approx(103.0)


def test_a_reactive_move_is_ready_at_its_freeze_and_a_cancelled_one_is_marked() -> None:
    m = move_of(_record(), 100.0, 100.0, speculative=False)
    assert m.ready_s == pytest.approx(103.0)
    gone = move_of(_record(outcome="rolled_back", spec={"outcome": "cancelled"}), 0.0, 0.0,
                   speculative=True)  # fmt: skip
    assert gone.cancelled


def _move(dest: str, **kw: Any) -> Move:
    base: dict[str, Any] = dict(
        destination=dest, speculative=True, outcome="done", asked_s=0.0, ready_s=1.0,
        freeze_s=2.0, serving_s=2.5, end_s=2.6, frozen_ms=500.0, bytes=1,
    )  # fmt: skip
    base.update(kw)
    return Move(**base)


def test_each_arrival_takes_the_first_unused_uncancelled_move_to_its_site() -> None:
    arrivals = [Arrival(7.5, 10.0, "mec1", "mec2", 15.0), Arrival(22.5, 17.5, "mec2", "mec3", None)]
    cancelled = _move("mec2", cancelled=True, outcome="rolled_back")
    a, b = _move("mec2"), _move("mec3")
    assert match_moves(arrivals, [cancelled, a, b]) == [a, b]
    assert match_moves(arrivals, [b]) == [None, b]


# ------------------------------------------------------------------------------ rows


def _client(replies: list[Reply], **kw: Any) -> Client:
    args: dict[str, Any] = dict(
        replies=replies, interval_ms=5.0, same_connection=True, counter_monotonic=True,
        fingerprint_stable=True,
    )  # fmt: skip
    args.update(kw)
    return Client(**args)


def _rows(client: Client, moves: list[Move], scale: float = 2.0) -> list[dict[str, Any]]:
    arrivals = [
        Arrival(7.5, 10.0, "mec1", "mec2", 15.0, replug_ms=80.0),
        Arrival(22.5, 17.5, "mec2", "mec3", None, replug_ms=90.0),
    ]
    return handover_rows(
        ue="car", service="kv", policy="precopy", strategy="precopy", speculative=True,
        scale=scale, arrivals=arrivals, moves=moves, client=client, repetition=2,
    )  # fmt: skip


def test_a_row_per_handover_with_its_gap_times_dwell_and_seed_003_viability() -> None:
    # gaps: pre-copy rounds' pause at 9.0 s (60 ms), freeze at 10.3 s (500 ms), freeze at 17.8 s
    times = [*_steady(8.0, 9.0), *_steady(9.065, 10.3), *_steady(10.805, 17.8),
             *_steady(18.5, 20.0)]  # fmt: skip
    client = _client(_replies(times))
    moves = [
        _move("mec2", asked_s=8.5, ready_s=9.4, freeze_s=10.3, serving_s=10.8, end_s=10.9,
              frozen_ms=500.0, bytes=40),
        _move("mec3", asked_s=16.0, ready_s=18.0, freeze_s=17.8, serving_s=18.5, end_s=18.6,
              frozen_ms=700.0, bytes=50),
    ]  # fmt: skip
    first, second = _rows(client, moves)
    assert first.keys() >= {
        "ue", "service", "policy", "speculative", "interruption_ms", "state_intact", "bytes",
        "dwell_ms", "viable", "t_pre_ms", "t_down_ms", "repetition",
    }  # fmt: skip
    assert (first["ue"], first["service"], first["policy"]) == ("car", "kv", "precopy")
    assert first["speculative"] is True and first["repetition"] == 2
    assert first["interruption_ms"] == pytest.approx(500.0, abs=1)  # the freeze, not the pause
    assert first["t_pre_ms"] == pytest.approx(900.0) and first["t_down_ms"] == 500.0
    assert first["dwell_ms"] == 7500.0  # 15 s of scenario time at x2
    assert first["viable"] is True and first["state_intact"] is True
    assert first["serving_after_ms"] == pytest.approx(800.0) and first["served_within_dwell"]
    assert first["ready_before_handover"] is True and first["bytes"] == 40
    assert first["replug_ms"] == 80.0 and first["outcome"] == "done"
    assert second["interruption_ms"] == pytest.approx(695.0, abs=1)
    assert second["dwell_ms"] is None and second["viable"] is None  # open: the drive ends there
    assert second["ready_before_handover"] is False


def test_a_gap_that_began_before_the_previous_move_served_is_counted_once() -> None:
    # x8, reactive: the move to mec2 freezes at 10.6-11.2 s, after the handover to mec3 (10.5 s)
    times = [*_steady(8.0, 10.6), *_steady(11.2, 12.5), *_steady(12.9, 14.0)]
    moves = [
        _move("mec2", asked_s=8.5, ready_s=10.5, freeze_s=10.6, serving_s=11.1, end_s=11.3),
        _move("mec3", asked_s=10.5, ready_s=12.4, freeze_s=12.5, serving_s=12.85, end_s=13.0),
    ]  # fmt: skip
    arrivals = [Arrival(7.5, 8.4, "mec1", "mec2", 15.0), Arrival(22.5, 10.5, "mec2", "mec3", None)]
    first, second = handover_rows(
        ue="car", service="kv", policy="precopy-reactive", strategy="precopy",
        speculative=False, scale=8.0, arrivals=arrivals, moves=moves,
        client=_client(_replies(times)), repetition=1,
    )  # fmt: skip
    assert first["interruption_ms"] == pytest.approx(595.0, abs=1)
    assert second["interruption_ms"] == pytest.approx(395.0, abs=1)  # its own, not the first's
    assert gaps_s(_replies(times), 5.0) == [(10.6, 11.2), (12.5, 12.9)]


def test_viability_is_t_pre_plus_t_down_against_the_dwell_at_the_drives_scale() -> None:
    client = _client(_replies(_steady(0.0, 20.0)))
    moves = [_move("mec2", asked_s=5.0, ready_s=7.0, frozen_ms=800.0), _move("mec3")]
    # x8: 15 s of scenario time is 1875 ms; T_pre 2000 + T_down 800 does not fit
    row = _rows(client, moves, scale=8.0)[0]
    assert row["dwell_ms"] == 1875.0 and row["viable"] is False
    row = _rows(client, moves, scale=1.0)[0]
    assert row["dwell_ms"] == 15000.0 and row["viable"] is True


def test_state_is_lost_when_the_client_reconnected_or_the_move_did_not_arrive() -> None:
    moves = [_move("mec2"), _move("mec3")]
    replies = _replies(_steady(0.0, 20.0))
    assert all(r["state_intact"] for r in _rows(_client(replies), moves))
    for bad in ({"same_connection": False}, {"counter_monotonic": False},
                {"fingerprint_stable": None}):  # fmt: skip
        assert not any(r["state_intact"] for r in _rows(_client(replies, **bad), moves)), bad
    rows = _rows(_client(replies), [_move("mec2", outcome="rolled_back"), _move("mec3")])
    assert [r["state_intact"] for r in rows] == [False, True]
    rows = _rows(_client(replies), [_move("mec3")])
    assert rows[0]["outcome"] == "no move" and rows[0]["t_pre_ms"] is None
    assert not rows[0]["state_intact"] and rows[0]["viable"] is None


# ------------------------------------------------------------------------------ statistics


def _row(policy: str, gap: float, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        policy=policy, interruption_ms=gap, dwell_ms=7500.0, viable=True, t_pre_ms=1000.0,
        t_down_ms=500.0, serving_after_ms=600.0, served_within_dwell=True, state_intact=True,
        bytes=2**20,
    )  # fmt: skip
    row.update(kw)
    return row


def test_dwell_statistics_leave_open_dwells_out_of_mean_minimum_and_fraction() -> None:
    rows = [
        _row("precopy", 400.0, dwell_ms=7500.0, viable=True),
        _row("precopy", 600.0, dwell_ms=1500.0, viable=False, served_within_dwell=False),
        _row("precopy", 500.0, dwell_ms=None, viable=None, served_within_dwell=None,
             state_intact=False),
    ]  # fmt: skip
    s = policy_stats(rows)
    assert s["handovers"] == 3 and s["dwells_known"] == 2
    assert s["dwell_mean_ms"] == 4500.0 and s["dwell_min_ms"] == 1500.0
    assert s["viable_fraction"] == 0.5 and s["served_within_dwell_fraction"] == 0.5
    assert s["interruption_median_ms"] == 500.0 and s["interruption_max_ms"] == 600.0
    assert s["state_intact"] == 2
    assert policy_stats([])["viable_fraction"] is None


def test_the_goals_compare_each_speculative_strategy_with_its_reactive_twin() -> None:
    rows = [_row("precopy", 500.0), _row("precopy", 520.0), _row("precopy-reactive", 450.0),
            _row("cold", 900.0), _row("cold-reactive", 1500.0)]  # fmt: skip
    s = summarize(rows, ["precopy", "precopy-reactive", "cold", "cold-reactive"], 100.0)
    assert s["speculative_vs_reactive"]["precopy"] == {
        "speculative_median_ms": 510.0, "reactive_median_ms": 450.0, "not_worse": True,
    }  # fmt: skip
    assert s["goals"]["speculative_not_worse_than_reactive"] is True
    assert s["goals"]["state_intact"] is True
    s = summarize(rows, ["precopy", "precopy-reactive"], 50.0)
    assert s["goals"]["speculative_not_worse_than_reactive"] is False
    # per time scale: each judged on its own rows, the goals over all
    scaled = [{**r, "scale": 2.0} for r in rows] + [
        {**_row("precopy", 400.0), "scale": 8.0},
        {**_row("precopy-reactive", 100.0, state_intact=False), "scale": 8.0},
    ]
    both = summarize_scales(scaled, ["precopy", "precopy-reactive"], [2.0, 8.0], 100.0)
    assert set(both["per_scale"]) == {"2", "8"}
    assert both["per_scale"]["2"]["goals"]["speculative_not_worse_than_reactive"] is True
    assert both["per_scale"]["8"]["goals"]["speculative_not_worse_than_reactive"] is False
    assert both["goals"]["speculative_not_worse_than_reactive"] is False
    assert both["goals"]["state_intact"] is False
    s = summarize([_row("precopy", 1.0, state_intact=False)], ["precopy"], 50.0)
    assert s["goals"]["state_intact"] is False
    assert s["goals"]["speculative_not_worse_than_reactive"] is None  # no reactive twin


# ------------------------------------------------------------------------------ the plan


def test_policies_are_each_strategy_speculative_and_reactive_and_replica() -> None:
    assert len(POLICIES) == 13 and POLICIES[-1] == "replica"
    for p in POLICIES:
        assert policy_name(*strategy_of(p)) == p
    assert strategy_of("hybrid-reactive") == ("hybrid", False)
    assert strategy_of("cold") == ("cold", True)
    assert QUICK.policies == ("precopy", "precopy-reactive", "replica") and QUICK.repeat == 1
    assert QUICK.scales == (2.0,) and FULL.repeat == 3 and FULL.scales == (2.0, 8.0, 15.0)


def test_the_plan_and_command_line_follow_the_options() -> None:
    args = argparse.Namespace(quick=True, policies=None, repeat=None, scales=None, out=DEFAULT_OUT)
    assert plan_from(args) == QUICK
    assert command_words(args) == ["mecmig", "bench", "mobility", "--quick"]
    args = argparse.Namespace(quick=False, policies=["cold", "cold"], repeat=2,
                              scales=[4.0, 4.0, 1.0], out=SCENARIO.parent)  # fmt: skip
    plan = plan_from(args)
    assert plan.policies == ("cold",) and plan.repeat == 2 and plan.scales == (4.0, 1.0)
    words = command_words(args)
    assert words[words.index("--scales") :][:3] == ["--scales", "4", "1"] and "--out" in words


def test_the_car_hands_over_twice_and_only_its_stay_at_mec2_is_known() -> None:
    sc = load_scenario(SCENARIO)
    mob = ue_mobility(sc, UE)
    sites = [(h.t_s, h.from_site, h.to_site) for h in mob.handovers]
    assert sites == [(7.5, "mec1", "mec2"), (22.5, "mec2", "mec3")]
    dwell = known_dwell(mob)
    assert dwell(7.5, "mec2") == pytest.approx(15.0) and dwell(22.5, "mec3") is None


# ------------------------------------------------------------------------------ replicas


def test_a_replica_handover_is_a_move_marked_ahead_placed_and_switched() -> None:
    marks = {"mec2": 10.0}
    placed = {"mec2": 10.6, "mec3": 30.2}
    switches = [
        Switched("mec2", 15.0, 15.004, 3.1),
        Switched("mec3", 30.0, 30.5, 2.5),  # no mark came: placed late, at the handover
        Switched("mec1", 40.0, 40.001, None, error="no switch made"),
    ]
    two, three, one = replica_moves(marks, placed, switches)
    assert (two.asked_s, two.ready_s, two.freeze_s, two.serving_s) == (10.0, 10.6, 15.0, 15.004)
    assert two.speculative and two.frozen_ms == 3.1 and two.bytes == 0 and two.outcome == "done"
    assert not three.speculative and three.asked_s == 30.0 and three.ready_s == 30.2
    assert one.outcome == "failed" and one.serving_s is None and one.error == "no switch made"


def test_replica_rows_have_no_state_to_keep_and_the_goal_is_ten_ms() -> None:
    replies = poll_replies([[1.0, 5], [0.995, 4], [1.02, None]])
    assert [r.t_s for r in replies] == [0.995, 1.0, 1.02] and replies[1].counter == 5
    rows = stateless_rows([_row("replica", 6.0), _row("replica", 9.9)], [], [], [], 5.0)
    assert all(r["state_intact"] is None and r["stateless"] for r in rows)
    assert policy_stats(rows)["stateless"] is True and policy_stats(rows)["state_intact"] == 0
    mixed = [*rows, _row("precopy", 500.0)]
    assert state_kept(mixed) is True and state_kept(rows) is None
    assert state_kept([*mixed, _row("cold", 1.0, state_intact=False)]) is False
    assert state_kept([*mixed, _row("cold-reactive", 1.0, state_intact=False)]) is False
    # the levels that start kv afresh lose its memory by design: reported, not judged
    levels = [_row("restart", 1.0, state_intact=False), _row("filesystem-reactive", 1.0,
                                                            state_intact=False)]  # fmt: skip
    assert state_kept([*mixed, *levels]) is True and state_kept(levels) is None
    assert replica_within(mixed) is True
    assert replica_within([*mixed, _row("replica", 10.1)]) is False
    assert replica_within([_row("precopy", 1.0)]) is None
    assert replica_within([_row("replica", None)]) is None  # type: ignore[arg-type]
    s = summarize(mixed, ["precopy", "replica"], 50.0)
    assert s["goals"]["state_intact"] is True and s["goals"]["replica_switch_within_ms"] is True


def test_the_shortest_dwell_judges_speculation_against_seed_003() -> None:
    rows = [
        {**_row("precopy", 400.0, dwell_ms=7500.0, viable=True), "scale": 2.0},
        {**_row("precopy", 400.0, dwell_ms=1000.0, viable=False), "scale": 15.0},
        {**_row("postcopy", 400.0, dwell_ms=1000.0, viable=True), "scale": 15.0},
        {**_row("postcopy-reactive", 400.0, dwell_ms=1000.0, viable=True), "scale": 15.0},
        {**_row("replica", 9.0, dwell_ms=1000.0, viable=True), "scale": 15.0},
        {**_row("replica", 9.0, dwell_ms=None, viable=None), "scale": 15.0},
    ]
    policies = ["precopy", "postcopy", "postcopy-reactive", "replica"]
    at = summarize_scales(rows, policies, [2.0, 15.0], 150.0)
    low = at["shortest_dwell"]
    assert low["scale"] == 15.0 and low["dwell_ms"] == 1000.0
    assert low["viable"] == {"precopy": 0.0, "postcopy": 1.0, "replica": 1.0}  # no reactive
    assert at["goals"]["viable_at_shortest_dwell"] is True
    none = [{**r, "viable": False} for r in rows]
    assert (
        summarize_scales(none, policies, [2.0, 15.0], 150.0)["goals"]["viable_at_shortest_dwell"]
        is False
    )
    open_only = [{**r, "dwell_ms": None, "viable": None} for r in rows]
    assert (
        summarize_scales(open_only, policies, [2.0, 15.0], 150.0)["shortest_dwell"][
            "beats_seed_003"
        ]
        is None
    )


def test_a_replica_handovers_gap_is_the_switchs_and_the_placements_is_apart() -> None:
    # replies every 5 ms from 0 to 20 s, but for a 15 ms silence at 9.2 s (the replica placed
    # ahead: marked at 9.0 s, placed at 9.3 s) and a 3 ms one at 10.001 s (the switch)
    times = [i * 0.005 for i in range(4001)]
    times = [t for t in times if not 9.2 < t < 9.22 and not 10.0 < t < 10.008]
    replies = [Reply(t, None, i) for i, t in enumerate(times)]
    arrival = Arrival(15.0, 10.0, "mec1", "mec2", None)
    (move,) = replica_moves({"mec2": 9.0}, {"mec2": 9.3}, [Switched("mec2", 10.0, 10.003, 2.5)])
    client = Client(replies, 5.0, True, True, True)
    base = handover_rows(ue="car", service="web", policy="replica", strategy="replica",
                         speculative=True, scale=2.0, arrivals=[arrival], moves=[move],
                         client=client, repetition=1)  # fmt: skip
    assert base[0]["interruption_ms"] == 20.0  # from the mark: the placement's silence too
    (row,) = stateless_rows(base, [arrival], [move], replies, 5.0)
    assert row["interruption_ms"] == 5.0  # the switch's: 10.0 -> 10.01 minus the interval
    assert row["placement_gap_ms"] == 20.0  # 9.2 -> 9.225 minus the interval
