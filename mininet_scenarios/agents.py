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

from mecmig.runner import Runner, Spawned, SubprocessRunner
from migration.agent_client import AgentClient
from migration.paths import RUN_DIR, agent_socket, site_root
from migration.site import SiteError
from mininet_scenarios.emulation import Emulation, EmulationError
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
            host = self.emu.host(agent_host(site.name))
            uds = agent_socket(self.sc.name, site.name)
            root = site_root(self.sc.name, site.name)
            shutil.rmtree(root, ignore_errors=True)  # a fresh emulation: nothing to keep
            argv = [
                "nsenter",
                "-t",
                str(host.pid),
                "-n",
                "--",
                sys.executable,
                "-m",
                "mecmig.cli",
                "agent",
                "--scenario",
                str(self.scenario_path),
                "--site",
                site.name,
                "--uds",
                str(uds),
                "--root",
                str(root),
                # PID 1 may be out of reach (in a sandbox): this process is in the root netns
                "--root-netns-pid",
                str(os.getpid()),
                "--address",
                str(site.agent_ip),
            ]
            log_path = self.log_dir / f"agent-{self.sc.name}-{site.name}.log"
            self.procs[site.name] = self.runner.spawn(argv, str(log_path))
            self.clients[site.name] = AgentClient(site.name, str(site.agent_ip), uds=str(uds))
        deadline = time.monotonic() + timeout
        for name, client in self.clients.items():
            while True:
                try:
                    client.health()
                    break
                except SiteError as exc:
                    proc = self.procs[name]
                    if not proc.alive() or time.monotonic() > deadline:
                        self.stop()
                        raise EmulationError(f"agent {name} did not start:\n{proc.tail()}") from exc
                    time.sleep(0.2)
        return self

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
