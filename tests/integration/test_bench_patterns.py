"""`mecmig bench patterns` end to end on real OVS, os-ken, runc and CRIU (issue 11), a subset
small enough for `make test`: every pattern, with and without network awareness, at 2 MB/s,
once. The rows carry the fields the issue names, every run keeps the chain's state (the
client's one connection through the chain, the forwarder's process, memory and flow counters,
the server's count of requests), wait-for-me freezes its functions together (its frozen windows
overlap), and the source site's CPU series is in the JSON (Fig. 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mecmig.cli import EXIT_OK, main

ROW_KEYS = {
    "pattern", "network_aware", "bandwidth_bps", "chain_downtime_ms", "function_downtime_ms",
    "freeze_spread_ms", "total_ms", "bytes", "cpu_mean", "cpu_peak", "state_intact",
    "repetition",
}  # fmt: skip
RTO_FIRST_MS = 1000  # TCP's first retransmission timeout before it has measured a round trip


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("patterns")
    argv = ["bench", "patterns", "--bandwidths", "2MB/s", "--repeat", "1", "--out", str(out)]
    assert main(argv) == EXIT_OK
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return doc, out


def test_every_pattern_moves_the_chain_with_its_state(
    summary: tuple[dict[str, Any], Path],
) -> None:
    doc, out = summary
    rows = doc["rows"]
    assert {(r["pattern"], r["network_aware"]) for r in rows} == {
        (p, a) for p in ("async", "wait-for-me", "round-robin") for a in (False, True)
    }
    for row in rows:
        assert row.keys() >= ROW_KEYS, row.keys()
        assert row["outcome"] == "done" and row["state_intact"], row
        assert row["bandwidth_bps"] == 16_000_000 and row["repetition"] == 1
        assert set(row["function_downtime_ms"]) == {"fw", "video"}
        # the client's longest silence may outlast the migration: a request lost in it is
        # retransmitted by TCP's doubling timer, at most one interval (the time since the
        # loss, plus the first timeout) after the path is back (CI, 1f2cd40: 1442 ms of
        # downtime in a round-robin chain migration of 1330 ms; results/patterns/ has runs
        # ~1 s above the others, and one above its total)
        assert 0 < row["chain_downtime_ms"] <= 2 * row["total_ms"] + RTO_FIRST_MS, row
        assert row["cpu_peak"] >= row["cpu_mean"] > 0
    for name in ("patterns.png", "cpu.png", "report.md", "patterns.csv"):
        assert (out / name).stat().st_size > 0, name
    assert len(doc["cpu_series"]) == len(rows) and all(s["t_s"] for s in doc["cpu_series"])
    assert doc["summary"]["goals"]["state_intact"] is True


def test_wait_for_me_freezes_the_chain_together(summary: tuple[dict[str, Any], Path]) -> None:
    """Proven from the timelines: every wait-for-me run's frozen windows overlap, and its
    functions froze far closer together than round-robin's, which freeze one after the other
    (the <= 10 ms goal itself is the benchmark's: README, results/patterns/)."""
    doc, _ = summary
    rows = doc["rows"]
    waits = [r for r in rows if r["pattern"] == "wait-for-me"]
    turns = [r["freeze_spread_ms"] for r in rows if r["pattern"] == "round-robin"]
    assert waits and turns
    for row in waits:
        assert row["frozen_windows_overlap"] is True
        assert row["freeze_spread_ms"] < min(turns) / 2, (row["freeze_spread_ms"], turns)
