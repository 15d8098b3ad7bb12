"""What mecmig leaves behind, for real (issue 10, why 4 and 5).

A crash: `mecmig emulate` (a child process: this test survives it) runs edge.yaml with its site
agents and an instance, is SIGKILLed, and `mecmig cleanup` must then leave nothing that was not
there before (the leak inventory, `mininet_scenarios.leaks`, compares before and after), say
"nothing to clean up" the second time, and the same scenario must emulate again.

Checkpoint images: the bytes left under the destination's instance directory after a cold hop,
and under both sites' after a pre-copy rolled back after its first round.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from agent.leaks import tree_bytes
from controller.process import ControllerProcess, free_port
from ground.paths import CriuMissing, criu_binary, site_root
from ground.runner import Result, Spawned, SubprocessRunner
from migration.engine import Migration, Plan
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.emulation import emulate
from mininet_scenarios.leaks import Inventory, LeakDiff, diff, inventory
from mininet_scenarios.measure import wait_answering
from mininet_scenarios.testbed import Testbed
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.ids import new_migration_id
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from tests.conftest import require
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "scenarios" / "edge.yaml"
READY = "Ctrl-C here stops everything"
MiB = 2**20


def _criu() -> bool:
    try:
        criu_binary()
        return True
    except CriuMissing:
        return False


@pytest.fixture(scope="module", autouse=True)
def site_programs() -> None:
    require(shutil.which("runc") is not None, "runc is not installed (scripts/bootstrap)")
    require(_criu(), "CRIU 4.2.1 is not built (scripts/bootstrap)")


def _mecmig(*args: str, timeout: float = 180) -> Result:
    argv = [sys.executable, "-m", "mecmig.cli", *args]
    return SubprocessRunner().run(argv, check=False, timeout=timeout)


def _emulate_argv(ctl: ControllerProcess, token: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "mecmig.cli", "emulate", "--scenario", str(EDGE)]
    argv += ["--controller", f"http://127.0.0.1:{ctl.rest_port}", "--of-port", str(ctl.of_port)]
    argv += ["--deploy", "counter"]
    return argv + (["--token-file", str(token)] if token else [])


def _wait_ready(proc: Spawned, timeout: float = 120) -> float:
    t0 = time.monotonic()
    while READY not in proc.stdout():
        assert proc.alive(), f"mecmig emulate ended:\n{proc.tail()}\n{proc.stdout()}"
        assert time.monotonic() - t0 < timeout, f"not up after {timeout} s:\n{proc.stdout()}"
        time.sleep(0.2)
    return time.monotonic() - t0


def _settled(before: Inventory, tries: int = 4) -> LeakDiff:
    """The diff from `before` to now, asked again for a few seconds while it shows a leak: a
    namespace's veths go with it a moment after its last process (the kernel frees it later)."""
    for _ in range(tries - 1):
        leaks = diff(before, inventory())
        if not leaks:
            return leaks
        time.sleep(1.0)
    return diff(before, inventory())


def _token(tmp_path: Path) -> Path:
    path = tmp_path / "agent.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    return path


@pytest.mark.parametrize("agents", ["tcp", "uds"])
def test_cleanup_after_a_crash_leaves_nothing_and_the_scenario_runs_again(
    tmp_path: Path, agents: str
) -> None:
    token = _token(tmp_path) if agents == "tcp" else None
    runner = SubprocessRunner()
    with ControllerProcess(EDGE) as ctl:
        before = inventory()
        emu = runner.spawn(
            _emulate_argv(ctl, token),
            str(tmp_path / "emulate.log"),
            stdout_path=str(tmp_path / "emulate.out"),
        )
        try:
            up_s = _wait_ready(emu)
            up = diff(before, inventory())
            emu.kill()  # SIGKILL: none of its clean-up runs
            time.sleep(0.5)
            crashed = diff(before, inventory())  # what the crash left
        finally:
            emu.kill()
            t0 = time.monotonic()
            first = _mecmig("cleanup")  # always: a failed assertion must not leave the crash
            cleanup_s = time.monotonic() - t0
        # the inventory sees what an emulation with agents and an instance makes
        print(f"\nemulation up in {up_s:.1f} s; it made:\n{up.describe()}")
        assert up.added["ovs_bridges"] == ["core", "s1", "s2"]
        assert "edge-mec1/counter" in up.added["runc_containers"]
        assert "mecmig-counter-mec1" in up.added["netns"]
        assert sum(p.startswith("mecmig agent ") for p in up.added["processes"]) == 2
        assert {"s1-eth1", "core-eth1", "vs1p3"} <= set(up.added["veths"])
        if token is not None:
            assert {"mgmt-mec1", "mgmt-mec2"} <= set(up.added["veths"])
        else:
            assert set(up.added["agent_sockets"]) == {"edge-mec1.sock", "edge-mec2.sock"}
        print(f"SIGKILLed; it left:\n{crashed.describe()}")
        assert crashed.added["veths"] and crashed.added["processes"], crashed.describe()

        print(f"mecmig cleanup ({cleanup_s:.1f} s):\n{first.stdout}{first.stderr}")
        assert first.returncode == 0, first.stderr
        leaks = _settled(before)
        assert not leaks, f"left after mecmig cleanup:\n{leaks.describe()}\n{first.stdout}"
        second = _mecmig("cleanup")
        assert second.returncode == 0 and "nothing to clean up" in second.stdout, second.stdout
    # the same scenario starts again, and a clean stop leaves nothing either
    with ControllerProcess(EDGE) as ctl:
        t0 = time.monotonic()
        again = runner.run(
            [*_emulate_argv(ctl, token), "--duration", "3"], check=False, timeout=180
        )
        print(f"a new emulation of edge ran for 3 s and stopped: {time.monotonic() - t0:.1f} s")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "emulation of edge is up" in again.stdout, again.stdout
    leaks = _settled(before)
    assert not leaks, f"left after a clean stop:\n{leaks.describe()}"


