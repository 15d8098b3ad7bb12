"""A container's network: its own named netns, a veth into the site's OVS bridge, CRIU's lock.

The container keeps its IP and MAC wherever it runs; the controller moves its traffic. Plumbing
runs in the root network namespace (where OVS is): when the agent itself lives in a Mininet host's
namespace, `root_pid=1` makes every command enter PID 1's network namespace first.

The network lock is an nftables table (inet) whose input and output chains drop everything but
packets marked 0xc114 (CRIU's). Established TCP survives a migration only if the target namespace
is locked before its interface comes up (else its kernel answers the client with a RST before
the socket is restored). A restore target is locked with our table; just before the restore the
lock is handed over to the table CRIU's restore takes for its own (`inet CRIU-<run id of the
dump>`) and opens at its network-unlock step, after the sockets are restored and before the
restored tasks run (our patch 0011: a rule that accepts everything first in both chains, where
deleting the table made the tasks wait for an RCU grace period); the agent deletes the opened
table in the background once the restore returns. A (final) dump leaves its lock in the source
namespace; a pre-copy round takes none.

CRIU 4.2.1 as released writes that name into a 32-byte buffer and cuts it to 31 characters
(`inet CRIU-a0adb940-722f-463f-94`), so its unlock missed the handed-over table, which then
dropped the restored service's first reply (to a request restored in its socket) until the
agent removed it after `runc restore` returned. The reply stayed unsent until a packet reached
the socket or its persist timer fired (3 s: a restored socket has no RTT sample), and a later
hop dumped and restored it unsent, behind the same lock, again. The CRIU scripts/bootstrap
builds carries the fix (scripts/patches/criu-4.2.1/, upstream checkpoint-restore/criu#3132);
the agent still removes a lock left after a restore, and says so.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ground.runner import CommandError, Runner

log = logging.getLogger(__name__)
CRIU_MARK = "0xc114"  # CRIU's own packets (SOCCR_MARK) pass the lock
LOCK_TABLE = "mecmig-lock"  # our lock of a restore target, before a dump names CRIU's
CRIU_TABLE_PREFIX = "CRIU-"
RUN_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # CRIU's are UUIDs
# Dumps take CRIU's nftables lock (criu.conf `network-lock nftables`): CRIU sets and removes it
# in-process, where its iptables lock forks iptables-restore five to seven times (~100 ms of a
# restore's frozen window, measured). A restore takes the dump's method from the images.
DUMP_LOCK_OPTION = "network-lock nftables\n"


def lock_script(table: str) -> str:
    """nft commands for a lock table: input and output dropped but for CRIU's mark."""
    lines = [f"add table inet {table}"]
    for hook in ("input", "output"):
        lines.append(
            f"add chain inet {table} {hook} {{ type filter hook {hook} priority 0; policy drop; }}"
        )
        lines.append(f"add rule inet {table} {hook} meta mark {CRIU_MARK} accept")
    return "\n".join(lines) + "\n"


def lock_tables_in(listing: str) -> dict[str, bool]:
    """Our and CRIU's tables in `nft -j list ruleset inet` output, each with whether it locks:
    one of its base chains drops by policy and does not accept everything first. CRIU's
    restore (our patch 0011) opens its lock instead of deleting it, a rule that accepts
    everything first in both chains: such a table no longer locks, it only waits to be deleted
    (`drop_released`). Raises ValueError on output that is not nft's JSON."""
    doc = json.loads(listing) if listing.strip() else {"nftables": []}
    tables: dict[str, bool] = {}
    dropping: set[tuple[str, str]] = set()  # (table, chain): a base chain that drops by policy
    first_rule: dict[tuple[str, str], object] = {}  # (table, chain): its first rule's expr
    for item in doc.get("nftables", []):
        if not isinstance(item, dict):
            raise ValueError("not nft's JSON: an entry is not an object")
        for kind in ("table", "chain", "rule"):
            obj = item.get(kind)
            if not isinstance(obj, dict):
                continue
            table = obj.get("name") if kind == "table" else obj.get("table")
            if not isinstance(table, str) or not _ours(table):
                continue
            tables.setdefault(table, False)
            if kind == "chain" and obj.get("hook") is not None and obj.get("policy") == "drop":
                dropping.add((table, str(obj.get("name"))))
            elif kind == "rule":
                first_rule.setdefault((table, str(obj.get("chain"))), obj.get("expr"))
    for table, chain in dropping:
        if first_rule.get((table, chain)) != [{"accept": None}]:
            tables[table] = True
    return tables


