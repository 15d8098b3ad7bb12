"""Helpers for tests that run the real controller against the real emulation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mininet_scenarios.measure import goodput_bps, ofctl, port_tx_packets
from mininet_scenarios.testbed import Testbed, testbed

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["ROOT", "goodput_bps", "live", "ofctl", "port_tx_packets"]


@contextlib.contextmanager
def live(
    scenario: str, state_file: Path | None = None, *, shaping: bool | None = None
) -> Iterator[Testbed]:
    """The testbed for `scenarios/<scenario>` (`shaping`: links shaped to their capacity;
    default: the scenario's `network.shaping`)."""
    with testbed(ROOT / "scenarios" / scenario, state_file, shaping=shaping) as tb:
        yield tb
