"""Stopping a container (the restart strategy's freeze): a PID 1 that has no SIGTERM handler
gets SIGKILL at once instead of a 5 s grace it can never use (seen: `python3 -m http.server` as
an instance waited the whole grace inside the restart strategy's downtime)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.container import SiteContainers, catches_signal


def test_catches_signal_reads_the_process_handler_mask(tmp_path: Path) -> None:
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    handled = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); "
            "print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert handled.stdout is not None and handled.stdout.readline().strip() == b"ready"
        time.sleep(0.1)  # the plain one has started its interpreter by now too
        assert not catches_signal(plain.pid, signal.SIGTERM)
        assert catches_signal(handled.pid, signal.SIGTERM)
        assert catches_signal(999_999_999, signal.SIGTERM)  # unknown: assume it may
        (tmp_path / "7").mkdir()
        (tmp_path / "7" / "status").write_text("Name:\tx\nSigCgt:\t0000000000004000\n")
        assert catches_signal(7, signal.SIGTERM, proc=tmp_path)
        assert not catches_signal(7, signal.SIGINT, proc=tmp_path)
    finally:
        plain.kill()
        handled.kill()
        plain.wait()
        handled.wait()


class FakeRunc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []

    def state(self, name: str) -> dict[str, Any] | None:
        running = "KILL" not in self.signals
        return {"status": "running" if running else "stopped", "pid": self.pid}

    def status(self, name: str) -> str:
        st = self.state(name)
        return str(st["status"]) if st else "absent"

    def kill(self, name: str, sig: str) -> None:
        self.signals.append(sig)


def _containers(runc: FakeRunc, tmp_path: Path) -> SiteContainers:
    return SiteContainers("mec1", tmp_path, "s1", runc, None)  # type: ignore[arg-type]


def test_a_pid_1_without_a_sigterm_handler_is_killed_at_once(tmp_path: Path) -> None:
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.1)
        runc = FakeRunc(plain.pid)
        t0 = time.monotonic()
        _containers(runc, tmp_path).stop("svc", grace_s=5.0)
        assert runc.signals == ["KILL"] and time.monotonic() - t0 < 1.0
    finally:
        plain.kill()
        plain.wait()
