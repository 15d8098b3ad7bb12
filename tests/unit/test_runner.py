"""The one module that starts programs: exit codes checked, stderr kept, long-running children
stopped with the signal asked for and their standard output kept apart when asked. Real (tiny)
programs, no root: `netns_pid` is only checked for the argv it builds."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ground.runner import CommandError, SubprocessRunner

PY = sys.executable


def test_run_returns_output_and_exit_code() -> None:
    result = SubprocessRunner().run(
        [PY, "-c", "print('out'); import sys; print('err', file=sys.stderr)"]
    )
    assert result.ok and result.returncode == 0
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert result.argv == (PY, "-c", "print('out'); import sys; print('err', file=sys.stderr)")


def test_a_failure_raises_with_argv_exit_code_and_stderr() -> None:
    argv = [PY, "-c", "import sys; sys.stderr.write('no such thing\\n'); sys.exit(3)"]
    with pytest.raises(CommandError) as err:
        SubprocessRunner().run(argv)
    assert err.value.argv == tuple(argv) and err.value.returncode == 3
    assert err.value.stderr == "no such thing\n"
    assert "exit 3" in str(err.value) and "no such thing" in str(err.value)


def test_check_false_reports_instead_of_raising() -> None:
    result = SubprocessRunner().run([PY, "-c", "raise SystemExit(1)"], check=False)
    assert not result.ok and result.returncode == 1


def test_input_is_fed_to_stdin() -> None:
    result = SubprocessRunner().run(
        [PY, "-c", "import sys; print(sys.stdin.read().upper())"], input="ping"
    )
    assert result.stdout == "PING\n"


def test_missing_program_and_timeout_are_command_errors() -> None:
    with pytest.raises(CommandError) as missing:
        SubprocessRunner().run(["mecmig-no-such-program"], check=False)
    assert missing.value.returncode == 127
    with pytest.raises(CommandError, match="timed out") as slow:
        SubprocessRunner().run([PY, "-c", "import time; time.sleep(5)"], timeout=0.3, check=False)
    assert slow.value.returncode is None


def test_netns_pid_enters_that_network_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    def fake_run(argv: list[str], **_: object) -> Done:
        seen.append(argv)
        return Done()

    monkeypatch.setattr("ground.runner.subprocess.run", fake_run)
    SubprocessRunner().run(["ip", "addr"], netns_pid=4242)
    assert seen == [["nsenter", "-t", "4242", "-n", "--", "ip", "addr"]]


def test_spawn_logs_output_and_stops_with_sigint(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = SubprocessRunner().spawn(
        [PY, "-c", "import time; print('up', flush=True); time.sleep(30)"], str(log)
    )
    _until(lambda: "up" in child.tail())
    assert child.alive() and child.returncode is None
    assert child.stop(timeout=5) == -signal.SIGINT  # Python re-raises an unhandled SIGINT
    assert not child.alive() and child.stdout() == ""


def test_spawn_keeps_stdout_apart_and_stops_with_the_signal_asked(tmp_path: Path) -> None:
    """A probe's way: JSON on stdout once SIGTERM arrives, diagnostics on stderr."""
    script = (
        "import signal, sys, time\n"
        "def done(*_):\n"
        "    print('{\"ok\": true}', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, done)\n"
        "print('starting', file=sys.stderr, flush=True)\n"
        "time.sleep(30)\n"
    )
    log, out = tmp_path / "probe.log", tmp_path / "probe.json"
    out.write_text("stale")
    child = SubprocessRunner().spawn([PY, "-c", script], str(log), stdout_path=str(out))
    _until(lambda: "starting" in child.tail())
    assert child.stdout() == ""  # truncated, not appended to
    assert child.stop(timeout=5, sig=signal.SIGTERM) == 0
    assert child.stdout() == '{"ok": true}\n'
    assert log.read_text() == "starting\n"


def test_stop_kills_what_ignores_the_signal(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring', flush=True)\n"
        "time.sleep(30)\n"
    )
    child = SubprocessRunner().spawn([PY, "-c", script], str(tmp_path / "c.log"))
    _until(lambda: "ignoring" in child.tail())
    assert child.stop(timeout=0.5, sig=signal.SIGTERM) == -signal.SIGKILL


def test_wait_says_none_while_running(tmp_path: Path) -> None:
    child = SubprocessRunner().spawn([PY, "-c", "import sys; sys.exit(4)"], str(tmp_path / "c.log"))
    assert child.wait(10) == 4
    slow = SubprocessRunner().spawn([PY, "-c", "import time; time.sleep(30)"], str(tmp_path / "s"))
    assert slow.wait(0.1) is None
    slow.kill()
    assert not slow.alive()


def _until(ready: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "child did not get ready"
        time.sleep(0.02)


# ends ~67 ms after it starts: Popen.wait(timeout) would look at 63.5 ms, then at 113.5
EXIT_STAMP = 'sleep 0.064; date +%s.%N > "$1"'


def test_a_detached_command_is_seen_to_end_at_once(tmp_path: Path) -> None:
    """Popen.wait(timeout) looks every 0.5, 1, 2 ... 50 ms: a command that ends after 67 ms
    was seen ~45 ms late. Woken by its pidfd, the runner returns within milliseconds."""
    late = []
    for i in range(3):
        stamp = tmp_path / f"exit-{i}"
        SubprocessRunner().run(
            ["sh", "-c", EXIT_STAMP, "sh", str(stamp)], detached_stdio=True, timeout=10
        )
        late.append(time.time() - float(stamp.read_text()))
    assert min(late) < 0.02, late


def test_a_detached_command_that_overruns_is_killed_and_a_command_error(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(CommandError) as err:
        SubprocessRunner().run(["sleep", "5"], detached_stdio=True, timeout=0.2)
    assert err.value.returncode is None and time.monotonic() - t0 < 2


def test_spawned_wait_returns_its_exit_code_when_it_ends(tmp_path: Path) -> None:
    proc = SubprocessRunner().spawn(["sh", "-c", "sleep 0.07; exit 3"], str(tmp_path / "log"))
    t0 = time.monotonic()
    assert proc.wait(10) == 3
    assert time.monotonic() - t0 < 1
