"""`mecmig bench mobility --quick` end to end on real OVS, os-ken, runc and CRIU (issue 12): the
car drives past mec1, mec2 and mec3 of scenarios/drive.yaml at x2, re-plugged at each new site,
while kv follows it by pre-copy, started ahead of each handover (follow-me speculation) and then
as a plain migration at each handover; then (scenarios/replicas.yaml, the same road) the
stateless web follows it by warm replicas. A row per handover with the issue's fields; kv
arrives with its state and the client's connection every time; speculative pre-copy's
interruption is not worse than reactive pre-copy's by more than the benchmark's margin
(MARGIN_MS); a replica handover costs web's client (a GET on a new connection every 5 ms) at
most 10 ms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mecmig.bench.mobility import MARGIN_MS
from mecmig.cli import EXIT_OK, main

# a hang (a process that never ends, a switch that never answers) fails here, not in CI's limit
pytestmark = pytest.mark.timeout(600)

ROW_KEYS = {
    "ue", "service", "policy", "speculative", "interruption_ms", "state_intact", "bytes",
    "dwell_ms", "viable", "t_pre_ms", "t_down_ms", "repetition",
}  # fmt: skip


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("mobility")
    assert main(["bench", "mobility", "--quick", "--out", str(out)]) == EXIT_OK
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return doc, out


def test_a_row_per_handover_with_the_state_intact(summary: tuple[dict[str, Any], Path]) -> None:
    doc, out = summary
    assert [(r["policy"], r["to_site"]) for r in doc["rows"]] == [
        ("precopy", "mec2"), ("precopy", "mec3"),
        ("precopy-reactive", "mec2"), ("precopy-reactive", "mec3"),
        ("replica", "mec2"), ("replica", "mec3"),
    ]  # fmt: skip
    rows = [r for r in doc["rows"] if r["policy"] != "replica"]
    for row in rows:
        assert row.keys() >= ROW_KEYS, row.keys()
        assert (row["ue"], row["service"], row["scale"]) == ("car", "kv", 2.0)
        assert row["speculative"] is (row["policy"] == "precopy")
        assert row["state_intact"] is True and row["outcome"] == "done", row
        assert row["interruption_ms"] is not None and row["interruption_ms"] >= 0
        assert row["t_down_ms"] > 0 and row["t_pre_ms"] >= 0 and row["bytes"] > 0, row
    # the stay at mec2 is 15 s of scenario time (7.5 s at x2); at mec3 it is open
    assert [r["dwell_ms"] for r in rows] == [7500.0, None, 7500.0, None]
    assert all(r["viable"] is None for r in rows if r["to_site"] == "mec3")
    for name in ("mobility.png", "report.md", "mobility.csv"):
        assert (out / name).stat().st_size > 0, name
    assert doc["summary"]["goals"]["state_intact"] is True


def test_a_replica_handover_is_a_flow_switch_the_client_barely_sees(
    summary: tuple[dict[str, Any], Path],
) -> None:
    """Seed 002's goal: a replica switch costs the client at most 10 ms. Each replica was
    placed ahead of the car (ready before its handover), nothing was copied, and the car's
    client, a GET on a new connection every 5 ms, saw no gap over 10 ms at either handover
    (the emulation's move of the car's link included). Placing a replica ahead, about a
    second before, adds its port to the one userspace OVS of every site: that gap is
    reported apart (placement_gap_ms) and bounded by 50 ms."""
    doc, out = summary
    rows = [r for r in doc["rows"] if r["policy"] == "replica"]
    for row in rows:
        assert row.keys() >= ROW_KEYS, row.keys()
        assert (row["ue"], row["service"], row["speculative"]) == ("car", "web", True)
        assert row["state_intact"] is None and row["stateless"] is True, row
        assert row["outcome"] == "done" and row["bytes"] == 0, row
        assert row["ready_before_handover"] is True, row
        assert 0 < row["t_down_ms"] <= 10.0, row  # the controller's switch-over
    gaps = [r["interruption_ms"] for r in rows]
    placing = [r["placement_gap_ms"] for r in rows]
    print(f"\n  replica handovers: the client's largest gaps {gaps} ms; placing ahead {placing}")
    assert all(g is not None and g <= 50.0 for g in placing), rows
    assert all(g is not None and g <= 10.0 for g in gaps), rows
    assert doc["summary"]["goals"]["replica_switch_within_ms"] is True
    assert "a replica switch costs the client ≤ 10 ms" in (out / "report.md").read_text()


def test_speculation_moves_the_rounds_ahead_of_the_handover(
    summary: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = summary
    spec = [r for r in doc["rows"] if r["speculative"] and r["policy"] != "replica"]
    reactive = [r for r in doc["rows"] if not r["speculative"]]
    # ahead: ready for the final phase before the car arrived; so it serves there sooner
    assert all(r["ready_before_handover"] for r in spec), spec
    assert not any(r["ready_before_handover"] for r in reactive), reactive
    for s, r in zip(spec, reactive, strict=True):
        assert s["serving_after_ms"] < r["serving_after_ms"], (s, r)


def test_speculative_precopy_is_not_worse_than_reactive(
    summary: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = summary
    per = doc["summary"]["per_scale"]["2"]["per_policy"]
    mine = per["precopy"]["interruption_median_ms"]
    theirs = per["precopy-reactive"]["interruption_median_ms"]
    print(f"\n  median interruption: speculative {mine} ms, reactive {theirs} ms")
    assert mine <= theirs + MARGIN_MS, (mine, theirs)
    assert doc["summary"]["goals"]["speculative_not_worse_than_reactive"] is True
