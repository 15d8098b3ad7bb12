"""`mecmig bench concurrency --quick` end to end on real OVS, os-ken, runc and CRIU (issue 11,
part 4): 2 and then 5 services (single instances and chains) leave mec1 at once across one
shared 100 Mbit/s link under each policy of the migration queue. Every migration ends done at
mec2 with its state; best-effort starts them all at once; one-per-link never runs two on the
link together; network-aware queues what does not fit, reserves up to the link's capacity and
never beyond it, and meets every downtime budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mecmig.cli import EXIT_OK, main

ROW_KEYS = {
    "policy", "n", "migration", "completion_ms", "downtime_ms", "budget_ms", "budget_met",
    "deadline_ms", "deadline_met", "state_intact",
}  # fmt: skip


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("concurrency")
    assert main(["bench", "concurrency", "--quick", "--out", str(out)]) == EXIT_OK
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return doc, out


def _rows(doc: dict[str, Any], policy: str, n: int) -> list[dict[str, Any]]:
    return [r for r in doc["rows"] if r["policy"] == policy and r["n"] == n]


def test_every_migration_moves_with_its_state(summary: tuple[dict[str, Any], Path]) -> None:
    doc, out = summary
    rows = doc["rows"]
    assert len(rows) == 3 * (2 + 5)
    for row in rows:
        assert row.keys() >= ROW_KEYS, row.keys()
        assert row["outcome"] == "done" and row["state_intact"], row
        assert 0 < row["downtime_ms"] < row["completion_ms"]
    assert {r["kind"] for r in rows} == {"instance", "chain"}
    for name in ("concurrency.png", "report.md", "concurrency.csv"):
        assert (out / name).stat().st_size > 0, name
    assert doc["summary"]["goals"]["state_intact"] is True


def test_best_effort_starts_everything_at_once(summary: tuple[dict[str, Any], Path]) -> None:
    doc, _ = summary
    for row in _rows(doc, "best-effort", 5):
        assert row["wait_ms"] < 100, row
        assert row["queued_position"] is None


def test_one_per_link_runs_one_migration_at_a_time_in_order(
    summary: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = summary
    rows = _rows(doc, "one-per-link", 5)
    spans = [(r["wait_ms"], r["completion_ms"]) for r in rows]  # submission order
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end - 1.0, spans  # the next starts when the one before ended


def test_network_aware_queues_reserves_within_capacity_and_meets_budgets(
    summary: tuple[dict[str, Any], Path],
) -> None:
    doc, _ = summary
    batches = [b for b in doc["batches"] if b["policy"] == "network-aware"]
    assert batches
    for b in batches:
        assert b["link_overcommitted"] is False, b
        assert b["budget_misses"] == 0, b
    five = next(b for b in batches if b["n"] == 5)
    assert max(five["link_peak_share"].values()) > 0.5, five  # the reservations were there
    assert any(r["queued_position"] for r in _rows(doc, "network-aware", 5))
    # earliest deadline first: the jobs ended in the order of their deadlines
    rows = sorted(_rows(doc, "network-aware", 5), key=lambda r: r["completion_ms"])
    assert [r["deadline_ms"] for r in rows] == sorted(r["deadline_ms"] for r in rows)
