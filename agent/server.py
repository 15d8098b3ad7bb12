"""`mecmig agent`: serve one MEC site's agent API (Unix socket and/or TCP) until stopped."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import uvicorn

from agent.api import Agent, create_agent_app
from agent.container import SiteContainers
from agent.netns import ContainerNetwork
from agent.runc import Runc
from ground.defaults import MIGRATION_PORT
from ground.paths import RUN_DIR, criu_binary
from ground.runner import SubprocessRunner
from topology.scenario import Scenario

log = logging.getLogger("mecmig.agent")


def build_agent(
    sc: Scenario, site: str, root: Path, listen_ip: str, root_netns_pid: int | None
) -> Agent:
    """The agent of `site`: its containers on the site's bridge, its own runc root."""
    bridge = sc.site(site).switch_name
    runner = SubprocessRunner()
    runc = Runc(runner, RUN_DIR / "runc" / f"{sc.name}-{site}", criu_binary(), root / "logs")
    net = ContainerNetwork(runner, root_netns_pid, site)
    containers = SiteContainers(site, root, bridge, runc, net)
    containers.collect_abandoned_targets()
    agent = Agent(containers, listen_ip, MIGRATION_PORT)
    # soft-dirty tracking decides whether iterative pre-dumps are possible on this kernel
    check = runner.run([str(criu_binary()), "check", "--feature", "mem_dirty_track"], check=False)
    agent.mem_dirty_track = check.returncode == 0
    log.info(
        "site %s: CRIU dirty memory tracking %s",
        site,
        "available" if agent.mem_dirty_track else "not available (full dumps + delta)",
    )
    return agent


def serve_agent(agent: Agent, uds: Path | None, tcp: tuple[str, int] | None) -> None:
    """Serve the agent's API; uvicorn stops on SIGINT/SIGTERM."""
    sockets = []
    if uds is not None:
        uds.parent.mkdir(parents=True, exist_ok=True)
        uds.unlink(missing_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(uds))
        os.chmod(uds, 0o600)
        sockets.append(s)
    if tcp is not None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(tcp)
        sockets.append(s)
    if not sockets:
        raise ValueError("the agent needs a Unix socket or a TCP address to serve on")
    config = uvicorn.Config(create_agent_app(agent), log_level="warning", lifespan="off")
    log.info(
        "agent for site %s serving on %s",
        agent.sites.site,
        ", ".join(str(x) for x in (uds, tcp) if x),
    )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        if uds is not None:
            uds.unlink(missing_ok=True)
