"""The one place where mecmig starts external programs.

Everything that runs a command (ovs-vsctl, ip, runc, criu, ...) takes a `Runner`, so unit tests
can hand in a recording fake and integration tests the real `SubprocessRunner`. Exit codes are
always checked unless the caller says otherwise; a failure raises `CommandError` carrying argv,
exit code and stderr. A command is a list of arguments, never a string, and never goes through
a shell (`argv_list`; tests/unit/test_argv_only.py checks every call site).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandError(Exception):
    """A command that failed (non-zero exit, not found, or timed out)."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        code = "timed out" if returncode is None else f"exit {returncode}"
        detail = stderr.strip().splitlines()[-3:] if stderr.strip() else []
        super().__init__(
            f"`{shlex.join(self.argv)}` failed ({code})" + "".join(f"\n  {line}" for line in detail)
        )


def wait_exit(proc: subprocess.Popen[Any], timeout: float | None) -> int:
    """`proc`'s exit code once it ends, woken by the kernel when it does (its pidfd).

    `Popen.wait(timeout)` looks every 0.5, 1, 2 ... up to 50 ms: a `runc restore` that ended
    after 69 ms was seen after 113 ms, 44 ms of a migration's frozen window. Raises
    subprocess.TimeoutExpired if it runs on past `timeout` (it is not killed here).
    """
    if proc.returncode is not None or timeout is None:
        return proc.wait()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:  # already gone: reap it
        return proc.wait()
    except OSError:  # a kernel without pidfds (before 5.3)
        return proc.wait(timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000))):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()


def file_tail(path: str | os.PathLike[str], lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' if it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def argv_list(argv: Sequence[str]) -> list[str]:
    """`argv` as a list; TypeError for a command line given as one string (or bytes): mecmig
    never goes through a shell, so a string would be one program name with spaces in it, and
    an argument list is what keeps a name in a request from becoming shell syntax."""
    if isinstance(argv, str | bytes) or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"a command is a list of str arguments, not {argv!r:.80}")
    if not argv:
        raise TypeError("a command needs at least a program name")
    return list(argv)


class Spawned:
    """A long-running child process (a controller, an agent) with its output in a log file.

    With `stdout_path`, its standard output goes to that file instead (output to parse once it
    ends, e.g. a probe's JSON) and only its standard error to the log.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str,
        env: Mapping[str, str] | None,
        pass_fds: Sequence[int] = (),
        stdout_path: str | None = None,
    ) -> None:
        self.argv = tuple(argv_list(argv))
        self.log_path = log_path
        self.stdout_path = stdout_path
        with contextlib.ExitStack() as files:
            log_file = files.enter_context(open(log_path, "ab"))
            stdout: Any = log_file
            stderr: Any = subprocess.STDOUT
            if stdout_path is not None:
                stdout, stderr = files.enter_context(open(stdout_path, "wb")), log_file
            self._proc = subprocess.Popen(
                self.argv,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )
        self.pid = self._proc.pid

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code once it ends, or None if it is still running after `timeout`."""
        try:
            return wait_exit(self._proc, timeout)
        except subprocess.TimeoutExpired:
            return None

    def _group(self, sig: signal.Signals) -> None:
        """`sig` to its whole process group (it leads one: it was started in its own session),
        the children it started included (runc's CRIU, say)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill(self, group: bool = False) -> None:
        """SIGKILL (with `group`: to its process group too), and reap it."""
        if group:
            self._group(signal.SIGKILL)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def stop(
        self, timeout: float = 10.0, sig: signal.Signals = signal.SIGINT, group: bool = False
    ) -> int:
        """`sig` (SIGINT: a clean shutdown), then SIGKILL if it does not end within `timeout`;
        its exit code. With `group`, both go to its process group, and what is left of the
        group once it has ended is killed."""
        if self._proc.poll() is None:
            if group:
                self._group(sig)
            else:
                self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop on %s; killing it", self.argv[0], sig.name)
                self._proc.kill()
                self._proc.wait()
        if group:
            self._group(signal.SIGKILL)
        return self._proc.returncode

    def stdout(self) -> str:
        """What it wrote to `stdout_path` so far ('' without one)."""
        if self.stdout_path is None:
            return ""
        try:
            with open(self.stdout_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        """The end of its log, for error messages."""
        return file_tail(self.log_path, lines)


class Runner(Protocol):
    """Runs a command to completion, or starts a long-running one."""

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
        output_fds: tuple[int, int] | None = None,
    ) -> Result: ...

    def spawn(
        self,
        argv: Sequence[str],
        log_path: str,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        netns_pid: int | None = None,
        stdout_path: str | None = None,
    ) -> Spawned: ...


def _run_detached(
    argv: list[str], out: Any, err: Any, env: Mapping[str, str] | None, timeout: float | None
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run` without pipes, its end seen at once (`wait_exit`); killed on timeout."""
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        env=dict(env) if env is not None else None,
    ) as proc:
        try:
            code = wait_exit(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, code, None, None)


class SubprocessRunner:
    """The real runner. `netns_pid` runs the command in that process's network namespace."""

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
        output_fds: tuple[int, int] | None = None,
    ) -> Result:
        """Run `argv`; raise CommandError on failure when `check` (the default).

        `detached_stdio`: stdin/stdout/stderr are /dev/null, for commands that leave a process
        behind holding them (`runc run -d`): with pipes we would wait for that process to end.
        `output_fds` (with `detached_stdio`): its stdout and stderr are these descriptors
        instead (what a detached container writes goes there: agent.service_logs).
        """
        full = argv_list(argv)
        if netns_pid is not None:
            full = ["nsenter", "-t", str(netns_pid), "-n", "--", *full]
        start = time.monotonic()
        try:
            if detached_stdio:
                out, err = output_fds or (subprocess.DEVNULL, subprocess.DEVNULL)
                proc = _run_detached(full, out, err, env, timeout)
            else:
                proc = subprocess.run(
                    full,
                    text=True,
                    timeout=timeout,
                    env=dict(env) if env is not None else None,
                    check=False,
                    input=input,
                    capture_output=True,
                )
        except FileNotFoundError as exc:
            raise CommandError(full, 127, f"{full[0]}: command not found") from exc
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise CommandError(full, None, stderr) from exc
        result = Result(
            tuple(full),
            proc.returncode,
            proc.stdout or "",
            proc.stderr or "",
            time.monotonic() - start,
        )
        log.debug("ran %s -> %d in %.3fs", shlex.join(full), proc.returncode, result.elapsed_s)
        if check and not result.ok:
            raise CommandError(full, proc.returncode, proc.stderr or "")
        return result

    def spawn(
        self,
        argv: Sequence[str],
        log_path: str,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        netns_pid: int | None = None,
        stdout_path: str | None = None,
    ) -> Spawned:
        """Start a long-running process in its own session, output appended to `log_path`;
        `pass_fds` stay open in it (e.g. CRIU's status pipe); `stdout_path`: its standard output
        goes to that file (truncated first), only its standard error to the log."""
        full = argv_list(argv)
        if netns_pid is not None:
            full = ["nsenter", "-t", str(netns_pid), "-n", "--", *full]
        log.debug("spawning %s (log %s)", shlex.join(full), log_path)
        return Spawned(full, log_path, env, pass_fds, stdout_path)
