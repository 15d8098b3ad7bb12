"""When a service counts as started (agent.health): its process runs, its ports listen in its
own network namespace, its health command exits 0; else why not, within its timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.health import Check, Unhealthy, listening_ports, wait_healthy
from agent.runc import RuncError

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def fake_proc(root: Path, pid: int, tcp: list[str], tcp6: list[str] = ()) -> Path:  # type: ignore[assignment]
    net = root / str(pid) / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(HEADER + "".join(tcp))
    (net / "tcp6").write_text(HEADER + "".join(tcp6))
    return root


def row(port: int, state: str) -> str:
    return f"   0: 00000000:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 0 0\n"


def test_listening_ports_are_read_from_the_namespace_socket_tables(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        42,
        [row(80, "0A"), row(5432, "01")],
        [row(443, "0A").replace("00000000:", "0" * 32 + ":", 1)],
    )
    assert listening_ports(42, proc) == {80, 443}  # 5432 is an established connection
    assert listening_ports(43, proc) == set()


class FakeRunc:
    def __init__(self, states: list[dict[str, Any]], exec_ok_after: int = 0) -> None:
        self.states = states
        self.execs = 0
        self.exec_ok_after = exec_ok_after

    def state(self, name: str) -> dict[str, Any] | None:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def exec(self, name: str, argv: list[str], timeout: float = 10.0) -> str:
        self.execs += 1
        if self.execs <= self.exec_ok_after:
            raise RuncError("exec", name, "exit 2: connection refused")
        return ""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def wait(runc: FakeRunc, check: Check, proc: Path) -> float:
    clock = Clock()
    return wait_healthy(runc, check, proc=proc, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_a_service_whose_port_listens_is_healthy(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 7, [row(80, "0A")])
    runc = FakeRunc([{"status": "running", "pid": 7}])
    assert wait(runc, Check("web", [80], [], 5), proc) == 0


def test_a_service_that_exits_is_not_healthy_at_once(tmp_path: Path) -> None:
    runc = FakeRunc([{"status": "stopped", "pid": 0}])
    with pytest.raises(Unhealthy, match="its process is stopped: it exited"):
        wait(runc, Check("web", [80], [], 5), tmp_path)


def test_a_port_that_never_listens_times_out_naming_it(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 7, [row(80, "0A")])
    runc = FakeRunc([{"status": "running", "pid": 7}])
    with pytest.raises(Unhealthy, match=r"not healthy after 2 s: nothing listens on TCP port 443"):
        wait(runc, Check("web", [80, 443], [], 2), proc)


def test_the_health_command_is_retried_until_it_exits_0(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 7, [])
    runc = FakeRunc([{"status": "running", "pid": 7}], exec_ok_after=3)
    took = wait(runc, Check("db", [], ["pg_isready"], 5), proc)
    assert runc.execs == 4 and took == pytest.approx(0.15)
    runc = FakeRunc([{"status": "running", "pid": 7}], exec_ok_after=10**6)
    with pytest.raises(Unhealthy, match=r"health command 'pg_isready' failed: exit 2"):
        wait(runc, Check("db", [], ["pg_isready"], 1), proc)


def test_a_deploy_that_does_not_start_is_removed_and_says_its_last_lines(tmp_path: Path) -> None:
    from collections.abc import Sequence

    from agent.errors import StepFailed
    from agent.service_logs import log_file
    from ground.runner import Result
    from tests.unit.migration_fakes import make_spec
    from tests.unit.test_predump_chain import FakeRuncRunner
    from tests.unit.test_site_service import _service

    class ExitingService(FakeRuncRunner):
        """The service writes two lines and exits at once."""

        xfer: Path

        def run(self, argv: Sequence[str], **kw: Any) -> Result:
            args = list(argv)
            if args[0] == "runc" and "state" in args and self.created:
                return Result(tuple(args), 0, '{"status": "stopped", "pid": 0}', "", 0.0)
            if args[0] == "runc" and "run" in args:
                log_file(self.xfer).parent.mkdir(parents=True, exist_ok=True)
                log_file(self.xfer).write_text("starting\nbind() to 0.0.0.0:80 failed (13)\n")
            return super().run(argv, **kw)

    runner = ExitingService()
    service = _service(tmp_path, runner)
    runner.xfer = service.containers.xfer_dir("web")
    with pytest.raises(StepFailed) as err:
        service.create(make_spec("web"))
    text = str(err.value)
    assert "web did not start: its process is stopped: it exited; removed" in text
    assert "  | bind() to 0.0.0.0:80 failed (13)" in text
    assert service.health()["instances"] == []  # nothing left: a retry starts afresh
