"""The leak inventory: what mecmig can leave behind on this machine, counted, and compared.

    before = inventory()
    ...                       # a migration, a fault, a crash and `mecmig cleanup`
    leaks = diff(before, inventory())
    assert not leaks, leaks.describe()

It reads and changes nothing: the emulations' records (`mininet_scenarios.record`), the site
side (`agent.leaks`: processes, network namespaces, runc containers, instance and image
directories, disk bytes, agent sockets, file descriptors of given pids) plus the network: veths
and other interfaces of the root namespace, OVS bridges and their ports, and per bridge the
OpenFlow meters and the flows carrying a reservation or hold cookie (`controller.ofmsg.CookieKind`:
what a migration installs). Each kind is a set of identifiers, so a diff names what appeared,
not only how many (`Inventory.counts()` for a bench row).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.leaks import PROC, site_inventory
from controller.ofmsg import CookieKind, cookie_kind
from ground.paths import RUN_DIR, STATE_DIR
from ground.runner import Runner, SubprocessRunner

RECORD_GLOB = "emulation-*.json"  # what emulations record for `mecmig cleanup`
# the cookies of what a migration installs (the controller's base, host and chain flows stay)
MIGRATION_COOKIES = (CookieKind.RESERVATION, CookieKind.HOLD)
_COOKIE = re.compile(r"\bcookie=(0x[0-9a-fA-F]+)")
_STATS = re.compile(r"\s*\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?")
_METER = re.compile(r"^\s*meter=(\d+)\b", re.MULTILINE)


def parse_link_names(text: str) -> set[str]:
    """Interface names in `ip -o link show` output (`7: s1-eth1@core-eth1: <...> ...`)."""
    names = set()
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0].strip().isdigit():
            names.add(parts[1].strip().split("@", 1)[0])
    return names


def parse_meters(text: str) -> set[int]:
    """Meter ids in `ovs-ofctl -O OpenFlow13 dump-meters` output."""
    return {int(m) for m in _METER.findall(text)}


def parse_cookie_flows(
    text: str, kinds: Iterable[CookieKind] = MIGRATION_COOKIES
) -> list[tuple[CookieKind, str]]:
    """(kind, flow without its counters) of each flow in `dump-flows` output whose cookie is of
    one of `kinds`."""
    wanted = set(kinds)
    found = []
    for line in text.splitlines():
        match = _COOKIE.search(line)
        if match is None:
            continue
        kind = cookie_kind(int(match.group(1), 16))
        if kind in wanted:
            assert kind is not None
            found.append((kind, " ".join(_STATS.sub(" ", line).split())))
    return found


@dataclass(frozen=True)
class Inventory:
    """What was found, by kind: `items` are identifiers (names, paths, `kind pid`), `numbers`
    are sizes and counts (disk bytes, descriptors of a pid)."""

    items: Mapping[str, frozenset[str]]
    numbers: Mapping[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """One count per kind (a bench row's `leaks`), numbers as they are."""
        return {k: len(v) for k, v in sorted(self.items.items())} | dict(
            sorted(self.numbers.items())
        )


@dataclass(frozen=True)
class LeakDiff:
    """What changed between two inventories: identifiers that appeared or went, numbers that
    grew or shrank (before, after). Truthy when something appeared or grew: a leak."""

    added: dict[str, list[str]]
    removed: dict[str, list[str]]
    grown: dict[str, tuple[int, int]]
    shrunk: dict[str, tuple[int, int]]

    def __bool__(self) -> bool:
        return bool(self.added or self.grown)

    def describe(self) -> str:
        """One line per kind that changed: `+` appeared, `-` went, and numbers before -> after."""
        lines = [f"+ {k}: {', '.join(v)}" for k, v in self.added.items()]
        lines += [f"- {k}: {', '.join(v)}" for k, v in self.removed.items()]
        lines += [f"{k}: {a} -> {b}" for k, (a, b) in {**self.grown, **self.shrunk}.items()]
        return "\n".join(lines) or "no change"


def diff(before: Inventory, after: Inventory) -> LeakDiff:
    """Compare two inventories kind by kind (a kind missing on one side counts as empty)."""
    added: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    for kind in sorted(set(before.items) | set(after.items)):
        old, new = before.items.get(kind, frozenset()), after.items.get(kind, frozenset())
        if new - old:
            added[kind] = sorted(new - old)
        if old - new:
            removed[kind] = sorted(old - new)
    grown: dict[str, tuple[int, int]] = {}
    shrunk: dict[str, tuple[int, int]] = {}
    for key in sorted(set(before.numbers) & set(after.numbers)):
        a, b = before.numbers[key], after.numbers[key]
        if b > a:
            grown[key] = (a, b)
        elif b < a:
            shrunk[key] = (a, b)
    return LeakDiff(added, removed, grown, shrunk)


def network_items(runner: Runner) -> dict[str, frozenset[str]]:
    """`veths` and `interfaces` (the others) of this namespace, `ovs_bridges`, `ovs_ports`
    (`bridge:port`), `meters` (`bridge meter=N`) and `cookie_flows` (`bridge kind flow`)."""
    links = parse_link_names(runner.run(["ip", "-o", "link", "show"], check=False).stdout)
    veths = parse_link_names(
        runner.run(["ip", "-o", "link", "show", "type", "veth"], check=False).stdout
    )
    listed = runner.run(["ovs-vsctl", "--timeout=5", "list-br"], check=False)
    bridges = sorted(listed.stdout.split()) if listed.ok else []
    ports: set[str] = set()
    meters: set[str] = set()
    flows: set[str] = set()
    for br in bridges:
        out = runner.run(["ovs-vsctl", "--timeout=5", "list-ports", br], check=False).stdout
        ports |= {f"{br}:{p}" for p in out.split()}
        of = ["ovs-ofctl", "-O", "OpenFlow13"]
        out = runner.run([*of, "dump-meters", br], check=False).stdout
        meters |= {f"{br} meter={m}" for m in parse_meters(out)}
        out = runner.run([*of, "dump-flows", br], check=False).stdout
        flows |= {f"{br} {k.name.lower()} {f}" for k, f in parse_cookie_flows(out)}
    return {
        "veths": frozenset(veths),
        "interfaces": frozenset(links - veths),
        "ovs_bridges": frozenset(bridges),
        "ovs_ports": frozenset(ports),
        "meters": frozenset(meters),
        "cookie_flows": frozenset(flows),
    }


def inventory(
    runner: Runner | None = None,
    *,
    fd_pids: Iterable[int] = (),
    run_dir: Path = RUN_DIR,
    state_dir: Path = STATE_DIR,
    proc: Path = PROC,
) -> Inventory:
    """Everything mecmig can leave behind, now (see the module docstring); `fd_pids`: also
    count the descriptors of these processes (a controller's, the agents')."""
    runner = runner or SubprocessRunner()
    site = site_inventory(runner, fd_pids=fd_pids, run_dir=run_dir, state_dir=state_dir, proc=proc)
    records = frozenset(p.name for p in run_dir.glob(RECORD_GLOB))  # mininet_scenarios.record
    items = {**network_items(runner), **site.items, "emulation_records": records}
    return Inventory(items, dict(site.numbers))
