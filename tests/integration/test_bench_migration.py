"""`mecmig bench migration --quick` end to end: controller, Mininet, site agents, runc + CRIU.

Only the outputs' shape (and that every live strategy kept the client's state) is checked here;
the figures themselves come from the full benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mecmig.bench.migration_cases import STRATEGIES as PLANNED
from mecmig.cli import EXIT_OK, main

ROW_KEYS = {
    "strategy",
    "memory_bytes",
    "dirty_rate_bps",
    "downtime_ms",
    "total_ms",
    "frozen_ms",
    "bytes_transferred",
    "state_intact",
    "same_connection",
    "mode",
    "outcome",
    "rounds",
    "source_cpu_util",
    "phases",
    "frozen_profile_ms",
    "pages_mbps",
}
# where mecmig runs CRIU itself and reads its times (the profile's criu_* parts)
SMALL_MEMORY_BYTES = 6_100_000  # memhog's lazy memory outside its buffer: 1,481 of 17,865 pages
CRIU_RUNS = {"cold", "precopy", "postcopy", "hybrid", "baseline"}
# the peer's rows (podman, podman-zstd) too where podman is installed
STRATEGIES = set(PLANNED)


def test_quick_benchmark_writes_json_plots_and_report(tmp_path: Path) -> None:
    assert main(["bench", "migration", "--quick", "--out", str(tmp_path)]) == EXIT_OK

    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["command"] == f"mecmig bench migration --quick --out {tmp_path}"
    assert doc["quick"] is True
    assert {"kernel", "cpu_count", "ovs_version"} <= doc["host"].keys()
    rows = doc["rows"]
    assert {r["strategy"] for r in rows} == STRATEGIES and len(rows) == len(STRATEGIES)
    for row in rows:
        assert row.keys() >= ROW_KEYS, row
        assert row["memory_bytes"] == 64 * 2**20
        assert row["dirty_rate_bps"] == 80_000_000
        assert row["outcome"] == "done", row
        assert row["downtime_ms"] > 0 and row["total_ms"] >= row["frozen_ms"] > 0
        assert row["bytes_transferred"] > 0
        assert "restore" in row["phases"] and "freeze_dump" in row["phases"]
        if row["strategy"] != "baseline":
            assert row["state_intact"] is True, row
            assert row["same_connection"] is True
        # the frozen window's profile: its parts add up to it (within 5 %), CRIU's own times
        # are in it wherever CRIU ran, and the memory moved at a measured rate
        prof = row["frozen_profile_ms"]
        assert isinstance(prof, dict) and prof, row
        assert abs(sum(prof.values()) - row["frozen_ms"]) <= 0.05 * row["frozen_ms"], prof
        if row["strategy"] in CRIU_RUNS:
            assert prof.get("criu_freezing", 0) > 0, prof
            assert prof.get("criu_forking", 0) + prof.get("criu_restore", 0) > 0, prof
            assert sum(v for k, v in prof.items() if k.startswith("runc_")) > 0, prof
        assert row["pages_mbps"] > 0, row
    by = {r["strategy"]: r for r in rows}
    assert by["baseline"]["mode"] == "runc-checkpoint-copy-restore"
    assert by["baseline"]["rounds"] == 0 and "reserve" not in by["baseline"]["phases"]
    assert by["precopy"]["rounds"] >= 1 and by["precopy"]["mode"] == "full-dump-delta"
    assert "pages" in by["postcopy"]["phases"]
    # after post-copy's restore the client waits on the pages its service faults in. Each
    # fault asks for 256 KiB (CRIU patch 0007) and the background pull takes the small VMAs
    # first (0009): the first reply comes no later than the time to pull memhog's memory
    # outside its buffer (SMALL_MEMORY_BYTES: the interpreter's heap and arenas) at the
    # measured page rate, plus 100 ms for the held packets' delivery and the service's own
    # work on a loaded 2-core host. Where pages ran at ~110 MB/s (bound ~155 ms) the client's
    # downtime exceeded the frozen window by 175-208 ms page by page, by 12-62 ms with 0007.
    # Where they ran at 22-38 MB/s (bound ~260-380 ms) the first reply came 247-345 ms after
    # the restore with 0007 alone, 118-290 ms with 0009 (44 runs, post-copy and hybrid; the
    # highest at 0.86 of its bound).
    post = by["postcopy"]
    after = post["client_timing_ms"]["restore_end_to_first_reply"]
    bound = 100 + SMALL_MEMORY_BYTES / (post["pages_mbps"] * 1e6) * 1000
    assert 0 < after < bound, (after, bound, post)
    summary = doc["summary"]
    assert summary["completed"] is True and summary["failures"] == []
    assert set(summary["goals"]) == {
        "postcopy_downtime",
        "postcopy_vs_baseline",
        "precopy_vs_baseline",
        "postcopy_total",
        "cold_vs_baseline",
    }
    assert summary["goals"]["postcopy_downtime"]["met"] is None  # no 512 MiB case in --quick
    # the total-time goal's yardstick: one TCP stream between the MEC hosts, measured before
    # the cases (~122 MB/s here: the emulated gigabit). Whether the pages come at that rate is
    # test_lazy_pages_rate_live's: `pages_mbps` counts from the restore's start, and in a
    # single --quick run it varied from 0.73 to 0.87 of the path
    assert 50 < summary["path_mbps"] < 140, summary["path_mbps"]
    assert summary["path_measured"] == "this run's"
    [total] = summary["goals"]["postcopy_total"]["per_cell"]
    moved = post["bytes_transferred"] / (summary["path_mbps"] * 1e6) * 1000
    assert total["bound_ms"] == pytest.approx(1.2 * moved, abs=0.1)
    assert total["total_ms"] == post["total_ms"]
    # cold, the engine's stop-and-copy, within 1.2 x the bare runc + CRIU path's frozen window
    [cold] = summary["goals"]["cold_vs_baseline"]["per_cell"]
    assert cold["met"] is True, cold

    for name in ("downtime.png", "total.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "mecmig bench migration --quick" in report
    assert "downtime.png" in report and "total.png" in report
    assert (tmp_path / "frozen_profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "frozen_profile.png" in report and "Where the frozen window went" in report
