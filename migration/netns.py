"""A container's network: its own named netns, a veth into the site's OVS bridge, CRIU's lock.

The container keeps its IP and MAC wherever it runs; the controller moves its traffic. Plumbing
runs in the root network namespace (where OVS is): when the agent itself lives in a Mininet host's
namespace, `root_pid=1` makes every command enter PID 1's network namespace first.

CRIU's network lock is an iptables chain `CRIU` that drops everything but packets marked 0xc114.
Established TCP survives a migration only if the target namespace is locked before its interface
comes up (else its kernel answers the client with a RST before the socket is restored); CRIU
removes the lock when the restore completes. A dump leaves the lock in the source namespace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mecmig.runner import CommandError, Runner

log = logging.getLogger(__name__)
CRIU_CHAIN = "CRIU"
CRIU_MARK = "0xc114"


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

    def lock(self, plug: Plug) -> None:
        """CRIU's network lock: only CRIU-marked packets pass (see module docstring)."""
        ns = self.netns_name(plug)
        for tool in ("iptables", "ip6tables"):
            self._root("ip", "netns", "exec", ns, tool, "-w", "-N", CRIU_CHAIN)
            self._root(
                "ip",
                "netns",
                "exec",
                ns,
                tool,
                "-w",
                "-A",
                CRIU_CHAIN,
                "-m",
                "mark",
                "--mark",
                CRIU_MARK,
                "-j",
                "ACCEPT",
            )
            self._root("ip", "netns", "exec", ns, tool, "-w", "-A", CRIU_CHAIN, "-j", "DROP")
            for chain in ("INPUT", "OUTPUT"):
                self._root("ip", "netns", "exec", ns, tool, "-w", "-I", chain, "-j", CRIU_CHAIN)

    def is_locked(self, plug: Plug) -> bool:
        """Whether CRIU's lock chain is in the namespace."""
        result = self.runner.run(
            [
                "ip",
                "netns",
                "exec",
                self.netns_name(plug),
                "iptables",
                "-w",
                "-n",
                "-L",
                CRIU_CHAIN,
            ],
            netns_pid=self.root_pid,
            check=False,
            timeout=30,
        )
        return result.returncode == 0

    def unlock(self, plug: Plug) -> None:
        """Remove CRIU's lock (left behind by a dump in the source namespace)."""
        ns = self.netns_name(plug)
        for tool in ("iptables", "ip6tables"):
            for chain in ("INPUT", "OUTPUT"):
                self._root(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    tool,
                    "-w",
                    "-D",
                    chain,
                    "-j",
                    CRIU_CHAIN,
                    check=False,
                )
            self._root("ip", "netns", "exec", ns, tool, "-w", "-F", CRIU_CHAIN, check=False)
            self._root("ip", "netns", "exec", ns, tool, "-w", "-X", CRIU_CHAIN, check=False)

    def delete(self, plug: Plug) -> None:
        """Unplug and remove the namespace; nothing is left, no error if already gone."""
        self._root("ovs-vsctl", "--if-exists", "del-port", plug.bridge, plug.host_if)
        self._root("ip", "link", "del", plug.host_if, check=False)
        self._root("ip", "netns", "del", self.netns_name(plug), check=False)
