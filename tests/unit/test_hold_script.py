"""The CRIU action script that asks the controller to hold a service's traffic at the freeze:
run for real (bash over /dev/tcp for a loopback controller, sh and curl for any other) against
a local HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.hold_script import HOLD_TIMEOUT_S, hold_script


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers["Content-Type"], body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def controller() -> Iterator[str]:
    _Recorder.seen, _Recorder.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(script: Path, action: str) -> int:
    env = {**os.environ, "CRTOOLS_SCRIPT_ACTION": action}
    return subprocess.run([str(script)], env=env, timeout=10, check=False).returncode


def _write(tmp_path: Path, url: str) -> tuple[Path, Path]:
    script, marker = tmp_path / "hold.sh", tmp_path / "held"
    script.write_text(hold_script(url, marker))
    script.chmod(0o755)
    return script, marker


def test_at_the_network_lock_it_asks_for_the_hold(tmp_path: Path, controller: str) -> None:
    script, marker = _write(tmp_path, f"{controller}/v1/instances/counter/hold")
    assert _run(script, "network-lock") == 0
    assert _Recorder.seen == [
        ("/v1/instances/counter/hold", "application/json", {"timeout_s": HOLD_TIMEOUT_S})
    ]
    assert marker.exists()


@pytest.mark.parametrize("action", ["pre-dump", "post-dump", "status-ready", "post-resume"])
def test_other_actions_do_nothing(tmp_path: Path, controller: str, action: str) -> None:
    script, marker = _write(tmp_path, f"{controller}/v1/instances/counter/hold")
    assert _run(script, action) == 0
    assert _Recorder.seen == [] and not marker.exists()


def test_a_controller_that_refuses_or_is_gone_never_fails_the_dump(
    tmp_path: Path, controller: str
) -> None:
    _Recorder.status = 404
    script, marker = _write(tmp_path, f"{controller}/v1/instances/ghost/hold")
    assert _run(script, "network-lock") == 0 and not marker.exists()
    script, marker = _write(tmp_path, "http://127.0.0.1:9/v1/instances/counter/hold")
    assert _run(script, "network-lock") == 0 and not marker.exists()


def test_an_agent_in_an_emulated_host_reaches_the_controller_through_the_root_namespace(
    tmp_path: Path, controller: str
) -> None:
    """The script re-runs itself in that namespace (here: this test's own, entered by pid)
    and asks from there; the freeze's time is noted before, where CRIU runs it."""
    text = hold_script("http://127.0.0.1:8080/v1/instances/x/hold", tmp_path / "m", netns_pid=42)
    assert 'nsenter -t 42 -n timeout 2 /bin/bash "$0" --ask' in text
    script, marker, frozen = tmp_path / "hold.sh", tmp_path / "held", tmp_path / "frozen-at"
    url = f"{controller}/v1/instances/counter/hold"
    script.write_text(hold_script(url, marker, netns_pid=os.getpid(), frozen=frozen))
    script.chmod(0o755)
    assert _run(script, "network-lock") == 0
    assert marker.exists() and float(frozen.read_text()) > 0
    assert _Recorder.seen == [
        ("/v1/instances/counter/hold", "application/json", {"timeout_s": HOLD_TIMEOUT_S})
    ]


def test_it_exits_0_when_the_namespace_cannot_be_entered_or_the_controller_hangs(
    tmp_path: Path,
) -> None:
    """CRIU fails the dump on any other status. A namespace that is gone, and a controller that
    takes the connection but never answers (the ask's timeout ends it), cost at most that."""
    import socket
    import time

    script, marker = tmp_path / "hold.sh", tmp_path / "held"
    script.write_text(hold_script("http://127.0.0.1:9/h", marker, netns_pid=2**22 + 1))
    script.chmod(0o755)
    assert _run(script, "network-lock") == 0 and not marker.exists()
    with socket.socket() as mute:  # accepts (the kernel does) and never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen(1)
        url = f"http://127.0.0.1:{mute.getsockname()[1]}/h"
        script.write_text(hold_script(url, marker))
        t0 = time.monotonic()
        assert _run(script, "network-lock") == 0 and not marker.exists()
        assert time.monotonic() - t0 < 2 + 1.5


def test_a_loopback_controller_is_asked_by_bash_itself_any_other_with_curl(
    tmp_path: Path,
) -> None:
    """No curl to start inside the frozen window where the connect cannot hang (loopback);
    elsewhere curl's -m bounds the connect as well as the reply."""
    for url in ("http://127.0.0.1:8080/h", "http://localhost:8080/h", "http://[::1]:8080/h"):
        text = hold_script(url, tmp_path / "m")
        assert text.startswith("#!/bin/bash\n") and "/dev/tcp/" in text and "curl" not in text
        assert "read -r -t 2 status" in text
    for url in ("http://10.0.0.5:8080/h", "https://127.0.0.1:8443/h", "http://ctl.example:80/h"):
        text = hold_script(url, tmp_path / "m")
        assert "curl -sf -m 2 " in text and "/dev/tcp/" not in text, url


def test_a_percent_in_the_path_goes_out_as_it_is(tmp_path: Path, controller: str) -> None:
    script, marker = _write(tmp_path, f"{controller}/v1/instances/a%2Fb/hold")
    assert _run(script, "network-lock") == 0 and marker.exists()
    assert _Recorder.seen[0][0] == "/v1/instances/a%2Fb/hold"


def test_it_notes_when_criu_froze_the_tree_before_it_asks(tmp_path: Path, controller: str) -> None:
    import time

    script, frozen = tmp_path / "hold.sh", tmp_path / "frozen-at"
    script.write_text(
        hold_script(f"{controller}/v1/instances/x/hold", tmp_path / "h", None, frozen)
    )
    script.chmod(0o755)
    assert _run(script, "pre-dump") == 0 and not frozen.exists()
    before = time.time()
    assert _run(script, "network-lock") == 0
    at = float(frozen.read_text())
    assert before - 0.001 <= at <= time.time()
