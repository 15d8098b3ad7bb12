"""`Runc.running_now`: runc's "running", read from its state file and /proc without starting
runc. Anything unclear says False (the caller then asks `runc state`).

(Live: test_migration_hops checks it against `runc state` after every hop.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.runc import Runc
from ground.runner import SubprocessRunner

PID, START = 4242, 987654


def _stat(state: str = "S", start: int = START) -> str:
    # /proc/<pid>/stat: pid (comm) state, then fields 4..; field 22 is the start time
    rest = ["1"] * 18 + [str(start)] + ["0"] * 30
    return f"{PID} (python3 (x)) {state} " + " ".join(rest) + "\n"


@pytest.fixture()
def site(tmp_path: Path) -> tuple[Runc, Path, Path]:
    """A runc root with container `svc`, a fake /proc with its init process, its freezer."""
    runc = Runc(SubprocessRunner(), tmp_path / "root", Path("/opt/criu"), tmp_path / "logs")
    freezer = tmp_path / "freezer" / "svc"
    freezer.mkdir(parents=True)
    (freezer / "freezer.state").write_text("THAWED\n")
    base = tmp_path / "root" / "svc"
    base.mkdir(parents=True)
    state = {
        "id": "svc",
        "init_process_pid": PID,
        "init_process_start": START,
        "cgroup_paths": {"freezer": str(freezer), "memory": "/nowhere"},
    }
    (base / "state.json").write_text(json.dumps(state))
    proc = tmp_path / "proc"
    (proc / str(PID)).mkdir(parents=True)
    (proc / str(PID) / "stat").write_text(_stat())
    return runc, proc, freezer


def test_a_live_thawed_started_init_is_running(site: tuple[Runc, Path, Path]) -> None:
    runc, proc, _ = site
    assert runc.running_now("svc", proc)


def test_anything_else_is_not_running(site: tuple[Runc, Path, Path]) -> None:
    runc, proc, freezer = site
    stat = proc / str(PID) / "stat"
    stat.write_text(_stat("Z"))  # a zombie: its container has stopped
    assert not runc.running_now("svc", proc)
    stat.write_text(_stat(start=START + 1))  # another process got the pid
    assert not runc.running_now("svc", proc)
    stat.write_text(_stat())
    (freezer / "freezer.state").write_text("FROZEN\n")  # paused
    assert not runc.running_now("svc", proc)
    (freezer / "freezer.state").write_text("THAWED\n")
    fifo = runc.root / "svc" / "exec.fifo"
    fifo.write_text("")  # created, not started
    assert not runc.running_now("svc", proc)
    fifo.unlink()
    assert runc.running_now("svc", proc)
    stat.unlink()  # gone
    assert not runc.running_now("svc", proc)
    assert not runc.running_now("other", proc)  # no such container


def test_an_unreadable_state_says_not_running(site: tuple[Runc, Path, Path]) -> None:
    runc, proc, _ = site
    state = runc.root / "svc" / "state.json"
    for text in ("{", "[]", json.dumps({"init_process_pid": PID}), json.dumps({"x": 1})):
        state.write_text(text)
        assert not runc.running_now("svc", proc), text
    doc = {"init_process_pid": PID, "init_process_start": START, "cgroup_paths": {}}
    state.write_text(json.dumps(doc))  # no freezer to read: unclear
    assert not runc.running_now("svc", proc)
