"""Seed 003's state levels (issue 12, part 5), the pure parts: the strategy registry, SFP's
fresh start in the engine (its configuration stays behind, its rollback keeps the source's),
the manual command's bounds where the request is taken (REST model, orchestrator, CLI), the
per-user counter workload, and the viability matrix logic against Table IV."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mecmig.bench.levels_matrix import (
    TABLE_IV,
    cell_of,
    counter_continues,
    differences,
    matrix,
    row_of,
    summarize,
)
from migration.engine import Migration, MigrationError, Plan
from migration.site import (
    MAX_COMMAND_WORDS,
    MAX_WORD_CHARS,
    CommandInvalid,
    FreshStart,
    check_command,
)
from migration.strategies import LEVELS, STRATEGIES
from migration.timeline import Outcome
from orchestration.orchestrator import CommandRefused, Orchestrator
from tests.unit.migration_fakes import FakeClock, FakeNetwork, FakeSite, connect, make_spec
from topology.scenario import load_scenario
from workloads import levels_poll, usercount

ROOT = Path(__file__).resolve().parents[2]
ENV = ("USERCOUNT_FILE=/volume/counts.json",)
FRESH = FreshStart(args=("/usr/bin/python3", "/data/usercount.py"), manual=True)

# ------------------------------------------------------------------------------ the registry


def test_the_three_levels_are_strategies_with_two_phases() -> None:
    assert LEVELS == {"sfp": "filesystem", "fccp": "restart", "fullsp": "precopy"}
    sfp, fccp, full = (STRATEGIES[s] for s in LEVELS.values())
    assert sfp.steps == fccp.steps  # bulk copy while serving, the delta at the stop
    assert sfp.steps[1] == "rounds" and full.steps[1] == "rounds"
    assert not sfp.keeps_config and fccp.keeps_config and full.keeps_config
    assert not sfp.keeps_memory and not fccp.keeps_memory and full.keeps_memory
    assert all(s.keeps_config for n, s in STRATEGIES.items() if n != "filesystem")


# ------------------------------------------------------------------------------ the engine


def _world(strategy: str, fresh: FreshStart | None, **dst: Any) -> tuple[Plan, FakeSite, FakeSite]:
    clock = FakeClock()
    src, dst_site = (
        FakeSite("mec1", "192.168.1.1", clock),
        FakeSite("mec2", "192.168.1.2", clock, **dst),
    )
    connect(src, dst_site)
    src.create(make_spec("svc", env=ENV, workdir="/srv", uid=104, gid=104))
    plan = Plan("svc", src, dst_site, "mec2", 100, strategy=strategy, fresh=fresh)
    return plan, src, dst_site


def _migration(plan: Plan) -> Migration:
    return Migration(plan, FakeNetwork(), migration_id="mig-test", sleep=lambda s: None)


def test_sfp_starts_the_destination_without_the_configuration() -> None:
    plan, src, dst = _world("filesystem", FRESH)
    record = _migration(plan).run()
    assert record.outcome is Outcome.DONE and record.mode == "filesystem-only"
    there = dst.instances["svc"].spec
    assert there.args == FRESH.args and there.env == () and (there.uid, there.gid) == (0, 0)
    assert there.workdir == FRESH.workdir and there.ip == "10.0.0.21" and there.port == 100
    assert record.metrics["fresh_start"] == {"args": list(FRESH.args), "manual": True}
    prepare = record.phase("prepare")
    assert prepare is not None and prepare.detail["config_kept"] is False
    names = [p.name for p in record.phases]
    assert names.index("precopy-1") < names.index("freeze_stop") < names.index("start")


def test_sfp_rollback_starts_the_source_again_with_its_own_configuration() -> None:
    plan, src, dst = _world("filesystem", FRESH, fail_at="start")
    with pytest.raises(MigrationError) as info:
        _migration(plan).run()
    assert info.value.record.outcome is Outcome.ROLLED_BACK
    assert src.status("svc") == "running" and src.instances["svc"].spec.env == ENV
    assert dst.status("svc") == "absent"


def test_the_engine_refuses_a_command_the_strategy_cannot_take() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        _migration(_world("filesystem", None)[0])
    with pytest.raises(ValueError, match="only for a strategy that does not"):
        _migration(_world("restart", FRESH)[0])


# ------------------------------------------------------------------------------ the command


def test_a_manual_command_is_bounded() -> None:
    assert check_command(["/usr/bin/memcached", "-p", "11211"]) == (
        "/usr/bin/memcached", "-p", "11211",
    )  # fmt: skip
    for bad in (
        [],
        "/bin/sh -c x",
        ["/bin/sh", ""],
        ["/bin/s\0h"],
        ["my prog"],
        ["x"] * (MAX_COMMAND_WORDS + 1),
        ["/bin/echo", "y" * (MAX_WORD_CHARS + 1)],
    ):
        with pytest.raises(CommandInvalid):
            check_command(bad)


class _Levels:
    """scenarios/levels.yaml over fake sites, `hello` running at mec1."""

    def __init__(self) -> None:
        self.sc = load_scenario(ROOT / "scenarios" / "levels.yaml")
        clock = FakeClock()
        self.sites = {
            n: FakeSite(n, f"192.168.0.{i}", clock) for i, n in enumerate(("mec1", "mec2"), 1)
        }
        connect(*self.sites.values())
        self.orch = Orchestrator(self.sc, self.sites)
        self.orch.deploy("usercount")

    def untouched(self) -> bool:
        return self.orch.placement("usercount").at == {"mec1": "running", "mec2": "absent"}


def test_sfp_without_a_command_is_refused_before_anything_moves() -> None:
    w = _Levels()
    w.sites["mec1"].calls.clear()
    with pytest.raises(CommandRefused, match="give the command"):
        w.orch.plan_migration("usercount", "mec2", strategy="filesystem")
    assert w.sites["mec1"].calls == [] and w.untouched()
    with pytest.raises(CommandRefused, match="only for strategy filesystem"):
        w.orch.plan_migration("usercount", "mec2", strategy="restart", command=["/bin/true"])
    with pytest.raises(CommandRefused, match="word 1"):
        w.orch.plan_migration("usercount", "mec2", strategy="filesystem", command=["/bin/x", ""])
    assert w.untouched()


def test_sfp_with_a_manual_command_loses_the_environment() -> None:
    w = _Levels()
    command = list(w.sc.instance("usercount").command)
    fresh = w.orch.fresh_start("usercount", command)
    assert fresh.args == tuple(command) and fresh.env == () and fresh.manual
    assert w.orch.spec_at("usercount", "mec1").env == ENV  # the configuration it leaves behind
    record = w.orch.migrate("usercount", "mec2", strategy="filesystem", command=command)
    assert record.outcome is Outcome.DONE
    assert w.sites["mec2"].spec("usercount").env == ()


@pytest.fixture
def api() -> Iterator[Any]:
    from tests.unit.test_migrations_api import World

    w = World(rest_url=None)
    yield w
    from tests.unit.migration_fakes import join_migration_threads

    join_migration_threads()
    w.runtime.shutdown()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"strategy": "filesystem"}, "give the command"),
        ({"strategy": "precopy", "command": ["/bin/true"]}, "only for strategy filesystem"),
        ({"strategy": "filesystem", "command": []}, "command"),
        ({"strategy": "filesystem", "command": "/usr/bin/python3 x"}, "command"),
        ({"strategy": "filesystem", "command": ["/bin/x", "a\u0000b"]}, "command"),
        ({"strategy": "filesystem", "command": ["x"] * (MAX_COMMAND_WORDS + 1)}, "command"),
    ],
)
def test_rest_refuses_a_bad_command_with_422_and_changes_nothing(
    api: Any, body: dict[str, Any], words: str
) -> None:
    resp = api.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2", **body})
    assert resp.status_code == 422, resp.text
    assert words in resp.text
    assert api.service.orch.where("counter") == "mec1"
    assert api.sites["mec2"].status("counter") == "absent"
    again = api.http.post("/v1/migrations", json={"instance": "counter", "to": "mec2"})
    assert again.status_code == 202  # not left claimed


def test_rest_takes_a_manual_command_for_sfp(api: Any) -> None:
    command = ["/usr/bin/python3", "/data/memhog.py", "--port", "7000"]
    resp = api.http.post(
        "/v1/migrations",
        json={"instance": "counter", "to": "mec2", "strategy": "filesystem", "command": command},
    )
    assert resp.status_code == 202, resp.text
    view = api.wait_done(resp.json()["id"])
    assert view["outcome"] == "done" and view["metrics"]["fresh_start"]["args"] == command


def test_the_cli_refuses_a_bad_command_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from mecmig.cli import main

    argv = ["migrate", "hello", "--to", "mec2", "--strategy", "filesystem", "--command", "'x"]
    assert main([*argv, "--scenario", str(ROOT / "scenarios" / "levels.yaml")]) == 2
    assert "--command" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the workloads


def test_the_counter_finds_its_file_through_its_environment(tmp_path: Path) -> None:
    path = str(tmp_path / "counts.json")
    kept = usercount.Counts(path)
    assert [kept.hit("car") for _ in range(3)] == [1, 2, 3] and kept.hit("bus") == 1
    assert usercount.Counts(path).get("car") == 3  # started again with its env: continues
    assert usercount.Counts(None).get("car") == 0  # without it (SFP): from 0


def test_the_poll_records_answers_and_gaps() -> None:
    answers = iter(["1", None, None, "2"] + ["3"] * 1000)
    stop = threading.Event()
    res = levels_poll.poll(lambda: next(answers), 1.0, stop, 0.05)
    assert res.failures == 2 and [a for _, a in res.samples][:2] == ["1", "2"]
    assert res.ok == len(res.samples) and res.max_gap_ms >= 0


# ------------------------------------------------------------------------------ the matrix


def _record(outcome: str = "done", freeze: str = "freeze_stop") -> dict[str, Any]:
    return {
        "outcome": outcome, "mode": "x", "bytes_transferred": 5000, "total_ms": 900.0,
        "phases": [
            {"name": "prepare", "start_ms": 0.0, "end_ms": 50.0, "bytes": 0},
            {"name": freeze, "start_ms": 400.0, "end_ms": 450.0, "bytes": 0},
            {"name": "transfer", "start_ms": 450.0, "end_ms": 500.0, "bytes": 300},
            {"name": "start" if freeze == "freeze_stop" else "restore", "start_ms": 500.0,
             "end_ms": 600.0, "bytes": 0},
        ],
    }  # fmt: skip


def _poll(values: list[str], gap_at: int) -> dict[str, Any]:
    t, samples = 100.0, []
    for i, v in enumerate(values):
        t += 0.5 if i == gap_at else 0.01
        samples.append([t, v])
    return {"samples": samples, "requests": len(values), "ok": len(values), "failures": 0}


def test_the_counter_must_continue_from_the_value_at_the_stop() -> None:
    kept = counter_continues(_poll(["5", "6", "7", "8", "9"], 3)["samples"])
    assert kept == {"intact": True, "at_stop": 7, "after": 8, "went_back": False}
    lost_reply = counter_continues(_poll(["5", "6", "7", "9", "10"], 3)["samples"])
    assert lost_reply["intact"]  # a request the source counted but never answered
    afresh = counter_continues(_poll(["5", "6", "7", "1", "2"], 3)["samples"])
    assert afresh["intact"] is False and afresh["after"] == 1 and afresh["went_back"]


def _row(app: str, level: str, **kw: Any) -> dict[str, Any]:
    values = kw.pop("values", ["3", "4", "5", "6"])
    args: dict[str, Any] = {
        "app": app, "level": level, "strategy": LEVELS[level], "record": _record(),
        "poll": _poll(values, 2), "interval_ms": 10.0, "ended_s": 100.0, "at": "mec2",
        "manual_command": level == "sfp",
        "refused_without_command": True if level == "sfp" else None,
    }  # fmt: skip
    return row_of(**(args | kw))


def test_a_row_has_the_issue_fields() -> None:
    row = _row("counter", "fccp")
    assert row["viable"] and row["state_intact"]
    assert (row["t_pre_ms"], row["engine_down_ms"], row["bytes"]) == (400.0, 200.0, 5000)
    assert row["t_down_ms"] == 490.0 and row["bytes_at_freeze"] == 300
    assert not _row("counter", "sfp", values=["3", "4", "1", "2"])["viable"]
    assert not _row("stateless", "fccp", at="mec1")["viable"]  # answers, but not there
    gone = _row("memcached", "fccp", keys=(0, 2000))
    assert not gone["viable"] and gone["answers"] and gone["state"]["keys_present"] == 0
    assert _row("memcached", "fullsp", keys=(2000, 2000))["viable"]


def test_table_iv_is_reproduced_by_the_expected_rows() -> None:
    rows = [
        _row("stateless", "sfp"), _row("stateless", "fccp"), _row("stateless", "fullsp"),
        _row("counter", "sfp", values=["3", "4", "1", "2"]), _row("counter", "fccp"),
        _row("counter", "fullsp"),
        _row("memcached", "sfp", keys=(0, 2000)), _row("memcached", "fccp", keys=(0, 2000)),
        _row("memcached", "fullsp", keys=(2000, 2000)),
    ]  # fmt: skip
    assert matrix(rows) == TABLE_IV
    summary = summarize(rows)
    assert summary["matches_table_iv"] and summary["sfp_refused_without_command"]
    assert summary["cells"]["counter/fccp"]["t_pre_ms"] == 400.0
    wrong = [*rows[:3], _row("counter", "sfp"), *rows[4:]]
    assert differences(matrix(wrong)) == ["counter x sfp: measured manual, Table IV no"]
    assert not summarize(rows[:-1])["matches_table_iv"]  # a cell never measured


def test_a_cell_of_mixed_runs_is_neither() -> None:
    assert cell_of([]) == "-"
    assert cell_of([{"viable": True}, {"viable": False}]) == "mixed"
    assert cell_of([{"viable": False}]) == "no"
    assert cell_of([{"viable": True, "manual_command": False}]) == "yes"
    rolled_back = {"viable": False, "error": "rolled back: send: No such file"}
    assert cell_of([{"viable": True}, rolled_back]) == "yes"  # it says nothing of the level
