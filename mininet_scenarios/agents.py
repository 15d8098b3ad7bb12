"""Site agents inside the emulation: one `mecmig agent` per site, in its MEC host's namespace.

The agents' migration traffic therefore leaves through the MEC host's interface and crosses the
emulated OVS links (and the controller's meters), as it would between real edge hosts.

Their API is served either on a Unix socket (the default), which the orchestrator reaches from
the root namespace, or, with `token_file`, on TCP at the MEC host's own address
(`10.0.0.1:7070`), requiring the token, as agents on other machines do. The root namespace has
no route into the emulated network (it has no address there, and the controller forwards only
the scenario's hosts), so in TCP mode each MEC host also gets a management link: a veth pair
from the root namespace into the host (169.254.77.0/24, a /30 per site) and a /32 route to the
agent's address over it. Orchestrator-to-agent calls then take the path a management network
gives them between machines, and migration traffic still crosses the emulated data network.

The agents (started in their own sessions, they outlive a crash of this process) and the
management links are added to the emulation's record, so `mecmig cleanup` removes them after one.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import time
from pathlib import Path
from types import TracebackType

from agent.token import read_token_file
from ground.defaults import AGENT_PORT
from ground.paths import RUN_DIR, agent_socket, site_root
from ground.runner import Runner, Spawned, SubprocessRunner
from migration.site import SiteError
from mininet_scenarios.emulation import Emulation, EmulationError
from orchestration.agent_client import AgentClient
from topology.world import agent_host

MANAGEMENT_NET = ipaddress.IPv4Network("169.254.77.0/24")  # link-local: never the scenario's
MANAGEMENT_IF = "mgmt0"  # inside the MEC host


class SiteAgents:
    """Start an agent per site; on exit remove every instance they run, then stop them.

    `token_file`: TCP mode (see the module docstring); `clients` then send the token, and
    `endpoints` are the agents' `http://IP:7070` (for `mecmig migrate --agent`)."""

    def __init__(
        self,
        emu: Emulation,
        scenario_path: Path,
        runner: Runner | None = None,
        log_dir: Path | None = None,
        *,
        token_file: Path | None = None,
    ) -> None:
        self.emu = emu
        self.sc = emu.scenario
        self.scenario_path = scenario_path
        self.runner = runner or SubprocessRunner()
        self.log_dir = log_dir or RUN_DIR / "logs"
        self.token_file = token_file
        self.token = read_token_file(token_file) if token_file is not None else None
        self.procs: dict[str, Spawned] = {}
        self.clients: dict[str, AgentClient] = {}
        self.endpoints: dict[str, str] = {}
        self._links: list[str] = []

    def start(self, timeout: float = 30.0) -> SiteAgents:
        """Start the agents (once: `SiteAgents(...).start()` then `with agents:` used to start
        a second set, which wiped the first set's directories and replaced its management
        links, and left the first agents running for good after the emulation stopped)."""
        if self.procs:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for index, site in enumerate(self.sc.sites):
                shutil.rmtree(site_root(self.sc.name, site.name), ignore_errors=True)  # fresh
                if self.token is not None:
                    self._management_link(index, site.name)
                self._spawn(site.name)
            for name in self.clients:
                self._wait_ready(name, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _management_link(self, index: int, name: str) -> None:
        """A veth from the root namespace into the site's MEC host, and a route to its agent's
        address over it (the only route from here into the emulation)."""
        root_if = f"mgmt-{name}"[:15]
        pid = self.emu.host(agent_host(name)).pid
        subnet = list(MANAGEMENT_NET.subnets(new_prefix=30))[index]
        root_ip, host_ip = list(subnet.hosts())
        agent_ip = self.sc.site(name).agent_ip
        self.runner.run(["ip", "link", "del", root_if], check=False)  # a crashed run's
        if self.emu.record is not None:  # recorded first: a crash right after leaves no stranger
            self.emu.record.add_link(root_if)
        self.runner.run(
            ["ip", "link", "add", root_if, "type", "veth", "peer", "name", MANAGEMENT_IF]
            + ["netns", str(pid)]
        )
        self._links.append(root_if)
        self.runner.run(["ip", "addr", "add", f"{root_ip}/30", "dev", root_if])
        self.runner.run(["ip", "link", "set", root_if, "up"])
        self.runner.run(["ip", "addr", "add", f"{host_ip}/30", "dev", MANAGEMENT_IF], netns_pid=pid)
        self.runner.run(["ip", "link", "set", MANAGEMENT_IF, "up"], netns_pid=pid)
        self.runner.run(
            ["ip", "route", "replace", f"{agent_ip}/32", "via", str(host_ip), "dev", root_if]
        )

    def _spawn(self, name: str) -> None:
        site = self.sc.site(name)
        host = self.emu.host(agent_host(name))
        argv = [
            sys.executable,
            "-m",
            "mecmig.cli",
            "agent",
            "--scenario",
            str(self.scenario_path),
            "--site",
            name,
            "--root",
            str(site_root(self.sc.name, name)),
            # PID 1 may be out of reach (in a sandbox): this process is in the root netns
            "--root-netns-pid",
            str(os.getpid()),
            "--address",
            str(site.agent_ip),
        ]
        uds = None
        if self.token_file is not None:
            argv += ["--listen", f"{site.agent_ip}:{AGENT_PORT}", "--token-file"]
            argv.append(str(self.token_file))
            endpoint = f"http://{site.agent_ip}:{AGENT_PORT}"
        else:
            uds = agent_socket(self.sc.name, name)
            argv += ["--uds", str(uds)]
            endpoint = f"unix:{uds}"
        log_path = self.log_dir / f"agent-{self.sc.name}-{name}.log"
        self.procs[name] = self.runner.spawn(argv, str(log_path), netns_pid=host.pid)
        if self.emu.record is not None:  # it outlives a crash of this process: say it is ours
            self.emu.record.add_agent(name, self.procs[name].pid, uds)
        self.endpoints[name] = endpoint
        self.clients[name] = AgentClient.at(name, str(site.agent_ip), endpoint, token=self.token)

    def _wait_ready(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.clients[name].health()
                return
            except SiteError as exc:
                proc = self.procs[name]
                if not proc.alive() or time.monotonic() > deadline:
                    raise EmulationError(
                        f"agent {name} did not start ({exc}):\n{proc.tail()}"
                    ) from exc
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL one site's agent (what it runs stays: containers outlive their agent)."""
        self.procs[name].kill()

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Start one site's agent again, keeping its directory (as after a crash)."""
        self.procs[name].stop()
        self._spawn(name)
        self._wait_ready(name, timeout)

    def stop(self) -> None:
        for client in self.clients.values():
            try:
                for instance in client.health()["instances"]:
                    client.destroy(instance)
            except SiteError:
                pass  # the agent is gone; what it left is removed by `mecmig cleanup`
            client.close()
        for proc in self.procs.values():
            proc.stop()
        for link in self._links:  # its peer in the MEC host, and the route, go with it
            self.runner.run(["ip", "link", "del", link], check=False)
        self.procs.clear()
        self.clients.clear()
        self.endpoints.clear()
        self._links.clear()

    def __enter__(self) -> SiteAgents:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
