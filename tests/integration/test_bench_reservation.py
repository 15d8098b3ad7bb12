"""`mecmig bench reservation --quick` end to end: real controller, OVS, Mininet and iperf3.

Only the outputs' shape is checked here; the figures themselves come from the full benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

from mecmig.cli import EXIT_OK, main

RESERVATION_KEYS = {
    "case",
    "reserved_bps",
    "burst_kb",
    "burst_ms",
    "paced",
    "seconds",
    "goodput_bps",
    "ratio",
    "within_10pct",
}
RELOCATION_KEYS = {"case", "from", "to", "switchover_ms", "flow_mods", "switches", "ping_ok"}


def test_quick_benchmark_writes_json_plot_and_report(tmp_path: Path) -> None:
    assert main(["bench", "reservation", "--quick", "--out", str(tmp_path)]) == EXIT_OK

    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["command"] == f"mecmig bench reservation --quick --out {tmp_path}"
    assert doc["quick"] is True
    assert {"kernel", "cpu_count", "ovs_version"} <= doc["host"].keys()
    rows = doc["rows"]
    reserved = [r for r in rows if r["case"] == "reservation"]
    moves = [r for r in rows if r["case"] == "relocation"]
    assert len(reserved) == 4  # 5 and 20 Mbit/s x default burst x pacing off/on
    assert {(r["reserved_bps"], r["paced"]) for r in reserved} == {
        (5_000_000, False),
        (5_000_000, True),
        (20_000_000, False),
        (20_000_000, True),
    }
    for row in reserved:
        assert row.keys() >= RESERVATION_KEYS
        assert row["goodput_bps"] > 0 and row["ratio"] > 0 and row["seconds"] == 2
    [baseline] = [r for r in rows if r["case"] == "baseline"]
    assert baseline["goodput_bps"] > 0
    assert len(moves) == 3
    for row in moves:
        assert row.keys() >= RELOCATION_KEYS
        assert row["switchover_ms"] > 0 and row["flow_mods"] > 0
    assert [(m["from"], m["to"]) for m in moves] == [
        ("mec1", "mec2"),
        ("mec2", "mec3"),
        ("mec3", "mec1"),
    ]
    summary = doc["summary"]
    assert summary["completed"] is True
    assert [p["reserved_bps"] for p in summary["goodput"]["per_rate"]] == [5_000_000, 20_000_000]
    assert summary["switchover"]["moves"] == 3

    png = tmp_path / "reservation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "mecmig bench reservation --quick" in report and "reservation.png" in report
