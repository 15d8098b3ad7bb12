"""`mecmig bench sync`'s pure part (issue 12, seed 002): a handover's staleness and lost hits
from the client's counts, the syncs' traffic, the statistics per period; the plan."""

from __future__ import annotations

import argparse

from mecmig.bench.sync import DEFAULT_OUT, FULL, QUICK, command_words, dwells, plan_from
from mecmig.bench.sync_rows import (
    Hit,
    Switch,
    Synced,
    handover_row,
    hits_of,
    run_rows,
    summarize,
    traffic,
)


def _hits(start: float, counts: range, step: float = 0.005) -> list[Hit]:
    return [Hit(start + i * step, c) for i, c in enumerate(counts)]


def test_the_count_going_back_tells_how_old_the_new_primarys_data_was() -> None:
    # hits 1..100 at the old primary, one every 5 ms from t = 10 s; the new primary's copy
    # held 80, so it missed hit 81 (answered at 10.4 s) and on; switch at 10.5 s; then it
    # counts 81, 82, ...
    before = _hits(10.0, range(1, 101))
    after = _hits(10.51, range(81, 91))
    sw = Switch("mec2", 10.5, 10.503, 3.0, 0.12)
    row = handover_row([*before, *after], sw, period_s=0.5, last_sync_s=0.02)
    assert row["lost_hits"] == 20
    assert row["staleness_ms"] == 100.0  # 10.5 - 10.4
    assert row["scheduled_staleness_ms"] == 120.0 and row["switchover_ms"] == 3.0
    assert row["within_period"] is True
    late = handover_row([*before, *after], sw, period_s=0.05, last_sync_s=0.0)
    assert late["within_period"] is True  # 100 ms <= 50 ms + 150 ms of slack
    stale = handover_row([*_hits(9.0, range(1, 301)), *after], sw, 0.01, 0.0)
    assert stale["lost_hits"] == 220 and stale["within_period"] is False  # 1.1 s
    assert stale["staleness_ms"] == 1100.0  # 10.5 - (9.0 + 80 * 0.005)


def test_a_client_silent_before_the_switch_does_not_make_the_copy_look_old() -> None:
    # replies up to count 50 at t = 8.0 s, the client silent for 2 s, then 51, 52 just before
    # the switch; the copy held 50: it missed only what came after the silence
    hits = [*_hits(7.755, range(2, 51)), Hit(10.49, 51), Hit(10.495, 52)]
    after = _hits(10.51, range(51, 55))
    row = handover_row([*hits, *after], Switch("mec1", 10.5, 10.502, 2.0, 0.19), 0.25, 0.04)
    assert row["lost_hits"] == 2 and row["staleness_ms"] == 10.0 and row["within_period"]


def test_replies_before_the_previous_switch_are_another_primarys() -> None:
    # the old primary counted to 600; the next went back to 480 and counted to 550; it held 540
    old = _hits(0.0, range(401, 601))
    era = _hits(2.0, range(481, 551))
    after = _hits(2.4, range(541, 545))
    sw = Switch("mec1", 2.36, 2.362, 2.0, 0.1)
    row = handover_row([*old, *era, *after], sw, 1.0, 0.03, since_s=1.5)
    assert row["lost_hits"] == 10
    assert row["staleness_ms"] == 60.0  # hit 541 of this era at 2.3 s; not the one at 0.7 s


def test_a_current_copy_loses_nothing_and_the_old_primarys_late_replies_are_skipped() -> None:
    before = _hits(0.0, range(1, 11))
    old_late = [Hit(0.102, 11)]  # a request the old primary took before the switch
    after = _hits(0.11, range(11, 15))  # the copy held 10: nothing lost
    row = handover_row(
        [*before, *old_late, *after], Switch("mec1", 0.1, 0.101, 2.0, None), 1.0, 0.0
    )
    assert row["lost_hits"] == 0 and row["staleness_ms"] == 0.0 and row["within_period"] is True
    assert row["scheduled_staleness_ms"] is None
    unknown = handover_row(before, Switch("mec1", 0.1, 0.101, 2.0, None), 1.0, 0.0)
    assert unknown["lost_hits"] is None and unknown["within_period"] is None  # no reply after


def test_rows_traffic_and_summary() -> None:
    hits = hits_of([[10.0 + i * 0.005, i + 1] for i in range(100)] + [[10.6, None]])
    hits += _hits(10.51, range(81, 91))
    hits.sort(key=lambda h: h.t_s)
    syncs = [Synced("mec2", 9.9, 9.92, 8192), Synced("mec2", 10.4, 10.43, 4096)]
    rows = run_rows(hits, [Switch("mec2", 10.5, 10.503, 3.0, 0.1)], syncs, 0.5, 1)
    assert rows[0]["period_s"] == 0.5 and rows[0]["handover"] == 1 and rows[0]["lost_hits"] == 20
    moved = traffic(syncs, 2.0)
    assert moved["syncs"] == 2 and moved["sync_bytes_per_s"] == 6144.0
    assert moved["sync_ms_mean"] == 25.0 and traffic([], 1.0)["sync_ms_mean"] is None
    runs = [{"period_s": 0.5, "sync_bytes_per_s": 6144.0, "write_bytes_per_s": 20000.0,
             "sync_ms_mean": 25.0}]  # fmt: skip
    s = summarize(rows, runs)
    per = s["per_period"]["0.5"]
    assert per["handovers"] == 1 and per["staleness_mean_ms"] == 100.0
    assert per["lost_hits_mean"] == 20.0 and per["sync_bytes_per_s"] == 6144.0
    assert s["goals"]["staleness_within_period"] is True and s["goals"]["handovers_measured"] == 1
    assert summarize([], [])["goals"]["staleness_within_period"] is None


def test_handovers_fall_at_every_phase_of_the_period_and_the_plan_follows_the_options() -> None:
    waits = dwells(1.0, 6)
    phases = sorted(w - 2.0 for w in waits)
    assert all(0 <= p < 1.0 for p in phases) and len({round(p, 2) for p in phases}) == 6
    assert FULL.periods == (0.25, 0.5, 1.0, 2.0, 4.0) and QUICK.handovers == 3
    args = argparse.Namespace(
        quick=True, periods=None, handovers=None, repeat=None, out=DEFAULT_OUT
    )
    assert plan_from(args) == QUICK and command_words(args) == [
        "mecmig",
        "bench",
        "sync",
        "--quick",
    ]
    args = argparse.Namespace(quick=False, periods=[1.0, 1.0, 3.0], handovers=2, repeat=None,
                              out=DEFAULT_OUT)  # fmt: skip
    assert plan_from(args).periods == (1.0, 3.0) and plan_from(args).handovers == 2
    assert command_words(args)[3:7] == ["--periods", "1", "3", "--handovers"]
