"""The rig of `mecmig bench reliability`: one testbed for the whole run, a counting client, and
what is checked after each migration.

The rig holds the controller process, the emulation of scenarios/reliability.yaml, an agent per
site and an orchestrator, as `mecmig migrate` would use them. The service is Debian's memcached;
its client (`workloads.memcached_probe` at ue1, one TCP connection, one `incr` every 5 ms, the
next only after the reply) counts in the service's memory, so the counter is the state. After a
migration (and the recovery a person would do: restart what was killed, bring back a link),
`assess` says where the service runs, whether its counter survived and whether the client kept
its connection; `inventory` counts what mecmig left behind (`mininet_scenarios.leaks`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.leaks import processes
from controller.process import ControllerProcess
from ground.paths import site_root
from ground.runner import Spawned, SubprocessRunner
from mecmig.bench.site_tmpfs import is_bench_tmpfs, proc_mounts, site_tmpfs
from migration.site import SiteError
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.emulation import Emulation, emulate
from mininet_scenarios.leaks import Inventory, inventory
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from topology.scenario import Scenario, load_scenario
from topology.world import agent_host

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "reliability.yaml"
INSTANCE, PORT = "cache", 11211
SOURCE, DESTINATION, CLIENT = "mec1", "mec2", "ue1"
INTERVAL_MS = 5.0
SMALL_DISK = "256m"  # the destination site's own filesystem (the disk-full fault fills it)


@dataclass
class Probe:
    """The counting client running at ue1; `stop()` returns its JSON result."""

    proc: Spawned
    output: Path
    key: str

    def stop(self) -> dict[str, Any]:
        self.proc.stop(timeout=30)
        try:
            doc: dict[str, Any] = json.loads(self.output.read_text())
        except (OSError, ValueError):
            doc = {"replies": 0, "error": self.proc.tail()}
        return doc


@dataclass
class Assessment:
    """Where the service runs after a migration and its recovery, and in what shape."""

    running_at: list[str]  # sites whose agent says it runs there
    counter: int | None  # the client's counter read over a new connection (None: no answer)
    state_intact: bool
    connection_kept: bool
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def service_at(self) -> str:
        if self.counter is None:
            return "nowhere" if not self.running_at else f"{'+'.join(self.running_at)} (mute)"
        if len(self.running_at) == 1:
            return {SOURCE: "source", DESTINATION: "destination"}.get(
                self.running_at[0], self.running_at[0]
            )
        return "+".join(self.running_at) or "unknown"


class Rig:
    """Controller, emulation, agents and orchestrator for the reliability benchmark."""

    def __init__(self, stack: contextlib.ExitStack, work: Path) -> None:
        self.work = work
        self.sc: Scenario = load_scenario(SCENARIO)
        self.ctl: ControllerProcess = stack.enter_context(ControllerProcess(SCENARIO))
        self.emu: Emulation = stack.enter_context(
            emulate(self.sc, controller=("127.0.0.1", self.ctl.of_port), instance_hosts=False)
        )
        self.ctl.wait_switches()
        self.runner = SubprocessRunner()
        self.small_disk = site_root(self.sc.name, DESTINATION)
        self._mount_small_disk(stack)
        self.agents: SiteAgents = stack.enter_context(
            SiteAgents(self.emu, SCENARIO, log_dir=work / "logs")
        )
        self.link = RestControllerLink(self.ctl.client)
        self.orch = Orchestrator(self.sc, self.agents.clients, self.link)
        self.ip = str(self.sc.instance(INSTANCE).ip)
        self._probes = 0

    def _mount_small_disk(self, stack: contextlib.ExitStack) -> None:
        """The destination's site directory on its own small tmpfs (SMALL_DISK), so that the
        disk-full fault fills that, never this machine's disk; unmounted after the agents."""
        stack.enter_context(site_tmpfs(self.runner, self.small_disk, SMALL_DISK))

    def disk_is_small(self) -> bool:
        """Whether the destination's directory is the bench's own tmpfs (checked before filling)."""
        return is_bench_tmpfs(self.small_disk, proc_mounts())

    # ------------------------------------------------------------------ the service

    def site_switch(self, site: str) -> str:
        return self.sc.site(site).switch_name

    def deploy(self) -> None:
        """memcached afresh at mec1, answering."""
        self.orch.teardown(INSTANCE)
        self.orch.deploy(INSTANCE, SOURCE)
        deadline = time.monotonic() + 20
        while self.read_counter("mecmig:ready", timeout=0.5) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{INSTANCE} does not answer at {self.ip}:{PORT}")
            time.sleep(0.2)

    def start_probe(self) -> Probe:
        self._probes += 1
        key = f"mecmig:bench:{self._probes}:{time.monotonic_ns()}"
        output = self.work / f"probe-{self._probes}.json"
        output.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "workloads.memcached_probe"]
        argv += [self.ip, str(PORT), "--duration", "0", "--interval-ms", str(INTERVAL_MS)]
        argv += ["--mode", "rr", "--json", "--key", key, "--output", str(output)]
        argv += ["--stall-timeout-ms", "120000"]
        proc = self.emu.spawn_on(
            CLIENT, argv, str(self.work / f"probe-{self._probes}.log"), stdout_path="/dev/null"
        )
        deadline = time.monotonic() + 10
        while self.read_counter(key, timeout=0.5) is None:  # its first `set` has landed
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the client did not start:\n{proc.tail()}")
            time.sleep(0.1)
        return Probe(proc, output, key)

    def read_counter(self, key: str, timeout: float = 2.0) -> int | None:
        """`get key` over a new connection from ue1: the value, 0 for a key it does not hold
        (`mecmig:ready`), None when the service does not answer."""
        script = (
            "import socket,sys\n"
            f"s=socket.create_connection(({self.ip!r},{PORT}),timeout={timeout})\n"
            f"s.sendall(b'get {key}\\r\\n')\n"
            "b=b''\n"
            "while not b.endswith(b'END\\r\\n'):\n"
            "    c=s.recv(4096)\n"
            "    if not c: break\n"
            "    b+=c\n"
            "sys.stdout.write(b.decode().replace('\\r\\n', ' '))\n"
        )
        res = self.emu.run_on(
            CLIENT, [sys.executable, "-c", script], check=False, timeout=timeout + 5
        )
        words = res.stdout.split()  # VALUE key flags bytes value END, or END
        if not res.ok or not words or words[-1] != "END":
            return None
        return int(words[4]) if words[0] == "VALUE" and words[4].isdigit() else 0

    def running_at(self) -> list[str]:
        where = []
        for name, client in self.agents.clients.items():
            try:
                if client.status(INSTANCE) == "running":
                    where.append(name)
            except SiteError:
                continue
        return where

    def assess(self, probe: Probe, result: dict[str, Any]) -> Assessment:
        """After the migration and the recovery: the probe has stopped with `result`."""
        counter = self.read_counter(probe.key)
        last = result.get("last_value")
        reconnects = int(result.get("reconnects") or 0)
        # the counter survived: it holds at least every increment the client saw acknowledged
        # (a request in flight when a connection broke may have been counted, not answered)
        intact = counter is not None and last is not None and last <= counter <= last + reconnects
        kept = bool(result.get("same_connection")) and int(result.get("failures") or 0) == 0
        return Assessment(
            self.running_at(),
            counter,
            intact and bool(result.get("counter_consistent") or reconnects),
            kept,
            {
                "last_value": last,
                "reconnects": reconnects,
                "failures": result.get("failures"),
                "longest_gap_ms": max(
                    ((g["end_s"] - g["start_s"]) * 1000 for g in result.get("gaps", [])),
                    default=0.0,
                ),
            },
        )

    # ------------------------------------------------------------------ what is left behind

    def fd_pids(self) -> list[int]:
        pids = [p.pid for p in self.agents.procs.values()]
        if self.ctl.proc is not None:
            pids.append(self.ctl.proc.pid)
        return pids

    def inventory(self, fd_pids: list[int] | None = None) -> Inventory:
        return inventory(self.runner, fd_pids=fd_pids or ())

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of the controller and of each agent (VmRSS)."""
        out = {}
        named = {f"agent {n}": p.pid for n, p in self.agents.procs.items()}
        if self.ctl.proc is not None:
            named["controller"] = self.ctl.proc.pid
        for name, pid in named.items():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1]) * 1024
        return out

    # ------------------------------------------------------------------ for faults

    def criu_of(self, site: str, verb: str) -> list[int]:
        """Pids of the CRIU processes a `runc <verb>` of this site's instance runs now."""
        root = str(site_root(self.sc.name, site))
        runcs = {
            p.pid
            for p in processes()
            if p.argv[:1] and p.argv[0].endswith("runc") and verb in p.argv
            if any(a.startswith(root) for a in p.argv)
        }
        return [p.pid for p in processes() if p.ppid in runcs and Path(p.argv[0]).name == "criu"]

    def agent_host(self, site: str) -> str:
        return agent_host(site)


@contextlib.contextmanager
def rig(work: Path | None = None) -> Iterator[Rig]:
    """The rig, always torn down (agents, emulation, controller)."""
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mecmig-rel-")))
        yield Rig(stack, work)
