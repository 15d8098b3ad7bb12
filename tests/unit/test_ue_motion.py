"""The UE mover's order (no emulation: a recording emulation and controller): a cell that hangs
off another switch moves the UE's traffic at the controller first (it picks the port), then
re-plugs the UE there; a cell on the same switch re-plugs nothing; every change is announced."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mininet_scenarios.ue_motion import UEMover
from topology.mobility_events import ue_mobility
from topology.scenario import load_scenario

DRIVE = Path(__file__).resolve().parents[2] / "scenarios" / "drive.yaml"


@dataclass
class View:
    new_switch: str
    new_port: int
    switchover_ms: float = 3.0


@dataclass
class Recorder:
    scenario: Any = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def relocate(self, host: str, to: str) -> View:
        self.calls.append(("relocate", host, to))
        return View(to, 7)

    def move_host(self, name: str, switch: str, port: int) -> None:
        self.calls.append(("move_host", name, switch, port))

    def announce_access_point(self, ue: str, cell: str | None, t_s: float, scale: float) -> None:
        self.calls.append(("announce", ue, cell, t_s, scale))


def test_a_new_site_relocates_then_replugs_and_every_change_is_announced() -> None:
    sc = load_scenario(DRIVE)
    rec = Recorder(sc)
    mover = UEMover(rec, rec)  # type: ignore[arg-type]
    for h in ue_mobility(sc, "car").handovers:
        mover.apply(h)
    s2, s3 = sc.switch_of("mec2"), sc.switch_of("mec3")
    assert rec.calls == [
        ("relocate", "car", s2), ("move_host", "car", s2, 7),
        ("announce", "car", "cell2", 7.5, 1.0),
        ("relocate", "car", s3), ("move_host", "car", s3, 7),
        ("announce", "car", "cell3", 22.5, 1.0),
    ]  # fmt: skip
    assert [(m.switch, m.port) for m in mover.log] == [(s2, 7), (s3, 7)]


def test_a_cell_on_the_same_switch_is_only_announced() -> None:
    sc = load_scenario(DRIVE)
    rec = Recorder(sc)
    mover = UEMover(rec, rec)  # type: ignore[arg-type]
    [first, _] = ue_mobility(sc, "car").handovers
    mover.at["car"] = sc.switch_of("mec2")  # as if already there
    moved = mover.apply(first)
    assert rec.calls == [("announce", "car", "cell2", 7.5, 1.0)]
    assert moved.switch is None and moved.replug_ms is None
