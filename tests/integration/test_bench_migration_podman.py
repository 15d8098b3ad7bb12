"""Podman in the same run (issue 13, item 6): `mecmig bench migration` with the peer's rows.

The test installs Podman itself with the project's own step (`scripts/bootstrap --podman`,
idempotent: quiet when it is there), so it never skips for want of it; `make test` without that
step keeps working (the default plan has the peer's rows only where podman is installed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from mecmig.cli import EXIT_OK, main

ROOT = Path(__file__).resolve().parents[2]


def test_bootstrap_installs_podman_and_a_second_run_is_quiet() -> None:
    for _ in range(2):
        proc = subprocess.run(
            [str(ROOT / "scripts" / "bootstrap"), "--podman"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "" and proc.stderr == "", "nothing to do should print nothing"
    assert shutil.which("podman") is not None
    check = [str(ROOT / "scripts" / "bootstrap"), "--check", "--podman"]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0


def test_podman_rows_beside_postcopy_in_one_run(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "bootstrap"), "--podman"], check=True)
    args = ["bench", "migration", "--strategies", "postcopy", "podman", "podman-zstd"]
    args += ["--sizes", "64MiB", "--dirty-rates", "10MB/s", "--out", str(tmp_path)]
    assert main(args) == EXIT_OK

    doc = json.loads((tmp_path / "summary.json").read_text())
    by = {r["strategy"]: r for r in doc["rows"]}
    assert set(by) == {"postcopy", "podman", "podman-zstd"}
    for name in ("podman", "podman-zstd"):
        row = by[name]
        assert row["outcome"] == "done", row
        assert row["mode"] == "podman-checkpoint-export-copy-restore-import"
        # the probe's one connection survived (--tcp-established), the counter and memory too
        assert row["state_intact"] is True and row["same_connection"] is True, row
        assert row["downtime_ms"] > 0 and row["frozen_ms"] > 0
        assert row["bytes_transferred"] > 0 and row["phases"]["transfer"] > 0
        assert {"freeze_dump", "transfer", "switch", "restore"} <= row["phases"].keys()
    # zstd shrinks memhog's memory; uncompressed carries all 64 MiB
    assert by["podman"]["bytes_transferred"] > 64 * 2**20
    assert by["podman-zstd"]["bytes_transferred"] < by["podman"]["bytes_transferred"]
    cell = doc["summary"]["vs_podman"]["per_cell"][0]
    assert cell["ratios"]["postcopy"]["vs_podman"] > 0
    assert doc["summary"]["completed"] is True
    report = (tmp_path / "report.md").read_text()
    assert "## Podman in the same run" in report and "postcopy" in report
    # nothing of the peer's is left: its container, and the images it imported
    left = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True
    )
    assert "mecmig-bench-" not in left.stdout
    images = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}"], capture_output=True, text=True
    )
    assert "mecmig-bench-workload" not in images.stdout
