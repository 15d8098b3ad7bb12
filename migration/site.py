"""What the migration engine asks of a site, whoever answers: an agent over HTTP, or in-process.

The engine only sees this protocol; `orchestration.agent_client.AgentClient` speaks it to a remote
`mecmig agent`, and tests can hand in a fake.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, Protocol

from ground.capabilities import DEFAULT_CAPABILITIES
from ground.instance_fs import DEFAULT_WORKDIR
from ground.instance_health import DEFAULT_START_TIMEOUT_S
from migration.compression import Sample

# the pacing rates a copy takes (`Site.send`'s pace_bps, bit/s): a reservation's, 1 kbit/s to
# 100 Gbit/s (the controller's largest)
MIN_PACE_BPS, MAX_PACE_BPS = 1_000, 100 * 10**9


@dataclass(frozen=True)
class InstanceSpec:
    """A service instance as a site runs it."""

    name: str
    args: tuple[str, ...]
    ip: str
    prefix: int
    mac: str
    port: int  # on the site's bridge
    memory_bytes: int | None = None
    files: dict[str, str] = field(default_factory=dict)  # /data/<key> <- host file <value>
    volume: bool = False  # a data volume at /volume (moves with the instance, like /data)
    # how its process runs: numbers only (names were resolved against the hosts' /etc/passwd
    # before it was created: ground.users), so they mean the same at every site and in a dump
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()  # supplementary gids
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES  # CAP_* names (ground.capabilities)
    state: tuple[str, ...] = ()  # writable directories that move with it, like /data
    env: tuple[str, ...] = ()  # NAME=value, over a default PATH (ground.instance_env)
    workdir: str = DEFAULT_WORKDIR
    # started when its process runs, these TCP ports accept connections and `health` (run
    # inside it) exits 0, within `start_timeout_s` (ground.instance_health)
    ports: tuple[int, ...] = ()
    health: tuple[str, ...] = ()
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    # its root file system: None, the host's /usr, /etc... read-only (ground.instance_fs); or
    # the content address of an image every site unpacks once and shares (agent.image_store)
    image: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> InstanceSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceSpec:
        """From its JSON form (lists for its tuples); fields it lacks take their defaults, so a
        spec written before a field existed still reads."""
        tuples = {f.name for f in fields(cls) if str(f.type).startswith("tuple")}
        values: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**values)


# A fresh start: how a strategy that does not keep the configuration starts the instance at
# the destination.
#
# Seed 003's SFP (`filesystem`) copies an instance's files but not its configuration, as
# `docker export`/`import` loses an image's Cmd, Env, WorkingDir and User: the destination starts
# afresh with only what its image gives, or with a command its user supplies when asking for the
# migration (the paper's "manual CMD"). `FreshStart` is that start: the command, environment,
# working directory and identity that replace the instance's own in the destination's spec. What
# is not the image's configuration stays: the files (/data, /volume, state directories), the
# network identity (IP, MAC), the capabilities and memory limit (the run's options, not the
# image's).
#
# `check_command` bounds a manual command where a request is taken (the REST model, the CLI), so
# that one the destination's agent would refuse never starts a migration.
MAX_COMMAND_WORDS = 64
MAX_WORD_CHARS = 1024
WORD_PATTERN = rf"^[^\x00]{{1,{MAX_WORD_CHARS}}}$"


class CommandInvalid(ValueError):
    """A manual command that cannot be run as given (the message says why)."""


def check_command(words: Sequence[str]) -> tuple[str, ...]:
    """`words` as a command: 1 to MAX_COMMAND_WORDS words of 1 to MAX_WORD_CHARS characters,
    no NUL (execve takes none), the program's name without blanks; CommandInvalid if not."""
    if isinstance(words, str):
        raise CommandInvalid("a command is a list of words (argv), not one string")
    if not 0 < len(words) <= MAX_COMMAND_WORDS:
        raise CommandInvalid(f"a command has 1 to {MAX_COMMAND_WORDS} words")
    for i, word in enumerate(words):
        if not isinstance(word, str) or not 0 < len(word) <= MAX_WORD_CHARS or "\0" in word:
            raise CommandInvalid(
                f"word {i} of the command: 1 to {MAX_WORD_CHARS} characters, no NUL"
            )
    if any(c.isspace() for c in words[0]):
        raise CommandInvalid(f"the program {words[0][:80]!r} has blanks in its name")
    return tuple(words)


