"""When pre-copy stops iterating, and how much bandwidth the final iteration asks for.

All the knobs are here, named (P.Haul's habit): at most MAX_ROUNDS rounds; stop when a round
moved less than MIN_DELTA_BYTES or grew by more than GROWTH_GUARD over the previous one; and above
all stop as soon as the final iteration is predicted to fit the downtime budget at the reserved
rate. Pure functions: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_ROUNDS = 8
MIN_DELTA_BYTES = 64 * 4096  # 64 pages, P.Haul's threshold
GROWTH_GUARD = 1.10
PREDICTION_MARGIN = 1.10  # the final delta is predicted as the last one plus 10 %
MIN_RESERVATION_BPS = 1_000_000


@dataclass(frozen=True)
class Round:
    """One pre-copy round as measured: what went on the wire, how long dump and send took."""

    wire_bytes: int
    dump_s: float
    send_s: float


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str
    predicted_downtime_ms: float


def predicted_downtime_ms(last: Round, rate_bps: float, restore_s: float) -> float:
    """Final dump (as long as the last one) + the final delta at `rate_bps` + the restore."""
    transfer_s = last.wire_bytes * PREDICTION_MARGIN * 8 / max(rate_bps, 1.0)
    return (last.dump_s + transfer_s + restore_s) * 1000.0


def should_stop(
    rounds: Sequence[Round], rate_bps: float, budget_ms: float, restore_s: float
) -> Decision:
    """Whether to stop iterating after `rounds`, and why (the reason is logged and recorded)."""
    if not rounds:
        return Decision(False, "no round yet", float("inf"))
    last = rounds[-1]
    predicted = predicted_downtime_ms(last, rate_bps, restore_s)
    if predicted <= budget_ms:
        return Decision(True, f"final iteration fits the {budget_ms:.0f} ms budget", predicted)
    if len(rounds) >= MAX_ROUNDS:
        return Decision(True, f"iteration cap ({MAX_ROUNDS})", predicted)
    if len(rounds) >= 2 and last.wire_bytes < MIN_DELTA_BYTES:
        return Decision(True, f"delta below {MIN_DELTA_BYTES} bytes", predicted)
    if len(rounds) >= 2 and last.wire_bytes > rounds[-2].wire_bytes * GROWTH_GUARD:
        return Decision(True, "delta grows: the service dirties faster than we copy", predicted)
    return Decision(False, "iterate", predicted)


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
