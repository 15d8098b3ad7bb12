"""Site agents inside the emulation: one `mecmig agent` per site, in its MEC host's namespace.

The agents' migration traffic therefore leaves through the MEC host's interface and crosses the
emulated OVS links (and the controller's meters), as it would between real edge hosts. Their API
is served on a Unix socket, which the orchestrator reaches from the root namespace.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from types import TracebackType

from ground.paths import RUN_DIR, agent_socket, site_root
from ground.runner import Runner, Spawned, SubprocessRunner
from migration.site import SiteError
from mininet_scenarios.emulation import Emulation, EmulationError
from orchestration.agent_client import AgentClient
from topology.world import agent_host


class SiteAgents:
    """Start an agent per site; on exit remove every instance they run, then stop them."""

    def __init__(
        self,
        emu: Emulation,
        scenario_path: Path,
        runner: Runner | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.emu = emu
        self.sc = emu.scenario
        self.scenario_path = scenario_path
        self.runner = runner or SubprocessRunner()
        self.log_dir = log_dir or RUN_DIR / "logs"
        self.procs: dict[str, Spawned] = {}
        self.clients: dict[str, AgentClient] = {}

    def start(self, timeout: float = 30.0) -> SiteAgents:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for site in self.sc.sites:
            shutil.rmtree(site_root(self.sc.name, site.name), ignore_errors=True)  # fresh
            self._spawn(site.name)
        for name in self.clients:
            self._wait_ready(name, timeout)
        return self

    def _spawn(self, name: str) -> None:
        site = self.sc.site(name)
        host = self.emu.host(agent_host(name))
        uds = agent_socket(self.sc.name, name)
        argv = [
            sys.executable,
            "-m",
            "mecmig.cli",
            "agent",
            "--scenario",
            str(self.scenario_path),
            "--site",
            name,
            "--uds",
            str(uds),
            "--root",
            str(site_root(self.sc.name, name)),
            # PID 1 may be out of reach (in a sandbox): this process is in the root netns
            "--root-netns-pid",
            str(os.getpid()),
            "--address",
            str(site.agent_ip),
        ]
        log_path = self.log_dir / f"agent-{self.sc.name}-{name}.log"
        self.procs[name] = self.runner.spawn(argv, str(log_path), netns_pid=host.pid)
        self.clients[name] = AgentClient(name, str(site.agent_ip), uds=str(uds))

    def _wait_ready(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.clients[name].health()
                return
            except SiteError as exc:
                proc = self.procs[name]
                if not proc.alive() or time.monotonic() > deadline:
                    self.stop()
                    raise EmulationError(f"agent {name} did not start:\n{proc.tail()}") from exc
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
        self.procs.clear()
        self.clients.clear()

    def __enter__(self) -> SiteAgents:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