@dataclass(frozen=True)
class FreshStart:
    """What the destination runs when the configuration does not move (see above)."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    workdir: str = DEFAULT_WORKDIR
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    manual: bool = False  # the command was supplied with the request, not the image's

    def apply(self, spec: InstanceSpec) -> InstanceSpec:
        """`spec` with this start in place of its configuration."""
        return replace(
            spec,
            args=self.args,
            env=self.env,
            workdir=self.workdir,
            uid=self.uid,
            gid=self.gid,
            groups=self.groups,
        )


# CRIU's own counters are uint32 microseconds and uint64 pages (its images/stats.proto)
MAX_CRIU_US = 2**32 - 1
MAX_CRIU_PAGES = 2**63 - 1


def _counter(data: dict[str, Any], key: str, bound: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= bound:
        raise ValueError(f"CRIU stats: {key} is {value!r}, not an integer in 0..{bound}")
    return value


@dataclass(frozen=True)
class CriuDumpStats:
    """CRIU's own account of a dump (its `stats-dump` image): times in microseconds. CRIU
    nests them: `frozen_us` (the tree frozen, to the dump's end) holds `memdump_us` (the
    pages collected), which holds `memwrite_us` (written out). In a lazy (post-copy) dump
    `frozen_us` is until its page server started (CRIU's log says it: agent.criu_images)."""

    freezing_us: int
    frozen_us: int
    memdump_us: int
    memwrite_us: int
    pages_scanned: int = 0
    pages_written: int = 0
    pages_lazy: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriuDumpStats:
        """From its JSON form; ValueError for a counter that is not one CRIU writes."""
        us = ("freezing_us", "frozen_us", "memdump_us", "memwrite_us")
        pages = ("pages_scanned", "pages_written", "pages_lazy")
        values = {k: _counter(data, k, MAX_CRIU_US) for k in us}
        values |= {k: _counter(data, k, MAX_CRIU_PAGES) for k in pages}
        return cls(**values)


@dataclass(frozen=True)
class CriuRestoreStats:
    """CRIU's own account of a restore (its `stats-restore` image): `restore_us` (from its
    start to the tasks' credentials restored, just before they run) holds `forking_us`."""

    forking_us: int
    restore_us: int
    pages_restored: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriuRestoreStats:
        """From its JSON form; ValueError for a counter that is not one CRIU writes."""
        return cls(
            forking_us=_counter(data, "forking_us", MAX_CRIU_US),
            restore_us=_counter(data, "restore_us", MAX_CRIU_US),
            pages_restored=None
            if data.get("pages_restored") is None
            else _counter(data, "pages_restored", MAX_CRIU_PAGES),
        )


@dataclass(frozen=True)
class DumpInfo:
    """What a checkpoint produced."""

    image_bytes: int
    seconds: float  # the site's step: the agent's own work, runc and CRIU
    leave_running: bool
    held: bool = False  # its hold script got the controller to hold the service's traffic
    frozen_at: float | None = None  # when CRIU froze the tree (epoch seconds), if its script said
    # the runc process's wall time (a lazy dump's: until its page server was ready), if known
    runc_s: float | None = None
    criu: CriuDumpStats | None = None  # CRIU's own times (a lazy dump's come at its end)
    # a lazy dump with a `Handoff`: what its images' copy to the destination moved (None: no
    # copy was asked), and whether the service's link at the source went down
    sent: SendInfo | None = None
    link_down: bool = False
    # how well its memory compresses and how fast, where the dump was asked for a sample
    sample: Sample | None = None


@dataclass(frozen=True)
class Handoff:
    """What a lazy dump does itself once the page server is ready, without a round trip to the
    engine for each: take the service's link down at the source (the switch's first half)
    and send the images and files to the destination's receiver at `peer`:`port` (started
    before the freeze), as `Site.send` would (`delta`, `pace_bps`, `compress`)."""

    peer: str
    port: int
    delta: bool = False
    pace_bps: int | None = None
    compress: Literal["none", "zstd"] = "none"


@dataclass(frozen=True)
class RestoreInfo:
    """What a restore took: the site's step, the runc process within it, CRIU within that;
    and the restored instance's status, where the site said it (None: ask `Site.status`)."""

    seconds: float
    runc_s: float | None = None
    criu: CriuRestoreStats | None = None
    status: str | None = None


@dataclass(frozen=True)
class SendInfo:
    """What a transfer moved."""

    bytes_on_wire: int
    bytes_total: int
    seconds: float
    mode: str
    # a stop-and-copy's memory pages, which came ahead by CRIU's page server (in neither count)
    pages_bytes: int = 0
    compress: str = "none"  # "zstd": bytes_on_wire are the compressed bytes


class SiteError(Exception):
    """A site could not do what was asked (its agent's message is in the text)."""


class SiteRefused(SiteError):
    """The site refused a step before doing anything: its present state forbids it (the
    instance is not running, another migration's target is there). Nothing changed there."""


class SiteUnreachable(SiteError):
    """The site's agent does not answer at all (down, or the network to it is).
    `delivered` is False when the request surely never reached it (the connection was not
    even made): nothing changed there."""

    def __init__(self, message: str, *, delivered: bool = True) -> None:
        super().__init__(message)
        self.delivered = delivered


class Site(Protocol):
    """One MEC site's agent, as the migration engine sees it."""

    name: str
    address: str  # where peers send migration traffic (the agent's IP)

    def spec(self, instance: str) -> InstanceSpec: ...

    def status(self, instance: str) -> str: ...

    def create(self, spec: InstanceSpec) -> None: ...

    def prepare_target(self, spec: InstanceSpec) -> None: ...

    def checkpoint(
        self,
        instance: str,
        *,
        leave_running: bool,
        on_predumps: bool = False,
        hold_url: str | None = None,
        page_server: str | None = None,
        pace_bps: int | None = None,
        sample: bool = False,
    ) -> DumpInfo:
        """Dump; `on_predumps`: only what changed since the last `pre_dump` round; `hold_url`:
        the controller's hold endpoint, called once CRIU has frozen the service;
        `page_server` ("ADDR:PORT", a whole final dump): the pages go there while CRIU dumps
        (the destination's, from `start_receive`'s `pages_port`), paced at `pace_bps` if given;
        the site keeps what it needs to restore the service if the migration fails. `sample`:
        the answer carries a `Sample` of the dump's memory (15-60 ms more)."""
        ...

    def pre_dump(self, instance: str, round_: int, sample: bool = False) -> DumpInfo:
        """Pre-copy round with dirty-memory tracking (round 1 starts a new chain); the
        service runs on. Fails where the kernel has no soft-dirty tracking. `sample`: as
        `checkpoint`'s."""
        ...

    def start_receive(
        self,
        instance: str,
        port: int | None = None,
        pages_port: int | None = None,
        lazy_from: str | None = None,
    ) -> int:
        """Listen for `instance`'s migration traffic on `port` (None: the site's default);
        the port. `pages_port`: also a CRIU page server there for the final dump's pages
        (`finish_receive` waits for them too). `lazy_from`: a post-copy's source page server
        ("ADDR:PORT"): the lazy-pages daemon the restore needs starts now, before the freeze."""
        ...

    def send(
        self,
        instance: str,
        peer: str,
        port: int,
        *,
        delta: bool,
        pace_bps: int | None = None,
        compress: Literal["none", "zstd"] = "none",
    ) -> SendInfo:
        """Send its images and files to the site receiving them at `peer`:`port` (`delta`:
        only what changed since the last send there). `pace_bps` (MIN_PACE_BPS to
        MAX_PACE_BPS): the sending kernel paces the copy at that rate, a reservation's, so
        that its meter drops no burst; None: unpaced. `compress`: "zstd" compresses the
        stream (migration.compression chooses)."""
        ...

    def finish_receive(self, instance: str) -> SendInfo: ...

    def set_link(self, instance: str, up: bool) -> None: ...

    def restore(self, instance: str, lazy_from: str | None = None) -> RestoreInfo | None:
        """Restore; `lazy_from` ("ADDR:PORT" of the source's page server) makes it post-copy.
        A receive still pending (a lazy dump's `Handoff` sent the images) is finished first.
        What it took, where the site says (None: it does not)."""
        ...

    def lazy_checkpoint(
        self,
        instance: str,
        page_server: str,
        *,
        on_predumps: bool = False,
        hold_url: str | None = None,
        handoff: Handoff | None = None,
    ) -> DumpInfo:
        """Freeze and dump without memory pages; serve them on `page_server` until pulled
        (`on_predumps`: pages unchanged since the last pre-dump round come from its images;
        `handoff`: then the link down and the images sent, in the same step). If the handoff
        fails, the page server is ended and the service runs on at the source (locked)."""
        ...

    def finish_lazy_checkpoint(self, instance: str) -> None: ...

    def abort_lazy_checkpoint(self, instance: str) -> None: ...

    def finish_pages(self, instance: str) -> float:
        """Destination: wait until every page arrived; return how long that took (s)."""
        ...

    def resume(self, instance: str) -> str: ...

    def stop(self, instance: str) -> None:
        """End its process, keep its files (restart strategy)."""
        ...

    def start(self, instance: str) -> None:
        """Start it afresh from its bundle and /data (restart strategy, and its rollback)."""
        ...

    def destroy(self, instance: str) -> None: ...

    def logs(self, instance: str, lines: int = 100) -> list[str]:
        """The last `lines` lines it wrote on stdout and stderr, where it runs."""
        ...

    def cpu_jiffies(self) -> tuple[int, int]: ...

    def tx_bytes(self) -> int:
        """Bytes the site's agent has sent so far (to count post-copy pages on the wire)."""
        ...
