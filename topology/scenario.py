"""The scenario file: one YAML document that describes a whole MEC world.

Sites, switches, links (with capacity), service instances, SFC chains and UEs. The Mininet
scenarios, the controller and the benchmarks all read the same file through `load_scenario`.
Parsing yields immutable, typed objects; every problem is reported with the key path that holds
it (``sites[1].compute.cpus``).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ground.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from ground.capabilities import capabilities as check_capabilities
from ground.defaults import AGENT_PORT
from ground.instance_env import env_items
from ground.instance_fs import DEFAULT_WORKDIR, MAX_STATE_DIRS, state_dirs
from ground.instance_fs import workdir as check_workdir
from ground.instance_health import DEFAULT_START_TIMEOUT_S, MAX_HEALTH_ARGS, MAX_START_TIMEOUT_S
from ground.rootfs_image import MAX_REF_CHARS as MAX_IMAGE_REF
from ground.units import parse_rate, parse_size
from ground.users import MAX_GROUPS, group_spec, user_spec
from topology.mobility_spec import MapSpec, TracePath, Waypoints, map_problems, motion_problems
from topology.mobility_trace import TraceError, read_trace

# Linux interface names have at most 15 characters; Mininet names a node's interfaces
# "<node>-eth<N>".
NAME_PATTERN = r"^[a-z][a-z0-9]{0,8}$"
NAME_RULE = "1-9 lowercase letters/digits starting with a letter (Linux interface names are short)"
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")  # an IPv4 address or a host name
AGENT_ENDPOINT_MAX = 200
FABRIC_MTU = 9000  # NetworkSpec.fabric_mtu's default
MAX_FOLLOWED = 16  # services that follow one UE
MIN_SYNC_PERIOD_S, MAX_SYNC_PERIOD_S = 0.1, 3600.0  # a replica's volume sync period


def _check_mac(value: str) -> str:
    if not _MAC.match(value.lower()):
        raise ValueError(f"{value!r} is not a MAC address like 02:00:0a:00:00:0b")
    return value.lower()


def _env(value: Any) -> Any:
    """`env:` is a mapping NAME: value; it becomes NAME=value items, in order."""
    if isinstance(value, dict):
        return env_items(value)
    if isinstance(value, tuple):  # already items (a model copied or built in code)
        return value
    raise ValueError("env must be a mapping of NAME: value")


def _id_text(value: Any) -> Any:
    """A user or group given as a number (`user: 999`) is its text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Rate = Annotated[int, BeforeValidator(parse_rate)]
