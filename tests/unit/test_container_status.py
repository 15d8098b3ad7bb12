"""An instance's status at its agent (`SiteContainers.status`, what `GET /v1/instances/{name}`
and so a replica set's failure detector read every 100 ms): a plainly running container is
read from runc's state file and /proc without starting runc; anything else is `runc state`'s
answer (a killed container: "stopped", as runc says)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.container import SiteContainers
from agent.runc import Runc
from ground.runner import Result


class StateRunner:
    """`runc state` answering `stopped`; every command kept in `calls`."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        self.calls.append(list(argv))
        return Result(tuple(argv), 0, json.dumps({"status": "stopped", "pid": 0}), "", 0.0)


def _site(tmp_path: Path, pid: int, start: int) -> tuple[SiteContainers, StateRunner]:
    runner = StateRunner()
    runc = Runc(runner, tmp_path / "root", Path("/opt/criu"), tmp_path / "logs")  # type: ignore[arg-type]
    freezer = tmp_path / "freezer"
    freezer.mkdir()
    (freezer / "freezer.state").write_text("THAWED\n")
    (tmp_path / "root" / "svc").mkdir(parents=True)
    state = {"init_process_pid": pid, "init_process_start": start,
             "cgroup_paths": {"freezer": str(freezer)}}  # fmt: skip
    (tmp_path / "root" / "svc" / "state.json").write_text(json.dumps(state))
    return SiteContainers("mec1", tmp_path, "s1", runc, None), runner  # type: ignore[arg-type]


def _start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def test_a_running_container_is_read_without_starting_runc(tmp_path: Path) -> None:
    pid = os.getpid()  # this process stands for the container's init: alive, thawed, started
    containers, runner = _site(tmp_path, pid, _start_time(pid))
    assert containers.status("svc") == "running"
    assert runner.calls == []


def test_a_container_whose_init_is_gone_is_what_runc_says(tmp_path: Path) -> None:
    pid = os.getpid()
    containers, runner = _site(tmp_path, pid, _start_time(pid) + 1)  # the pid reused: not it
    assert containers.status("svc") == "stopped"
    assert [c[-2:] for c in runner.calls] == [["state", "svc"]]
