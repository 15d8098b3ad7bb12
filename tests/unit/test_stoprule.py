"""Pre-copy's stop rules (each one, and which wins), the downtime prediction, and the rate the
final iteration asks for."""

from __future__ import annotations

import math

import pytest

from migration.stoprule import (
    GROWTH_GUARD,
    MAX_ROUNDS,
    MIN_DELTA_BYTES,
    MIN_RESERVATION_BPS,
    PREDICTION_MARGIN,
    Round,
    final_rate_bps,
    predicted_downtime_ms,
    should_stop,
)

MB = 1_000_000
RATE = 50_000_000
BUDGET = 1000.0
RESTORE = 0.3


def r(wire_bytes: int, dump_s: float = 0.05, send_s: float = 0.1) -> Round:
    return Round(wire_bytes, dump_s, send_s)


# ---------------------------------------------------------------------------------- prediction


def test_predicted_downtime_arithmetic() -> None:
    # 1 MB * 1.1 * 8 bits at 50 Mbit/s = 176 ms; + 50 ms dump + 300 ms restore
    assert predicted_downtime_ms(r(1 * MB), RATE, RESTORE) == pytest.approx(526.0)
    assert PREDICTION_MARGIN == 1.10


def test_predicted_downtime_ignores_send_time_and_scales_with_rate() -> None:
    slow = predicted_downtime_ms(r(10 * MB, send_s=99.0), RATE, 0.0)
    fast = predicted_downtime_ms(r(10 * MB), 2 * RATE, 0.0)
    assert slow == pytest.approx(50 + 1760)
    assert fast == pytest.approx(50 + 880)


def test_predicted_downtime_of_empty_delta_is_dump_plus_restore() -> None:
    assert predicted_downtime_ms(r(0, dump_s=0.2), RATE, 0.4) == pytest.approx(600.0)


def test_predicted_downtime_zero_rate_does_not_divide_by_zero() -> None:
    # the rate is clamped to 1 bit/s
    assert predicted_downtime_ms(r(1), 0.0, 0.0) == pytest.approx((0.05 + 8.8) * 1000)


# ---------------------------------------------------------------------------------- should_stop


def test_no_round_yet_never_stops() -> None:
    d = should_stop([], RATE, BUDGET, RESTORE)
    assert not d.stop and d.reason == "no round yet" and math.isinf(d.predicted_downtime_ms)


def test_budget_rule_stops_even_after_one_round() -> None:
    d = should_stop([r(1 * MB)], RATE, BUDGET, RESTORE)
    assert d.stop
    assert d.reason == "final iteration fits the 1000 ms budget"
    assert d.predicted_downtime_ms == pytest.approx(526.0)


def test_budget_rule_boundary_is_inclusive() -> None:
    last = r(1 * MB)
    exact = predicted_downtime_ms(last, RATE, RESTORE)
    assert should_stop([last], RATE, exact, RESTORE).stop
    assert not should_stop([last], RATE, exact - 0.001, RESTORE).stop


