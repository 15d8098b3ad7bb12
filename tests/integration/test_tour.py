"""The README's by-hand tour, run exactly as written: its commands are read from the README's code
block, not copied here, so the tour cannot drift from what works. The controller on its default
ports, `mecmig emulate` with agents on their MEC hosts' addresses and a token, two migrations
through them with `mecmig migrate`, then Ctrl-C (SIGINT) to both."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from ground import defaults
from ground.runner import Spawned, SubprocessRunner
from mininet_scenarios.leaks import diff, inventory
from tests.conftest import ROOT, require

MIGRATION_DONE = re.compile(r"counter mec\d -> mec\d: done")


def tour_commands() -> list[str]:
    """The shell commands of the README's by-hand block (continuations joined, comments gone)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("By hand, with the same pieces", 1)[1].split("```sh\n", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        command = line.split("#", 1)[0].strip()
        if command:
            commands.append(" ".join(command.split()))
    return commands


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait(proc: Spawned, what: str, seconds: float, ready: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready and ready in proc.stdout():
            return
        if not ready and not _free(defaults.REST_PORT):
            return
        assert proc.alive(), f"{what} ended:\n{proc.tail()}\n{proc.stdout()}"
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready after {seconds:g} s:\n{proc.tail()}\n{proc.stdout()}")


def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    require(
        _free(defaults.REST_PORT) and _free(defaults.OPENFLOW_PORT),
        f"the tour uses the default ports {defaults.REST_PORT} and {defaults.OPENFLOW_PORT}",
    )
    commands = tour_commands()
    controller, token, emulate, *migrations = (
        c
        for c in commands
        if c.split()[:2] in (["mecmig", "controller"], ["mecmig", "emulate"])
        or c.startswith(("install ", "mecmig migrate"))
    )
    assert controller.startswith("mecmig controller") and emulate.startswith("mecmig emulate")
    assert len(migrations) == 2
    runner = SubprocessRunner()
    before = inventory(runner)
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}

    def shell(command: str) -> list[str]:
        return ["bash", "-c", f"cd {tmp_path} && exec {command}"]

    ctl = runner.spawn(shell(controller), str(tmp_path / "controller.log"), env=env)
    emu: Spawned | None = None
    try:
        _wait(ctl, "the controller", 30)
        runner.run(["bash", "-c", f"cd {tmp_path} && {token}"], env=env)
        assert (tmp_path / "agent.token").stat().st_mode & 0o777 == 0o600
        emu = runner.spawn(
            shell(emulate),
            str(tmp_path / "emulate.log"),
            env=env,
            stdout_path=str(tmp_path / "emulate.out"),
        )
        _wait(emu, "mecmig emulate", 90, ready="Ctrl-C here stops everything")
        assert "http://10.0.0.1:7070" in emu.stdout()
        for command in migrations:
            result = runner.run(shell(command), env=env, timeout=180, check=False)
            out = result.stdout + result.stderr
            assert result.returncode == 0, out
            assert MIGRATION_DONE.search(out), out
            assert "HTTP Request" not in out and "INFO" not in out, "one line per phase only"
        assert (tmp_path / "mig.json").is_file()
        assert emu.stop(timeout=60) == 0, emu.tail()
        assert "stopping" in emu.stdout()
    finally:
        if emu is not None and emu.alive():
            emu.stop(timeout=60)
        code = ctl.stop(timeout=20)
    assert code == 0, ctl.tail()
    # nothing the tour started outlives it (mecmig emulate once left its first agents running)
    leaks = diff(before, inventory(runner))
    assert not leaks, leaks.describe()


@pytest.mark.parametrize("name", ["controller", "emulate", "migrate", "agent"])
def test_the_tour_commands_explain_themselves(name: str) -> None:
    result = SubprocessRunner().run(
        [str(ROOT / ".venv" / "bin" / "mecmig"), name, "--help"], timeout=60
    )
    assert result.stdout.count("\n") > 5 and "usage: mecmig " + name in result.stdout
