"""Security by default for the controller's REST API (issue 10): it listens on loopback unless
told otherwise, and any other address needs a token (`mecmig controller --token-file`, or
MECMIG_CONTROLLER_TOKEN_FILE), which every request must then carry in X-Mecmig-Token: without
it or with a wrong one, 401 before anything reads the request, and nothing changes. The
controller's clients send it when configured: `ControllerClient` (so the REST link of `mecmig
migrate`, its --controller-token-file, and `MigrationClient`); a source agent's CRIU cannot,
so with a token it is given no hold URL and the engine holds the traffic itself."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import controller.launcher
import orchestration.service
from controller.client import ClientError, ControllerClient
from controller.rest import create_app
from controller.rest_server import RestServer
from controller.settings import Settings, SettingsError, check_rest_host
from ground import defaults
from ground.token import CONTROLLER_TOKEN_ENV, TOKEN_HEADER, TokenFileError
from mecmig.cli import EXIT_USAGE, main
from orchestration.client import MigrationClient
from orchestration.links import FacadeLink, RestControllerLink
from tests.unit.fake_api import FakeAPI
from topology.scenario import load_scenario

TOKEN = "c0ntroller-t0ken-0123456789"
ROOT = Path(__file__).resolve().parents[2]
EDGE = str(ROOT / "scenarios" / "edge.yaml")
RES = {"src": "ue1", "dst": "edge2", "rate": "40Mbit"}


def _token_file(tmp_path: Path, text: str = TOKEN, mode: int = 0o600) -> Path:
    path = tmp_path / "controller.token"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.fixture(autouse=True)
def _no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTROLLER_TOKEN_ENV, raising=False)


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def guarded(api: FakeAPI) -> Iterator[TestClient]:
    with TestClient(create_app(api, token=TOKEN), raise_server_exceptions=False) as http:
        yield http


def test_the_default_is_loopback_without_a_token() -> None:
    assert defaults.REST_HOST == "127.0.0.1"
    assert Settings(Path("x.yaml")).token() is None
    for host in ("127.0.0.1", "::1", "localhost"):
        check_rest_host(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.254", "::", "controller.example"])
def test_any_other_address_needs_a_token(host: str) -> None:
    with pytest.raises(SettingsError, match="pass --token-file PATH"):
        Settings(Path("x.yaml"), rest_host=host).token()
    check_rest_host(host, Path("token"))


def test_without_the_token_every_request_gets_401_and_nothing_changes(
    guarded: TestClient, api: FakeAPI
) -> None:
    for headers in ({}, {TOKEN_HEADER: TOKEN[:-1] + "x"}, {TOKEN_HEADER: ""}):
        for method, path, body in [
            ("POST", "/v1/reservations", RES),
            ("GET", "/v1/reservations", None),
            ("GET", "/v1/health", None),
            ("GET", "/v1/openapi.json", None),
            ("DELETE", "/v1/reservations/1", None),
            ("POST", "/v1/reservations", "x" * 100_000),  # refused before it is read: 401
        ]:
            resp = guarded.request(method, path, json=body, headers=headers)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            error = resp.json()["error"]
            assert TOKEN_HEADER in error and "MECMIG_CONTROLLER_TOKEN_FILE" in error
            assert ("a wrong token" if headers else "no token") in error
    assert api.reservations() == []
    ok = guarded.post("/v1/reservations", json=RES, headers={TOKEN_HEADER: TOKEN})
    assert ok.status_code == 201 and len(api.reservations()) == 1


def test_the_document_says_so(guarded: TestClient) -> None:
    doc = guarded.get("/v1/openapi.json", headers={TOKEN_HEADER: TOKEN}).json()
    scheme = doc["components"]["securitySchemes"]["token"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": TOKEN_HEADER}
    assert doc["security"] == [{"token": []}]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)
    plain = create_app(FakeAPI()).openapi()
    assert "security" not in plain and "401" not in plain["paths"]["/v1/health"]["get"]["responses"]


def test_the_client_sends_the_token_given_or_named_by_the_environment(
    api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RestServer(create_app(api, token=TOKEN), port=0) as server:
        with pytest.raises(ClientError) as info:
            ControllerClient(server.url, timeout=5).health()
        assert info.value.status == 401 and "no token" in info.value.message
        assert ControllerClient(server.url, timeout=5, token=TOKEN).health().status == "ok"
        monkeypatch.setenv(CONTROLLER_TOKEN_ENV, str(_token_file(tmp_path)))
        assert MigrationClient(server.url, timeout=5).health().status == "ok"
        link = RestControllerLink(ControllerClient(server.url, timeout=5))
        grant = link.reserve("ue1", "edge2", 1_000_000, 5000, "mig-1")
        assert grant is not None and api.reservations()[0].owner == "mig-1"
        link.release(grant)
        assert api.reservations() == []
    _token_file(tmp_path, mode=0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        ControllerClient()


def test_with_a_token_no_hold_url_goes_to_the_agents_criu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source agent's CRIU asks for the hold with curl and has no token: the engine holds
    the traffic itself (before the dump) instead of a hold that would get 401."""
    url = "http://127.0.0.1:8080"
    assert RestControllerLink(ControllerClient(url)).hold_url("counter") is not None
    assert RestControllerLink(ControllerClient(url, token=TOKEN)).hold_url("counter") is None

    seen: dict[str, FacadeLink] = {}
    real = orchestration.service.MigrationService

    def service(sc: Any, link: FacadeLink, sites: Any) -> Any:
        seen["link"] = link
        return real(sc, link, sites)

    monkeypatch.setattr(orchestration.service, "MigrationService", service)
    monkeypatch.setattr(orchestration.service, "site_clients", lambda *a, **kw: {})
    sc = load_scenario(EDGE)
    orchestration.service.mount(object(), sc, url)  # type: ignore[arg-type]
    assert seen["link"].hold_url("counter") == f"{url}/v1/instances/counter/hold"
    monkeypatch.setenv(CONTROLLER_TOKEN_ENV, str(_token_file(tmp_path)))
    orchestration.service.mount(object(), sc, url)  # type: ignore[arg-type]
    assert seen["link"].hold_url("counter") is None


