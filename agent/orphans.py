"""Post-copy processes that outlived their agent, adopted by the agent that starts next.

A source's lazy dump (`runc checkpoint --lazy-pages`, which keeps the service frozen while it
serves pages) and a destination's `criu lazy-pages` daemon are children of the agent that
started them. If that agent is killed, they go on: the page server must keep serving a
destination past its point of no return, and a frozen service must be thawed by a rollback.
The agent that starts next finds them by their command lines (its own runc root and instance
names, its CRIU's image directories) and takes them over as `Adopted` processes, so that
finishing, aborting or destroying the migration's side works on them as on its own children.

An adopted process is not this process's child: its exit code is unknown, so once it has ended
CRIU's own log of it decides (an `Error (` line: exit code 1, else 0); it is recognised by its
pid and start time (a reused pid is not it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ground.runner import file_tail

log = logging.getLogger(__name__)
PROC = Path("/proc")
POLL_S = 0.02


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    start: int  # /proc/PID/stat field 22: start time in clock ticks after boot
    argv: tuple[str, ...]
    pgid: int = 0  # field 5: its process group


def _stat(pid: int, proc: Path = PROC) -> tuple[int, int] | None:
    """Its start time and process group, None if it has ended (or is a zombie)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has ended, unreaped
        return None
    return int(fields[19]), int(fields[2])


def _start_time(pid: int, proc: Path = PROC) -> int | None:
    st = _stat(pid, proc)
    return None if st is None else st[0]


def processes(proc: Path = PROC) -> Iterator[ProcessInfo]:
    """Every process with a readable command line."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        st = _stat(int(entry.name), proc)
        if raw and st is not None:
            argv = tuple(a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0"))
            yield ProcessInfo(int(entry.name), st[0], argv, st[1])


def _value(argv: tuple[str, ...], flag: str) -> str | None:
    try:
        return argv[argv.index(flag) + 1]
    except (ValueError, IndexError):
        return None


def is_lazy_dump(argv: tuple[str, ...], runc_root: Path, instance: str) -> bool:
    """`runc --root RUNC_ROOT ... checkpoint ... --lazy-pages ... INSTANCE`."""
    return (
        bool(argv)
        and os.path.basename(argv[0]) == "runc"
        and _value(argv, "--root") == str(runc_root)
        and "checkpoint" in argv
        and "--lazy-pages" in argv
        and argv[-1] == instance
    )


def is_criu_dump_of(argv: tuple[str, ...], task_pid: int) -> bool:
    """CRIU dumping `task_pid` for runc (it renames itself `criu: dump --rpc -t PID`): what is
    left of a lazy dump whose runc has ended."""
    words = " ".join(argv).split()
    return words[:2] == ["criu:", "dump"] and _value(tuple(words), "-t") == str(task_pid)


def is_lazy_daemon(argv: tuple[str, ...], criu: Path, images: Path) -> bool:
    """`CRIU lazy-pages ... -D IMAGES ...` (agent.lazy.start_lazy_restore)."""
    return (
        len(argv) > 1
        and argv[0] == str(criu)
        and argv[1] == "lazy-pages"
        and _value(argv, "-D") == str(images)
    )


class Adopted:
    """A process this agent did not start, with the interface of `ground.runner.Spawned` that
    post-copy uses: wait, kill, stop, alive, tail."""

    def __init__(
        self, info: ProcessInfo, log_path: Path, criu_log: Path, proc: Path = PROC
    ) -> None:
        self.pid = info.pid
        self.start = info.start
        self.argv = info.argv
        self.log_path = log_path
        self.criu_log = criu_log
        self._proc = proc
        self.pgid: int | None = info.pgid or None

    def _code(self) -> int:
        try:
            text = self.criu_log.read_text(errors="replace")
        except OSError:
            return 0
        return 1 if "Error (" in text else 0

    def alive(self) -> bool:
        return _start_time(self.pid, self._proc) == self.start

    @property
    def returncode(self) -> int | None:
        return None if self.alive() else self._code()

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code as its CRIU log tells it once it has ended, None if it still runs
        after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive():
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(POLL_S)
        return self._code()

    def _signal(self, sig: signal.Signals, group: bool) -> None:
        """`sig` to it, or to its process group (runc's CRIU is in runc's group, and may
        outlive runc)."""
        if group and self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)
        elif self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self, group: bool = False) -> None:
        self._signal(signal.SIGKILL, group)
        self.wait(5.0)

    def stop(
        self, timeout: float = 10.0, sig: signal.Signals = signal.SIGINT, group: bool = False
    ) -> int:
        self._signal(sig, group)
        code = self.wait(timeout)
        if code is None:
            log.warning("adopted %s (pid %d) did not stop on %s; killing it",
                        self.argv[0], self.pid, sig.name)  # fmt: skip
            self.kill(group)
            return -int(signal.SIGKILL)
        if group:
            self._signal(signal.SIGKILL, group)  # what is left of its group
        return code

    def tail(self, lines: int = 20) -> str:
        return file_tail(self.log_path, lines)
