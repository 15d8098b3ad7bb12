"""Remove what mecmig's site side left behind after a crash: only what is recognisably ours, and
nothing a running agent still uses.

Ours are: containers under runc roots in /run/mecmig/runc, network namespaces named `mecmig-*`
(with their veths), instance directories under /var/lib/mecmig/sites, agent sockets under
/run/mecmig/agents that nobody serves any more, and CRIU or runc processes working in those
directories (a lazy dump's page server, a lazy-pages daemon) once those go.

A running agent keeps its site's runc root, namespaces and directory: an agent is running when
its process is alive and, if it was told to plumb in another process's namespace
(`--root-netns-pid`), that process is alive too. An agent whose namespace owner is gone (its
emulation crashed and nobody recorded it) is reported, not killed: only what an emulation
recorded is stopped (`mininet_scenarios.record`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.leaks import (
    PROC,
    Proc,
    is_alive,
    option,
    parse_netns_list,
    process_kind,
    processes,
    read_proc,
    tree_bytes,
)
from ground.paths import RUN_DIR, STATE_DIR
from ground.runner import Runner, SubprocessRunner
from topology.scenario import load_scenario

log = logging.getLogger(__name__)
KILL_WAIT_S = 5.0


@dataclass
class Cleanup:
    """What a clean-up removed (`done`), and what of ours it left alone and why (`kept`)."""

    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def add(self, other: Cleanup) -> Cleanup:
        self.done += other.done
        self.kept += other.kept
        return self


def _send_signal(pid: int, sig: int) -> None:
    os.kill(pid, sig)  # the one place a clean-up signals a process (tests replace it)


def kill_processes(victims: Iterable[Proc], proc: Path = PROC) -> list[Proc]:
    """SIGKILL each process that is still the one found (same pid and start time), then wait
    until they are gone (at most KILL_WAIT_S); return those signalled."""
    killed = []
    for p in victims:
        if p.pid == os.getpid() or not is_alive(p.pid, p.start, proc):
            continue
        try:
            _send_signal(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(p)
    deadline = time.monotonic() + KILL_WAIT_S
    while any(is_alive(p.pid, p.start, proc) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def socket_served(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ServingAgent:
    """A running `mecmig agent`: its site, and (when known) its scenario's name and directory."""

    pid: int
    site: str
    scenario: str | None
    root: Path | None

    def keeps_runc_root(self, name: str) -> bool:
        if self.scenario is not None:
            return name == f"{self.scenario}-{self.site}"
        return name.endswith(f"-{self.site}")

    def keeps_netns(self, name: str) -> bool:  # agent.netns: mecmig-<instance>-<site>
        return name.endswith(f"-{self.site}")

    def keeps_site_dir(self, path: Path, state_dir: Path) -> bool:
        if self.root is not None:
            return path.resolve() == self.root.resolve()
        if self.scenario is not None:
            return path == state_dir / "sites" / self.scenario / self.site
        return path.name == self.site


def _scenario_name(p: Proc, proc: Path) -> str | None:
    """The name in the agent's scenario file (read relative to its working directory)."""
    given = option(p.argv, "--scenario")
    if given is None:
        return None
    try:
        path = (
            Path(given)
            if given.startswith("/")
            else Path(os.readlink(proc / str(p.pid) / "cwd")) / given
        )
        return load_scenario(path).name
    except Exception:  # noqa: BLE001 - unreadable: keep by site name instead (keeps more)
        return None


def serving_agents(proc: Path = PROC, state_dir: Path = STATE_DIR) -> list[ServingAgent]:
    """Agents that are running and can still work (see the module docstring)."""
    found = []
    for p in processes(proc):
        if process_kind(p.argv) != "mecmig agent" or p.pid == os.getpid():
            continue
        site = option(p.argv, "--site")
        if site is None or _owner_gone(p.argv, proc):
            continue
        root = option(p.argv, "--root")
        found.append(
            ServingAgent(p.pid, site, _scenario_name(p, proc), Path(root) if root else None)
        )
    return found


def orphaned_agents(proc: Path = PROC) -> list[Proc]:
    """Agents whose namespace owner (`--root-netns-pid`) is gone: left by a crashed run that
    recorded nothing; they hold that run's namespaces (and so its veths) until stopped."""
    return [
        p
        for p in processes(proc)
        if process_kind(p.argv) == "mecmig agent" and _owner_gone(p.argv, proc)
    ]