def test_mecmig_controller_refuses_a_reachable_address_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Settings] = []
    monkeypatch.setattr(controller.launcher, "run_controller", lambda s, **kw: started.append(s))
    state = ["--state-file", str(tmp_path / "state.json")]
    base = ["controller", "--scenario", EDGE, *state]
    assert main([*base, "--rest-host", "0.0.0.0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "mecmig controller: the REST API on 0.0.0.0" in err and "--token-file" in err
    assert started == []

    bad = _token_file(tmp_path, mode=0o640)
    assert main([*base, "--rest-host", "0.0.0.0", "--token-file", str(bad)]) == EXIT_USAGE
    assert f"chmod 600 {bad}" in capsys.readouterr().err and started == []

    good = _token_file(tmp_path)
    assert main([*base, "--rest-host", "0.0.0.0", "--token-file", str(good)]) == 0
    (settings,) = started
    assert settings.token_file == good and settings.token() == TOKEN
    assert settings.to_env()[CONTROLLER_TOKEN_ENV] == str(good)

    started.clear()
    assert main(base) == 0  # loopback: no token needed
    assert started[0].rest_host == "127.0.0.1" and started[0].token_file is None
    monkeypatch.setenv(CONTROLLER_TOKEN_ENV, str(good))  # the variable names it too
    started.clear()
    assert main([*base, "--rest-host", "0.0.0.0"]) == 0
    assert started[0].token_file == good


def test_the_settings_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MECMIG_SCENARIO", EDGE)
    monkeypatch.setenv("MECMIG_REST_HOST", "0.0.0.0")
    settings = Settings.from_env()
    with pytest.raises(SettingsError, match="reachable from other machines"):
        settings.token()  # the os-ken app refuses to build its REST server
    monkeypatch.setenv(CONTROLLER_TOKEN_ENV, str(_token_file(tmp_path)))
    assert Settings.from_env().token() == TOKEN
    assert os.environ[CONTROLLER_TOKEN_ENV] == str(tmp_path / "controller.token")


def test_migrate_sends_the_controller_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["migrate", "counter", "--to", "mec2", "--scenario", EDGE]
    bad = _token_file(tmp_path, mode=0o644)
    assert main([*base, "--controller-token-file", str(bad)]) == EXIT_USAGE
    assert f"chmod 600 {bad}" in capsys.readouterr().err
    monkeypatch.setenv(CONTROLLER_TOKEN_ENV, str(bad))
    assert main(base) == EXIT_USAGE  # the variable's file is checked the same way
    assert "chmod 600" in capsys.readouterr().err
