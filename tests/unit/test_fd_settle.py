"""The reliability bench tells a keep-alive connection closing late from a descriptor leaked."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import pytest

from agent.leaks import fd_targets
from mecmig.bench import reliability
from mininet_scenarios.leaks import Inventory


class FakeRig:
    """A daemon (pid 1) whose descriptor count the test sets by time."""

    def __init__(self, counts: list[tuple[float, int]]) -> None:
        self.start = time.monotonic()
        self.counts = counts

    def fd_pids(self) -> list[int]:
        return [os.getpid()]

    def inventory(self, fd_pids: list[int] | None = None) -> Inventory:
        age = time.monotonic() - self.start
        count = [n for t, n in self.counts if age >= t][-1]
        return Inventory({}, {f"fds {os.getpid()}": count})


def before(n: int) -> Inventory:
    return Inventory({}, {f"fds {os.getpid()}": n})


def test_a_connection_closed_within_the_keep_alive_timeout_is_no_leak() -> None:
    rig = FakeRig([(0.0, 11), (0.6, 10)])  # one more, back to the baseline after 0.6 s
    extra, notes = reliability.settle_fds(cast(Any, rig), before(10), {})
    assert extra == 0
    assert 0.5 <= notes["fds_settled_s"] < 2.0
    assert "fds_new" not in notes


def test_a_descriptor_that_stays_is_counted_and_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(reliability, "FD_SETTLE_S", 0.6)
    pid = os.getpid()
    old = fd_targets(pid)
    leaked = open(tmp_path / "leaked.log", "w")  # noqa: SIM115 - the leak under test
    try:
        rig = FakeRig([(0.0, 11)])
        extra, notes = reliability.settle_fds(cast(Any, rig), before(10), {pid: old})
    finally:
        leaked.close()
    assert extra == 1
    assert notes["fds_settled_s"] >= 0.6
    assert str(tmp_path / "leaked.log") in notes["fds_new"][str(pid)]


def test_the_settle_outlasts_the_servers_keep_alive_timeout() -> None:
    import uvicorn

    assert uvicorn.Config(app=cast(Any, None)).timeout_keep_alive < reliability.FD_SETTLE_S
