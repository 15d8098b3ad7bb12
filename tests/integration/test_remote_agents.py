"""Agents reached over TCP with a token, as on other machines: `mecmig migrate` (the CLI, a
separate process) moves a live instance between two site agents that listen on their MEC hosts'
addresses (10.0.0.1:7070, 10.0.0.2:7070, inside the hosts' namespaces) and refuse requests
without the token.

Where the CLI runs, and why: in the root namespace, as an operator's would, reaching the agents
over a management link (`SiteAgents(token_file=...)`: a veth pair from the root namespace into
each MEC host and a /32 route to its agent's address). Measured here, the root namespace has no
path of its own into the emulation: it holds no 10.0.0.0/24 address, its route to 10.0.0.x is
the machine's default route out of the VM (`ip route get 10.0.0.100`: via eth0's gateway; here
something beyond it accepts every TCP connection and answers HTTP 404, which AgentClient does
not mistake for an agent's "no such instance"), and the controller installs flows only for the
scenario's hosts, so an interface on an OVS bridge would not be forwarded either. Running the
CLI inside a Mininet host instead (the UE's) would reach the agents over the data network but
not the controller's REST API, which listens on 127.0.0.1 of the root namespace. With the
management link, API calls never share the emulated links and meters with the migration
traffic (which still goes host to host through OVS: the agents' migration port is on
10.0.0.x), as a separate management network keeps them apart between machines. A health call
over it takes about a millisecond (printed by the test; 44 ms before the agent's TCP socket
got TCP_NODELAY).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from agent.token import TOKEN_HEADER
from ground.paths import CriuMissing, criu_binary
from ground.runner import Result, SubprocessRunner
from migration.site import SiteError
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.measure import Probe, wait_answering
from mininet_scenarios.testbed import Testbed
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.agent_client import AgentClient
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from tests.conftest import require
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "scenarios" / "edge.yaml"
URLS = {"mec1": "http://10.0.0.1:7070", "mec2": "http://10.0.0.2:7070"}


@dataclass
class World:
    tb: Testbed
    agents: SiteAgents
    orch: Orchestrator
    token_file: Path
    with_agents: Path  # edge.yaml with each site's `agent:` endpoint
    controller: str


def _criu() -> bool:
    try:
        criu_binary()
        return True
    except CriuMissing:
        return False


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require(shutil.which("runc") is not None, "runc is not installed (scripts/bootstrap)")
    require(_criu(), "CRIU 4.2.1 is not built (scripts/bootstrap)")
    require(shutil.which("curl") is not None, "curl is not installed (scripts/bootstrap)")
    tmp = tmp_path_factory.mktemp("remote-agents")
    token_file = tmp / "agent-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # install -m 600
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    data = yaml.safe_load(EDGE.read_text())
    for site in data["sites"]:
        site["agent"] = URLS[site["name"]]
    with_agents = tmp / "edge-agents.yaml"
    with_agents.write_text(yaml.safe_dump(data))
    sc = load_scenario(EDGE)
    with (
        make_testbed(EDGE, instance_hosts=False) as tb,
        SiteAgents(tb.emu, EDGE, token_file=token_file) as agents,
    ):
        assert agents.endpoints == URLS
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        controller = f"http://127.0.0.1:{tb.ctl.rest_port}"
        yield World(tb, agents, orch, token_file, with_agents, controller)


@pytest.fixture()
def counter(world: World) -> Iterator[str]:
    """A fresh memhog instance at mec1 (removed afterwards, wherever it ended up)."""
    world.orch.teardown("counter")
    world.orch.deploy("counter")
    wait_answering(world.tb.emu, "ue1", "10.0.0.21", 7000)
    yield "counter"
    world.orch.teardown("counter")


def _migrate(world: World, *args: str) -> tuple[Result, float]:
    """`mecmig migrate` as a separate process in the root namespace: (its result, seconds)."""
    argv = [sys.executable, "-m", "mecmig.cli", "migrate", "--controller", world.controller]
    t0 = time.monotonic()
    result = SubprocessRunner().run([*argv, *args], check=False, timeout=300)
    return result, time.monotonic() - t0


def test_the_root_namespace_reaches_the_agents_only_over_the_management_link(
    world: World,
) -> None:
    """What the module docstring says about routes, measured."""
    runner = SubprocessRunner()
    for site, ip in (("mec1", "10.0.0.1"), ("mec2", "10.0.0.2")):
        route = runner.run(["ip", "route", "get", ip]).stdout
        assert f"dev mgmt-{site}" in route, route
    elsewhere = runner.run(["ip", "route", "get", "10.0.0.100"], check=False)
    print(f"root namespace -> ue1: {(elsewhere.stdout or elsewhere.stderr).splitlines()[0]}")
    assert "mgmt-" not in elsewhere.stdout
    # whatever answers there (nothing, or something outside the VM) is not an agent, and an
    # answer that is not an agent's is never taken for "the instance is absent"
    stranger = AgentClient.at("ue1", "10.0.0.100", "http://10.0.0.100:7070")
    with pytest.raises(SiteError) as info:
        stranger.status("counter")
    print(f"an agent client pointed at ue1: {info.value}")
    client = world.agents.clients["mec1"]
    t0 = time.monotonic()
    for _ in range(20):
        client.health()
    print(f"health over the management link: {(time.monotonic() - t0) / 20 * 1000:.2f} ms")


def test_a_request_without_the_token_gets_401_and_changes_nothing(
    world: World, counter: str
) -> None:
    url = URLS["mec1"]
    assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 401
    resp = httpx.delete(f"{url}/v1/instances/{counter}", timeout=5)
    assert resp.status_code == 401 and TOKEN_HEADER in resp.json()["error"]
    wrong = {TOKEN_HEADER: "x" * 32}
    assert (
        httpx.delete(f"{url}/v1/instances/{counter}", headers=wrong, timeout=5).status_code == 401
    )
    # from another machine on the data network (the UE's namespace) just the same
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE"]
    out = world.tb.emu.run_on("ue1", [*curl, f"{url}/v1/instances/{counter}"], timeout=15)
    assert out.stdout == "401"
    assert world.agents.clients["mec1"].status(counter) == "running"
    wait_answering(world.tb.emu, "ue1", "10.0.0.21", 7000)
    # the CLI without the token is refused too, saying so; nothing moved
    result, _ = _migrate(
        world,
        counter,
        "--to",
        "mec2",
        "--scenario",
        str(world.with_agents),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "requires its token" in result.stdout and "agent at http://10.0.0.1:7070" in (
        result.stdout
    )
    assert world.orch.where(counter) == "mec1"


def test_an_unreachable_agent_is_named_with_its_endpoint(world: World, counter: str) -> None:
    result, _ = _migrate(
        world,
        counter,
        "--to",
        "mec2",
        "--scenario",
        str(EDGE),
        "--agent",
        "mec1=http://10.0.0.1:7071",  # nothing listens there
        "--agent",
        f"mec2={URLS['mec2']}",
        "--agent-token-file",
        str(world.token_file),
    )
    assert result.returncode == 1
    assert "site mec1: agent at http://10.0.0.1:7071 unreachable: connection refused" in (
        result.stdout
    ), result.stdout
    assert "is not running at any site" not in result.stdout
    assert world.orch.where(counter) == "mec1"


def test_mecmig_migrate_moves_a_live_instance_between_agents_on_tcp(
    world: World, counter: str, tmp_path: Path
) -> None:
    """There by --agent flags (post-copy), back by the scenario's `agent:` endpoints (cold),
    while the UE keeps one TCP connection to it."""
    probe = Probe(world.tb.emu, "ue1", "10.0.0.21", 7000, extra=["--stall-timeout-ms", "60000"])
    try:
        time.sleep(1.0)
        there = tmp_path / "there.json"
        result, seconds = _migrate(
            world,
            counter,
            "--to",
            "mec2",
            "--strategy",
            "postcopy",
            "--scenario",
            str(EDGE),  # no agent: endpoints: the flags say where the agents are
            *[f"--agent={site}={url}" for site, url in URLS.items()],
            "--agent-token-file",
            str(world.token_file),
            "--json",
            str(there),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads(there.read_text())
        assert record["outcome"] == "done" and record["destination"] == "mec2"
        assert world.orch.where(counter) == "mec2"
        print(f"postcopy by --agent flags: CLI {seconds:.1f} s, total {record['total_ms']:.0f} ms")
        time.sleep(1.0)
        back = tmp_path / "back.json"
        result, seconds = _migrate(
            world,
            counter,
            "--to",
            "mec1",
            "--strategy",
            "cold",
            "--scenario",
            str(world.with_agents),
            "--agent-token-file",
            str(world.token_file),
            "--json",
            str(back),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads(back.read_text())
        assert record["outcome"] == "done" and record["destination"] == "mec1"
        print(
            f"cold by the scenario's agent: CLI {seconds:.1f} s, total {record['total_ms']:.0f} ms"
        )
        time.sleep(1.5)
        assert probe.alive(), probe.failure()
        seen = probe.stop()
    finally:
        probe.close()
    assert world.orch.where(counter) == "mec1"
    brief = {k: v for k, v in seen.items() if k != "samples"}
    assert seen["same_connection"], brief
    assert seen["counter_monotonic"] and seen["fingerprint_stable"], brief
    assert seen["last_counter"] > seen["first_counter"], brief
    print(f"client-observed downtime over both hops: {seen['downtime_ms']:.0f} ms (max gap)")
    assert world.tb.ctl.client.reservations() == []
