"""mecmig.bench.path_rate with a fake emulation: the rate of one stream, and every way the
stream can fail ends in PathRateError with the receiver not left running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ground.runner import CommandError
from mecmig.bench.path_rate import PROBE_MIB, PathRateError, stream_bps
from topology.scenario import load_scenario
from topology.world import agent_host

EDGE = Path(__file__).resolve().parents[2] / "scenarios" / "edge.yaml"


class FakeReceiver:
    """A Spawned whose standard output is `out` once the sender has run."""

    def __init__(self, ready: bool, out: str, ends: bool) -> None:
        self.ready, self.out, self.ends = ready, out, ends
        self.sent = False
        self.running = True

    def stdout(self) -> str:
        return ("ready\n" if self.ready else "") + (self.out if self.sent else "")

    def alive(self) -> bool:
        return self.running

    def wait(self, timeout: float | None = None) -> int | None:
        if self.ends:
            self.running = False
            return 0
        return None

    def kill(self, group: bool = False) -> None:
        self.running = False

    def tail(self, lines: int = 20) -> str:
        return "" if self.ready else "Traceback: OSError: [Errno 98] Address already in use"


class FakeEmu:
    def __init__(self, rx: FakeReceiver, send: Exception | None = None) -> None:
        self.rx, self.send = rx, send

    def spawn_on(self, name: str, argv: list[str], log: str, stdout_path: str) -> FakeReceiver:
        assert name == agent_host("mec2") and argv[1] == "-c"
        if not self.rx.ready:
            self.rx.running = False  # it died at start
        return self.rx

    def run_on(self, name: str, argv: list[str], timeout: float) -> Any:
        assert name == agent_host("mec1") and argv[-1] == "10.0.0.2"
        if self.send is not None:
            raise self.send
        self.rx.sent = True


def test_the_rate_is_the_bytes_over_the_receivers_time() -> None:
    rx = FakeReceiver(True, f"{PROBE_MIB << 20} 1.25\n", ends=True)
    rate = stream_bps(FakeEmu(rx), load_scenario(EDGE), "mec1", "mec2")
    assert rate == (PROBE_MIB << 20) / 1.25 and not rx.alive()


@pytest.mark.parametrize(
    ("rx", "send", "said"),
    [
        (FakeReceiver(False, "", True), None, "did not start: Traceback"),
        (FakeReceiver(True, "", False), CommandError(["python3"], None, ""), "python3"),
        (FakeReceiver(True, "", False), CommandError(["python3"], 1, "refused"), "refused"),
        (FakeReceiver(True, "", True), None, "ended early: nothing"),
        (FakeReceiver(True, "123 0.5\n", False), None, "ended early: 123 0.5"),
    ],
)
def test_a_stream_that_fails_says_why_and_leaves_no_receiver(
    rx: FakeReceiver, send: Exception | None, said: str
) -> None:
    with pytest.raises(PathRateError, match=said):
        stream_bps(FakeEmu(rx, send), load_scenario(EDGE), "mec1", "mec2")
    assert not rx.alive()
