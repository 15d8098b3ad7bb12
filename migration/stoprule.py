"""When pre-copy stops iterating, and how much bandwidth the final iteration asks for.

All the knobs are here, named (P.Haul's habit), and `should_stop` is the one predicate that
applies them, first match wins:

1. the final iteration is predicted to fit the downtime budget at the reserved rate (the goal);
2. MAX_ROUNDS rounds done;
3. a round moved less than MIN_DELTA_BYTES (nothing left worth a round);
4. a round grew by more than GROWTH_GUARD over the previous one (the service dirties faster
   than we copy);
5. a round moved at least CONVERGENCE_RATIO of the previous one: not converging (an idle
   service's identical rounds stop after round 2, the first copying everything, the second
   showing what changes);
6. hopeless: a round's send alone takes more than HOPELESS_FACTOR x the budget, and at the
   rounds' trend the rounds left would not bring the final iteration within HOPELESS_FACTOR x
   the budget either;
7. the next round would stall the service longer than the downtime it saves (see
   `should_stop` for the formula).

Each stop has its own stable reason, which the engine logs and records as the migration's
`stop_reason`. Pure functions: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_ROUNDS = 8
MIN_DELTA_BYTES = 64 * 4096  # 64 pages, P.Haul's threshold
GROWTH_GUARD = 1.10
CONVERGENCE_RATIO = 0.90  # a round must move less than 90 % of the previous one to count
HOPELESS_FACTOR = 10.0  # rounds and the best final iteration reachable both >= 10x the budget
PREDICTION_MARGIN = 1.10  # the final delta is predicted as the last one plus 10 %
MIN_RESERVATION_BPS = 1_000_000

# The reasons, as a migration records them (metrics["stop_reason"]); benchmarks group by them.
NO_ROUND_YET = "no round yet"
ITERATE = "iterate"
MAX_ROUNDS_REASON = f"iteration cap ({MAX_ROUNDS})"
TINY_DELTA = f"delta below {MIN_DELTA_BYTES} bytes"
GREW = "delta grows: the service dirties faster than we copy"
NOT_CONVERGING = "not converging: rounds no longer shrink"
HOPELESS = "hopeless: more rounds will not bring the final iteration within budget"
STALLS_COST_MORE = "stalls cost more than they save"


def fits_budget_reason(budget_ms: float) -> str:
    """The reason of rule 1 (it names the budget, which is per migration)."""
    return f"final iteration fits the {budget_ms:.0f} ms budget"


@dataclass(frozen=True)
class Round:
    """One pre-copy round as measured: what went on the wire, how long dump and send took.

    `dump_s` is also about how long the round froze the service: without dirty tracking every
    round is a full dump left running."""

    wire_bytes: int
    dump_s: float
    send_s: float


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str
    predicted_downtime_ms: float
    detail: str = ""  # the numbers behind the reason, for the log


def predicted_downtime_ms(last: Round, rate_bps: float, restore_s: float) -> float:
    """Final dump (as long as the last one) + the final delta at `rate_bps` + the restore."""
    transfer_s = last.wire_bytes * PREDICTION_MARGIN * 8 / max(rate_bps, 1.0)
    return (last.dump_s + transfer_s + restore_s) * 1000.0


def shrink_ratio(rounds: Sequence[Round]) -> float:
    """The rounds' trend: the last round's bytes over the previous one's, at most 1 (a round
    that grew predicts no shrinking). 1 with fewer than two rounds."""
    if len(rounds) < 2 or rounds[-2].wire_bytes <= 0:
        return 1.0
    return min(rounds[-1].wire_bytes / rounds[-2].wire_bytes, 1.0)


def next_round_saving_ms(rounds: Sequence[Round], rate_bps: float) -> float:
    """The final iteration's downtime one more round is predicted to save, at the trend:
    last_bytes * (1 - q) * PREDICTION_MARGIN * 8 / rate, with q = `shrink_ratio`."""
    if not rounds:
        return 0.0
    q = shrink_ratio(rounds)
    return rounds[-1].wire_bytes * (1 - q) * PREDICTION_MARGIN * 8 / max(rate_bps, 1.0) * 1000.0


def best_reachable_downtime_ms(rounds: Sequence[Round], rate_bps: float, restore_s: float) -> float:
    """The predicted downtime after all the rounds left before MAX_ROUNDS, each shrinking at the
    trend: the last delta * q ** rounds_left, dumped as long as the last one."""
    if not rounds:
        return float("inf")
    last = rounds[-1]
    left = max(MAX_ROUNDS - len(rounds), 0)
    best = Round(int(last.wire_bytes * shrink_ratio(rounds) ** left), last.dump_s, 0.0)
    return predicted_downtime_ms(best, rate_bps, restore_s)


def should_stop(
    rounds: Sequence[Round], rate_bps: float, budget_ms: float, restore_s: float
) -> Decision:
    """Whether to stop iterating after `rounds`, and why (the reason is logged and recorded).

    The rules in order (the first that holds decides; see the module docstring):
    fits budget, iteration cap, tiny delta, grew, not converging, hopeless, stalls.

    - not converging: last_bytes >= CONVERGENCE_RATIO * previous_bytes.
    - hopeless: last.send_s > HOPELESS_FACTOR * budget and the best reachable downtime (the
      last delta * q ** rounds_left, see `best_reachable_downtime_ms`) > HOPELESS_FACTOR * budget.
    - stalls: each round left running freezes the service for about its dump (without dirty
      tracking, a full dump of its memory), so the next round costs the client ~last.dump_s;
      it saves last_bytes * (1 - q) * PREDICTION_MARGIN * 8 / rate_bps of the final
      iteration's downtime (q = last_bytes / previous_bytes, at most 1). Stop when
      last.dump_s > that saving.

    Rules 3 to 7 need two rounds: the first copies everything, the second shows what changes.
    """
    if not rounds:
        return Decision(False, NO_ROUND_YET, float("inf"))
    last = rounds[-1]
    predicted = predicted_downtime_ms(last, rate_bps, restore_s)
    if predicted <= budget_ms:
        return Decision(True, fits_budget_reason(budget_ms), predicted)
    if len(rounds) >= MAX_ROUNDS:
        return Decision(True, MAX_ROUNDS_REASON, predicted)
    if len(rounds) < 2:
        return Decision(False, ITERATE, predicted)
    previous = rounds[-2].wire_bytes
    if last.wire_bytes < MIN_DELTA_BYTES:
        return Decision(True, TINY_DELTA, predicted)
    if last.wire_bytes > previous * GROWTH_GUARD:
        return Decision(True, GREW, predicted, f"{previous} -> {last.wire_bytes} bytes")
    if last.wire_bytes >= previous * CONVERGENCE_RATIO:
        return Decision(True, NOT_CONVERGING, predicted, f"{previous} -> {last.wire_bytes} bytes")
    best = best_reachable_downtime_ms(rounds, rate_bps, restore_s)
    hopeless_ms = HOPELESS_FACTOR * budget_ms
    if last.send_s * 1000.0 > hopeless_ms and best > hopeless_ms:
        detail = f"round sent in {last.send_s:.1f} s; best reachable downtime {best:.0f} ms"
        return Decision(True, HOPELESS, predicted, detail)
    saving = next_round_saving_ms(rounds, rate_bps)
    if last.dump_s * 1000.0 > saving:
        detail = f"next round stalls ~{last.dump_s * 1000:.0f} ms, saves ~{saving:.0f} ms"
        return Decision(True, STALLS_COST_MORE, predicted, detail)
    return Decision(False, ITERATE, predicted)


def final_rate_bps(
    predicted_bytes: float, budget_ms: float, dump_s: float, restore_s: float, floor_bps: float
) -> float:
    """The rate the final transfer needs to fit the budget (never below `floor_bps`).

    Seed 000's network-aware pattern: the reservation for the last, frozen iteration is sized
    from the previous iteration's measured size, so the downtime approaches what the full link
    would give without taking the whole link.
    """
    window_s = budget_ms / 1000.0 - dump_s - restore_s
    if window_s <= 0.01:
        window_s = 0.01  # the budget is already spent by dump and restore: go as fast as allowed
    return max(floor_bps, MIN_RESERVATION_BPS, predicted_bytes * PREDICTION_MARGIN * 8 / window_s)
