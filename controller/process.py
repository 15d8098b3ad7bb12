"""Start and stop a `mecmig controller` process, for the demo, the benchmarks and the tests."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from controller.client import ControllerClient, ControllerClientError
from ground.runner import Spawned, SubprocessRunner


class ControllerStartError(RuntimeError):
    """The controller did not come up (its log's end is in the message)."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ControllerProcess:
    """A controller for `scenario` on free ports; a context manager that always stops it."""

    def __init__(
        self,
        scenario: Path,
        *,
        state_file: Path | None = None,
        log_path: Path | None = None,
        rest_port: int | None = None,
        of_port: int | None = None,
        runner: SubprocessRunner | None = None,
    ) -> None:
        self.scenario = scenario
        self.rest_port = rest_port or free_port()
        self.of_port = of_port or free_port()
        # ours, for what the caller did not place: removed when the context ends
        self.workdir: Path | None = None
        if state_file is None or log_path is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="mecmig-controller-"))
        self.state_file = state_file or self._ours("state.json")
        self.log_path = log_path or self._ours("controller.log")
        self.runner = runner or SubprocessRunner()
        self.client = ControllerClient(f"http://127.0.0.1:{self.rest_port}")
        self.proc: Spawned | None = None

    def _ours(self, name: str) -> Path:
        assert self.workdir is not None
        return self.workdir / name

    def start(self, timeout: float = 30.0) -> ControllerProcess:
        """Start it and wait until its REST API answers."""
        argv = [
            sys.executable,
            "-m",
            "mecmig.cli",
            "controller",
            "--scenario",
            str(self.scenario),
            "--rest-port",
            str(self.rest_port),
            "--of-port",
            str(self.of_port),
            "--state-file",
            str(self.state_file),
        ]
        self.proc = self.runner.spawn(argv, str(self.log_path))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise ControllerStartError(f"controller exited:\n{self.proc.tail()}")
            try:
                self.client.health()
                return self
            except ControllerClientError:
                time.sleep(0.2)
        self.stop()
        raise ControllerStartError(f"controller did not answer in {timeout}s:\n{self.log_tail()}")

    def wait_switches(self, count: int | None = None, timeout: float = 30.0) -> None:
        """Wait until `count` switches (default: all the scenario declares) are connected."""
        deadline = time.monotonic() + timeout
        health = self.client.health()
        while time.monotonic() < deadline:
            health = self.client.health()
            if health.switches_connected >= (count or health.switches_expected):
                time.sleep(0.3)  # let the switches' initial config land
                return
            time.sleep(0.2)
        raise ControllerStartError(
            f"only {health.switches_connected}/{health.switches_expected} switches connected"
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log_tail(self, lines: int = 30) -> str:
        return self.proc.tail(lines) if self.proc else ""

    def __enter__(self) -> ControllerProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop it and remove its temporary directory (the default log and state file; a
        failure has printed the log's end by then): every testbed and benchmark run left one
        in /tmp."""
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
