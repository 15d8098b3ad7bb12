"""Run a scenario in Mininet with userspace Open vSwitch, and always tear it down.

    with emulate(load_scenario("scenarios/default.yaml"), controller=("127.0.0.1", 6653)) as emu:
        emu.ping("ue1", "video")

What an emulation creates (bridges, link ends, host shells and their namespaces; the agents and
management links SiteAgents adds) is recorded under /run/mecmig before it is made
(mininet_scenarios.record), so `mecmig cleanup` can remove exactly that after a crash, and
nothing that belongs to anybody else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController

from agent.cleanup import Cleanup
from ground.runner import CommandError, Result, Runner, Spawned, SubprocessRunner
from mininet_scenarios.mtu import MtuPlan, fabric_mtu_plan
from mininet_scenarios.record import EmulationRecord, remove_recorded, switch_interface
from mininet_scenarios.record import cleanup_recorded as _cleanup_recorded
from mininet_scenarios.shaping import ShapingError, link_shapes
from mininet_scenarios.shaping import apply as apply_shaping
from mininet_scenarios.topo import MecTopo
from topology.errors import TopologyError
from topology.scenario import Scenario
from topology.world import agent_host

log = logging.getLogger(__name__)
STATE_DIR = Path(os.environ.get("MECMIG_RUN_DIR", "/run/mecmig"))
_PING_LOSS = re.compile(r"(\d+)% packet loss")


class EmulationError(Exception):
    """The emulation could not be started, used or torn down; says what and why."""


@dataclass
class Emulation:
    """A running scenario: the Mininet network plus the scenario and model it came from.

    Programs run inside a host through `run_on` / `spawn_on` (the runner, in the host's network
    namespace), never through Mininet's `cmd()`/`popen()`, which hide the exit code.
    """

    net: Any
    scenario: Scenario
    topo: MecTopo
    runner: Runner = field(default_factory=SubprocessRunner)
    record: EmulationRecord | None = None  # what `mecmig cleanup` removes if this process dies
    # host -> the interface its routes use, once `route_to` moved them off its first link
    _routed: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def host(self, name: str) -> Any:
        """The Mininet host called `name` (instance, UE or MEC host 'h<site>')."""
        try:
            return self.net.get(name)
        except KeyError as exc:
            raise EmulationError(f"no host called {name!r} in this emulation") from exc

    def run_on(
        self,
        name: str,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 60.0,
        input: str | None = None,
    ) -> Result:
        """Run `argv` to completion inside host `name` (its network namespace); with `check`,
        a non-zero exit raises CommandError (argv, exit code, stderr)."""
        return self.runner.run(
            argv, check=check, timeout=timeout, input=input, netns_pid=self.host(name).pid
        )

    def spawn_on(
        self, name: str, argv: Sequence[str], log_path: str, *, stdout_path: str | None = None
    ) -> Spawned:
        """Start long-running `argv` inside host `name`; stderr (and stdout, unless
        `stdout_path` takes it) to `log_path`."""
        return self.runner.spawn(
            argv, log_path, netns_pid=self.host(name).pid, stdout_path=stdout_path
        )

    def ip(self, name: str) -> str:
        """The IP address of host or instance `name` (it keeps it when it moves)."""
        try:
            return str(self.topo.model.attachment(name).ip)
        except TopologyError as exc:
            raise EmulationError(f"no host or instance called {name!r}") from exc

    def ping(self, src: str, dst: str, count: int = 3, timeout_s: float = 1.0) -> int:
        """Ping from host `src` to host `dst`; return the packet loss in percent.

        Loss is an answer (ping exits 1); a ping that could not run at all (no route, interface
        down, bad argument: exit 2, no statistics) raises EmulationError with its stderr."""
        argv = ["ping", "-c", str(count), "-W", str(timeout_s), "-i", "0.2", self.ip(dst)]
        try:
            result = self.run_on(src, argv, check=False, timeout=count * (timeout_s + 1) + 10)
        except CommandError as exc:  # timed out or not found
            raise EmulationError(f"ping {src} -> {dst}: {exc}") from exc
        match = _PING_LOSS.search(result.stdout)
        if match is None:
            raise EmulationError(
                f"ping {src} -> {dst} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )
        return int(match.group(1))

    def pingall(self, timeout_s: float = 1.0) -> dict[tuple[str, str], int]:
        """Loss percentage for every ordered pair of hosts (one ping each after a warm-up)."""
        names = [h.name for h in self.net.hosts]
        return {
            (a, b): self.ping(a, b, count=2, timeout_s=timeout_s)
            for a in names
            for b in names
            if a != b
        }

    def move_host(
        self,
        name: str,
        switch: str,
        port: int,
        *,
        keep_old: bool = False,
        runner: Runner | None = None,
    ) -> None:
        """Re-plug host `name` (same IP and MAC) into `switch`:`port`: new link first, then the
        old one removed (`keep_old`: only taken down inside the host, so its switch port stays
        and its counters show whether anything is still sent there). The emulated equivalent of
        an instance restored at another site. Packets in flight while the links swap are lost:
        a host that must not lose any moves by `plug_second` and `route_to`."""
        runner = runner or self.runner
        host = self.host(name)
        old_intf = host.defaultIntf()
        ip, mac = self.ip(name), old_intf.MAC()
        prefix = self.scenario.network.subnet.prefixlen
        new_intf = self._plug(host, switch, port, runner)
        self._routed.pop(name, None)
        if keep_old:
            old_intf.ifconfig("down")
            old_intf.setIP("0.0.0.0/32")
        else:
            self._remove_link(old_intf)
        new_intf.setMAC(mac)
        new_intf.setIP(f"{ip}/{prefix}")
        _ethtool_off(runner, host, new_intf.name)

    def plug_second(
        self, name: str, switch: str, port: int, *, runner: Runner | None = None
    ) -> str:
        """A lossless move's first step, or a standby link plugged ahead of moves: host `name`
        gets one more link, into `switch`:`port`, with its IP and MAC, up, while the link its
        routes use (`routed`) still carries all its traffic (make that port one the controller
        drops frames from and sends nothing to: a standby). The neighbours resolved on the
        routed link are copied to the new interface, so that its first packets there need no
        ARP. Returns the new interface's name (for `route_to`, or `unplug`)."""
        runner = runner or self.runner
        host = self.host(name)
        routed = host.nameToIntf[self.routed(name)]
        ip, mac = self.ip(name), routed.MAC()
        prefix = self.scenario.network.subnet.prefixlen
        new = self._plug(host, switch, port, runner, mac=mac)
        _ethtool_off(runner, host, new.name)
        neighbours = runner.run(["ip", "neigh", "show", "dev", routed.name], netns_pid=host.pid)
        batch = [
            f"address add {ip}/{prefix} dev {new.name} noprefixroute",  # one address, n links
            f"link set {new.name} up",
            *neighbour_copies(neighbours.stdout, new.name),
        ]
        _ip_batch(runner, host, batch)
        new.ip, new.prefixLen = ip, prefix  # Mininet's own record (host.IP())
        return str(new.name)

    def routed(self, name: str) -> str:
        """The interface host `name`'s routes use: its first link's until `route_to` moved
        them."""
        routed = self._routed.get(name)
        return routed if routed is not None else str(self.host(name).defaultIntf().name)

    def route_to(self, name: str, intf: str, *, runner: Runner | None = None) -> str:
        """A lossless move's second step, once the controller sends the host's traffic to
        `intf`'s port: the neighbours resolved on the routed link are copied to `intf`, then
        its routes move there (`ip route replace`, one step each: a packet leaves by one link
        or the other, never by neither), in one `ip -batch`. Every link stays plugged (the one
        left is a standby at the controller). Returns the interface the routes left."""
        runner = runner or self.runner
        host = self.host(name)
        old = self.routed(name)
        if intf not in host.nameToIntf:
            raise EmulationError(f"{name} has no interface {intf}")
        if intf == old:
            return old
        neighbours = runner.run(["ip", "neigh", "show", "dev", old], netns_pid=host.pid)
        routes = runner.run(["ip", "-4", "route", "show", "dev", old], netns_pid=host.pid)
        batch = [*neighbour_copies(neighbours.stdout, intf), *route_moves(routes.stdout, intf)]
        _ip_batch(runner, host, batch)
        self._routed[name] = intf
        return old

    def unplug(self, name: str, intf: str) -> None:
        """Remove host `name`'s link at `intf` (one `plug_second` made, not the routed one)."""
        host = self.host(name)
        if intf not in host.nameToIntf:
            raise EmulationError(f"{name} has no interface {intf}")
        if intf == self.routed(name):
            raise EmulationError(f"{name}'s routes use {intf}: move them first (route_to)")
        self._remove_link(host.nameToIntf[intf])

    def _plug(
        self, host: Any, switch: str, port: int, runner: Runner, mac: str | None = None
    ) -> Any:
        """A new link from `host` into `switch`:`port`, the switch's end added to its bridge
        and up; the host's end (returned) as Mininet made it (`mac`: made with that MAC, the
        switch's end with a random local one: no down-and-up to set it later)."""
        macs = {} if mac is None else {"addr1": mac, "addr2": _local_mac()}
        link = self.net.addLink(host, self.net.get(switch), port2=port, **macs)
        intf = link.intf2.name
        runner.run(
            [
                "ovs-vsctl",
                "add-port",
                switch,
                intf,
                "--",
                "set",
                "Interface",
                intf,
                f"ofport_request={port}",
            ]
        )
        link.intf2.ifconfig("up")
        return link.intf1

    def _remove_link(self, intf: Any) -> None:
        """Remove the link of host interface `intf`: its switch end leaves the bridge."""
        link = intf.link
        sw_intf = link.intf2 if link.intf1 is intf else link.intf1
        sw_intf.node.detach(sw_intf)
        self.net.delLink(link)

    def enable_forwarding(self, name: str) -> None:
        """Make host `name` forward IP like a router (an SFC function): forwarding on, redirects
        off (the controller, not the function, decides the next hop)."""
        host = self.host(name)
        settings = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0"]
        settings += [f"net.ipv4.conf.{i.name}.send_redirects=0" for i in host.intfList()]
        try:
            self.run_on(name, ["sysctl", "-q", "-w", *settings])
        except CommandError as exc:
            raise EmulationError(f"cannot make {name} forward: {exc}") from exc


