"""The README's server and chain tours, run exactly as written (their commands are read from
the README's code blocks): Debian's servers deployed, moved, read back and stopped
(scenarios/servers.yaml); the same from images made by `mecmig image pack`
(scenarios/images.yaml), where the first migration to mec2 sends the image and the move back
sends none; a 3-function chain moved there and back with two patterns (scenarios/chains.yaml);
a car's key-value store following it past three sites (scenarios/drive.yaml).
Each command must exit 0; nothing outlives the tour."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from ground import defaults
from ground.paths import site_root
from ground.runner import Spawned, SubprocessRunner
from mininet_scenarios.leaks import diff, inventory
from tests.conftest import ROOT, require
from tests.integration.test_tour import _free, _wait

BLOCKS = {
    "servers": "Real servers as Debian ships them",
    "images": "The same servers from images",
    "chains": "A whole service function chain",
    "follow": "### Follow-me: services that follow their users",
}


def block_commands(start: str) -> list[str]:
    """The shell commands of the README's code block after `start` (continuations joined,
    comments gone)."""
    text = (ROOT / "README.md").read_text()
    block = text.split(start, 1)[1].split("```sh\n", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        command = line.split("  #", 1)[0].strip()
        if command:
            commands.append(" ".join(command.split()))
    return commands


@pytest.mark.parametrize("tour", list(BLOCKS))
def test_a_tour_works_as_written(tmp_path: Path, tour: str) -> None:
    require(
        _free(defaults.REST_PORT) and _free(defaults.OPENFLOW_PORT),
        f"the tour uses the default ports {defaults.REST_PORT} and {defaults.OPENFLOW_PORT}",
    )
    commands = block_commands(BLOCKS[tour])
    shutil.copytree(
        ROOT / "scenarios", tmp_path / "scenarios", ignore=shutil.ignore_patterns("images")
    )
    runner = SubprocessRunner()
    before = inventory(runner)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}

    def shell(command: str) -> list[str]:
        return ["bash", "-c", f"cd {tmp_path} && exec {command}"]

    background: list[Spawned] = []
    outputs: list[str] = []
    try:
        for command in commands:
            word = command.split()[1]
            if word in ("controller", "emulate"):
                proc = runner.spawn(
                    shell(command),
                    str(tmp_path / f"{word}.log"),
                    env=env,
                    stdout_path=str(tmp_path / f"{word}.out"),
                )
                background.append(proc)
                if word == "controller":
                    _wait(proc, "the controller", 30)
                else:
                    _wait(proc, "mecmig emulate", 90, ready="Ctrl-C here stops everything")
                continue
            result = runner.run(shell(command), env=env, timeout=300, check=False)
            out = result.stdout + result.stderr
            assert result.returncode == 0, f"{command}\n{out}"
            assert "HTTP Request" not in out, out
            outputs.append(out)
        for proc in reversed(background):
            assert proc.stop(timeout=60) == 0, proc.tail()
    finally:
        for proc in background:
            if proc.alive():
                proc.stop(timeout=60)
        time.sleep(0.5)
    said = "\n".join(outputs)
    if tour == "follow":  # the car's store followed it to mec3, by two speculative moves
        assert '"moves_done":2' in said and '"moves_cancelled":0' in said, said
        assert any(re.search(r"\bkv\b.*\bmec3\b.*\brunning\b", ln) for ln in said.splitlines())
    else:
        assert said.count(": done, total") == 2, said
    if tour == "chains":
        assert "(wait-for-me, precopy)" in said and "(round-robin, cold, network-aware)" in said
    if tour == "images":
        assert "sent to mec2 (it had not got it)" in said, said
        assert "not sent (mec1 had it)" in said, said
        for site in ("mec1", "mec2", "mec3"):  # the image stores the tour filled
            shutil.rmtree(site_root("images", site), ignore_errors=True)
    leaks = diff(before, inventory(runner))
    assert not leaks, leaks.describe()
