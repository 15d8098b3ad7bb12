"""`make demo` runs: the controller, Mininet, a runc container, a live migration and back."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecmig.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "demo",
            "--scenario",
            str(ROOT / "scenarios" / "edge.yaml"),
            "--strategies",
            "postcopy,precopy",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "host pairs reachable" in out
    assert "postcopy" in out and "precopy" in out and "done" in out
