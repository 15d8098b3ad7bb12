"""What `mecmig agent` refuses before it serves (exit 2, saying what to pass): a token file
others can read, a non-loopback address without a token, a bridge it cannot see."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

import agent.server
from agent.server import AgentSetupError, check_bridge, check_listen, parse_listen
from agent.token import TokenFileError, read_token_file, token_matches
from ground.runner import Result
from mecmig.cli import EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(ROOT / "scenarios" / "edge.yaml")
TOKEN = "0123456789abcdef0123"
HINT = "--root-netns-pid <PID of a process in the namespace where OVS runs, e.g. 1>"


def _token_file(tmp_path: Path, text: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_token_file_of_mode_600_is_read(tmp_path: Path) -> None:
    assert read_token_file(_token_file(tmp_path)) == TOKEN
    assert read_token_file(_token_file(tmp_path, mode=0o400)) == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _token_file(tmp_path, mode=mode)
    with pytest.raises(TokenFileError, match=f"chmod 600 {path}"):
        read_token_file(path)


@pytest.mark.parametrize(
    ("text", "why"),
    [("short\n", "16 to 4096"), ("", "16 to 4096"), (TOKEN + " x\n", "no spaces")],
)
def test_a_token_must_be_one_long_enough_line(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(TokenFileError, match=why):
        read_token_file(_token_file(tmp_path, text))


def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match=f"token file {tmp_path / 'nope'}"):
        read_token_file(tmp_path / "nope")


def test_tokens_compare_exactly() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN, TOKEN + "x") and not token_matches(TOKEN, None)
    assert not token_matches(TOKEN, "é" * 20)  # not ASCII: no TypeError, just no


def test_listen_addresses() -> None:
    assert parse_listen("10.0.0.1:7070") == ("10.0.0.1", 7070)
    for bad in ("10.0.0.1", "10.0.0.1:0", "host:7070", ":7070", "10.0.0.1:x"):
        with pytest.raises(ValueError, match="--listen"):
            parse_listen(bad)
    check_listen(("127.0.0.1", 7070), None)
    check_listen(None, None)
    check_listen(("10.0.0.1", 7070), TOKEN)
    for host in ("10.0.0.1", "0.0.0.0"):
        with pytest.raises(AgentSetupError, match="pass --token-file PATH"):
            check_listen((host, 7070), None)


class FakeIp:
    """`ip link show BRIDGE` answers as if the bridge were only in namespace `where`."""

    def __init__(self, where: int | None) -> None:
        self.where = where
        self.calls: list[tuple[list[str], int | None]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 60.0,
        input: str | None = None,
        netns_pid: int | None = None,
        env: Mapping[str, str] | None = None,
        detached_stdio: bool = False,
    ) -> Result:
        self.calls.append((list(argv), netns_pid))
        if netns_pid == self.where:
            return Result(tuple(argv), 0, "5: s1: <BROADCAST,MULTICAST,PROMISC>", "", 0.0)
        return Result(tuple(argv), 1, "", 'Device "s1" does not exist.', 0.0)


def test_the_bridge_must_be_where_containers_are_plugged_in() -> None:
    runner = FakeIp(where=None)
    check_bridge(runner, "mec1", "s1", None)  # the agent runs where OVS is
    assert runner.calls == [(["ip", "link", "show", "s1"], None)]
    inside = FakeIp(where=1)
    with pytest.raises(AgentSetupError) as info:
        check_bridge(inside, "mec1", "s1", None)  # the agent runs inside a Mininet host
    assert HINT in str(info.value) and "not in this agent's network namespace" in str(info.value)
    assert 'Device "s1" does not exist.' in str(info.value)
    check_bridge(inside, "mec1", "s1", 1)
    assert inside.calls[-1] == (["ip", "link", "show", "s1"], 1)
    with pytest.raises(AgentSetupError, match="not in the network namespace of PID 4242") as info:
        check_bridge(inside, "mec1", "s1", 4242)
    assert HINT in str(info.value)


def _agent(*args: str) -> list[str]:
    return ["agent", "--scenario", EDGE, "--site", "mec1", *args]


def test_agent_on_a_non_loopback_address_without_a_token_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(_agent("--listen", "10.0.0.1:7070")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "pass --token-file PATH" in err and "install -m 600" in err


def test_agent_with_a_readable_token_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _token_file(tmp_path, mode=0o644)
    assert main(_agent("--listen", "10.0.0.1:7070", "--token-file", str(path))) == EXIT_USAGE
    assert f"chmod 600 {path}" in capsys.readouterr().err


def test_agent_that_cannot_see_its_bridge_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(agent.server, "SubprocessRunner", lambda: FakeIp(where=1))
    args = _agent("--uds", str(tmp_path / "a.sock"), "--root", str(tmp_path / "root"))
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert HINT in err and "bridge s1" in err
    assert main([*args, "--root-netns-pid", "77"]) == EXIT_USAGE
    assert "not in the network namespace of PID 77" in capsys.readouterr().err


def test_agent_for_an_unknown_site_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "--scenario", EDGE, "--site", "mec9"]) == EXIT_USAGE
    assert "no site 'mec9'" in capsys.readouterr().err


def test_controller_checks_its_agent_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _token_file(tmp_path, mode=0o644)
    with pytest.raises(SystemExit) as info:
        main(["controller", "--scenario", EDGE, "--agent-token-file", str(path)])
    assert info.value.code == EXIT_USAGE
    assert f"chmod 600 {path}" in capsys.readouterr().err


def test_the_agents_sockets(tmp_path: Path) -> None:
    """The Unix socket is root's only; the TCP one says IPPROTO_TCP, so asyncio turns Nagle
    off on its connections (else each API call waits ~40 ms for a delayed ACK)."""
    import stat

    from agent.server import listening_sockets

    uds, tcp = listening_sockets(tmp_path / "a.sock", ("127.0.0.1", 0))
    try:
        assert stat.S_IMODE((tmp_path / "a.sock").stat().st_mode) == 0o600
        assert tcp.proto == socket.IPPROTO_TCP
    finally:
        uds.close()
        tcp.close()
    with pytest.raises(ValueError, match="a Unix socket or a TCP address"):
        listening_sockets(None, None)


def test_an_address_not_here_or_a_running_agent_is_refused_before_anything_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.server import listening_sockets

    with pytest.raises(AgentSetupError, match="no interface in this network namespace has"):
        listening_sockets(None, ("203.0.113.7", 7070))  # TEST-NET-3: never this host's
    (running,) = listening_sockets(tmp_path / "a.sock", None)
    running.listen()
    try:
        with pytest.raises(AgentSetupError, match="an agent already serves on"):
            listening_sockets(tmp_path / "a.sock", None)
        assert main(_agent("--uds", str(tmp_path / "a.sock"))) == EXIT_USAGE
        assert "already serves" in capsys.readouterr().err
        assert (tmp_path / "a.sock").exists()  # the running agent's socket is left alone
    finally:
        running.close()
    stale = listening_sockets(tmp_path / "a.sock", None)  # nobody answers: replaced
    stale[0].close()
