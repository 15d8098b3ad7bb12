"""`mecmig mobility`: handovers and dwell times of a scenario's moving UEs; exit codes and the
JSON it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mecmig.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]
CITY = str(ROOT / "scenarios" / "city.yaml")


def test_it_prints_the_handovers_and_the_dwell_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mobility", CITY, "--strategy", "slow:9000:3000"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "poa5g03 -> poa5g04   zone01 -> zone02   mec1 -> mec2" in out
    assert "- -> poa5g07" in out  # the bus starts out of every range
    rows = [line.split() for line in out.splitlines() if line.split()[:2] == ["car", "poa"]]
    # UE, per, dwells, mean, min, open, slow's share: the car's 13 point-of-access dwells
    assert len(rows) == 1 and rows[0][2] == "13" and rows[0][5] == "1"
    assert float(rows[0][4]) == pytest.approx(1.62, abs=0.01)
    assert "slow: viable if T_pre 9000 ms + T_down 3000 ms <= the dwell" in out


def test_json_has_each_ues_handovers_dwells_and_viability(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["mobility", CITY, "--json", "--ue", "car", "--strategy", "quick:100:50"]
    assert main([*argv, "--strategy", "slow:9000:3000"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"scenario", "strategies", "ues", "all"}
    assert doc["strategies"] == [
        {"name": "quick", "t_pre_ms": 100, "t_down_ms": 50},
        {"name": "slow", "t_pre_ms": 9000, "t_down_ms": 3000},
    ]
    (car,) = doc["ues"]
    assert car["ue"] == "car" and car["initial"] == {
        "cell": "poa5g01",
        "zone": "zone01",
        "site": "mec1",
    }
    assert len(car["handovers"]) == 14
    first = car["handovers"][0]
    assert set(first) == {
        "t_s",
        "from_cell",
        "to_cell",
        "from_zone",
        "to_zone",
        "from_site",
        "to_site",
        "x",
        "y",
    }
    chain = [car["initial"]["cell"]] + [h["to_cell"] for h in car["handovers"]]
    assert [h["from_cell"] for h in car["handovers"]] == chain[:-1]
    poa = car["dwell"]["poa"]
    assert (poa["count"], poa["open"]) == (13, 1)
    complete = [d for d in poa["dwells"] if not d["open"]]
    assert poa["min_s"] == min(d["dwell_s"] for d in complete)
    slow_ok = sum(d["viable"]["slow"] for d in complete)
    assert poa["viable"]["slow"] == {"viable": slow_ok, "of": 13, "fraction": slow_ok / 13}
    assert poa["viable"]["quick"]["fraction"] == 1.0
    assert 0 < slow_ok < 13  # 12 s does not fit every short dwell
    assert all(d["viable"] == {"quick": None, "slow": None} for d in poa["dwells"] if d["open"])
    assert set(car["dwell"]) == {"poa", "zone", "site"} and doc["all"]["poa"]["count"] == 13


def test_until_limits_the_analysis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mobility", CITY, "--json", "--ue", "car", "--until", "30"]) == EXIT_OK
    car = json.loads(capsys.readouterr().out)["ues"][0]
    assert car["until_s"] == 30 and [h["t_s"] for h in car["handovers"]] == [10.258, 17.955, 26.515]


@pytest.mark.parametrize(
    "extra",
    [
        ["--strategy", "nocolons"],
        ["--strategy", "x:1:-2"],
        ["--until", "0"],
        ["--until", "86401"],
        ["--until", "soon"],
        ["--bogus"],
    ],
)
def test_a_bad_command_line_exits_2(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["mobility", CITY, *extra])
    assert info.value.code == EXIT_USAGE
    assert "error:" in capsys.readouterr().err


def test_a_bad_scenario_exits_1_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(CITY).read_text().replace("range_m: 110}", "range_m: -1}"))
    assert main(["mobility", str(bad)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "map.cells[0].range_m: Input should be greater than 0" in err
    assert "map.cells[2].range_m" not in err and "problem(s)" in err


def test_other_mistakes_exit_2_and_a_scenario_without_a_map_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    three = str(ROOT / "scenarios" / "three-sites.yaml")
    assert main(["mobility", three]) == EXIT_FAILED
    assert "has no map:" in capsys.readouterr().err
    assert main(["mobility", CITY, "--ue", "ghost"]) == EXIT_USAGE
    assert "'ghost' is not a UE moving on the map" in capsys.readouterr().err
    same = ["--strategy", "a:1:1", "--strategy", "a:2:2"]
    assert main(["mobility", CITY, *same]) == EXIT_USAGE
    assert "each named once" in capsys.readouterr().err


def test_help_explains_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["mobility", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "T_pre + T_down <= T_dwell" in out and "NAME:T_PRE_MS:T_DOWN_MS" in out
