"""What an emulation made, recorded while it runs, so that `mecmig cleanup` can remove exactly
that after a crash, and nothing that belongs to anybody else.

One JSON file per emulation, `RUN_DIR/emulation-<scenario>-<pid>.json`, written before Mininet
builds anything and kept until the emulation has removed it all:

- `owner`: the emulating process (pid and start time). While it lives, its record is not
  touched: the emulation is running, not crashed.
- `bridges`: the OVS bridges (one per switch).
- `interfaces`: the root namespace's ends of its links. Mininet names a node's interface
  `<node>-eth<port>` (`s1-eth1`, `core-eth1`); switches stay in the root namespace, hosts get
  their own. Interfaces made later on its bridges follow the same pattern (`move_host`: a new
  link at port 100 is `s2-eth100`) or the agents' (`agent.netns.Plug.host_if`: `vs1p3`), so
  cleanup also removes interfaces of those two patterns on the recorded bridges.
- `hosts`: the Mininet hosts' shells (name, pid, start time) and their network namespaces
  (`net:[inode]`, trusted only while that namespace still shows the host's `<host>-eth*`).
- `agents`, `links`: what `SiteAgents` started in it: the agents (pid, start time, socket)
  and the management veths from the root namespace into the MEC hosts. An agent (started in
  its own session) outlives a crashed emulation, and so does the namespace it runs in, with
  its host's veths: cleanup kills every process left in the emulation's namespaces.

Pids are matched with their start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.cleanup import Cleanup, kill_processes, socket_served
from agent.leaks import PROC, Proc, is_alive, processes, read_proc
from ground.paths import RUN_DIR
from ground.runner import Runner, SubprocessRunner
from mininet_scenarios.leaks import RECORD_GLOB, parse_link_names

log = logging.getLogger(__name__)


def switch_interface(switch: str, port: int) -> str:
    """The name Mininet gives `switch`'s interface at `port` (Node.intfName)."""
    return f"{switch}-eth{port}"


def bridge_patterns(bridge: str) -> list[re.Pattern[str]]:
    """Interface names that belong to `bridge`: Mininet's links and the agents' veths."""
    return [
        re.compile(rf"{re.escape(bridge)}-eth\d+"),
        re.compile(rf"v{re.escape(bridge[:6])}p\d+"),  # agent.netns.Plug.host_if
    ]


def _netns(pid: int, proc: Path = PROC) -> str | None:
    found = read_proc(pid, proc)
    return found.netns if found is not None and found.netns else None


def _identity(pid: int, proc: Path = PROC) -> dict[str, Any]:
    found = read_proc(pid, proc)
    return {"pid": pid, "start": found.start if found is not None else None}


class EmulationRecord:
    """The record of one running emulation (see the module docstring)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def begin(
        cls,
        scenario: str,
        bridges: Iterable[str],
        interfaces: Iterable[str],
        run_dir: Path = RUN_DIR,
    ) -> EmulationRecord:
        """Record, before anything is built, the bridges and link ends about to be made."""
        pid = os.getpid()
        data = {
            "scenario": scenario,
            "owner": _identity(pid),
            "bridges": sorted(bridges),
            "interfaces": sorted(interfaces),
            "hosts": [],
            "agents": [],
            "links": [],
        }
        record = cls(run_dir / f"emulation-{scenario}-{pid}.json", data)
        record.save()
        return record

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)  # a crash mid-write leaves the previous record whole

    def built(self, hosts: Iterable[tuple[str, int]], interfaces: Iterable[str]) -> None:
        """After Mininet's build: the hosts' shells (and their namespaces) and the link ends it
        really made."""
        self.data["hosts"] = [
            {"name": name, **_identity(pid), "netns": _netns(pid)} for name, pid in hosts
        ]
        self.data["interfaces"] = sorted(set(self.data["interfaces"]) | set(interfaces))
        self.save()

    def add_agent(self, site: str, pid: int, socket: Path | None) -> None:
        """An agent started in one of the hosts (and the Unix socket it serves, if any)."""
        entry = {"site": site, **_identity(pid), "socket": str(socket) if socket else None}
        self.data["agents"].append(entry)
        self.save()

    def add_link(self, name: str) -> None:
        """An interface of the root namespace made for the emulation (a management veth)."""
        if name not in self.data["links"]:
            self.data["links"].append(name)
            self.save()

    def discard(self) -> None:
        """Everything recorded is gone: forget it."""
        self.path.unlink(missing_ok=True)


@dataclass
class Claims:
    """What running emulations hold: a crashed one's clean-up leaves it alone."""

    bridges: set[str] = field(default_factory=set)
    interfaces: set[str] = field(default_factory=set)

    def add(self, data: dict[str, Any]) -> None:
        self.bridges |= set(data.get("bridges", []))
        self.interfaces |= set(data.get("interfaces", [])) | set(data.get("links", []))

    def holds(self, interface: str) -> bool:
        return interface in self.interfaces or any(
            p.fullmatch(interface) for b in self.bridges for p in bridge_patterns(b)
        )


def _alive(entry: dict[str, Any], proc: Path) -> bool:
    """Whether the recorded process still runs: same pid, same start time."""
    pid, start = entry.get("pid"), entry.get("start")
    return isinstance(pid, int) and isinstance(start, int) and is_alive(pid, start, proc)


def _legacy_shell(pid: Any, proc: Path) -> Proc | None:
    """A host shell of a record without start times: only if it still is a Mininet shell."""
    found = read_proc(pid, proc) if isinstance(pid, int) else None
    return found if found is not None and found.argv[-1].startswith("mininet:") else None


