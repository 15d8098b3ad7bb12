"""Where the orchestration reaches each site's agent: --agent flags, the scenario's `agent:`,
the local Unix socket; the token; and what `mecmig migrate` says when an agent is unreachable."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

import orchestration.service
from agent.token import TOKEN_ENV, TOKEN_HEADER, TokenFileError
from ground.paths import agent_socket
from mecmig.cli import EXIT_FAILED, EXIT_USAGE, _parser, main
from orchestration.sites import EndpointError, agent_endpoint, parse_agent_flags, site_clients
from topology.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "scenarios" / "edge.yaml"
TOKEN = "0123456789abcdef0123"


def _with_agents(**agents: str) -> Scenario:
    import yaml

    data = yaml.safe_load(EDGE.read_text())
    for site in data["sites"]:
        if site["name"] in agents:
            site["agent"] = agents[site["name"]]
    return parse_scenario(data, source="t.yaml")


def test_default_is_the_local_unix_socket() -> None:
    sc = load_scenario(EDGE)
    clients = site_clients(sc)
    assert clients["mec1"].endpoint == f"unix:{agent_socket('edge', 'mec1')}"
    assert clients["mec1"].address == "10.0.0.1" and clients["mec2"].name == "mec2"


def test_flags_win_over_the_scenario_which_wins_over_the_default() -> None:
    sc = _with_agents(mec1="http://10.0.0.1:7070", mec2="unix:/run/x/mec2.sock")
    assert agent_endpoint(sc, "mec1") == "http://10.0.0.1:7070"
    clients = site_clients(sc, {"mec1": "http://192.0.2.7"})
    assert clients["mec1"].endpoint == "http://192.0.2.7:7070"  # the default port filled in
    assert clients["mec2"].endpoint == "unix:/run/x/mec2.sock"


def test_the_token_goes_with_every_request() -> None:
    client = site_clients(load_scenario(EDGE), token=TOKEN)["mec1"]
    assert client._headers == {TOKEN_HEADER: TOKEN}
    assert site_clients(load_scenario(EDGE))["mec1"]._headers == {}


def test_agent_flags_are_checked() -> None:
    sc = load_scenario(EDGE)
    assert parse_agent_flags(["mec1=http://10.0.0.1:7070", "mec2=unix:/s.sock"], sc) == {
        "mec1": "http://10.0.0.1:7070",
        "mec2": "unix:/s.sock",
    }
    for flags, why in [
        (["mec1"], "expected SITE=URL"),
        (["mec9=http://10.0.0.9:7070"], "no such site in scenario edge"),
        (["mec1=https://10.0.0.1:7070"], "expected unix:/path/to.sock or http://HOST:PORT"),
        (["mec1=http://10.0.0.1:7070/v1"], "not a TCP port"),
        (["mec1=unix:relative.sock"], "unix:/absolute/path"),
        (["mec1=http://a:1", "mec1=http://b:1"], "given twice"),
    ]:
        with pytest.raises(EndpointError, match=why):
            parse_agent_flags(flags, sc)
    with pytest.raises(EndpointError, match="no such site"):
        site_clients(sc, {"nowhere": "http://10.0.0.1:7070"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_migrate_says_which_agent_is_unreachable_where(
    capsys: pytest.CaptureFixture[str],
) -> None:
    p1, p2 = _free_port(), _free_port()
    code = main(
        [
            "migrate",
            "counter",
            "--to",
            "mec2",
            "--no-controller",
            "--scenario",
            str(EDGE),
            "--agent",
            f"mec1=http://127.0.0.1:{p1}",
            "--agent",
            f"mec2=http://127.0.0.1:{p2}",
        ]
    )
    out = capsys.readouterr().out
    assert code == EXIT_FAILED
    assert f"site mec1: agent at http://127.0.0.1:{p1} unreachable: connection refused" in out
    assert f"site mec2: agent at http://127.0.0.1:{p2} unreachable: connection refused" in out
    assert "is not running at any site" not in out


def test_migrate_refuses_bad_agent_flags_and_token_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["migrate", "counter", "--to", "mec2", "--no-controller", "--scenario", str(EDGE)]
    assert main([*base, "--agent", "mec9=http://10.0.0.9:7070"]) == EXIT_USAGE
    assert "no such site" in capsys.readouterr().err
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    assert main([*base, "--agent-token-file", str(token)]) == EXIT_USAGE
    assert f"chmod 600 {token}" in capsys.readouterr().err


def test_the_controllers_flag_hands_the_token_file_to_v1_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the flag sets the variable itself: have monkeypatch restore its absence at the end (a
    # `delenv` of a variable that is not set records nothing, and a later one would put the
    # flag's value back for the tests after this one)
    monkeypatch.setenv(TOKEN_ENV, "")
    monkeypatch.delenv(TOKEN_ENV)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    monkeypatch.chdir(tmp_path)
    args = _parser().parse_args(["controller", "--agent-token-file", "token"])
    assert args.agent_token_file == token
    import os

    assert os.environ[TOKEN_ENV] == str(token)  # absolute: the controller may chdir

    seen: dict[str, Any] = {}

    def clients(sc: Scenario, endpoints: Any = None, token: str | None = None) -> dict[str, Any]:
        seen["token"] = token
        return {}

    monkeypatch.setattr(orchestration.service, "site_clients", clients)
    sc = load_scenario(EDGE)
    orchestration.service.mount(object(), sc, "http://127.0.0.1:8080")  # type: ignore[arg-type]
    assert seen["token"] == TOKEN
    token.chmod(0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        orchestration.service.mount(object(), sc, "http://127.0.0.1:8080")  # type: ignore[arg-type]
    del os.environ[TOKEN_ENV]
    orchestration.service.mount(object(), sc, "http://127.0.0.1:8080")  # type: ignore[arg-type]
    assert seen["token"] is None


def test_the_clients_of_a_thousand_sites_share_one_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each httpx client read the CA bundle for a context of its own (~50 ms): the controller
    took ~50 s to start at 1,000 sites. One context serves every site's client, over TCP and
    over a Unix socket alike."""
    import httpx

    import orchestration.agent_client as agent_client
    from mecmig.bench.scale_fabric import scenario

    made: list[object] = []
    real = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    agent_client._tls.cache_clear()
    try:
        sc = scenario(1000)
        over_tcp = {s.name: f"http://{s.agent_ip}:7070" for s in sc.sites[:500]}
        clients = site_clients(sc, over_tcp)
        assert len(clients) == 1000 and clients["mec1"].endpoint.startswith("http://")
        assert clients["mec999"].endpoint.startswith("unix:")
        transports: list[Any] = [c._http._transport for c in clients.values()]
        contexts = {id(t._pool._ssl_context) for t in transports}
        assert len(contexts) == 1 and len(made) == 1
    finally:
        agent_client._tls.cache_clear()