def _owner_gone(argv: tuple[str, ...], proc: Path) -> bool:
    owner = option(argv, "--root-netns-pid")
    return owner is not None and owner.isdigit() and read_proc(int(owner), proc) is None


def cleanup_migration_leftovers(
    runner: Runner | None = None,
    *,
    run_dir: Path = RUN_DIR,
    state_dir: Path = STATE_DIR,
    proc: Path = PROC,
) -> Cleanup:
    """Delete our containers, namespaces, instance directories and dead agent sockets, except
    what running agents use; say what was removed and what was kept."""
    runner = runner or SubprocessRunner()
    out = Cleanup()
    serving = serving_agents(proc, state_dir)
    for agent in serving:
        out.kept.append(f"agent {agent.pid} of site {agent.site} is running: its state stays")
    for p in orphaned_agents(proc):
        out.kept.append(
            f"agent {p.pid} ({option(p.argv, '--scenario')} site {option(p.argv, '--site')}) "
            "outlived its emulation, which recorded nothing: stop it with `kill "
            f"{p.pid}` (it holds that emulation's namespaces), then clean up again"
        )
    out.done += _dead_sockets(run_dir / "agents")
    roots = [
        r
        for r in _children(run_dir / "runc")
        if not any(a.keeps_runc_root(r.name) for a in serving)
    ]
    sites = [
        d for d in _site_dirs(state_dir) if not any(a.keeps_site_dir(d, state_dir) for a in serving)
    ]
    out.done += _stop_workers([*roots, *sites], run_dir, state_dir, proc)
    for root in roots:
        out.done += _remove_runc_root(runner, root)
    listed = runner.run(["ip", "netns", "list"], check=False).stdout
    for name in sorted(parse_netns_list(listed)):
        if any(a.keeps_netns(name) for a in serving):
            continue
        if runner.run(["ip", "netns", "del", name], check=False).ok:
            out.done.append(f"deleted netns {name}")
    for site in sites:
        size = tree_bytes(site)
        instances = [p.name for p in _children(site) if (p / "instance.json").exists()]
        shutil.rmtree(site, ignore_errors=True)
        what = f"instances {', '.join(instances)}" if instances else "no instance"
        out.done.append(f"removed {site} ({what}, {size} bytes)")
    _remove_empty(state_dir / "sites")
    return out


def _children(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def _site_dirs(state_dir: Path) -> list[Path]:
    return [site for scenario in _children(state_dir / "sites") for site in _children(scenario)]


def _remove_empty(sites: Path) -> None:
    for scenario in _children(sites):
        if not any(scenario.iterdir()):
            scenario.rmdir()
    if sites.is_dir() and not any(sites.iterdir()):
        sites.rmdir()


def _dead_sockets(agents: Path) -> list[str]:
    done = []
    for path in sorted(agents.glob("*.sock")) if agents.is_dir() else []:
        if not socket_served(path):
            path.unlink(missing_ok=True)
            done.append(f"removed agent socket {path} (nobody serves it)")
    return done


def _stop_workers(dirs: list[Path], run_dir: Path, state_dir: Path, proc: Path) -> list[str]:
    """CRIU and runc processes working in directories about to go (a page server, a
    lazy-pages daemon) are killed first."""
    prefixes = [str(d).rstrip("/") + "/" for d in dirs] + [str(d) for d in dirs]
    victims = [
        p
        for p in processes(proc)
        if (kind := process_kind(p.argv, run_dir, state_dir)) is not None
        and kind.startswith(("criu", "runc"))
        and any(
            arg == pre or arg.startswith(pre) or f"={pre}" in arg
            for arg in p.argv
            for pre in prefixes
        )
    ]
    return [
        f"killed {process_kind(p.argv, run_dir, state_dir)} {p.pid}"
        for p in kill_processes(victims, proc)
    ]


def _remove_runc_root(runner: Runner, root: Path) -> list[str]:
    done = []
    listed = runner.run(["runc", "--root", str(root), "list", "-q"], check=False)
    for name in listed.stdout.split():
        runner.run(["runc", "--root", str(root), "delete", "--force", name], check=False)
        done.append(f"deleted container {name} ({root.name})")
    shutil.rmtree(root, ignore_errors=True)
    return done
