"""A copy paced at its reservation's rate (SO_MAX_PACING_RATE), so that the reservation's meter
drops none of its bursts: over real loopback sockets a paced copy takes its bytes at the rate
and an unpaced one far faster; the option is set on the socket as bytes/s; the agent's API and
its client carry `pace_bps` from the engine's call to `send_dir`."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent import service as service_module
from agent.api import create_agent_app
from agent.transfer import Manifest, Receiver, TransferStats, send_dir
from agent.transfer_wire import SO_MAX_PACING_RATE, pace_socket
from migration.site import MAX_PACE_BPS, MIN_PACE_BPS, SiteError
from orchestration.agent_client import AgentClient
from tests.unit.migration_fakes import make_spec
from tests.unit.test_site_service import _service

MiB = 1 << 20
PACE_BPS = 8_000_000  # 1 MB/s: 2 MiB take about 2.1 s


def _copy(root: Path, pace_bps: int | None) -> tuple[float, TransferStats]:
    """2 MiB (a checkpoint image, sent zero-copy, and a file read as sent) over loopback."""
    src, dest = root / "src", root / f"dest-{pace_bps}"
    if not src.exists():
        src.mkdir()
        (src / "pages-1.img").write_bytes(os.urandom(MiB))
        (src / "data.bin").write_bytes(os.urandom(MiB))
    with Receiver(dest, "127.0.0.1") as rx:
        started = time.monotonic()
        stats, _ = send_dir(
            src, "127.0.0.1", rx.port, pace_bps=pace_bps, settled=lambda r: r.endswith(".img")
        )
        elapsed = time.monotonic() - started
        rx.wait(timeout=10)
    assert (dest / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
    return elapsed, stats


def _pacing_rate(sock: socket.socket) -> int:
    """The socket's SO_MAX_PACING_RATE in bytes/s (all ones when it has none)."""
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 8), sys.byteorder)


def test_a_paced_copy_takes_its_bytes_at_the_rate_an_unpaced_one_far_faster(
    tmp_path: Path,
) -> None:
    paced_s, stats = _copy(tmp_path, PACE_BPS)
    at_rate_s = stats.bytes_on_wire * 8 / PACE_BPS
    assert stats.bytes_on_wire > 2 * MiB
    assert 0.75 * at_rate_s <= paced_s <= 1.25 * at_rate_s, (paced_s, at_rate_s)
    unpaced_s, _ = _copy(tmp_path, None)
    assert unpaced_s < at_rate_s / 4, (unpaced_s, at_rate_s)


@pytest.mark.parametrize(
    ("pace_bps", "bytes_per_s"),
    [(40_000_000, 5_000_000), (MAX_PACE_BPS, MAX_PACE_BPS // 8), (7, 1)],
    ids=["40Mbit", "beyond-a-C-int", "under-a-byte"],
)
def test_pacing_sets_so_max_pacing_rate_in_bytes_per_second(
    pace_bps: int, bytes_per_s: int
) -> None:
    with socket.socket() as sock:
        assert _pacing_rate(sock) == (1 << 64) - 1  # none until asked
        pace_socket(sock, pace_bps)
        assert _pacing_rate(sock) == bytes_per_s


def test_a_rate_that_is_no_rate_is_a_value_error(tmp_path: Path) -> None:
    with socket.socket() as sock, pytest.raises(ValueError, match="positive"):
        pace_socket(sock, 0)
    with pytest.raises(ValueError, match="pace_bps"):
        send_dir(tmp_path, "127.0.0.1", 9, pace_bps=-1)  # before it connects


# ------------------------------------------------------------------ from the client to send_dir


@pytest.fixture()
def paces(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each `send_dir` of the agent was asked to pace at (it moves nothing)."""
    seen: list[int | None] = []

    def fake_send_dir(
        src: Path, host: str, port: int, *, pace_bps: int | None = None, **_: Any
    ) -> tuple[TransferStats, Manifest]:
        seen.append(pace_bps)
        return TransferStats(0, 0, 0, 0, 0.0, "full"), Manifest(1 << 20)

    monkeypatch.setattr(service_module, "send_dir", fake_send_dir)
    return seen


@pytest.fixture()
def bodies(tmp_path: Path) -> Iterator[tuple[AgentClient, list[bytes]]]:
    """A client of the API of an agent whose site runs `svc`, and the bodies it sent."""
    service, sent = _service(tmp_path), list[bytes]()
    service.create(make_spec("svc"))
    with TestClient(create_agent_app(service), raise_server_exceptions=False) as http:
        http.event_hooks = {"request": [lambda r: sent.append(r.read())]}
        yield AgentClient("mec1", "10.0.0.1", url="http://testserver", http=http), sent


def test_the_client_and_the_agent_carry_the_pace_to_send_dir(
    paces: list[int | None], bodies: tuple[AgentClient, list[bytes]]
) -> None:
    client, sent = bodies
    client.send("svc", "10.0.0.2", 7100, delta=False, pace_bps=40_000_000)
    client.send("svc", "10.0.0.2", 7100, delta=True)
    assert paces == [40_000_000, None]
    assert b'"pace_bps":40000000' in sent[0].replace(b" ", b"")
    assert b"pace_bps" not in sent[1]  # unpaced: the key is left out, as before it existed


def test_a_pace_out_of_bounds_is_refused_and_nothing_is_sent(
    paces: list[int | None], bodies: tuple[AgentClient, list[bytes]]
) -> None:
    client, _ = bodies
    for bad in (MIN_PACE_BPS - 1, MAX_PACE_BPS + 1):
        with pytest.raises(SiteError, match="pace_bps"):
            client.send("svc", "10.0.0.2", 7100, delta=False, pace_bps=bad)
    assert paces == []