def _ethtool_off(runner: Runner, host: Any, intf: str) -> None:
    try:
        runner.run(["ethtool", "-K", intf, "tx", "off", "rx", "off"], netns_pid=host.pid)
    except CommandError as exc:
        raise EmulationError(f"cannot turn offloads off on {host.name}:{intf}: {exc}") from exc


# The MEC hosts' TCP retransmits after 5 ms at the least, not the kernel's 200 ms, as on an
# edge host tuned for its sub-millisecond fabric (the route's `rto_min`; kernels from 6.11 also
# have the sysctl net.ipv4.tcp_rto_min_us). Their TCP carries the migrations: a lost segment
# of CRIU's page server stream, a request of a few bytes with nothing behind it whose loss only
# the retransmission timer finds (its tail-loss probe waits rto_min too), stalled a post-copy
# restore for 220 ms once in 5-8 runs (mecmig bench migration --quick, the lazy-pages
# daemon's log: one reply 227 ms late, every other within 22 ms); with 5 ms, 0 in 20.
MEC_HOST_RTO_MIN_MS = 5

# what `ip route show` prints of a route's state, not accepted by `ip route replace`
_ROUTE_FLAGS = frozenset(
    {"dead", "linkdown", "pervasive", "offload", "trap", "notify", "unresolved", "rt_offload",
     "rt_trap", "rt_offload_failed"}
)  # fmt: skip


