"""Fakes for tests of what reads /proc and runs commands: a /proc tree in a directory, and a
runner that answers scripted output by argv (and records every call)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ground.runner import Result, Spawned


def fake_process(
    proc: Path,
    pid: int,
    argv: Sequence[str],
    *,
    start: int = 1000,
    netns: str = "net:[4026531840]",
    cwd: str = "/",
    fds: int = 0,
    interfaces: Sequence[str] = (),
    ppid: int = 1,
) -> Path:
    """Add process `pid` to the fake /proc at `proc`; return its directory."""
    d = proc / str(pid)
    (d / "ns").mkdir(parents=True, exist_ok=True)
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    comm = os.path.basename(argv[0])[:15] if argv else "kthread"
    # the command name may hold spaces and parentheses: the parser must count from the last ')'
    fields = ["S", str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 10
    (d / "stat").write_text(f"{pid} ({comm} (x) y) {' '.join(fields)}\n")
    (d / "ns" / "net").symlink_to(netns)
    (d / "cwd").symlink_to(cwd)
    (d / "fd").mkdir()
    for fd in range(fds):
        (d / "fd" / str(fd)).symlink_to("/dev/null")
    (d / "net").mkdir()
    dev = ["Inter-|   Receive", " face |bytes"] + [f"{i}: 0 0 0" for i in ("lo", *interfaces)]
    (d / "net" / "dev").write_text("\n".join(dev) + "\n")
    return d


class ScriptedRunner:
    """A Runner: `answers` maps an argv prefix (tuple) to stdout, or to a function of the argv
    returning (returncode, stdout); unknown commands succeed with no output."""

    def __init__(
        self, answers: Mapping[tuple[str, ...], str | Callable[[list[str]], tuple[int, str]]]
    ) -> None:
        self.answers = dict(answers)
        self.calls: list[list[str]] = []

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
        argv = list(argv)
        self.calls.append(argv)
        best: tuple[str, ...] | None = None
        for prefix in self.answers:
            if tuple(argv[: len(prefix)]) == prefix and (best is None or len(prefix) > len(best)):
                best = prefix
        code, out = 0, ""
        if best is not None:
            answer = self.answers[best]
            code, out = answer(argv) if callable(answer) else (0, answer)
        return Result(tuple(argv), code, out, "" if code == 0 else "failed", 0.0)

    def spawn(
        self,
        argv: Sequence[str],
        log_path: str,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        netns_pid: int | None = None,
        stdout_path: str | None = None,
    ) -> Spawned:
        raise AssertionError(f"unexpected spawn of {argv}")

    def ran(self, *prefix: str) -> list[list[str]]:
        """The calls that began with `prefix`."""
        return [c for c in self.calls if tuple(c[: len(prefix)]) == prefix]
