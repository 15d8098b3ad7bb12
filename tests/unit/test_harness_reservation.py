"""`mecmig bench reservation` on the harness, with fake testbeds (no network): a relocation that
crashes leaves the run incomplete; --resume runs no transfer again, puts the instance where the
next move starts (unmeasured) and finishes the moves in their planned order."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from mecmig.bench import ROOT, reservation
from mecmig.bench.reservation import Case

SITES = [SimpleNamespace(name=f"mec{i}", switch=f"s{i}") for i in (1, 2, 3)]


class Fakes:
    def __init__(self, crash_at_move: int | None) -> None:
        self.transfers: list[Case | None] = []
        self.moves: list[tuple[str, str]] = []
        self.crash_at_move = crash_at_move

    def baseline(self, tb: Any, src: str, dst: str, seconds: float) -> dict[str, Any]:
        self.transfers.append(None)
        return {"case": "baseline", "label": "no reservation", "reserved_bps": None,
                "paced": False, "goodput_bps": 700e6, "ratio": None}  # fmt: skip

    def reserved(
        self, tb: Any, case: Case, src: str, dst: str, port: int, seconds: float
    ) -> dict[str, Any]:
        self.transfers.append(case)
        ratio = 0.98 if case.paced else 0.95
        return {"case": "reservation", "label": case.label, "reserved_bps": case.rate_bps,
                "burst_kb": 100, "burst_ms": 300.0, "burst_default": True, "paced": case.paced,
                "port": port, "seconds": seconds, "goodput_bps": round(case.rate_bps * ratio),
                "ratio": ratio, "within_10pct": True}  # fmt: skip

    def move(self, tb: Any, here: str, to: str) -> dict[str, Any]:
        self.moves.append((here, to))
        if len(self.moves) == self.crash_at_move:
            raise OSError("the switch went away")
        ms = 2.0 + len(self.moves) / 10
        return {"case": "relocation", "from": here, "to": to, "switch": "s", "port": 9,
                "switchover_ms": ms, "flow_mods": 6, "switches": ["s1"], "ping_loss_pct": 0,
                "ping_ok": True}  # fmt: skip


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Any:
    import mininet_scenarios.testbed

    monkeypatch.setattr(reservation, "environment_problem", lambda *a, **k: None)
    model = SimpleNamespace(sites=SITES, attachment=lambda name: SimpleNamespace(switch="s1"))
    started: list[Path] = []

    @contextmanager
    def testbed(scenario: Path, **kw: Any) -> Iterator[Any]:
        started.append(scenario)
        yield SimpleNamespace(emu=SimpleNamespace(topo=SimpleNamespace(model=model)))

    monkeypatch.setattr(mininet_scenarios.testbed, "testbed", testbed)

    def install(crash_at_move: int | None) -> Fakes:
        f = Fakes(crash_at_move)
        monkeypatch.setattr(reservation, "_baseline", f.baseline)
        monkeypatch.setattr(reservation, "_reserved_transfer", f.reserved)
        monkeypatch.setattr(reservation, "_move", f.move)
        started.clear()
        return f

    install.started = started  # type: ignore[attr-defined]
    return install


def args(out: Path, resume: bool = False) -> argparse.Namespace:
    scenario = ROOT / "scenarios" / "default.yaml"
    return argparse.Namespace(quick=True, out=out, scenario=scenario, resume=resume)


def test_crash_then_resume(tmp_path: Path, fakes: Any) -> None:
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    f = fakes(2)
    assert reservation.run(args(tmp_path), console) == 1
    assert len(f.transfers) == 5 and f.moves == [("mec1", "mec2"), ("mec2", "mec3")]
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["complete"] is False and doc["summary"]["completed"] is False
    assert doc["summary"]["failures"] == [
        "relocation testbed (three-sites.yaml): the switch went away"
    ]
    runs = doc["experiments"]["relocation"]["runs"]
    assert runs["complete"] == 1 and runs["unfinished"] == ["move=2,repetition=1"]
    assert doc["experiments"]["meters"]["complete"] is True

    f = fakes(None)
    assert reservation.run(args(tmp_path, resume=True), console) == 0
    assert f.transfers == [] and fakes.started == [reservation.RELOCATION_SCENARIO]
    assert f.moves == [("mec1", "mec2"), ("mec2", "mec3"), ("mec3", "mec1")]  # first: unmeasured
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["complete"] is True and doc["summary"]["completed"] is True
    moves = [r for r in doc["rows"] if r["case"] == "relocation"]
    assert [(m["from"], m["to"]) for m in moves] == [
        ("mec1", "mec2"),
        ("mec2", "mec3"),
        ("mec3", "mec1"),
    ]
    assert [r["case"] for r in doc["rows"]][:5] == ["baseline", *["reservation"] * 4]
    assert doc["summary"]["switchover"]["moves"] == 3
    [stats] = [s for s in doc["statistics"]["relocation"] if s["metric"] == "switchover_ms"]
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(2.2)  # 2.1, then 2.2 and 2.3
    assert doc["files"] == ["meters.csv", "meters-statistics.csv", "relocation.csv",
                            "relocation-statistics.csv"]  # fmt: skip
    assert (tmp_path / "switchover_vs_seed.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "reservation.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "report.md").read_text()
    assert '| seed 004, Table 7 | network re-pointing, HSS container, "VPN Setting"' in report
    assert "0.528 s (n=5, no spread given)" in report and "(CV " in report
    assert "## Switch-over statistics" in report and "3 of 3 runs complete" in report