def neighbour_copies(shown: str, intf: str) -> list[str]:
    """`ip -batch` lines giving `intf` the neighbours `ip neigh show dev <old>` printed whose
    MAC is known (REACHABLE, STALE, DELAY, PROBE, PERMANENT; not FAILED or INCOMPLETE)."""
    out = []
    for line in shown.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] == "lladdr":
            out.append(f"neigh replace {words[0]} lladdr {words[2]} dev {intf} nud reachable")
    return out


def _single_routes(shown: str) -> list[list[str]]:
    """The words of each route `ip route show` printed, its state flags dropped (multipath
    routes, printed on several lines, left out)."""
    lines = [line for line in shown.splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        multipath = i + 1 < len(lines) and lines[i + 1][0].isspace()
        if not (line[0].isspace() or multipath):
            out.append([w for w in line.split() if w not in _ROUTE_FLAGS])
    return out


def route_moves(shown: str, intf: str) -> list[str]:
    """`ip -batch` lines moving each route `ip route show dev <old>` printed to `intf`: a
    `route replace` of the same destination, type, metric and table, one step per route (its
    state flags dropped; multipath routes, printed on several lines, are not moved)."""
    return [f"route replace {' '.join(words)} dev {intf}" for words in _single_routes(shown)]


def rto_min_routes(shown: str, rto_min_ms: int) -> list[str]:
    """`ip -batch` lines giving each route `ip route show` printed the minimum TCP
    retransmission timeout `rto_min_ms`: the same route replaced with it (its state flags and
    any earlier `rto_min` dropped; multipath routes, printed on several lines, left alone)."""
    out = []
    for words in _single_routes(shown):
        if "rto_min" in words:  # "rto_min [lock] <time>"
            at = words.index("rto_min")
            end = at + (3 if at + 1 < len(words) and words[at + 1] == "lock" else 2)
            del words[at:end]
        out.append(f"route replace {' '.join(words)} rto_min {rto_min_ms}ms")
    return out


def _quick_retransmits_on_mec_hosts(net: Any, scenario: Scenario, runner: Runner) -> None:
    """Every MEC host's routes get `rto_min` MEC_HOST_RTO_MIN_MS (see there); the UEs' and the
    service instances' TCP keep the kernel's default."""
    for site in scenario.sites:
        host = net.get(agent_host(site.name))
        try:
            shown = runner.run(["ip", "route", "show"], netns_pid=host.pid).stdout
        except CommandError as exc:
            raise EmulationError(f"ip route show in {host.name} failed: {exc}") from exc
        _ip_batch(runner, host, rto_min_routes(shown, MEC_HOST_RTO_MIN_MS))


def _fabric_mtu(net: Any, plan: MtuPlan | None, runner: Runner) -> None:
    """Jumbo frames on the fabric (mininet_scenarios.mtu), before any traffic."""
    if plan is None:
        return
    try:
        runner.run(["ip", "-batch", "-"], input="\n".join(plan.root) + "\n")
        runner.run(list(plan.ovs))
        for host, argv in plan.hosts:
            runner.run(list(argv), netns_pid=net.get(host).pid)
    except CommandError as exc:
        raise EmulationError(f"cannot set the fabric's MTU: {exc}") from exc


def _local_mac() -> str:
    """A random unicast, locally administered MAC address."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def _ip_batch(runner: Runner, host: Any, lines: Sequence[str]) -> None:
    """Run `ip` commands in `host` in one process (`ip -batch`: stops at the first failure)."""
    if not lines:
        return
    try:
        runner.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", netns_pid=host.pid)
    except CommandError as exc:
        raise EmulationError(f"ip in {host.name} failed: {exc}") from exc


def _preflight(scenario: Scenario, runner: Runner) -> None:
    if os.geteuid() != 0:
        raise EmulationError("the emulation needs root (network namespaces, OVS)")
    try:
        runner.run(["ovs-vsctl", "--timeout=5", "show"])
    except CommandError as exc:
        raise EmulationError(f"Open vSwitch is not running (run scripts/bootstrap): {exc}") from exc
    existing = set(runner.run(["ovs-vsctl", "list-br"]).stdout.split())
    ours = {s.switch_name for s in scenario.sites} | {s.name for s in scenario.switches}
    clash = sorted(existing & ours)
    if clash:
        raise EmulationError(
            f"bridge(s) {', '.join(clash)} already exist; if a crashed mecmig run left them, "
            "`mecmig cleanup` removes them (it only touches what mecmig recorded)"
        )


def _disable_offloads(net: Any, runner: Runner) -> None:
    # Userspace OVS does not fill in checksums that veth offload left out: TCP never completes.
    for host in net.hosts:
        for intf in host.intfList():
            if intf.name != "lo":
                _ethtool_off(runner, host, intf.name)


def _link_ends(topo: MecTopo) -> list[str]:
    """The root namespace's ends of the topology's links, as Mininet will name them."""
    switches = set(topo.switches())
    ends = []
    for a, b, info in topo.links(withInfo=True):
        for node, port in ((a, info.get("port1")), (b, info.get("port2"))):
            if node in switches and port is not None:
                ends.append(switch_interface(node, port))
    return ends


def _built(record: EmulationRecord, net: Any) -> None:
    interfaces = [i.name for s in net.switches for i in s.intfList() if i.name != "lo"]
    record.built([(h.name, h.pid) for h in net.hosts], interfaces)


def cleanup_recorded(runner: Runner | None = None) -> Cleanup:
    """Remove what crashed emulations recorded (mininet_scenarios.record); say what was done
    and what was left alone (emulations still running)."""
    return _cleanup_recorded(runner, run_dir=STATE_DIR)


class OsKenController(RemoteController):  # type: ignore[misc]
    """Mininet's RemoteController, checked by a plain TCP connect. Mininet's own check pipes
    `telnet` to the controller and decodes what comes back as UTF-8: an OpenFlow HELLO that
    arrives first (its xid is random bytes) raised UnicodeDecodeError now and then."""

    def checkListening(self) -> None:  # noqa: N802 - Mininet's name
        try:
            with socket.create_connection((self.ip, self.port), timeout=2.0):
                pass
        except OSError as exc:
            log.warning("the controller at %s:%s does not answer yet: %s", self.ip, self.port, exc)


@contextlib.contextmanager
def emulate(
    scenario: Scenario,
    *,
    controller: tuple[str, int] | None = None,
    fail_mode: str = "secure",
    host_cls: type | None = None,
    runner: Runner | None = None,
    verbose: bool = False,
    instance_hosts: bool = True,
    shaping: bool | None = None,
) -> Iterator[Emulation]:
    """Start `scenario` in Mininet and always stop it, even when the body fails.

    `controller` is the (ip, port) of a remote OpenFlow controller; without one, use
    `fail_mode="standalone"` to make the switches learning switches (loop-free scenarios only).
    `instance_hosts=False` leaves the service instances to the site agents (runc containers).
    `shaping` (default: the scenario's `network.shaping`) gives every switch-to-switch link its
    declared capacity in each direction (mininet_scenarios.shaping).
    """
    runner = runner or SubprocessRunner()
    _preflight(scenario, runner)
    setLogLevel("info" if verbose else "warning")
    switch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13", failMode=fail_mode)
    params: dict[str, Any] = {"host": host_cls} if host_cls is not None else {}
    topo = MecTopo(scenario, instance_hosts=instance_hosts)
    net = Mininet(
        topo=topo,
        switch=switch,
        controller=None,
        build=False,
        autoSetMacs=False,
        waitConnected=False,
        **params,
    )
    if controller is not None:
        net.addController(OsKenController("c0", ip=controller[0], port=controller[1]))
    record = EmulationRecord.begin(scenario.name, topo.switches(), _link_ends(topo), STATE_DIR)
    try:
        net.build()
        _built(record, net)
        net.start()
        _disable_offloads(net, runner)
        _quick_retransmits_on_mec_hosts(net, scenario, runner)
        _fabric_mtu(net, fabric_mtu_plan(topo.model, scenario.network.fabric_mtu), runner)
        if scenario.network.shaping if shaping is None else shaping:
            try:
                apply_shaping(runner, link_shapes(topo.model.links))
            except ShapingError as exc:
                raise EmulationError(str(exc)) from exc
        emu = Emulation(net, scenario, topo, runner, record)
        for chain in scenario.chains if instance_hosts else ():
            for function in chain.functions[:-1]:  # the last one serves; the others forward
                emu.enable_forwarding(function)
        yield emu
    finally:
        _teardown(net, record, runner)


def _teardown(net: Any, record: EmulationRecord, runner: Runner) -> None:
    try:
        net.stop()
    except Exception:  # noqa: BLE001 - whatever Mininet raised, the recorded clean-up must still run
        log.exception("Mininet's stop failed; removing what the emulation recorded")
    for controller in net.controllers:
        # RemoteController.stop() does nothing: its shell (`bash -is mininet:c0`) stayed, one
        # more per emulation in a long-lived process (a test session had 15 of them)
        controller.terminate()
    left = remove_recorded(record.data, runner)
    if left.done:
        log.warning("Mininet's stop left things behind; removed them: %s", "; ".join(left.done))
    if left.kept:
        log.error("could not remove: %s; `mecmig cleanup` tries again", "; ".join(left.kept))
    else:
        record.discard()
