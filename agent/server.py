"""`mecmig agent`: serve one MEC site's agent API (Unix socket and/or TCP) until stopped.

Before it serves, the agent refuses setups that cannot work or are unsafe (`AgentSetupError`,
exit 2): a bridge it cannot see where it would plug containers in, and a non-loopback TCP
address without a token.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import uvicorn

from agent.api import create_agent_app
from agent.container import SiteContainers
from agent.netns import ContainerNetwork
from agent.runc import Runc
from agent.service import SiteService
from agent.service_logs import ServiceLogs
from ground.defaults import MIGRATION_PORT
from ground.paths import RUN_DIR, criu_binary
from ground.runner import Runner, SubprocessRunner
from ground.token import is_loopback
from topology.scenario import Scenario

log = logging.getLogger("mecmig.agent")
ROOT_NETNS_HINT = "--root-netns-pid <PID of a process in the namespace where OVS runs, e.g. 1>"


class AgentSetupError(Exception):
    """An agent setup refused before serving: what is wrong and what to pass instead."""


def check_bridge(runner: Runner, site: str, bridge: str, root_netns_pid: int | None) -> None:
    """The site's bridge must be visible where containers are plugged in: the agent's own
    network namespace, or that of `root_netns_pid`. Otherwise every container would be plugged
    into a namespace without it (an agent inside a Mininet host, with no --root-netns-pid)."""
    result = runner.run(
        ["ip", "link", "show", bridge], check=False, timeout=10, netns_pid=root_netns_pid
    )
    if result.ok:
        return
    said = (result.stderr or result.stdout).strip().splitlines()
    why = f" (`ip link show {bridge}`: {said[-1]})" if said else ""
    if root_netns_pid is None:
        raise AgentSetupError(
            f"site {site}: its bridge {bridge} is not in this agent's network namespace{why}: "
            f"if the agent runs in another namespace than OVS (e.g. a Mininet host), pass "
            f"{ROOT_NETNS_HINT}"
        )
    raise AgentSetupError(
        f"site {site}: its bridge {bridge} is not in the network namespace of PID "
        f"{root_netns_pid}{why}: pass {ROOT_NETNS_HINT}"
    )


def parse_listen(text: str) -> tuple[str, int]:
    """`IP:PORT` (IPv4) -> (ip, port); ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected IP:PORT, e.g. 10.0.0.1:7070")
    try:
        ipaddress.IPv4Address(host)
    except ValueError as exc:
        raise ValueError(f"--listen {text!r}: {host!r} is not an IPv4 address") from exc
    return host, int(port)


def check_listen(tcp: tuple[str, int] | None, token: str | None) -> None:
    """A TCP address other machines can reach needs a token (see ground.token)."""
    if tcp is not None and token is None and not is_loopback(tcp[0]):
        raise AgentSetupError(
            f"--listen {tcp[0]}:{tcp[1]} is reachable from other machines: pass --token-file "
            "PATH (a shared secret the orchestrator sends too, in a file of mode 600: "
            "`install -m 600 /dev/null PATH && head -c 32 /dev/urandom | base64 > PATH`), "
            "or listen on 127.0.0.1 or a Unix socket (--uds)"
        )


def build_agent(
    sc: Scenario,
    site: str,
    root: Path,
    listen_ip: str,
    root_netns_pid: int | None,
    runner: SubprocessRunner | None = None,
    files_from: Iterable[Path] | None = None,
) -> SiteService:
    """The agent of `site`: its containers on the site's bridge, its own runc root, copying
    specs' files only from `files_from` (default agent.files.allowed_dirs()).
    AgentSetupError if the site's bridge is not where it would plug containers in."""
    bridge = sc.site(site).switch_name
    runner = runner or SubprocessRunner()
    check_bridge(runner, site, bridge, root_netns_pid)
    runc = Runc(runner, RUN_DIR / "runc" / f"{sc.name}-{site}", criu_binary(), root / "logs")
    net = ContainerNetwork(runner, root_netns_pid, site)
    containers = SiteContainers(site, root, bridge, runc, net, ServiceLogs(runner))
    containers.collect_abandoned_targets()
    # soft-dirty tracking decides whether iterative pre-dumps are possible on this kernel
    check = runner.run([str(criu_binary()), "check", "--feature", "mem_dirty_track"], check=False)
    tracks = check.returncode == 0
    log.info(
        "site %s: CRIU dirty memory tracking %s",
        site,
        "available" if tracks else "not available (full dumps + delta)",
    )
    service = SiteService(
        containers,
        listen_ip,
        MIGRATION_PORT,
        spawner=runner,
        mem_dirty_track=tracks,
        files_from=files_from,
    )
    service.adopt_orphans()  # a previous agent's post-copy processes, if it was killed
    return service


def listening_sockets(uds: Path | None, tcp: tuple[str, int] | None) -> list[socket.socket]:
    """The agent's bound sockets: the Unix socket (mode 0600 from the start) and TCP.
    AgentSetupError if an agent already answers there or the address is not this host's."""
    sockets: list[socket.socket] = []
    try:
        if uds is not None:
            sockets.append(_unix_socket(uds))
        if tcp is not None:
            sockets.append(_tcp_socket(tcp))
    except BaseException:
        for s in sockets:
            s.close()
        raise
    if not sockets:
        raise ValueError("the agent needs a Unix socket or a TCP address to serve on")
    return sockets


def _unix_socket(uds: Path) -> socket.socket:
    uds.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(uds))
            raise AgentSetupError(f"an agent already serves on {uds}: stop it first")
        except OSError:
            pass  # nobody answers there: a stale socket file, or none
    uds.unlink(missing_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # root only, from the moment it exists
    try:
        s.bind(str(uds))
    except OSError as exc:
        s.close()
        raise AgentSetupError(f"cannot serve on {uds}: {exc.strerror or exc}") from exc
    finally:
        os.umask(umask)
    os.chmod(uds, 0o600)
    return s


def _tcp_socket(tcp: tuple[str, int]) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP. Without it
    # every API call waited for a delayed ACK (44 ms per call over TCP, 1.2 ms with it)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(tcp)
    except OSError as exc:
        s.close()
        hint = {
            errno.EADDRNOTAVAIL: f": no interface in this network namespace has {tcp[0]} (run "
            "the agent on the site's MEC host, in its namespace)",
            errno.EADDRINUSE: ": the port is taken (an agent already serving there?)",
        }.get(exc.errno or 0, "")
        raise AgentSetupError(
            f"cannot listen on {tcp[0]}:{tcp[1]}: {exc.strerror or exc}{hint}"
        ) from exc
    return s


def serve_agent(
    service: SiteService,
    uds: Path | None,
    tcp: tuple[str, int] | None,
    token: str | None = None,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve the agent's API (on `sockets` if already bound by `listening_sockets(uds, tcp)`);
    uvicorn stops on SIGINT/SIGTERM."""
    check_listen(tcp, token)
    if sockets is None:
        sockets = listening_sockets(uds, tcp)
    app = create_agent_app(service, token)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    log.info(
        "agent for site %s serving on %s%s",
        service.name,
        ", ".join(str(x) for x in (uds, tcp) if x),
        " (token required over non-loopback TCP)" if token else "",
    )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        if uds is not None:
            uds.unlink(missing_ok=True)
