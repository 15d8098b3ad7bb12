"""Seed 003's state levels live (issue 12, part 5): `mecmig bench levels --quick` on real OVS,
os-ken, runc and CRIU moves each of its three apps mec1 -> mec2 by each level once, and the
viability matrix it measures is exactly Table IV: SFP (`filesystem`) viable only for the
stateless app and only with a manual command, refused before anything moved without one; FCCP
(`restart`) viable for the stateless app and the per-user counter (it continues from the value
at the stop), not for memcached (its keys are gone); the full state (`precopy`) viable for all
three."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mecmig.bench.levels_matrix import TABLE_IV
from mecmig.cli import EXIT_OK, main

pytestmark = pytest.mark.timeout(600)
ROW_KEYS = {
    "app", "level", "strategy", "viable", "state_intact", "t_pre_ms", "t_down_ms", "bytes",
    "repetition",
}  # fmt: skip


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("levels")
    assert main(["bench", "levels", "--quick", "--out", str(out)]) == EXIT_OK
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return doc, out


def test_the_measured_matrix_is_table_iv(bench: tuple[dict[str, Any], Path]) -> None:
    doc, _ = bench
    summary = doc["summary"]
    assert summary["matrix"] == TABLE_IV, summary["differences"]
    assert summary["matches_table_iv"] and summary["sfp_refused_without_command"]
    rows = {(r["app"], r["level"]): r for r in doc["rows"]}
    counter_sfp, counter_fccp = rows[("counter", "sfp")], rows[("counter", "fccp")]
    # the counter started afresh without its environment counts from 1 again...
    assert counter_sfp["state"]["after"] == 1 and counter_sfp["state"]["at_stop"] > 1
    # ... with it, it reads its file back and continues from the value at the stop
    assert counter_fccp["state"]["after"] > counter_fccp["state"]["at_stop"] > 0
    for level in ("sfp", "fccp"):
        gone = rows[("memcached", level)]
        assert gone["answers"] and gone["state"]["keys_present"] == 0  # runs, state lost
    assert rows[("memcached", "fullsp")]["state"]["keys_present"] == 2000


def test_bench_levels(bench: tuple[dict[str, Any], Path]) -> None:
    doc, out = bench
    assert len(doc["rows"]) == 9 and doc["complete"] is True
    for row in doc["rows"]:
        assert row.keys() >= ROW_KEYS, row.keys()
        assert row["outcome"] == "done" and row["repetition"] == 1, row
        assert row["bytes"] > 0 and row["t_pre_ms"] > 0 and row["t_down_ms"] > 0
        if row["level"] != "fullsp":  # files only: the bulk before, a small delta at the stop
            assert row["bytes_at_freeze"] < 64 * 1024
    for name in ("levels.png", "report.md", "levels.csv", "levels-statistics.csv"):
        assert (out / name).stat().st_size > 0, name
    assert "Table IV" in (out / "report.md").read_text()
