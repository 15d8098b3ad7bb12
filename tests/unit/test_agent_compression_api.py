"""The copy's compression through the agent's API and `AgentClient` (issue 13, item 5): a dump
asked for a sample answers one (bounded), a send asked to compress passes it to the transfer and
says so, and what is out of bounds is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

import agent.service
from agent.api_models import SampleOut
from agent.service import SiteService
from agent.transfer_wire import Manifest, TransferStats
from migration.compression import Sample
from orchestration.agent_client import AgentClient, _sample
from tests.unit import test_agent_api

service, http = test_agent_api.service, test_agent_api.http  # the same fixtures
SAMPLE = Sample(4 << 20, 1 << 20, 0.02, 3)


@pytest.fixture()
def client(http: TestClient) -> AgentClient:
    return AgentClient("mec1", "10.0.0.1", url="http://testserver", http=http)


@pytest.fixture()
def measured(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """agent.compression.measure, faked: SAMPLE for any tree; the trees it was asked for."""
    seen: list[Path] = []

    def measure(root: Path) -> Sample:
        seen.append(root)
        return SAMPLE

    monkeypatch.setattr(agent.service, "measure", measure)
    return seen


def test_a_dump_samples_its_memory_only_when_asked(
    client: AgentClient, service: SiteService, measured: list[Path]
) -> None:
    assert client.checkpoint("svc", leave_running=True).sample is None
    assert measured == []
    dump = client.checkpoint("svc", leave_running=True, sample=True)
    assert dump.sample == SAMPLE
    assert measured == [service.containers.images_dir("svc")]


def test_a_send_compresses_when_asked_and_says_so(
    client: AgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, Any]] = []

    def send_dir(src: Path, host: str, port: int, **kw: Any) -> tuple[TransferStats, Manifest]:
        asked.append(kw)
        stats = TransferStats(3, 1000, 4000, 0, 0.5, "full", kw["compress"])
        return stats, Manifest(4096)

    monkeypatch.setattr(agent.service, "send_dir", send_dir)
    sent = client.send("svc", "10.0.0.2", 7100, delta=False, compress="zstd")
    assert asked[-1]["compress"] == "zstd"
    assert (sent.compress, sent.bytes_on_wire, sent.bytes_total) == ("zstd", 1000, 4000)
    assert client.send("svc", "10.0.0.2", 7100, delta=False).compress == "none"
    assert asked[-1]["compress"] == "none"


def test_what_is_out_of_bounds_is_refused(http: TestClient) -> None:
    body = {"peer": "10.0.0.2", "port": 7100, "compress": "gzip"}
    assert http.post("/v1/instances/svc/send", json=body).status_code == 422
    assert (
        http.post("/v1/instances/svc/pre-dump", json={"round": 1, "sample": "yes"}).status_code
        == 422
    )
    ok = {"raw_bytes": 4096, "compressed_bytes": 100, "seconds": 0.01, "level": 3}
    assert SampleOut.model_validate(ok).model_dump() == ok
    for bad in ({"level": 99}, {"raw_bytes": -1}, {"seconds": 1e9}, {"extra": 1}):
        with pytest.raises(ValidationError):
            SampleOut.model_validate(ok | bad)


def test_the_client_reads_a_sample_or_none() -> None:
    good = {"raw_bytes": 4096, "compressed_bytes": 100, "seconds": 0.01, "level": 3}
    assert _sample(good) == Sample(4096, 100, 0.01, 3)
    assert _sample(None) is None  # an agent from before samples
    assert _sample(good | {"raw_bytes": "4096"}) is None
    assert _sample(good | {"seconds": -1}) is None
