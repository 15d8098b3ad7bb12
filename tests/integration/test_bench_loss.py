"""`mecmig bench loss --quick` end to end (seed 003, Table III): restart (FCCP) and cold
(FullSP) migrate `counter` over 100 Mbit/s links at 0 and 5 % packet loss, 3 runs each; the
loss must affect only the copy: the rest of the downtime (its median per level) stays put,
FCCP's copy under 40 ms."""

from __future__ import annotations

import json
from pathlib import Path

from mecmig.cli import EXIT_OK, main

ROW_KEYS = {
    "strategy", "level", "loss_pct", "repetition", "copy_ms", "downtime_ms", "source_ms",
    "target_ms", "between_ms", "noncopy_ms", "client_ms", "bytes", "packets_seen",
    "packets_dropped", "measured_loss_pct",
}  # fmt: skip


def test_quick_loss_benchmark_has_seed003s_shape(tmp_path: Path) -> None:
    assert main(["bench", "loss", "--quick", "--out", str(tmp_path)]) == EXIT_OK

    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["command"] == f"mecmig bench loss --quick --out {tmp_path}"
    assert doc["complete"] is True
    rows = doc["rows"]
    assert sorted((r["strategy"], r["loss_pct"]) for r in rows) == 3 * [("cold", 0.0)] + 3 * [
        ("cold", 5.0)] + 3 * [("restart", 0.0)] + 3 * [("restart", 5.0)]  # fmt: skip
    for row in rows:
        assert row.keys() >= ROW_KEYS and "error" not in row, row
        assert row["level"] == {"restart": "fccp", "cold": "fullsp"}[row["strategy"]]
        # additive: the terms and the gaps between the phases make the downtime
        parts = row["source_ms"] + row["copy_ms"] + row["target_ms"] + row["between_ms"]
        assert abs(parts - row["downtime_ms"]) < 0.5, row
        if row["loss_pct"] == 0:
            assert row["packets_seen"] is None  # no rule at 0 %
        elif row["strategy"] == "cold":  # ~30 000 packets: the rule drops ~5 % of them
            assert row["packets_seen"] > 10_000
            assert 4.0 <= row["measured_loss_pct"] <= 6.0, row
    # the sites' directories on tmpfs: the checkpoint's write no longer varies 11-60 ms (ext4 here)
    assert "tmpfs" in doc["plan"]["sites"]
    writes = [r["frozen_profile_ms"]["criu_memwrite"] for r in rows if r["strategy"] == "cold"]
    assert max(writes) - min(writes) < 15.0, writes
    cold = {r["loss_pct"]: r for r in rows if r["strategy"] == "cold"}
    assert cold[0.0]["bytes"] > 30_000_000  # the whole checkpoint moves in the downtime
    shape = doc["summary"]["shape"]
    assert shape["restart"]["holds"] is True, shape  # FCCP's copy < 40 ms at 5 % too
    # the rest of the downtime did not move with the loss; the copy's growth is reported, not
    # asserted: here about +5 % at 5 % (+168 ms, standard error 38 ms over 5 runs each), which
    # 3 runs do not always tell from the spread (see report.md)
    assert shape["cold"]["holds"] is True, shape
    assert doc["summary"]["shape_holds"] is True
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "Table III" in report and "loss.png" in report