def read_records(run_dir: Path = RUN_DIR) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every record (None for one that cannot be read)."""
    found: list[tuple[Path, dict[str, Any] | None]] = []
    for path in sorted(run_dir.glob(RECORD_GLOB)):
        try:
            data = json.loads(path.read_text())
            found.append((path, data if isinstance(data, dict) else None))
        except (OSError, ValueError):
            found.append((path, None))
    return found


def cleanup_recorded(
    runner: Runner | None = None, *, run_dir: Path = RUN_DIR, proc: Path = PROC
) -> Cleanup:
    """Remove what crashed emulations recorded (see the module docstring); emulations whose
    process still runs are left alone, and so is anything they hold."""
    runner = runner or SubprocessRunner()
    out = Cleanup()
    records = read_records(run_dir)
    claims = Claims()
    crashed = []
    for path, data in records:
        if data is None:
            out.kept.append(f"cannot read {path}: left as it is")
        elif "owner" in data and _alive(data["owner"], proc):
            claims.add(data)
            owner = data["owner"]["pid"]
            out.kept.append(
                f"emulation {data.get('scenario')} is running (pid {owner}): left alone"
            )
        else:
            crashed.append((path, data))
    for path, data in crashed:
        removed = remove_recorded(data, runner, claims, proc)
        out.add(removed)
        if removed.kept:  # what could not go stays recorded: the next clean-up tries again
            out.kept.append(f"{path} kept until all it records is gone")
        else:
            path.unlink(missing_ok=True)
    return out


def remove_recorded(
    data: dict[str, Any], runner: Runner, claims: Claims | None = None, proc: Path = PROC
) -> Cleanup:
    """Remove what one record names and is still there, but what `claims` holds: processes in
    its namespaces, its host shells, interfaces, bridges, agent sockets. Idempotent; what
    could not be removed is in `kept`, with why."""
    claims = claims or Claims()
    out = Cleanup(done=_kill_namespaces(data, proc))
    out.add(_delete_interfaces(data, runner, claims))
    for bridge in data.get("bridges", []):
        if bridge in claims.bridges:
            continue
        if runner.run(["ovs-vsctl", "--timeout=10", "br-exists", bridge], check=False).ok:
            deleted = runner.run(
                ["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", bridge], check=False
            )
            if deleted.ok:
                out.done.append(f"deleted bridge {bridge}")
            else:
                out.kept.append(f"bridge {bridge}: {deleted.stderr.strip()}")
    for agent in data.get("agents", []):
        sock = agent.get("socket")
        if sock and Path(sock).exists() and not socket_served(Path(sock)):
            Path(sock).unlink(missing_ok=True)
            out.done.append(f"removed agent socket {sock}")
    return out


def _kill_namespaces(data: dict[str, Any], proc: Path) -> list[str]:
    """Kill the recorded agents and host shells still alive, and every other process in their
    network namespaces (the namespaces the emulation made; never this process's own)."""
    mine = read_proc(os.getpid(), proc)
    own_ns = mine.netns if mine is not None else ""
    recorded = [*data.get("agents", []), *data.get("hosts", [])]
    alive = [p for e in recorded if _alive(e, proc) and (p := read_proc(e["pid"], proc))]
    # records written before hosts had start times list their shells' pids only
    alive += [p for pid in data.get("host_pids", []) if (p := _legacy_shell(pid, proc))]
    namespaces = {p.netns for p in alive if p.netns and p.netns != own_ns}
    # a host's namespace may outlive its shell (held by a probe or a daemon started in it):
    # the recorded namespace, if it still shows that host's interface
    held = {h["netns"]: h["name"] for h in data.get("hosts", []) if h.get("netns")}
    everyone = list(processes(proc))
    for p in everyone:
        host = held.get(p.netns)
        if host and p.netns != own_ns and _shows_interface(p.pid, f"{host}-eth", proc):
            namespaces.add(p.netns)
    victims: dict[int, Proc] = {p.pid: p for p in alive}
    for p in everyone:
        if p.netns in namespaces:
            victims[p.pid] = p
    names = {
        e["pid"]: f"host shell {e['name']}" if "name" in e else f"agent of {e.get('site')}"
        for e in recorded
    }
    return [
        f"killed {names.get(p.pid, 'process')} {p.pid} ({os.path.basename(p.argv[0])})"
        for p in kill_processes(victims.values(), proc)
    ]


def _shows_interface(pid: int, prefix: str, proc: Path) -> bool:
    """Whether the network namespace of `pid` has an interface whose name starts so."""
    try:
        lines = (proc / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return any(line.split(":", 1)[0].strip().startswith(prefix) for line in lines)


def _delete_interfaces(data: dict[str, Any], runner: Runner, claims: Claims) -> Cleanup:
    listed = runner.run(["ip", "-o", "link", "show"], check=False).stdout
    existing = parse_link_names(listed)
    named = set(data.get("interfaces", [])) | set(data.get("links", []))
    patterns = [p for b in data.get("bridges", []) for p in bridge_patterns(b)]
    ours = {i for i in existing if i in named or any(p.fullmatch(i) for p in patterns)}
    out = Cleanup()
    gone: set[str] = set()
    for name in sorted(ours):
        if claims.holds(name) or name in gone:
            continue
        if runner.run(["ip", "link", "del", name], check=False).ok:
            out.done.append(f"deleted interface {name}")
        # deleting one end of a veth deletes its peer: see what is left
        now = parse_link_names(runner.run(["ip", "-o", "link", "show"], check=False).stdout)
        gone |= ours - now
        if name not in gone:
            out.kept.append(f"interface {name}: `ip link del` did not remove it")
    return out