def test_iterates_while_nothing_says_stop() -> None:
    d = should_stop([r(60 * MB), r(8 * MB)], RATE, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (False, "iterate")
    assert d.predicted_downtime_ms == pytest.approx(predicted_downtime_ms(r(8 * MB), RATE, RESTORE))


def test_iteration_cap() -> None:
    rounds = [r(60 * MB)] * MAX_ROUNDS
    d = should_stop(rounds, RATE, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (True, f"iteration cap ({MAX_ROUNDS})")
    assert not should_stop(rounds[:-1], RATE, BUDGET, RESTORE).stop


def test_min_delta_rule_needs_two_rounds() -> None:
    small = MIN_DELTA_BYTES - 1
    budget = 100.0  # cannot be met: restore alone is 300 ms
    assert not should_stop([r(small)], RATE, budget, RESTORE).stop
    d = should_stop([r(60 * MB), r(small)], RATE, budget, RESTORE)
    assert (d.stop, d.reason) == (True, f"delta below {MIN_DELTA_BYTES} bytes")
    # exactly the threshold is not below it
    assert not should_stop([r(60 * MB), r(MIN_DELTA_BYTES)], RATE, budget, RESTORE).stop


def test_growth_guard_needs_two_rounds_and_more_than_ten_percent() -> None:
    assert GROWTH_GUARD == 1.10
    grows = [r(60 * MB), r(67 * MB)]
    d = should_stop(grows, RATE, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (True, "delta grows: the service dirties faster than we copy")
    # exactly +10 % (and less) keeps iterating
    assert not should_stop([r(60 * MB), r(66 * MB)], RATE, BUDGET, RESTORE).stop
    assert not should_stop([r(60 * MB), r(60 * MB)], RATE, BUDGET, RESTORE).stop
    assert not should_stop([r(60 * MB)], RATE, BUDGET, RESTORE).stop


def test_growth_compares_with_the_previous_round_only() -> None:
    rounds = [r(60 * MB), r(8 * MB), r(9 * MB)]  # 9 > 8 * 1.1 although far below round 1
    assert should_stop(rounds, RATE, BUDGET, RESTORE).reason.startswith("delta grows")


@pytest.mark.parametrize(
    ("rounds", "budget", "reason"),
    [
        # budget beats the cap, the min delta and the growth guard
        ([r(60 * MB)] * (MAX_ROUNDS - 1) + [r(1 * MB)], BUDGET, "final iteration fits"),
        ([r(60 * MB), r(MIN_DELTA_BYTES - 1)], BUDGET, "final iteration fits"),
        ([r(100), r(1 * MB)], BUDGET, "final iteration fits"),
        # the cap beats the min delta and the growth guard
        ([r(60 * MB)] * (MAX_ROUNDS - 1) + [r(MIN_DELTA_BYTES - 1)], 100.0, "iteration cap"),
        ([r(60 * MB)] * (MAX_ROUNDS - 1) + [r(90 * MB)], BUDGET, "iteration cap"),
        # the min delta beats the growth guard
        ([r(100), r(MIN_DELTA_BYTES - 1)], 100.0, "delta below"),
    ],
    ids=[
        "budget>cap",
        "budget>min-delta",
        "budget>growth",
        "cap>min-delta",
        "cap>growth",
        "min-delta>growth",
    ],
)
def test_rule_priority(rounds: list[Round], budget: float, reason: str) -> None:
    d = should_stop(rounds, RATE, budget, RESTORE)
    assert d.stop and d.reason.startswith(reason), d.reason


def test_should_stop_accepts_any_sequence() -> None:
    assert should_stop((r(1 * MB),), RATE, BUDGET, RESTORE).stop


# ---------------------------------------------------------------------------------- final rate


def test_final_rate_from_the_window_left_by_dump_and_restore() -> None:
    # window = 1 s - 0.05 - 0.3 = 0.65 s; 80 MB * 1.1 * 8 / 0.65 s
    rate = final_rate_bps(80 * MB, 1000.0, 0.05, 0.3, RATE)
    assert rate == pytest.approx(80 * MB * 1.1 * 8 / 0.65)
    # at that rate the predicted downtime is exactly the budget
    assert predicted_downtime_ms(r(80 * MB), rate, 0.3) == pytest.approx(1000.0)


def test_final_rate_never_below_the_floor() -> None:
    assert final_rate_bps(1 * MB, 1000.0, 0.05, 0.3, RATE) == RATE
    assert final_rate_bps(0, 1000.0, 0.05, 0.3, RATE) == RATE


def test_final_rate_never_below_the_minimum_reservation() -> None:
    assert final_rate_bps(0, 1000.0, 0.05, 0.3, 0) == MIN_RESERVATION_BPS
    assert final_rate_bps(10_000, 1000.0, 0.05, 0.3, 10) == MIN_RESERVATION_BPS


@pytest.mark.parametrize(("budget_ms", "dump_s"), [(300.0, 0.0), (350.0, 0.05), (100.0, 0.5)])
def test_final_rate_when_the_budget_is_already_spent(budget_ms: float, dump_s: float) -> None:
    # dump + restore already take the whole budget: the window is clamped to 10 ms
    rate = final_rate_bps(10 * MB, budget_ms, dump_s, 0.3, RATE)
    assert rate == pytest.approx(10 * MB * 1.1 * 8 / 0.01)


def test_final_rate_window_just_above_the_clamp() -> None:
    rate = final_rate_bps(1 * MB, 1000.0, 0.68, 0.3, 0)  # window 20 ms
    assert rate == pytest.approx(1 * MB * 1.1 * 8 / 0.02)


def test_final_rate_is_monotonic_in_bytes_and_budget() -> None:
    a = final_rate_bps(20 * MB, 1000.0, 0.05, 0.3, 0)
    b = final_rate_bps(40 * MB, 1000.0, 0.05, 0.3, 0)
    c = final_rate_bps(40 * MB, 2000.0, 0.05, 0.3, 0)
    assert a < b and c < b
