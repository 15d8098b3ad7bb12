"""Pre-copy's stop rules (each one, and which wins), the downtime prediction, and the rate the
final iteration asks for. Issue 10's two cases (an idle Redis's identical rounds, a 256 MiB
service's 47 s rounds) stop early; a service that converges still iterates until it fits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migration.stoprule import (
    CONVERGENCE_RATIO,
    GREW,
    GROWTH_GUARD,
    HOPELESS,
    HOPELESS_FACTOR,
    ITERATE,
    MAX_ROUNDS,
    MAX_ROUNDS_REASON,
    MIN_DELTA_BYTES,
    MIN_RESERVATION_BPS,
    NO_ROUND_YET,
    NOT_CONVERGING,
    PREDICTION_MARGIN,
    STALLS_COST_MORE,
    TINY_DELTA,
    Decision,
    Round,
    best_reachable_downtime_ms,
    final_rate_bps,
    fits_budget_reason,
    next_round_saving_ms,
    predicted_downtime_ms,
    should_stop,
    shrink_ratio,
)

MB = 1_000_000
MiB = 1 << 20
RATE = 50_000_000
BUDGET = 1000.0
RESTORE = 0.3
SHRINKING = [60 * MB, 48 * MB, 38 * MB, 30 * MB, 24 * MB, 19 * MB, 15 * MB, 12 * MB]  # never fits


def r(wire_bytes: int, dump_s: float = 0.05, send_s: float = 0.1) -> Round:
    return Round(wire_bytes, dump_s, send_s)


def first_stop(
    rounds: Sequence[Round], rate: float, budget: float, restore: float = RESTORE
) -> tuple[int, Decision]:
    """As the engine asks: after each round; the round count and decision of the first stop."""
    for n in range(1, len(rounds) + 1):
        d = should_stop(rounds[:n], rate, budget, restore)
        if d.stop:
            return n, d
    raise AssertionError(f"no stop after {len(rounds)} rounds")


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
    assert not d.stop and d.reason == NO_ROUND_YET and math.isinf(d.predicted_downtime_ms)


def test_the_constants() -> None:
    assert (MAX_ROUNDS, MIN_DELTA_BYTES, GROWTH_GUARD) == (8, 64 * 4096, 1.10)
    assert (CONVERGENCE_RATIO, HOPELESS_FACTOR) == (0.90, 10.0)


def test_every_reason_is_distinct() -> None:
    reasons = [
        fits_budget_reason(BUDGET),
        MAX_ROUNDS_REASON,
        TINY_DELTA,
        GREW,
        NOT_CONVERGING,
        HOPELESS,
        STALLS_COST_MORE,
        ITERATE,
        NO_ROUND_YET,
    ]
    assert len(set(reasons)) == len(reasons)
    # the engine's records and tests know the older ones by these words
    assert fits_budget_reason(BUDGET) == "final iteration fits the 1000 ms budget"
    assert MAX_ROUNDS_REASON == "iteration cap (8)"
    assert TINY_DELTA == "delta below 262144 bytes"
    assert GREW == "delta grows: the service dirties faster than we copy"
    assert NOT_CONVERGING.startswith("not converging")
    assert HOPELESS.startswith("hopeless")
    assert STALLS_COST_MORE == "stalls cost more than they save"


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


def test_one_round_that_does_not_fit_always_iterates() -> None:
    # the first round copies everything; only the second shows what changes
    for rnd in (r(60 * MB), r(256 * MiB, dump_s=4.0, send_s=43.0), r(100, dump_s=9.0)):
        assert should_stop([rnd], RATE, 100.0, RESTORE) == Decision(
            False, ITERATE, predicted_downtime_ms(rnd, RATE, RESTORE)
        )


def test_iterates_while_nothing_says_stop() -> None:
    d = should_stop([r(60 * MB), r(8 * MB)], RATE, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (False, "iterate")
    assert d.predicted_downtime_ms == pytest.approx(predicted_downtime_ms(r(8 * MB), RATE, RESTORE))


def test_iteration_cap() -> None:
    rounds = [r(b) for b in SHRINKING]
    assert len(rounds) == MAX_ROUNDS
    d = should_stop(rounds, RATE, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (True, f"iteration cap ({MAX_ROUNDS})")
    assert first_stop(rounds, RATE, BUDGET) == (MAX_ROUNDS, d)


def test_min_delta_rule_needs_two_rounds() -> None:
    small = MIN_DELTA_BYTES - 1
    budget = 100.0  # cannot be met: restore alone is 300 ms
    assert not should_stop([r(small)], RATE, budget, RESTORE).stop
    d = should_stop([r(60 * MB), r(small)], RATE, budget, RESTORE)
    assert (d.stop, d.reason) == (True, f"delta below {MIN_DELTA_BYTES} bytes")
    # exactly the threshold is not below it (a short dump: the next round is worth its stall)
    at = [r(60 * MB), r(MIN_DELTA_BYTES, dump_s=0.01)]
    assert not should_stop(at, RATE, budget, RESTORE).stop


def test_growth_guard_needs_two_rounds_and_more_than_ten_percent() -> None:
    grows = [r(60 * MB), r(67 * MB)]
    d = should_stop(grows, RATE, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (True, "delta grows: the service dirties faster than we copy")
    assert d.detail == f"{60 * MB} -> {67 * MB} bytes"
    # exactly +10 % (and less) is not growth: it is not converging
    assert should_stop([r(60 * MB), r(66 * MB)], RATE, BUDGET, RESTORE).reason == NOT_CONVERGING
    assert should_stop([r(60 * MB), r(60 * MB)], RATE, BUDGET, RESTORE).reason == NOT_CONVERGING
    assert not should_stop([r(60 * MB)], RATE, BUDGET, RESTORE).stop


def test_growth_compares_with_the_previous_round_only() -> None:
    rounds = [r(60 * MB), r(8 * MB), r(9 * MB)]  # 9 > 8 * 1.1 although far below round 1
    assert should_stop(rounds, RATE, BUDGET, RESTORE).reason.startswith("delta grows")


# ------------------------------------------------------------------ not converging (issue 10)


def test_not_converging_at_ninety_percent_of_the_previous_round() -> None:
    at = should_stop([r(60 * MB), r(54 * MB)], RATE, BUDGET, RESTORE)  # exactly 90 %
    assert (at.stop, at.reason) == (True, NOT_CONVERGING)
    below = should_stop([r(60 * MB), r(54 * MB - 1)], RATE, BUDGET, RESTORE)
    assert (below.stop, below.reason) == (False, ITERATE)


def test_not_converging_compares_with_the_previous_round_only() -> None:
    rounds = [r(60 * MB), r(10 * MB), r(9 * MB)]  # 90 % of round 2, 15 % of round 1
    assert should_stop(rounds, RATE, BUDGET, RESTORE).reason == NOT_CONVERGING


@pytest.mark.parametrize(
    ("rate", "budget"),
    [(200_000_000, 500.0), (50_000_000, 1000.0)],
    ids=["200Mbit-500ms", "50Mbit-1000ms"],
)
def test_idle_redis_identical_rounds_stop_at_round_two(rate: int, budget: float) -> None:
    """Issue 10: an idle Redis ran 8 identical 3.7 MiB rounds, each stalling its clients for
    ~200 ms. Its final iteration does not fit (670 ms at 200 Mbit/s, 1183 ms at 50 Mbit/s):
    the rounds must stop as soon as the second shows that nothing shrinks."""
    rounds = [Round(int(3.7 * MiB), 0.2, 0.2)] * MAX_ROUNDS
    n, d = first_stop(rounds, rate, budget)
    assert (n, d.reason) == (2, NOT_CONVERGING)
    assert d.predicted_downtime_ms > budget


def test_idle_redis_at_the_default_budget_and_rate_fits_after_one_round() -> None:
    # 3.7 MiB * 1.1 * 8 at 200 Mbit/s = 171 ms, + 200 ms dump + 300 ms restore
    rounds = [Round(int(3.7 * MiB), 0.2, 0.2)] * MAX_ROUNDS
    n, d = first_stop(rounds, 200_000_000, 1000.0)
    assert (n, d.reason) == (1, fits_budget_reason(1000.0))


def test_large_service_rounds_that_do_not_shrink_stop_at_round_two() -> None:
    """Issue 10: 256 MiB at 50 Mbit/s, 47 s per round (4 s dump, 43 s send), predicted downtime
    ~50 s against 1000 ms: round 2 moved as much as round 1, so stop there."""
    rounds = [Round(256 * MiB, 4.0, 43.0)] * MAX_ROUNDS
    n, d = first_stop(rounds, RATE, 1000.0)
    assert (n, d.reason) == (2, NOT_CONVERGING)
    assert d.predicted_downtime_ms == pytest.approx(51_545, abs=1)


# ------------------------------------------------------------------------ hopeless (issue 10)


def test_large_service_rounds_that_shrink_slowly_are_hopeless() -> None:
    """256 MiB at 50 Mbit/s, rounds shrinking 20 % each: a round's send (34 s) is over 10x the
    1 s budget, and even after the 6 rounds left the final iteration would take ~14 s."""
    rounds = [Round(256 * MiB, 4.0, 43.0), Round(int(0.8 * 256 * MiB), 4.0, 34.0)]
    best = best_reachable_downtime_ms(rounds, RATE, RESTORE)
    assert best == pytest.approx(14_208, abs=1)
    # the next round alone would still save more than it stalls: only this rule stops it
    assert next_round_saving_ms(rounds, RATE) > 4000.0
    d = should_stop(rounds, RATE, 1000.0, RESTORE)
    assert (d.stop, d.reason) == (True, HOPELESS)
    assert "34.0 s" in d.detail and "14208 ms" in d.detail


def test_hopeless_needs_both_long_rounds_and_an_unreachable_final_iteration() -> None:
    slow = [Round(256 * MiB, 4.0, 43.0), Round(int(0.8 * 256 * MiB), 4.0, 34.0)]
    # rounds under 10x the budget are not hopeless: 34 s < 10 * 4 s
    assert should_stop(slow, RATE, 4000.0, RESTORE).reason == ITERATE
    # rounds that shrink fast enough reach a final iteration within 10x the budget: 256 MiB,
    # then 100 MB (16 s on the wire); 6 more rounds at q = 0.37 leave ~0.3 MB
    fast = [Round(256 * MiB, 4.0, 43.0), Round(100 * MB, 4.0, 16.0)]
    assert best_reachable_downtime_ms(fast, RATE, RESTORE) < 10 * 1000.0
    assert should_stop(fast, RATE, 1000.0, RESTORE).reason == ITERATE


def test_best_reachable_downtime_at_the_trend() -> None:
    rounds = [r(64 * MB), r(32 * MB)]  # q = 0.5, 6 rounds left: 32 MB / 64 = 0.5 MB
    assert shrink_ratio(rounds) == 0.5
    assert best_reachable_downtime_ms(rounds, RATE, RESTORE) == pytest.approx(
        predicted_downtime_ms(r(MB // 2), RATE, RESTORE)
    )
    assert shrink_ratio([r(1 * MB)]) == 1.0
    assert shrink_ratio([r(1 * MB), r(2 * MB)]) == 1.0  # growth predicts no shrinking
    assert shrink_ratio([r(0), r(2 * MB)]) == 1.0
    assert math.isinf(best_reachable_downtime_ms([], RATE, RESTORE))


# ---------------------------------------------------------------- stalls cost more (issue 10)


def test_next_round_saving_formula() -> None:
    # 30 MB after 40 MB: q = 0.75; saves 30 MB * 0.25 * 1.1 * 8 bits at 200 Mbit/s = 330 ms
    rounds = [r(40 * MB), r(30 * MB)]
    assert next_round_saving_ms(rounds, 200_000_000) == pytest.approx(330.0)
    assert next_round_saving_ms([], RATE) == 0.0
    assert next_round_saving_ms([r(30 * MB)], RATE) == 0.0  # no trend yet


def test_rounds_that_stall_longer_than_they_save_stop() -> None:
    """A full dump of 2 s to save 330 ms of final downtime: the client loses."""
    rounds = [r(40 * MB, dump_s=2.0, send_s=1.6), r(30 * MB, dump_s=2.0, send_s=1.2)]
    d = should_stop(rounds, 200_000_000, BUDGET, RESTORE)
    assert (d.stop, d.reason) == (True, STALLS_COST_MORE)
    assert d.detail == "next round stalls ~2000 ms, saves ~330 ms"


def test_stall_boundary_is_strict() -> None:
    rounds = [r(40 * MB, dump_s=0.33), r(30 * MB, dump_s=0.33)]  # stalls 330 ms, saves 330 ms
    assert not should_stop(rounds, 200_000_000, BUDGET, RESTORE).stop
    rounds = [r(40 * MB, dump_s=0.331), r(30 * MB, dump_s=0.331)]
    assert should_stop(rounds, 200_000_000, BUDGET, RESTORE).reason == STALLS_COST_MORE


def test_rounds_without_a_dump_never_stall() -> None:
    # hybrid without dirty tracking moves files only: no freeze, no stall to weigh
    rounds = [r(40 * MB, dump_s=0.0), r(35 * MB, dump_s=0.0)]
    assert not should_stop(rounds, 200_000_000, BUDGET, RESTORE).stop


# ------------------------------------------------------------------------ what must not change


def test_a_converging_service_iterates_until_it_fits() -> None:
    rounds = [r(60 * MB), r(24 * MB), r(10 * MB), r(4 * MB), r(int(1.6 * MB)), r(1 * MB)]
    n, d = first_stop(rounds, RATE, BUDGET)
    assert (n, d.reason) == (5, fits_budget_reason(BUDGET))
    for k in range(1, 5):
        assert should_stop(rounds[:k], RATE, BUDGET, RESTORE).reason == ITERATE


def test_a_large_service_with_dirty_tracking_converges() -> None:
    # pre-dumps: 256 MiB, then what it dirtied meanwhile; dumps shrink with the rounds
    rounds = [
        Round(256 * MiB, 1.0, 43.0),
        Round(40 * MB, 0.3, 6.4),
        Round(8 * MB, 0.1, 1.3),
        Round(2 * MB, 0.05, 0.3),
    ]
    n, d = first_stop(rounds, RATE, BUDGET)
    assert (n, d.reason) == (4, fits_budget_reason(BUDGET))


@pytest.mark.parametrize(
    ("rounds", "budget", "reason"),
    [
        # budget beats the cap, the min delta and the growth guard
        ([r(60 * MB)] * (MAX_ROUNDS - 1) + [r(1 * MB)], BUDGET, "final iteration fits"),
        ([r(60 * MB), r(MIN_DELTA_BYTES - 1)], BUDGET, "final iteration fits"),
        ([r(100), r(1 * MB)], BUDGET, "final iteration fits"),
        # the cap beats the min delta, the growth guard, not converging
        ([r(60 * MB)] * (MAX_ROUNDS - 1) + [r(MIN_DELTA_BYTES - 1)], 100.0, "iteration cap"),
        ([r(60 * MB)] * (MAX_ROUNDS - 1) + [r(90 * MB)], BUDGET, "iteration cap"),
        ([r(60 * MB)] * MAX_ROUNDS, BUDGET, "iteration cap"),
        # the min delta beats the growth guard
        ([r(100), r(MIN_DELTA_BYTES - 1)], 100.0, "delta below"),
        # growth beats not converging (which it implies), and the stall rule
        ([r(60 * MB, dump_s=9.0), r(70 * MB, dump_s=9.0)], BUDGET, "delta grows"),
        # not converging beats hopeless and stalls
        ([Round(256 * MiB, 9.0, 43.0)] * 2, BUDGET, "not converging"),
        # hopeless beats stalls
        ([Round(256 * MiB, 9.0, 43.0), Round(200 * MiB, 9.0, 34.0)], BUDGET, "hopeless"),
    ],
    ids=[
        "budget>cap",
        "budget>min-delta",
        "budget>growth",
        "cap>min-delta",
        "cap>growth",
        "cap>not-converging",
        "min-delta>growth",
        "growth>stalls",
        "not-converging>hopeless",
        "hopeless>stalls",
    ],
)
def test_rule_priority(rounds: list[Round], budget: float, reason: str) -> None:
    d = should_stop(rounds, RATE, budget, RESTORE)
    assert d.stop and d.reason.startswith(reason), d.reason


def test_should_stop_accepts_any_sequence() -> None:
    assert should_stop((r(1 * MB),), RATE, BUDGET, RESTORE).stop


# ------------------------------------------------------------------------------- properties

REASONS = {MAX_ROUNDS_REASON, TINY_DELTA, GREW, NOT_CONVERGING, HOPELESS, STALLS_COST_MORE}

rounds_st = st.builds(
    Round,
    wire_bytes=st.integers(0, 2 * 1024 * MiB),
    dump_s=st.floats(0.0, 30.0),
    send_s=st.floats(0.0, 600.0),
)
rates_st = st.floats(1e5, 1e10)
budgets_st = st.floats(1.0, 1e5)
restores_st = st.floats(0.0, 10.0)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    rounds=st.lists(rounds_st, min_size=1, max_size=3 * MAX_ROUNDS),
    rate=rates_st,
    budget=budgets_st,
    restore=restores_st,
)
def test_property_stops_within_max_rounds_and_always_when_it_fits(
    rounds: list[Round], rate: float, budget: float, restore: float
) -> None:
    stopped_at = None
    for n in range(1, len(rounds) + 1):
        d = should_stop(rounds[:n], rate, budget, restore)
        predicted = predicted_downtime_ms(rounds[n - 1], rate, restore)
        assert d.predicted_downtime_ms == predicted
        if predicted <= budget:  # never iterate after a round that fits
            assert (d.stop, d.reason) == (True, fits_budget_reason(budget))
        else:
            assert d.reason in (REASONS | {ITERATE})
        assert d.stop == (d.reason != ITERATE)
        if n >= MAX_ROUNDS:
            assert d.stop
        if d.stop and stopped_at is None:
            stopped_at = n
    if len(rounds) >= MAX_ROUNDS:
        assert stopped_at is not None and stopped_at <= MAX_ROUNDS


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    first=st.integers(10 * MB, 1024 * MiB),
    ratios=st.lists(st.floats(0.0, CONVERGENCE_RATIO * 0.999), min_size=1, max_size=12),
    rate=rates_st,
    budget=st.floats(100.0, 1e5),
)
def test_property_a_converging_service_without_stalls_stops_only_when_done(
    first: int, ratios: list[float], rate: float, budget: float
) -> None:
    """Rounds that shrink, freeze nothing and send well within 10x the budget: only the budget,
    the cap or a tiny delta stop them."""
    sizes = [first]
    for q in ratios:
        sizes.append(int(sizes[-1] * q))
    rounds = [Round(b, 0.0, min(b * 8 / rate, budget / 1000.0)) for b in sizes]
    for n in range(1, len(rounds) + 1):
        d = should_stop(rounds[:n], rate, budget, 0.1)
        if d.stop:
            assert d.reason in {fits_budget_reason(budget), MAX_ROUNDS_REASON, TINY_DELTA}
            break


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
