"""What mecmig's site side can leave on a machine, found read-only: its processes (by their argv
in /proc), network namespaces, runc containers, instance and image directories, disk bytes,
agent sockets, and the file descriptors of given processes.

Each kind is a set of identifiers (names, paths, `kind pid`), so that two inventories can be
compared item by item (`mininet_scenarios.leaks.diff`); sizes and descriptor counts are numbers.
The network side (interfaces, OVS bridges, ports, meters, flows) is `mininet_scenarios.leaks`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ground.paths import RUN_DIR, STATE_DIR
from ground.runner import CommandError, Runner

PROC = Path("/proc")
NETNS_PREFIX = "mecmig-"  # agent.netns.Plug.netns: every container's namespace
IMAGE_DIRS = ("xfer/images", "xfer/predump")  # agent.container's layout: checkpoint images
SITE_LOGS = "logs"  # agent.server.build_agent: runc's logs, next to the instances


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it: argv, start time (with the pid, an identity that survives
    pid reuse) and network namespace (`net:[4026531840]`; '' where unreadable)."""

    pid: int
    argv: tuple[str, ...]
    start: int
    netns: str
    ppid: int = 0


def _stat_fields(stat: str) -> list[str]:
    # the command name in parentheses may itself hold spaces and parentheses
    return stat[stat.rindex(")") + 2 :].split()  # [0] is field 3 (state)


def parse_stat_start(stat: str) -> int:
    """The start time (clock ticks after boot) in a /proc/PID/stat line: field 22."""
    return int(_stat_fields(stat)[19])


def parse_stat_ppid(stat: str) -> int:
    """The parent's pid in a /proc/PID/stat line: field 4."""
    return int(_stat_fields(stat)[1])


