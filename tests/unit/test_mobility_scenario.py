"""The scenario's map and moving UEs: validated with key paths, every field bounded, the old
trajectories untouched, and scenarios/city.yaml usable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from topology.dwell import analyse
from topology.mobility_events import moving_ues, ue_mobility
from topology.scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
CITY = ROOT / "scenarios" / "city.yaml"


def _city() -> dict[str, Any]:
    data = yaml.safe_load(CITY.read_text())
    assert isinstance(data, dict)
    return data


def _problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, source="t.yaml")
    return dict(info.value.problems)


def test_city_loads_with_its_map_and_three_moving_ues() -> None:
    sc = load_scenario(CITY)
    assert sc.map is not None
    assert [(z.name, z.site) for z in sc.map.zones] == [
        ("zone01", "mec1"),
        ("zone02", "mec2"),
        ("zone03", "mec3"),
    ]
    assert len(sc.map.cells) == 9
    assert {c.kind for c in sc.map.cells} == {"5g", "4g", "wifi"}
    assert moving_ues(sc) == ("car", "walker", "bus")
    assert sc.ue("car").path[0].speed_kmh == 50 and sc.ue("car").loop
    assert sc.ue("walker").path[0].speed_kmh == 5
    bus = sc.ue("bus").trace
    assert bus is not None and Path(bus) == ROOT / "scenarios" / "city-trace.csv"


def test_the_car_dwells_seconds_per_point_of_access_and_longer_per_zone() -> None:
    car = ue_mobility(load_scenario(CITY), "car")
    zones = {h.to_zone for h in car.handovers}
    assert zones == {"zone01", "zone02", "zone03"}
    out = analyse(car.handovers, car.until)
    poa, zone = out["poa"][1], out["zone"][1]
    assert poa.count >= 12 and poa.mean_s is not None and poa.min_s is not None
    assert 1.0 <= poa.min_s <= 2.0 and 5.0 <= poa.mean_s <= 11.0
    short = [d.dwell_s for d in out["poa"][0] if not d.open and d.dwell_s <= 10.5]
    assert len(short) >= 0.75 * poa.count  # most between 1 and 10 s
    assert zone.min_s is not None and zone.mean_s is not None
    assert zone.min_s > 15 and zone.mean_s > 3 * poa.mean_s


def test_trajectories_keep_their_meaning() -> None:
    sc = load_scenario(ROOT / "scenarios" / "three-sites.yaml")
    ue = sc.ue("ue1")
    assert [(w.at_s, w.attach) for w in ue.trajectory] == [(0, "mec1"), (20, "mec2"), (40, "mec3")]
    assert ue.path == () and ue.trace is None and not ue.loop and sc.map is None
    assert moving_ues(sc) == ()


def test_map_references_are_checked_with_their_key_paths() -> None:
    data = _city()
    cells = data["map"]["cells"]
    cells[3]["zone"] = "zone09"
    cells[1]["site"] = "mec7"
    cells[2]["attach"] = "nowhere"
    cells[4]["name"] = cells[0]["name"]
    data["map"]["zones"][0]["site"] = "mars"
    data["map"]["zones"].append({"name": "zone02", "site": "mec2"})
    assert _problems(data) == {
        "map.zones[0].site": "no site called 'mars'",
        "map.zones[3].name": "'zone02' is already map.zones[1]",
        "map.cells[1].site": "no site called 'mec7'",
        "map.cells[2].attach": "'nowhere' is neither a site nor a switch",
        "map.cells[3].zone": "no zone called 'zone09'",
        "map.cells[4].name": "'poa5g01' is already map.cells[0]",
    }


def test_a_cell_may_have_its_own_site_and_attach_to_a_switch() -> None:
    data = _city()
    data["map"]["cells"][0] |= {"site": "mec2", "attach": "core"}
    sc = parse_scenario(data)
    assert sc.map is not None and sc.map.cells[0].site == "mec2"
    car = ue_mobility(sc, "car")
    assert car.initial is not None and (car.initial.site, car.initial.attach) == ("mec2", "core")
    assert car.handovers[0].from_site == "mec2" and car.handovers[0].from_zone == "zone01"


def test_unknown_keys_and_bad_values_in_the_map_are_named() -> None:
    data = _city()
    cells = data["map"]["cells"]
    cells[0]["power_dbm"] = 20
    cells[1]["kind"] = "lte"
    cells[2]["position"] = [100_001, 0]
    cells[3]["range_m"] = 0
    cells[4]["range_m"] = 50_001
    cells[5]["name"] = "bad name"
    cells[6]["position"] = [float("nan"), 0]
    problems = _problems(data)
    assert problems == {
        "map.cells[0].power_dbm": "Extra inputs are not permitted",
        "map.cells[1].kind": "Input should be '5g', '4g', 'wifi' or 'other'",
        "map.cells[2].position[0]": "Input should be less than or equal to 100000",
        "map.cells[3].range_m": "Input should be greater than 0",
        "map.cells[4].range_m": "Input should be less than or equal to 50000",
        "map.cells[5].name": "String should match pattern '^[A-Za-z][A-Za-z0-9_-]{0,31}$'",
        "map.cells[6].position[0]": "Input should be a finite number",
    }


def test_counts_are_bounded() -> None:
    data = _city()
    cell = data["map"]["cells"][0]
    data["map"]["cells"] = [cell | {"name": f"c{i}"} for i in range(1025)]
    data["map"]["zones"] = [{"name": f"z{i}", "site": "mec1"} for i in range(257)]
    data["ues"][0]["path"] = [{"x": 0, "y": i % 2, "speed_kmh": 5} for i in range(10_001)]
    problems = _problems(data)
    assert (
        problems["map.cells"] == "Tuple should have at most 1024 items after validation, not 1025"
    )
    assert problems["map.zones"] == "Tuple should have at most 256 items after validation, not 257"
    assert problems["ues[0].path"].startswith("Tuple should have at most 10000 items")
    data = _city()
    data["map"]["cells"] = []
    assert _problems(data) == {
        "map.cells": "Tuple should have at least 1 item after validation, not 0"
    }


def test_waypoints_are_bounded_and_named() -> None:
    data = _city()
    path = data["ues"][1]["path"]
    path[0]["speed_kmh"] = 501
    path[1]["speed_kmh"] = 0
    path[2]["pause_s"] = -1
    path.append({"x": 0, "y": 0, "speed_mps": 139})
    path.append({"x": 0, "y": 0, "speed_kmh": 5, "speed_mps": 1})
    path.append({"x": 0, "y": -100_001, "pause_s": 86_401, "wait": 1})
    assert _problems(data) == {
        "ues[1].path[0].speed_kmh": "Input should be less than or equal to 500",
        "ues[1].path[1].speed_kmh": "Input should be greater than 0",
        "ues[1].path[2].pause_s": "Input should be greater than or equal to 0",
        "ues[1].path[3].speed_mps": "Input should be less than or equal to 138.88888888888889",
        "ues[1].path[4]": "give speed_kmh or speed_mps, not both",
        "ues[1].path[5].y": "Input should be greater than or equal to -100000",
        "ues[1].path[5].pause_s": "Input should be less than or equal to 86400",
        "ues[1].path[5].wait": "Extra inputs are not permitted",
    }


def test_how_a_ue_moves_is_checked() -> None:
    data = _city()
    car, walker, bus = data["ues"]
    car["trajectory"] = [{"at_s": 0, "attach": "mec1"}]
    del walker["path"][0]["speed_kmh"]
    bus["loop"] = True
    problems = _problems(data)
    assert problems == {
        "ues[0].path": "a UE has at most one of trajectory, path, trace (['trajectory', 'path'])",
        "ues[1].path[0]": "the first waypoint needs speed_kmh or speed_mps",
        "ues[2].loop": "loop applies to a path",
    }
    data = _city()
    data["ues"][0]["path"] = [
        {"x": 0, "y": 0, "speed_kmh": 500},
        {"x": 50, "y": 0},
    ]  # 0.72 s a round
    del data["map"]
    assert _problems(data) == {
        "ues[0].path": "moving on a map needs a top-level map:",
        "ues[0].loop": "a loop must take at least 1 s (legs and pauses)",
        "ues[1].path": "moving on a map needs a top-level map:",
        "ues[2].trace": "moving on a map needs a top-level map:",
    }


def test_a_loop_of_a_few_microseconds_is_refused_and_one_of_a_second_walks_600_s() -> None:
    # the loop test_mobility_events' property once drew: 10 um there and back at 0.5 m/s, a
    # round of 40 us; 600 s of it are 30 million segments (MotionLimitError). No scenario has it
    data = _city()
    data["ues"][0]["path"] = [{"x": 1e-05, "y": 0, "speed_mps": 0.5}, {"x": 0, "y": 0}]
    assert data["ues"][0]["loop"] is True
    assert _problems(data) == {
        "ues[0].loop": "a loop must take at least 1 s (legs and pauses)",
    }
    # the shortest loop allowed, with as many waypoints as the property draws: 3600 segments
    data["ues"][0]["path"] = [{"x": 0, "y": 0, "speed_mps": 10}] + [
        {"x": x, "y": 0} for x in (1, 2, 3, 4, 5)
    ]
    sc = parse_scenario(data, source="t.yaml")
    assert ue_mobility(sc, "car").motion.duration == pytest.approx(1.0)
    assert ue_mobility(sc, "car", until=600).until == 600


def _write(tmp_path: Path, data: dict[str, Any], trace: str | None = None) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    if trace is not None:
        (tmp_path / "city-trace.csv").write_text(trace)
    return path


def test_a_trace_is_read_relative_to_the_scenario_and_checked(tmp_path: Path) -> None:
    data = _city()
    with pytest.raises(ScenarioError) as info:
        load_scenario(_write(tmp_path, data))
    assert info.value.problems == [
        ("ues[2].trace", "city-trace.csv: cannot read the file: No such file or directory")
    ]
    bad = "t_s,ue,x,y\n0,bus,0,0\n0,bus,1,1\n5,bus,x,0\n"
    with pytest.raises(ScenarioError) as info:
        load_scenario(_write(tmp_path, data, bad))
    assert info.value.problems == [
        ("ues[2].trace", "city-trace.csv: line 3: t_s 0 is not after the previous row's 0"),
        ("ues[2].trace", "city-trace.csv: line 4: t_s, x and y must be numbers"),
    ]
    sc = load_scenario(_write(tmp_path, data, "t_s,ue,x,y\n0,bus,0,0\n10,bus,100,0\n"))
    assert sc.ue("bus").trace == str(tmp_path / "city-trace.csv")
    bus = ue_mobility(sc, "bus")
    assert bus.until == 10 and bus.position(5) == (50, 0)


def test_a_scenario_without_a_map_is_unchanged_by_it() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        if "map" not in yaml.safe_load(path.read_text()):
            sc = load_scenario(path)
            assert sc.map is None and moving_ues(sc) == (), path


def test_a_ue_names_the_services_that_follow_it_once_each() -> None:
    data = _city()
    data["ues"] = data["ues"][:2]  # the car and the walker (the bus's trace is a relative path)
    data["ues"][0]["follow"] = ["stream", "ghost"]
    data["ues"][1]["follow"] = ["stream", "video"]
    assert _problems(data) == {
        "ues[0].follow[1]": "no instance or chain called 'ghost'",
        "ues[1].follow[0]": "stream follows car already",
    }
    data["ues"][0]["follow"] = ["stream"]
    data["ues"][1]["follow"] = ["video"]
    sc = parse_scenario(data, source="t.yaml")
    assert sc.ue("car").follow == ("stream",) and sc.ue("walker").follow == ("video",)
    data["ues"][0]["follow"] = [f"i{n}" for n in range(17)]
    assert _problems(data) == {
        "ues[0].follow": "Tuple should have at most 16 items after validation, not 17"
    }
