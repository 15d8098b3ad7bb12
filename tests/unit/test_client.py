"""The Python client against a real RestServer on loopback (in-memory facade behind it)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from controller.api_models import TrafficMatch
from controller.client import (
    ClientError,
    ConflictError,
    ControllerClient,
    ControllerUnreachable,
    ForbiddenError,
    NotFoundError,
)
from controller.rest import create_app
from controller.rest_server import RestServer, RestServerError
from tests.unit.fake_api import FakeAPI


@pytest.fixture
def fake() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def server(fake: FakeAPI, request: pytest.FixtureRequest) -> RestServer:
    rest = RestServer(create_app(fake), port=0)
    rest.start()
    request.addfinalizer(rest.stop)
    return rest


@pytest.fixture
def client(server: RestServer) -> Iterator[ControllerClient]:
    with ControllerClient(server.url, timeout=5.0) as api:
        yield api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_server_picks_a_free_port(server: RestServer) -> None:
    assert server.port != 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_views(client: ControllerClient) -> None:
    assert client.health().switches_connected == 2
    assert [s.name for s in client.topology().sites] == ["edge1", "edge2"]
    assert {i.name for i in client.instances()} == {"ue1", "app1"}
    assert client.chains()[0].functions == ["app1"]


def test_reserve_resize_release_round_trip(client: ControllerClient) -> None:
    res = client.reserve(
        "ue1", "edge2", "40Mbit", match=TrafficMatch(proto="udp", dst_port=5001), owner="mig=7"
    )
    assert res.rate_bps == 40_000_000
    assert res.match == TrafficMatch(proto="udp", dst_port=5001)
    assert client.reservation(res.id) == res
    assert client.reservations() == [res]

    with pytest.raises(ForbiddenError, match="another owner"):
        client.resize(res.id, "60Mbit")  # its owner not named
    with pytest.raises(ForbiddenError):
        client.release(res.id, owner="mig=8")
    resized = client.resize(res.id, "60Mbit", owner="mig=7")
    assert resized.rate_bps == 60_000_000
    assert client.topology().links[0].directions[0].reserved_bps == 60_000_000

    client.release(res.id, owner="mig=7")
    assert client.reservations() == []
    with pytest.raises(NotFoundError) as err:
        client.reservation(res.id)
    assert err.value.status == 404
    assert err.value.message == f"no reservation {res.id}"


def test_reserve_with_match_dict_and_int_rate(client: ControllerClient) -> None:
    res = client.reserve("ue1", "app1", 5_000_000, match={"proto": "tcp"}, burst_kb=32)
    assert (res.rate_bps, res.burst_kb, res.match.proto) == (5_000_000, 32, "tcp")


def test_not_found_errors(client: ControllerClient) -> None:
    with pytest.raises(NotFoundError, match="unknown host or site 'mars'"):
        client.reserve("ue1", "mars", "1Mbit")
    with pytest.raises(NotFoundError):
        client.release(42)
    with pytest.raises(NotFoundError):
        client.resize(42, "1Mbit")


def test_conflict_error(client: ControllerClient) -> None:
    client.reserve("ue1", "edge2", "80Mbit")
    with pytest.raises(ConflictError) as err:
        client.reserve("ue1", "edge2", "30Mbit")
    assert err.value.status == 409
    assert "not enough bandwidth" in str(err.value)
    assert isinstance(err.value.body, dict)
    assert err.value.body["context"]["residual_bps"] == 20_000_000


def test_invalid_request_is_a_422_client_error(client: ControllerClient) -> None:
    with pytest.raises(ClientError) as err:
        client.reserve("ue1", "edge2", "fast", match={"dst_port": 70000})
    assert type(err.value) is ClientError
    assert err.value.status == 422
    assert isinstance(err.value.body, dict)
    assert {p["path"] for p in err.value.body["problems"]} == {"rate", "match.dst_port"}
    assert "match.dst_port" in err.value.message


def test_server_error_is_a_500_client_error(client: ControllerClient, fake: FakeAPI) -> None:
    fake.fail = RuntimeError("boom")
    with pytest.raises(ClientError) as err:
        client.health()
    assert err.value.status == 500
    assert err.value.message == "internal error: RuntimeError: boom"


def test_relocate(client: ControllerClient) -> None:
    moved = client.relocate("app1", "s2", port=7)
    assert (moved.new_switch, moved.new_port) == ("s2", 7)
    with pytest.raises(NotFoundError):
        client.relocate("ghost", "edge2")


def test_unreachable_on_closed_port() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with ControllerClient(url, timeout=2.0) as api, pytest.raises(ControllerUnreachable) as err:
        api.health()
    assert f"{url}/v1/health" in str(err.value)


def test_unreachable_on_timeout() -> None:
    # A socket that listens but never answers: the connection is made, the reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with ControllerClient(url, timeout=0.3) as api, pytest.raises(ControllerUnreachable) as err:
            api.health()
    assert "did not answer within 0.3 s" in str(err.value)


def test_port_in_use_is_a_clear_error(server: RestServer) -> None:
    other = RestServer(create_app(FakeAPI()), port=server.port)
    with pytest.raises(RestServerError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        other.start()


def test_stop_closes_the_port_and_start_again() -> None:
    rest = RestServer(create_app(FakeAPI()), port=0)
    rest.start()
    try:
        with pytest.raises(RestServerError, match="already started"):
            rest.start()
        assert ControllerClient(rest.url).health().status == "ok"
    finally:
        rest.stop()
    rest.stop()  # idempotent
    with pytest.raises(ControllerUnreachable):
        ControllerClient(rest.url, timeout=2.0).health()

    with rest:  # a stopped server starts again (on the same port if still free)
        assert ControllerClient(rest.url).health().status == "ok"


def _reset_first(client: ControllerClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The client's first request meets a connection the server reset; later ones go through."""
    calls: list[str] = []
    real = client._session.request

    def flaky(method: str, url: str, **kw: object) -> requests.Response:
        calls.append(method)
        if len(calls) == 1:
            raise requests.ConnectionError("('Connection aborted.', ConnectionResetError(104))")
        return real(method, url, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(client._session, "request", flaky)
    return calls


def test_a_get_or_delete_meeting_a_reset_connection_is_sent_once_more(
    client: ControllerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _reset_first(client, monkeypatch)
    assert client.health().switches_connected == 2
    assert calls == ["GET", "GET"]
    rid = client.reserve("ue1", "app1", "10Mbit").id
    calls = _reset_first(client, monkeypatch)
    client.release(rid)
    assert calls == ["DELETE", "DELETE"]
    with pytest.raises(NotFoundError):
        client.reservation(rid)


def test_a_post_meeting_a_reset_connection_is_not_sent_twice(
    client: ControllerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _reset_first(client, monkeypatch)
    with pytest.raises(ControllerUnreachable, match="Connection aborted"):
        client.reserve("ue1", "app1", "10Mbit")
    assert calls == ["POST"]
    assert client.reservations() == []
