"""mecmig.bench.path_rate with fake Mininet hosts: the rate of one stream, and every way the
stream can fail ends in PathRateError with neither end left running."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest

from mecmig.bench import path_rate
from mecmig.bench.path_rate import PROBE_MIB, PathRateError, stream_bps
from topology.scenario import load_scenario
from topology.world import agent_host

EDGE = path_rate.__file__.rsplit("/mecmig/", 1)[0] + "/scenarios/edge.yaml"


class FakeProc:
    def __init__(self, out: str = "", code: int | None = 0, hang: bool = False) -> None:
        self.stdout = io.StringIO(out)
        self.returncode: int | None = None
        self._code = code
        self._hang = hang
        self.killed = False

    def wait(self, timeout: float | None = None) -> int:
        if self._hang and not self.killed:
            raise subprocess.TimeoutExpired("python", timeout or 0)
        self.returncode = -9 if self.killed else self._code
        assert self.returncode is not None
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode if not self._hang or self.killed else None

    def kill(self) -> None:
        self.killed = True


class FakeEmu:
    def __init__(self, rx: FakeProc, tx: FakeProc | Exception) -> None:
        self.procs = {agent_host("mec2"): rx, agent_host("mec1"): tx}
        self.started: list[FakeProc] = []

    def host(self, name: str) -> Any:
        proc = self.procs[name]
        emu = self

        class Host:
            def popen(self, argv: list[str], **kw: Any) -> FakeProc:
                if isinstance(proc, Exception):
                    raise proc
                assert argv[1] == "-c"
                emu.started.append(proc)
                return proc

        return Host()


def test_the_rate_is_the_bytes_over_the_receivers_time() -> None:
    sc = load_scenario(EDGE)
    rx = FakeProc(f"ready\n{PROBE_MIB << 20} 1.25\n")
    assert stream_bps(FakeEmu(rx, FakeProc()), sc, "mec1", "mec2") == (PROBE_MIB << 20) / 1.25


@pytest.mark.parametrize(
    ("rx", "tx", "said"),
    [
        (FakeProc("ready\n", hang=True), FakeProc(code=1), "sender exit 1"),
        (FakeProc("ready\n", hang=True), FakeProc(hang=True), "timed out"),
        (FakeProc("ready\n"), FakeProc(), "ended early: -"),
        (FakeProc("ready\n123 0.5\n"), FakeProc(), "ended early: 123 0.5"),
        (FakeProc(""), FakeProc(), "did not start"),
        (FakeProc("ready\n", hang=True), OSError("no such host"), "no such host"),
    ],
)
def test_a_stream_that_fails_says_why_and_leaves_nothing_running(
    rx: FakeProc, tx: FakeProc | Exception, said: str
) -> None:
    sc = load_scenario(EDGE)
    emu = FakeEmu(rx, tx)
    with pytest.raises(PathRateError, match=said):
        stream_bps(emu, sc, "mec1", "mec2")
    assert emu.started and all(p.poll() is not None for p in emu.started), "an end left running"
