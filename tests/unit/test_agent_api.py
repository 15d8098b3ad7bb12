"""The agent's HTTP API over `SiteService` (runc faked), and `AgentClient` speaking to it: 404 for
an instance the site does not hold (and only that is 'absent'), the token on non-loopback TCP,
unreachable agents named with their endpoint."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from agent.api import create_agent_app, needs_token
from agent.errors import StepFailed, Unauthorized, UnknownInstance
from agent.service import SiteService
from agent.token import TOKEN_HEADER
from migration.site import SiteUnreachable
from orchestration.agent_client import AgentClient
from tests.unit.migration_fakes import make_spec
from tests.unit.test_site_service import _service

TOKEN = "s3cret-token-0123456789"


@pytest.fixture()
def service(tmp_path: Path) -> SiteService:
    s = _service(tmp_path)
    s.create(make_spec("svc"))
    return s


@pytest.fixture()
def http(service: SiteService) -> Iterator[TestClient]:
    with TestClient(create_agent_app(service), raise_server_exceptions=False) as client:
        yield client


def _client(http: TestClient, token: str | None = None) -> AgentClient:
    return AgentClient("mec1", "10.0.0.1", url="http://testserver", http=http, token=token)


def test_an_instance_it_does_not_hold_is_404_with_a_message(http: TestClient) -> None:
    resp = http.get("/v1/instances/counter")
    assert resp.status_code == 404
    assert resp.json() == {"error": "site mec1: no instance 'counter' here (it holds: svc)"}
    resp = http.post("/v1/instances/counter/checkpoint", json={})
    assert resp.status_code == 404
    ok = http.get("/v1/instances/svc").json()
    assert ok["status"] == "running" and ok["spec"]["name"] == "svc"


def test_bad_names_and_conflicts_have_their_status(http: TestClient) -> None:
    assert http.delete("/v1/instances/..").status_code in (400, 404)  # never 500, never rm
    assert http.delete("/v1/instances/a%20b").status_code == 422  # the path bound
    assert http.post("/v1/instances/svc/receive/finish").status_code == 409
    assert http.post("/v1/instances/svc/pre-dump", json={"round": 0}).status_code == 422


def test_the_client_maps_404_and_only_404_to_absent(
    http: TestClient, service: SiteService, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(http)
    assert client.status("svc") == "running"
    assert client.status("counter") == "absent"
    with pytest.raises(UnknownInstance, match="no instance 'counter'"):
        client.spec("counter")
    assert client.spec("svc") == make_spec("svc")

    def broken(_: str) -> None:
        raise StepFailed("site mec1: status of svc: runc state failed")

    monkeypatch.setattr(service, "describe", broken)
    with pytest.raises(StepFailed, match="runc state failed"):
        client.status("svc")  # a failing agent is not an absent instance


def test_a_404_that_is_not_the_agents_is_not_absent() -> None:
    """Something else at the agent's address (a wrong port) answers 404 in its own words."""

    def other(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nothing here</html>")

    http = httpx.Client(base_url="http://10.0.0.1:8080", transport=httpx.MockTransport(other))
    client = AgentClient("mec1", "10.0.0.1", http=http)
    with pytest.raises(StepFailed, match="is it a mecmig agent"):
        client.status("svc")


def test_the_whole_site_protocol_over_http(http: TestClient, service: SiteService) -> None:
    client = _client(http)
    assert client.health() == service.health()
    busy, total = client.cpu_jiffies()
    assert total >= busy >= 0 and client.tx_bytes() >= 0
    dump = client.checkpoint("svc", leave_running=True)
    assert dump.leave_running and dump.image_bytes > 0 and not dump.held
    client.set_link("svc", False)
    client.destroy("svc")
    assert client.status("svc") == "absent" and service.health()["instances"] == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_agent_is_named_with_its_endpoint(tmp_path: Path) -> None:
    port = _free_port()
    client = AgentClient("mec1", "10.0.0.1", url=f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(SiteUnreachable) as info:
        client.status("counter")
    assert str(info.value) == (
        f"site mec1: agent at http://127.0.0.1:{port} unreachable: connection refused"
    )
    assert info.value.delivered is False  # no connection: the request surely changed nothing
    sock = tmp_path / "gone.sock"
    client = AgentClient.at("mec2", "10.0.0.2", f"unix:{sock}")
    with pytest.raises(
        SiteUnreachable, match=rf"site mec2: agent at unix:{sock} unreachable: "
    ) as e:
        client.health()
    assert e.value.delivered is False


def test_an_agent_that_stops_answering_mid_request_may_have_acted(tmp_path: Path) -> None:
    with socket.socket() as server:  # accepts, reads, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        client = AgentClient("mec1", "10.0.0.1", url=f"http://127.0.0.1:{port}", timeout=0.3)
        with pytest.raises(SiteUnreachable) as info:
            client.status("counter")
    assert info.value.delivered is True


# ---------------------------------------------------------------------- the token


@pytest.fixture()
def guarded(service: SiteService) -> Iterator[TestClient]:
    """The app with a token; TestClient's server is 'testserver': a non-loopback address."""
    app = create_agent_app(service, token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_without_the_token_401_and_nothing_changes(
    guarded: TestClient, service: SiteService
) -> None:
    resp = guarded.delete("/v1/instances/svc")
    assert resp.status_code == 401
    assert TOKEN_HEADER in resp.json()["error"] and "no token" in resp.json()["error"]
    resp = guarded.delete("/v1/instances/svc", headers={TOKEN_HEADER: TOKEN[:-1] + "x"})
    assert resp.status_code == 401 and "a wrong token" in resp.json()["error"]
    assert guarded.get("/v1/openapi.json").status_code == 401
    assert service.health()["instances"] == ["svc"]  # nothing changed
    assert guarded.delete("/v1/instances/svc", headers={TOKEN_HEADER: TOKEN}).status_code == 200
    assert service.health()["instances"] == []


def test_the_client_sends_the_token(guarded: TestClient) -> None:
    assert _client(guarded, token=TOKEN).status("svc") == "running"
    with pytest.raises(Unauthorized, match=r"requires its token.*agent at http://testserver"):
        _client(guarded).status("svc")  # 401 is not "absent" either


def test_loopback_and_unix_socket_need_no_token_but_a_wrong_one_is_refused(
    service: SiteService,
) -> None:
    app = create_agent_app(service, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as local:
        assert local.get("/v1/health").status_code == 200
        assert local.get("/v1/health", headers={TOKEN_HEADER: TOKEN}).status_code == 200
        assert local.get("/v1/health", headers={TOKEN_HEADER: "wrong"}).status_code == 401
    assert not needs_token(None)
    assert not needs_token(("/run/mecmig/agents/edge-mec1.sock", None))  # a Unix socket
    assert not needs_token(("127.0.0.1", 7070)) and not needs_token(("::1", 7070))
    assert needs_token(("10.0.0.1", 7070)) and needs_token(("0.0.0.0", 7070))


def test_an_agent_without_a_token_accepts_requests_that_carry_one(http: TestClient) -> None:
    assert http.get("/v1/health", headers={TOKEN_HEADER: TOKEN}).status_code == 200