Mac = Annotated[str, AfterValidator(_check_mac)]
Size = Annotated[int, BeforeValidator(parse_size)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
User = Annotated[str, BeforeValidator(_id_text), AfterValidator(user_spec)]
Group = Annotated[str, BeforeValidator(_id_text), AfterValidator(group_spec)]


class ScenarioError(Exception):
    """A scenario file that cannot be used; `problems` lists (key path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  {path or '<top>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Compute(_Model):
    """What a MEC host offers to the instances placed on it."""

    cpus: float = Field(default=2.0, gt=0)
    memory: Size = 4 * 2**30


class SiteSpec(_Model):
    """A MEC site: a host (where the site's agent runs) behind its own switch."""

    name: Name
    switch: Name | None = None
    dpid: int | None = Field(default=None, ge=1, le=2**64 - 1)
    compute: Compute = Compute()
    agent_ip: ipaddress.IPv4Address | None = None
    # where the orchestrator reaches the site's agent API: `unix:/path/to.sock` or
    # `http://HOST:PORT`; default the local Unix socket (ground.paths.agent_socket)
    agent: str | None = Field(default=None, max_length=AGENT_ENDPOINT_MAX)

    @property
    def switch_name(self) -> str:
        assert self.switch is not None, "filled in by Scenario validation"
        return self.switch

    @field_validator("agent")
    @classmethod
    def _check_agent(cls, value: str | None) -> str | None:
        return None if value is None else cls.agent_endpoint(value)

    @staticmethod
    def agent_endpoint(value: str) -> str:
        """An agent endpoint, checked and normalised: `unix:` and an absolute socket path, or
        `http://HOST[:PORT]` (an IPv4 address or a host name; port default 7070), nothing
        after it. ValueError says what is wrong."""
        if len(value) > AGENT_ENDPOINT_MAX:
            raise ValueError(f"an agent endpoint has at most {AGENT_ENDPOINT_MAX} characters")
        if value.startswith("unix:"):
            path = value[len("unix:") :]
            if not path.startswith("/") or any(ch.isspace() or ch == "\0" for ch in path):
                raise ValueError(f"{value!r}: expected unix:/absolute/path/to.sock")
            if len(path.encode()) > 107:  # sockaddr_un's sun_path, with its NUL
                raise ValueError(f"{value!r}: a Unix socket path has at most 107 bytes")
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or scheme != "http":
            raise ValueError(
                f"{value!r}: expected unix:/path/to.sock or http://HOST:PORT (agents serve "
                "plain HTTP, authenticated by their token)"
            )
        host, colon, port = rest.rstrip("/").rpartition(":")
        if not colon:
            host, port = rest.rstrip("/"), str(AGENT_PORT)
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r}: {port!r} is not a TCP port")
        if not _HOST.match(host):
            raise ValueError(
                f"{value!r}: {host!r} is not an IPv4 address or host name (nothing but "
                "http://HOST:PORT: no user, path or query)"
            )
        return f"http://{host}:{int(port)}"


class SwitchSpec(_Model):
    """A switch that belongs to no site: core, aggregation, access (base station)."""

    name: Name
    dpid: int | None = Field(default=None, ge=1, le=2**64 - 1)


class LinkSpec(_Model):
    """A full-duplex link between two switches (named directly or by their site)."""

    between: tuple[Name, Name]
    capacity: Rate
    latency_ms: float | None = Field(default=None, ge=0)


class InstanceSpec(_Model):
    """A service instance (a container): what it runs, how big it is, where it starts."""

    name: Name
    site: Name
    # what it runs: required, unless it runs an image (then its Entrypoint + Cmd by default)
    command: tuple[str, ...] = ()
    # its root file system: an OCI image layout `DIR` or `DIR:TAG`, or a rootfs tarball, its
    # path relative to the scenario file (ground.rootfs_image); none: the host's, read-only
    image: str | None = Field(default=None, min_length=1, max_length=MAX_IMAGE_REF)
    memory: Size = 64 * 2**20
    ip: ipaddress.IPv4Address
    mac: Mac | None = None
    ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = ()
    volume: bool = False  # a data volume at /volume that moves with the instance
    stateless: bool = False
    # a stateless service with a volume: its warm replicas get the primary's volume this often
    # (seed 002's storage-dependent services; orchestration.replicas); none: never synced
    sync_period_s: float | None = Field(default=None, ge=MIN_SYNC_PERIOD_S, le=MAX_SYNC_PERIOD_S)
    # how it runs (see ground.users, ground.capabilities, ground.instance_fs): its user (None:
    # root), extra groups, capabilities (default: Podman's), writable state directories that
    # travel with it, environment (over a default PATH), working directory
    user: User | None = None
    groups: tuple[Group, ...] = Field(default=(), max_length=MAX_GROUPS)
    capabilities: tuple[str, ...] = Field(
        default=DEFAULT_CAPABILITIES, max_length=2 * len(ALL_CAPABILITIES)
    )
    state: tuple[str, ...] = Field(default=(), max_length=MAX_STATE_DIRS)
    env: Annotated[tuple[str, ...], BeforeValidator(_env)] = ()
    workdir: Annotated[str, AfterValidator(check_workdir)] = DEFAULT_WORKDIR
    # when it counts as started (deploy waits for it): its process runs, every port in
    # `ports` accepts TCP connections, and `health` (a command run inside it) exits 0
    health: tuple[str, ...] = Field(default=(), max_length=MAX_HEALTH_ARGS)
    start_timeout: float = Field(
        default=DEFAULT_START_TIMEOUT_S, ge=1, le=MAX_START_TIMEOUT_S,
        description="seconds deploy waits for it to be healthy",
    )  # fmt: skip

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_capabilities(value)

    @field_validator("state", mode="before")
    @classmethod
    def _trailing_slash(cls, value: Any) -> Any:
        """`/var/lib/postgresql/` is `/var/lib/postgresql`."""
        if isinstance(value, list | tuple):
            return [(v.rstrip("/") or "/") if isinstance(v, str) else v for v in value]
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return state_dirs(value)

    @field_validator("command", "health", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(shlex.split(value))
        return value

    @model_validator(mode="after")
    def _sync_needs_replicas_and_a_volume(self) -> InstanceSpec:
        if self.sync_period_s is not None and not (self.stateless and self.volume):
            raise ValueError(
                "sync_period_s: only a stateless service with a volume (stateless: true, "
                "volume: true) has replicas whose volume is synced"
            )
        return self

    @model_validator(mode="after")
    def _command_or_image(self) -> InstanceSpec:
        if not self.command and self.image is None:
            raise ValueError(
                "command: required (a non-empty command), unless the instance runs an image "
                "(`image:`), whose Entrypoint and Cmd are the default"
            )
        return self


class TrafficSpec(_Model):
    """Which traffic of the UE a chain steers."""

    proto: Literal["tcp", "udp", "icmp", "any"] = "any"
    port: int | None = Field(default=None, ge=1, le=65535)


class ChainSpec(_Model):
    """An SFC: the UE's traffic goes through `functions` in order; the last one serves it."""

    name: Name
    ue: Name
    functions: tuple[Name, ...] = Field(min_length=1)
    traffic: TrafficSpec = TrafficSpec()


class Waypoint(_Model):
    """Where a UE is attached from `at_s` seconds into the scenario."""

    at_s: float = Field(ge=0)
    attach: Name


class UESpec(_Model):
    """A user equipment (car, drone, phone) attached to a switch or site, maybe moving."""

    name: Name
    attach: Name
    ip: ipaddress.IPv4Address
    mac: Mac | None = None
    trajectory: tuple[Waypoint, ...] = ()
    # or it moves on the map (topology.mobility_spec): along waypoints, or through a trace file
    # (CSV t_s,ue,x,y, relative to the scenario file); at most one of the three
    path: Waypoints = ()
    loop: bool = False  # the path starts again from its first waypoint
    trace: TracePath | None = None
    # the services that follow it when it moves (issue 12): instances and chains, by name
    follow: tuple[Name, ...] = Field(default=(), max_length=MAX_FOLLOWED)


class NetworkSpec(_Model):
    """The flat L2/L3 network every host lives in (instances keep their IP when they move)."""

    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")
    # the emulation shapes every link to its capacity, each direction (tc HTB on both ends:
    # mininet_scenarios.shaping); false: links run as fast as the userspace datapath goes
    shaping: bool = True
    # the MTU of the fabric: the switch-to-switch links and the MEC hosts' own links, which
    # carry the site agents' traffic (migrations' copies, post-copy pages). UEs and service
    # instances keep 1500 (TCP's MSS meets the smaller end). Jumbo frames by default, as
    # migration networks are usually set up: a short copy (CRIU's 1.8 MB of images of a
    # post-copy) leaves TCP's slow start in fewer round trips, and the userspace datapath moves
    # a sixth of the frames (README, "Downtime at the physical limit")
    fabric_mtu: int = Field(FABRIC_MTU, ge=1280, le=9000)


class Scenario(_Model):
    """A whole MEC world, validated and immutable; made by `load_scenario`/`parse_scenario`."""

    name: Name
    description: str = ""
    network: NetworkSpec = NetworkSpec()
    sites: tuple[SiteSpec, ...] = Field(min_length=1)
    switches: tuple[SwitchSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    instances: tuple[InstanceSpec, ...] = ()
    chains: tuple[ChainSpec, ...] = ()
    ues: tuple[UESpec, ...] = ()
    map: MapSpec | None = None  # zones, cells (points of access) and their MEC sites

    def site(self, name: str) -> SiteSpec:
        """The site called `name` (KeyError if none)."""
        return _by_name(self.sites, name, "site")

    def instance(self, name: str) -> InstanceSpec:
        """The instance called `name` (KeyError if none)."""
        return _by_name(self.instances, name, "instance")

    def ue(self, name: str) -> UESpec:
        """The UE called `name` (KeyError if none)."""
        return _by_name(self.ues, name, "UE")

    def chain(self, name: str) -> ChainSpec:
        """The chain called `name` (KeyError if none)."""
        return _by_name(self.chains, name, "chain")

    def switch_of(self, name: str) -> str:
        """The switch a site, switch, instance or UE name stands for (KeyError if unknown)."""
        for site in self.sites:
            if name in (site.name, site.switch):
                return site.switch_name
        if any(s.name == name for s in self.switches):
            return name
        if any(i.name == name for i in self.instances):
            return self.site(self.instance(name).site).switch_name
        if any(u.name == name for u in self.ues):
            return self.switch_of(self.ue(name).attach)
        raise KeyError(f"no site, switch, instance or UE called {name!r}")

    def mac_of(self, name: str) -> str:
        """The MAC address of an instance or UE: the given one, or one derived from its IP."""
        hosts: tuple[InstanceSpec | UESpec, ...] = (*self.instances, *self.ues)
        for host in hosts:
            if host.name == name:
                return host.mac or mac_from_ip(host.ip)
        raise KeyError(f"no instance or UE called {name!r}")


_Named = TypeVar("_Named", SiteSpec, InstanceSpec, UESpec, ChainSpec)


def _by_name(items: tuple[_Named, ...], name: str, what: str) -> _Named:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {what} called {name!r}")


def mac_from_ip(ip: ipaddress.IPv4Address) -> str:
    """A locally administered MAC that encodes the IPv4 address (02:00:a:b:c:d)."""
    return "02:00:" + ":".join(f"{b:02x}" for b in ip.packed)


# ------------------------------------------------------------------------------------------ loading


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in a mapping is an error, not an overwrite,
    and `33:33` is a string (YAML 1.1 reads it as the base-60 number 2013: a `user: 33:33`
    would run as uid 2013, a MAC of small octets would be a number), as in YAML 1.2."""

    yaml_implicit_resolvers = {
        first: [
            (tag, re.compile(r"(?!.*:)(?:" + regexp.pattern + ")", regexp.flags))
            if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
            else (tag, regexp)
            for tag, regexp in resolvers
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise ScenarioError naming every bad key. Its
    instances' image paths are taken relative to the file's directory."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), [("", f"cannot read the file: {exc.strerror}")]) from exc
    sc = parse_scenario(text, source=str(path))
    return traces_relative_to(images_relative_to(sc, path.parent.absolute()), path)


def traces_relative_to(sc: Scenario, path: Path) -> Scenario:
    """`sc` (read from `path`) with each UE's relative `trace:` made absolute from the file's
    directory, and every trace file read and checked (ScenarioError naming `ues[i].trace`)."""
    ues, problems = [], []
    for i, ue in enumerate(sc.ues):
        if ue.trace is not None:
            trace = path.parent.absolute() / ue.trace
            try:
                read_trace(trace, ue.name)
            except TraceError as exc:
                problems += [(f"ues[{i}].trace", f"{ue.trace}: {p}") for p in exc.problems]
            ue = ue.model_copy(update={"trace": str(trace)})
        ues.append(ue)
    if problems:
        raise ScenarioError(str(path), problems)
    return sc.model_copy(update={"ues": tuple(ues)})


def images_relative_to(sc: Scenario, base: Path) -> Scenario:
    """`sc` with each relative `image:` path made absolute from `base`."""
    instances = tuple(
        i.model_copy(update={"image": str(base / i.image)})
        if i.image is not None and not i.image.startswith("/")
        else i
        for i in sc.instances
    )
    return sc.model_copy(update={"instances": instances})


def parse_scenario(text: str | dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as YAML text or as an already-loaded mapping."""
    if isinstance(text, str):
        try:
            data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ScenarioError(source, [("", f"not valid YAML: {exc}")]) from exc
    else:
        data = text
    if not isinstance(data, dict):
        raise ScenarioError(source, [("", "the file must hold a mapping (sites:, links:, ...)")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, _problems(exc)) from exc
    problems = list(_cross_check(scenario))
    if problems:
        raise ScenarioError(source, problems)
    return _fill_defaults(scenario)


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    errors = exc.errors()
    problems = []
    for error in errors:
        loc = error["loc"]
        # "sites: at least 1 item" after every site failed says nothing the item errors don't.
        deeper = any(len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors)
        if error["type"] == "too_short" and deeper:
            continue
        problems.append((_key_path(loc), error["msg"].removeprefix("Value error, ")))
    return problems


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith(("function-", "constrained-")):
            path += f".{part}" if path else part
    return path


def _cross_check(sc: Scenario) -> Iterator[tuple[str, str]]:
    """References between sections, duplicate names and addresses; each with its key path."""
    names: dict[str, str] = {}

    def claim(name: str | None, path: str) -> Iterator[tuple[str, str]]:
        if name is None:
            return
        if name in names:
            yield path, f"name {name!r} is already used by {names[name]}"
        else:
            names[name] = path

    for i, site in enumerate(sc.sites):
        yield from claim(site.name, f"sites[{i}].name")
        yield from claim(f"h{site.name}", f"sites[{i}].name (its MEC host)")
        if _site_switch(sc, site.name) != site.name:
            yield from claim(_site_switch(sc, site.name), f"sites[{i}].switch")
    for i, sw in enumerate(sc.switches):
        yield from claim(sw.name, f"switches[{i}].name")
    for key in ("instances", "ues", "chains"):
        for i, item in enumerate(getattr(sc, key)):
            yield from claim(item.name, f"{key}[{i}].name")

    site_names = {s.name for s in sc.sites}
    switch_names = site_names | {_site_switch(sc, s) for s in site_names}
    switch_names |= {s.name for s in sc.switches}
    pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(sc.links):
        a, b = link.between
        for j, end in enumerate(link.between):
            if end not in switch_names:
                yield f"links[{i}].between[{j}]", f"{end!r} is neither a site nor a switch"
        ends = frozenset(_site_switch(sc, e) for e in link.between)
        if len(ends) == 1:
            yield f"links[{i}].between", f"a link cannot connect {a!r} to itself"
        elif ends in pairs:
            yield f"links[{i}].between", f"duplicates links[{pairs[ends]}]"
        else:
            pairs[ends] = i

    dpids: dict[int, str] = {}
    for key in ("sites", "switches"):
        for i, item in enumerate(getattr(sc, key)):
            if item.dpid is not None and item.dpid in dpids:
                yield f"{key}[{i}].dpid", f"dpid {item.dpid} is already used by {dpids[item.dpid]}"
            elif item.dpid is not None:
                dpids[item.dpid] = f"{key}[{i}]"

    instance_names = {i.name for i in sc.instances}
    ue_names = {u.name for u in sc.ues}
    for i, inst in enumerate(sc.instances):
        if inst.site not in site_names:
            yield f"instances[{i}].site", f"no site called {inst.site!r}"
    for i, ue in enumerate(sc.ues):
        if ue.attach not in switch_names:
            yield f"ues[{i}].attach", f"{ue.attach!r} is neither a site nor a switch"
        last = -1.0
        for j, wp in enumerate(ue.trajectory):
            if wp.attach not in switch_names:
                yield f"ues[{i}].trajectory[{j}].attach", f"{wp.attach!r} is not a site or switch"
            if wp.at_s < last:
                yield f"ues[{i}].trajectory[{j}].at_s", "waypoints must be in time order"
            last = wp.at_s
    chain_names = {c.name for c in sc.chains}
    followed: dict[str, str] = {}
    for i, ue in enumerate(sc.ues):
        yield from motion_problems(i, ue, sc.map is not None)
        for j, name in enumerate(ue.follow):
            if name not in instance_names and name not in chain_names:
                yield f"ues[{i}].follow[{j}]", f"no instance or chain called {name!r}"
            elif name in followed:
                yield f"ues[{i}].follow[{j}]", f"{name} follows {followed[name]} already"
            else:
                followed[name] = ue.name
    if sc.map is not None:
        yield from map_problems(sc.map, site_names, switch_names)
    for i, chain in enumerate(sc.chains):
        if chain.ue not in ue_names:
            yield f"chains[{i}].ue", f"no UE called {chain.ue!r}"
        for j, fn in enumerate(chain.functions):
            if fn not in instance_names:
                yield f"chains[{i}].functions[{j}]", f"no instance called {fn!r}"
        if len(set(chain.functions)) != len(chain.functions):
            yield f"chains[{i}].functions", "a function may appear only once in a chain"
        if chain.traffic.port is not None and chain.traffic.proto not in ("tcp", "udp"):
            yield f"chains[{i}].traffic.port", "a port needs proto tcp or udp"

    yield from _check_addresses(sc)


def _check_addresses(sc: Scenario) -> Iterator[tuple[str, str]]:
    ips: dict[ipaddress.IPv4Address, str] = {}
    macs: dict[str, str] = {}
    hosts: list[tuple[str, ipaddress.IPv4Address | None, str | None]] = [
        (f"sites[{i}].agent_ip", s.agent_ip, None) for i, s in enumerate(sc.sites)
    ]
    hosts += [(f"instances[{i}]", h.ip, h.mac) for i, h in enumerate(sc.instances)]
    hosts += [(f"ues[{i}]", h.ip, h.mac) for i, h in enumerate(sc.ues)]
    for path, ip, mac in hosts:
        ip_path = path if path.endswith("agent_ip") else f"{path}.ip"
        if ip is None:
            continue
        if ip not in sc.network.subnet:
            yield ip_path, f"{ip} is outside network.subnet {sc.network.subnet}"
        elif ip in (sc.network.subnet.network_address, sc.network.subnet.broadcast_address):
            yield ip_path, f"{ip} is not a host address of {sc.network.subnet}"
        if ip in ips:
            yield ip_path, f"{ip} is already used by {ips[ip]}"
            continue
        ips[ip] = path
        effective_mac = mac or mac_from_ip(ip)
        if effective_mac in macs:
            yield f"{path}.mac", f"{effective_mac} is already used by {macs[effective_mac]}"
        macs[effective_mac] = path


def _site_switch(sc: Scenario, name: str) -> str:
    for index, site in enumerate(sc.sites):
        if name == site.name:
            return site.switch or f"s{index + 1}"
    return name


def _fill_defaults(sc: Scenario) -> Scenario:
    """Give every site a switch name, dpids and an agent address, deterministically."""
    nodes: tuple[SiteSpec | SwitchSpec, ...] = (*sc.sites, *sc.switches)
    used_dpids = {s.dpid for s in nodes if s.dpid is not None}
    hosts: tuple[InstanceSpec | UESpec, ...] = (*sc.instances, *sc.ues)
    used_ips = {h.ip for h in hosts} | {s.agent_ip for s in sc.sites if s.agent_ip is not None}
    free_ips = (ip for ip in sc.network.subnet.hosts() if ip not in used_ips)
    free_dpids = (d for d in range(1, 2**16) if d not in used_dpids)
    sites = tuple(
        s.model_copy(
            update={
                "switch": _site_switch(sc, s.name),
                "dpid": s.dpid if s.dpid is not None else next(free_dpids),
                "agent_ip": s.agent_ip if s.agent_ip is not None else next(free_ips),
            }
        )
        for s in sc.sites
    )
    switches = tuple(
        s if s.dpid is not None else s.model_copy(update={"dpid": next(free_dpids)})
        for s in sc.switches
    )
    links = tuple(
        link.model_copy(update={"between": tuple(_site_switch(sc, e) for e in link.between)})
        for link in sc.links
    )
    return sc.model_copy(update={"sites": sites, "switches": switches, "links": links})