def test_an_emulation_in_a_long_lived_process_leaves_no_shell() -> None:
    """Mininet's RemoteController never ends its node's shell; the emulation's teardown does."""
    before = inventory()
    with emulate(load_scenario(EDGE), controller=("127.0.0.1", free_port())) as emu:
        assert emu.net.controllers
    leaks = _settled(before)
    assert not leaks, leaks.describe()


# ------------------------------------------------------------------ checkpoint images


@dataclass
class World:
    tb: Testbed
    agents: SiteAgents
    orch: Orchestrator


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    sc = load_scenario(EDGE)
    with make_testbed(EDGE, instance_hosts=False) as tb, SiteAgents(tb.emu, EDGE) as agents:
        yield World(tb, agents, Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client)))


@pytest.fixture()
def counter(world: World) -> Iterator[str]:
    """A fresh memhog (64 MiB, edge.yaml) at mec1, removed afterwards wherever it is."""
    world.orch.teardown("counter")
    world.orch.deploy("counter")
    wait_answering(world.tb.emu, "ue1", "10.0.0.21", 7000)
    yield "counter"
    world.orch.teardown("counter")


def _left(site: str, instance: str) -> dict[str, int]:
    """Bytes under the instance's directory at `site`: in all, and its checkpoint images."""
    d = site_root("edge", site) / instance
    return {
        "total": tree_bytes(d),
        "images": tree_bytes(d / "xfer" / "images"),
        "predump": tree_bytes(d / "xfer" / "predump"),
        "exists": int(d.exists()),
    }


def _mib(left: dict[str, int]) -> str:
    return ", ".join(
        f"{k} {v / MiB:.2f} MiB" if k != "exists" else f"dir {'present' if v else 'gone'}"
        for k, v in left.items()
    )


def test_a_cold_hop_leaves_no_images_at_the_destination(world: World, counter: str) -> None:
    record = world.orch.migrate(counter, "mec2", strategy="cold", budget_ms=2000)
    assert world.orch.where(counter) == "mec2", record
    left = _left("mec2", counter)
    print(f"\nafter a cold hop of a 64 MiB memhog, at the destination: {_mib(left)}")
    assert left["images"] == 0 and left["predump"] == 0
    assert left["total"] < 1 * MiB  # bundle, spec, /data, CRIU's logs


def _rolled_back_precopy(world: World, instance: str) -> Migration:
    orch = world.orch
    plan = Plan(
        instance=instance,
        source=orch.site("mec1"),
        destination=orch.site("mec2"),
        destination_site="mec2",
        destination_port=orch.port_at(instance, "mec2"),
    )
    mig = Migration(
        replace(plan, strategy="precopy"),
        RestControllerLink(world.tb.ctl.client),
        migration_id=new_migration_id(),
    )
    mig.prepare()
    mig.precopy_round()  # a full dump left running, sent to the destination
    return mig


def test_a_rolled_back_precopy_leaves_nothing_at_the_destination(
    world: World, counter: str
) -> None:
    mig = _rolled_back_precopy(world, counter)
    sent = _left("mec2", counter)
    print(f"\nafter pre-copy round 1, at the destination: {_mib(sent)}")
    assert sent["images"] > 16 * MiB
    mig.rollback(RuntimeError("test: abandoned after its first round"))
    assert world.orch.where(counter) == "mec1"
    left = _left("mec2", counter)
    print(f"after the rollback, at the destination: {_mib(left)}")
    assert left["exists"] == 0 and left["total"] == 0
    print(f"after the rollback, at the source: {_mib(_left('mec1', counter))}")


def test_a_rolled_back_precopy_leaves_no_images_at_the_source(world: World, counter: str) -> None:
    mig = _rolled_back_precopy(world, counter)
    mig.rollback(RuntimeError("test: abandoned after its first round"))
    left = _left("mec1", counter)
    print(f"\nafter the rollback, at the source: {_mib(left)}")
    assert left["images"] == 0


def test_a_destination_unreachable_at_rollback_keeps_its_images_until_its_agent_restarts(
    world: World, counter: str
) -> None:
    """Why the issue saw 264 MiB at a destination until its agent restarted: a rollback cannot
    wipe a destination whose agent does not answer; the agent removes it when it starts."""
    mig = _rolled_back_precopy(world, counter)
    world.agents.kill("mec2")
    try:
        mig.rollback(RuntimeError("test: destination agent gone"))
        left = _left("mec2", counter)
        print(f"\nrolled back with mec2's agent down, at mec2: {_mib(left)}")
        assert left["images"] > 16 * MiB
    finally:
        world.agents.restart("mec2")
    left = _left("mec2", counter)
    print(f"after mec2's agent restarted: {_mib(left)}")
    assert left["exists"] == 0