def opened(tables: dict[str, bool]) -> list[str]:
    """The tables of `lock_tables_in` that no longer lock (CRIU's restore opened them)."""
    return [t for t, locks in tables.items() if not locks]


def deletion(tables: Iterable[str]) -> str:
    """The nft script deleting `tables` (inet), in one transaction."""
    return "".join(f"delete table inet {t}\n" for t in tables)


def _ours(table: str) -> bool:
    return table == LOCK_TABLE or table.startswith(CRIU_TABLE_PREFIX)


class NetnsError(Exception):
    """Plumbing a container's network failed: what, for which instance, and the command's error."""


@dataclass(frozen=True)
class Plug:
    """Where an instance's interface goes: its address, and the bridge port it takes."""

    instance: str
    ip: str
    prefix: int
    mac: str
    bridge: str
    port: int

    @property
    def netns(self) -> str:
        return f"mecmig-{self.instance}"

    @property
    def host_if(self) -> str:
        # unique per bridge: the same instance may be plugged at two sites during a migration
        return f"v{self.bridge[:6]}p{self.port}"[:15]

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"


class ContainerNetwork:
    """Creates, locks, connects and removes containers' network namespaces at one site."""

    def __init__(self, runner: Runner, root_pid: int | None = None, site: str = "") -> None:
        self.runner = runner
        self.root_pid = root_pid
        self.site = site
        self._dropping: dict[str, threading.Thread] = {}  # netns -> a lock table being deleted
        self._handing: dict[str, threading.Thread] = {}  # netns -> a hand-over started ahead
        self._handed: dict[str, str] = {}  # netns -> the run id its lock was handed over to

    def _root(self, *argv: str, check: bool = True) -> None:
        try:
            self.runner.run(list(argv), netns_pid=self.root_pid, check=check, timeout=30)
        except CommandError as exc:
            raise NetnsError(f"site {self.site}: {exc}") from exc

    def netns_name(self, plug: Plug) -> str:
        """Namespaces are per site: two sites on one machine (emulation) must not share one."""
        return f"{plug.netns}-{self.site}" if self.site else plug.netns

    def create(self, plug: Plug, *, locked: bool = False, link_up: bool = True) -> str:
        """Create the netns with its interface plugged into the bridge; return the netns path.

        `locked`: CRIU's lock is in place before the interface comes up (a restore target).
        `link_up`: False keeps the bridge side down until `set_link(plug, True)`.
        """
        ns = self.netns_name(plug)
        self._root("ip", "netns", "add", ns)
        self._root("ip", "-n", ns, "link", "set", "lo", "up")
        # an instance is a host, not a router: a chain function forwards in its own process
        # (new namespaces inherit the root namespace's IPv4 forwarding, which may be on)
        self._root("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        if locked:
            self.lock(plug)
        self._root(
            "ip", "link", "add", plug.host_if, "type", "veth", "peer", "name", "eth0", "netns", ns
        )
        self._root("ip", "-n", ns, "link", "set", "eth0", "address", plug.mac)
        self._root("ip", "-n", ns, "addr", "add", f"{plug.ip}/{plug.prefix}", "dev", "eth0")
        # userspace OVS does not fill in checksums that veth offload leaves out
        self._root("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off", "rx", "off")
        self._root("ethtool", "-K", plug.host_if, "tx", "off", "rx", "off")
        self._root("ip", "-n", ns, "link", "set", "eth0", "up")
        self._root(
            "ovs-vsctl",
            "--may-exist",
            "add-port",
            plug.bridge,
            plug.host_if,
            "--",
            "set",
            "Interface",
            plug.host_if,
            f"ofport_request={plug.port}",
        )
        self.set_link(plug, link_up)
        return f"/var/run/netns/{ns}"

    def set_link(self, plug: Plug, up: bool) -> None:
        """Bring the bridge side of the instance's veth up or down."""
        self._root("ip", "link", "set", plug.host_if, "up" if up else "down")

    def _nft(self, plug: Plug, script: str) -> None:
        """One nftables transaction in the instance's namespace (all of it applies, or none)."""
        argv = ["ip", "netns", "exec", self.netns_name(plug), "nft", "-f", "-"]
        try:
            self.runner.run(argv, input=script, netns_pid=self.root_pid, timeout=30)
        except CommandError as exc:
            raise NetnsError(f"site {self.site}: {exc}") from exc

    def _lock_tables(self, plug: Plug) -> dict[str, bool]:
        """Our and CRIU's tables (`inet CRIU-<run id>`) in the namespace: whether each locks."""
        argv = ["ip", "netns", "exec", self.netns_name(plug), "nft", "-j", "list", "ruleset"]
        argv.append("inet")
        result = self.runner.run(argv, netns_pid=self.root_pid, check=False, timeout=30)
        if result.returncode != 0:
            raise NetnsError(f"site {self.site}: nft list ruleset: {result.stderr.strip()}")
        try:
            return lock_tables_in(result.stdout)
        except ValueError as exc:
            raise NetnsError(f"site {self.site}: nft list ruleset: {exc}") from exc

    def lock(self, plug: Plug) -> None:
        """Only CRIU-marked packets pass (see the module docstring)."""
        self._nft(plug, lock_script(LOCK_TABLE))

    def hand_over_lock(self, plug: Plug, run_id: str | None) -> None:
        """Before a restore: the lock becomes the one CRIU opens at its network unlock.

        CRIU's restore opens the table named after the dump's run id (patch 0011), before the
        restored tasks run. It is created first (if a dump did not leave it here); then ours
        goes, in the background (`settle` waits for it): never a moment unlocked. Deleting a
        table with base chains waits for the kernel's RCU grace period, 10-40 ms here, which
        the restore's frozen window no longer waits for (creating one takes ~4 ms). Images of
        a CRIU without run ids are restored with our table in place; it is removed after the
        restore (`unlock`). Nothing is left to do if `hand_over_soon` did it for this run id.
        """
        self._join_handing(plug)
        if run_id is None or self._handed.get(self.netns_name(plug)) == run_id:
            return
        self._hand_over(plug, run_id)

    def hand_over_soon(self, plug: Plug, run_id: str) -> None:
        """`hand_over_lock` in the background, ahead of the restore: the images' inventory
        (which names the run id) arrived and the rest of the copy is still on its way, so the
        ~12 ms of nft commands leave the frozen window. `hand_over_lock` waits for it and, for
        the same run id, has nothing left to do; if this failed (logged), it hands over then.
        A later run id (the next pre-copy round's images) is handed over again, and the table
        handed to before goes with ours: only the last dump's table stays."""
        self._join_handing(plug)

        def hand_over() -> None:
            try:
                self._hand_over(plug, run_id)
            except NetnsError as exc:
                log.warning(
                    "site %s: %s: the lock's hand-over ahead of the restore failed (the restore "
                    "does it): %s", self.site, plug.instance, exc,
                )  # fmt: skip

        ns = self.netns_name(plug)
        handing = threading.Thread(target=hand_over, name=f"hand-over-{plug.netns}", daemon=True)
        self._handing[ns] = handing
        handing.start()

    def _hand_over(self, plug: Plug, run_id: str) -> None:
        if not RUN_ID.fullmatch(run_id):  # it comes from images, into an nft script
            raise NetnsError(f"site {self.site}: {plug.instance}: bad CRIU run id {run_id!r}")
        ns = self.netns_name(plug)
        self._settle_dropping(plug)  # a deletion still on its way (an earlier restore's) first
        self._nft(plug, lock_script(f"{CRIU_TABLE_PREFIX}{run_id}"))
        before = self._handed.get(ns)
        self._handed[ns] = run_id
        # the restore's check finds them if this fails, and removes them (`unlock`)
        stale = [LOCK_TABLE]
        if before is not None and before != run_id:  # a pre-copy round's, handed over ahead
            stale.append(f"{CRIU_TABLE_PREFIX}{before}")
        script = "".join(f"add table inet {t}\ndelete table inet {t}\n" for t in stale)
        self._in_background(plug, script, "our lock")

    def _join_handing(self, plug: Plug) -> None:
        handing = self._handing.pop(self.netns_name(plug), None)
        if handing is not None and handing is not threading.current_thread():
            handing.join(30.0)

    def settle(self, plug: Plug, timeout: float = 30.0) -> None:
        """Wait until our lock, handed over, is gone (or its deletion failed), and a
        hand-over started ahead (`hand_over_soon`) has ended."""
        self._join_handing(plug)
        self._settle_dropping(plug, timeout)

    def _settle_dropping(self, plug: Plug, timeout: float = 30.0) -> None:
        dropping = self._dropping.pop(self.netns_name(plug), None)
        if dropping is not None and dropping is not threading.current_thread():
            dropping.join(timeout)

    def is_locked(self, plug: Plug) -> bool:
        """Whether a lock (ours or a dump's) is in the namespace (once a handed-over lock of
        ours is gone: `settle`). A table CRIU's restore opened does not lock."""
        return any(self.lock_tables(plug).values())

    def lock_tables(self, plug: Plug) -> dict[str, bool]:
        """Our and CRIU's tables in the namespace, each with whether it locks (once a
        handed-over lock of ours is gone: `settle`)."""
        self.settle(plug)
        return self._lock_tables(plug)

    def drop_released(self, plug: Plug, tables: dict[str, bool]) -> list[str]:
        """After a restore: delete, in the background, the lock tables CRIU opened (`tables`
        as `lock_tables` found them). CRIU's restore puts a rule that accepts everything first
        in both chains (patch 0011) where deleting the table would keep the restored tasks
        waiting for the kernel's RCU grace period; `settle` waits for the deletion. Their
        names."""
        released = opened(tables)
        if released:  # open: harmless if this fails; `unlock` or `delete` removes it later
            self._in_background(plug, deletion(released), "an opened lock table")
        return released

    def release_restored(self, plug: Plug) -> None:
        """After a restore, in the background (`settle` waits for it; the restored service
        runs meanwhile): the lock tables CRIU opened at its network unlock are deleted
        (`drop_released`). A table that still locks means a CRIU that names it otherwise
        (4.2.1 without our patches cuts the name to 31 characters, module docstring); it has
        been dropping what the service sent since it ran, so every table goes, loudly. Listing
        the tables took 6-12 ms of the restore's frozen window when it waited for this."""
        ns = self.netns_name(plug)
        self._join_handing(plug)
        before = self._dropping.pop(ns, None)
        self._handed.pop(ns, None)

        def release() -> None:
            if before is not None:
                before.join(30.0)
            try:
                tables = self._lock_tables(plug)
                if any(tables.values()):
                    log.warning(
                        "site %s: %s restored but CRIU left its network lock: removing it (a "
                        "CRIU without scripts/patches? run scripts/bootstrap)",
                        self.site,
                        plug.instance,
                    )
                    self._nft(plug, deletion(tables))
                elif opened(tables):  # the lock CRIU opened (patch 0011)
                    self._nft(plug, deletion(opened(tables)))
            except NetnsError as exc:
                log.warning(
                    "site %s: %s: its lock tables stay for now: %s", self.site, plug.instance, exc
                )

        releasing = threading.Thread(target=release, name=f"release-{plug.netns}", daemon=True)
        self._dropping[ns] = releasing
        releasing.start()

    def _in_background(self, plug: Plug, script: str, what: str) -> None:
        """Run the nft `script` deleting `what` in a thread of its own; `settle` waits for it."""

        def drop() -> None:
            try:
                self._nft(plug, script)
            except NetnsError as exc:
                log.warning(
                    "site %s: %s: %s stays for now: %s", self.site, plug.instance, what, exc
                )

        dropping = threading.Thread(target=drop, name=f"unlock-{plug.netns}", daemon=True)
        self._dropping[self.netns_name(plug)] = dropping
        dropping.start()

    def unlock(self, plug: Plug) -> None:
        """Remove every lock: ours, or the one a dump left in the source namespace."""
        self.settle(plug)
        self._handed.pop(self.netns_name(plug), None)
        tables = self._lock_tables(plug)
        if tables:
            self._nft(plug, deletion(tables))

    def delete(self, plug: Plug) -> None:
        """Unplug and remove the namespace; nothing is left, no error if already gone."""
        self.settle(plug)
        self._handed.pop(self.netns_name(plug), None)
        self._root("ovs-vsctl", "--if-exists", "del-port", plug.bridge, plug.host_if)
        self._root("ip", "link", "del", plug.host_if, check=False)
        self._root("ip", "netns", "del", self.netns_name(plug), check=False)