def read_proc(pid: int, proc: Path = PROC) -> Proc | None:
    """The process `pid`, or None if it is gone (or a kernel thread, which has no argv)."""
    base = proc / str(pid)
    try:
        raw = (base / "cmdline").read_bytes()
        stat = (base / "stat").read_text()
        start, ppid = parse_stat_start(stat), parse_stat_ppid(stat)
    except (OSError, ValueError, IndexError):
        return None
    if not raw:
        return None
    try:
        netns = os.readlink(base / "ns" / "net")
    except OSError:
        netns = ""
    argv = tuple(a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0"))
    return Proc(pid, argv, start, netns, ppid)


def processes(proc: Path = PROC) -> Iterator[Proc]:
    """Every user-space process now."""
    try:
        pids = [int(p.name) for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return
    for pid in sorted(pids):
        found = read_proc(pid, proc)
        if found is not None:
            yield found


def is_alive(pid: int, start: int | None, proc: Path = PROC) -> bool:
    """Whether `pid` is still the process that was recorded (same start time, if one was)."""
    found = read_proc(pid, proc)
    return found is not None and (start is None or found.start == start)


def mecmig_command(argv: tuple[str, ...]) -> str | None:
    """The subcommand of a `mecmig` process (`python -m mecmig.cli agent ...`, `mecmig agent`),
    or None if it is no mecmig command."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[i + 1] == "mecmig.cli":
            return argv[i + 2] if i + 2 < len(argv) else None
        if os.path.basename(arg) == "mecmig" and i <= 1:  # the script, or python running it
            return argv[i + 1]
    return None


def option(argv: tuple[str, ...], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def _mentions(argv: tuple[str, ...], dirs: Iterable[Path]) -> bool:
    prefixes = [str(d).rstrip("/") + "/" for d in dirs]
    return any(arg.startswith(p) or f"={p}" in arg for arg in argv for p in prefixes)


def process_kind(
    argv: tuple[str, ...], run_dir: Path = RUN_DIR, state_dir: Path = STATE_DIR
) -> str | None:
    """What a process is, if mecmig started it: `mecmig <subcommand>` (agent, controller,
    emulate, migrate, ...), `criu lazy-pages` (a post-copy destination's daemon), `criu` (our
    CRIU build, or any CRIU working in our directories; runc runs it as `criu swrk`), `runc`
    (on a runc root of ours, e.g. a lazy dump's page server), `mininet shell` (a Mininet
    node's shell: only mecmig runs Mininet here); None for anything else."""
    command = mecmig_command(argv)
    if command is not None:
        return f"mecmig {command}"
    if not argv:
        return None
    program = os.path.basename(argv[0])
    ours = _mentions(argv, (run_dir, state_dir))
    if argv[0].startswith("criu: "):  # CRIU retitles itself (`criu: dump --rpc -t 123`)
        return "criu" if ours else None  # whose: see mecmig_processes
    if program == "criu":
        if "lazy-pages" in argv[1:3]:
            return "criu lazy-pages"
        if ours or "/.deps/criu" in argv[0]:  # the CRIU scripts/bootstrap builds
            return "criu"
    if program == "runc" and ours:
        return "runc"
    if program == "bash" and argv[-1].startswith("mininet:"):  # a Mininet node's shell
        return "mininet shell"
    return None


def mecmig_processes(
    proc: Path = PROC, run_dir: Path = RUN_DIR, state_dir: Path = STATE_DIR
) -> dict[int, str]:
    """pid -> kind (see `process_kind`) of every process mecmig started, but this one. A CRIU
    that retitled itself (`criu: dump --rpc ...`) is ours if its parent is (runc, an agent)."""
    me = os.getpid()
    found: dict[int, str] = {}
    retitled: list[Proc] = []
    for p in processes(proc):
        kind = process_kind(p.argv, run_dir, state_dir)
        if kind is not None and p.pid != me:
            found[p.pid] = kind
        elif p.argv[0].startswith("criu: "):
            retitled.append(p)
    for p in retitled:
        if p.ppid in found:
            found[p.pid] = "criu"
    return found


def fd_count(pid: int, proc: Path = PROC) -> int | None:
    """How many file descriptors `pid` holds (None if it is gone)."""
    try:
        return sum(1 for _ in (proc / str(pid) / "fd").iterdir())
    except OSError:
        return None


def fd_targets(pid: int, proc: Path = PROC) -> dict[str, str]:
    """What each descriptor of `pid` points at (`"7": "socket:[81234]"`); {} if it is gone."""
    out: dict[str, str] = {}
    try:
        entries = list((proc / str(pid) / "fd").iterdir())
    except OSError:
        return out
    for entry in entries:
        try:
            out[entry.name] = os.readlink(entry)
        except OSError:  # closed while listed
            continue
    return out


def parse_netns_list(text: str) -> set[str]:
    """mecmig's namespaces in `ip netns list` output (`mecmig-counter-mec1 (id: 9)`)."""
    names = {line.split()[0] for line in text.splitlines() if line.strip()}
    return {n for n in names if n.startswith(NETNS_PREFIX)}


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (symlinks not followed; 0 if absent)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += st.st_size
    return total


def instance_dirs(state_dir: Path = STATE_DIR) -> list[Path]:
    """Every instance directory under the sites' directories (sites/SCENARIO/SITE/INSTANCE;
    the site's `logs`, runc's logs, is none, nor its image store `.images`)."""
    sites = state_dir / "sites"
    if not sites.is_dir():
        return []
    return sorted(
        p
        for p in sites.glob("*/*/*")
        if p.is_dir() and p.name != SITE_LOGS and not p.name.startswith(".")
    )


def image_dirs(state_dir: Path = STATE_DIR) -> list[Path]:
    """Checkpoint image directories left in instance directories: `xfer/images` and each
    pre-dump round `xfer/predump/N` (empty ones are not counted)."""
    found: list[Path] = []
    for inst in instance_dirs(state_dir):
        images = inst / IMAGE_DIRS[0]
        if images.is_dir() and any(images.iterdir()):
            found.append(images)
        rounds = inst / IMAGE_DIRS[1]
        if rounds.is_dir():
            found += sorted(r for r in rounds.iterdir() if r.is_dir())
    return found


def runc_containers(runner: Runner, run_dir: Path = RUN_DIR) -> set[str]:
    """`ROOT/NAME` of every container in our runc roots (`runc --root ... list -q`)."""
    roots = run_dir / "runc"
    found: set[str] = set()
    for root in sorted(roots.iterdir()) if roots.is_dir() else []:
        try:
            listed = runner.run(["runc", "--root", str(root), "list", "-q"], check=False)
        except CommandError:  # no runc at all: then nothing can run in its roots either
            continue
        if listed.returncode != 0:
            found.add(f"{root.name}/? (runc list failed: {listed.stderr.strip()[-80:]})")
        found |= {f"{root.name}/{name}" for name in listed.stdout.split()}
    return found


def _non_empty(parent: Path) -> list[str]:
    """Directories under `parent` that hold anything (an agent's runc root keeps a directory
    per container; an empty one is what runc leaves once its containers are deleted)."""
    if not parent.is_dir():
        return []
    return [p.name for p in parent.iterdir() if p.is_dir() and any(p.iterdir())]


@dataclass(frozen=True)
class SiteCounts:
    """The site side's part of an inventory: identifiers per kind, and numbers."""

    items: dict[str, frozenset[str]]
    numbers: dict[str, int]


def site_inventory(
    runner: Runner,
    *,
    fd_pids: Iterable[int] = (),
    run_dir: Path = RUN_DIR,
    state_dir: Path = STATE_DIR,
    proc: Path = PROC,
) -> SiteCounts:
    """What the site side holds now: `netns`, `runc_containers`, `runc_roots` (not empty),
    `instance_dirs`, `image_dirs`, `agent_sockets` (files under RUN_DIR/agents), `processes`
    (`kind pid`); numbers `disk_bytes` (under the sites' directories), `image_bytes`, and
    `fds PID` for each of `fd_pids` that is alive."""
    listed = runner.run(["ip", "netns", "list"], check=False)
    sites = state_dir / "sites"
    images = image_dirs(state_dir)
    agents = run_dir / "agents"
    roots = run_dir / "runc"
    items = {
        "netns": frozenset(parse_netns_list(listed.stdout)),
        "runc_containers": frozenset(runc_containers(runner, run_dir)),
        "runc_roots": frozenset(_non_empty(roots)),
        "instance_dirs": frozenset(str(p.relative_to(sites)) for p in instance_dirs(state_dir)),
        "image_dirs": frozenset(str(p.relative_to(sites)) for p in images),
        "agent_sockets": frozenset(p.name for p in agents.iterdir())
        if agents.is_dir()
        else frozenset(),
        "processes": frozenset(
            f"{kind} {pid}" for pid, kind in mecmig_processes(proc, run_dir, state_dir).items()
        ),
    }
    numbers = {
        "disk_bytes": tree_bytes(sites),
        "image_bytes": sum(tree_bytes(p) for p in images),
    }
    for pid in fd_pids:
        count = fd_count(pid, proc)
        if count is not None:
            numbers[f"fds {pid}"] = count
    return SiteCounts(items, numbers)
