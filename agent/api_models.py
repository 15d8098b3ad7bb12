"""The bodies of the agent's API (pydantic), every field bounded, and the bounds in one place.

The OpenAPI document states each bound; what JSON Schema cannot say (a multicast MAC, a port
beyond 65535 in `ADDR:PORT`, a source file outside the allowed directories) gets a 422 or a 400
of its own. Strict: `"7"` is no port, `1` no flag, and nothing a model does not name is taken.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from agent.files import FILE_NAME_PATTERN
from agent.service import INSTANCE_NAME
from agent.transfer_wire import Compress
from ground.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from ground.instance_env import ENV_ITEM_PATTERN, MAX_ENV, MAX_ENV_NAME, MAX_ENV_VALUE, env_names
from ground.instance_fs import (
    DEFAULT_WORKDIR,
    MAX_STATE_DIRS,
    PATH_PATTERN,
    WORKDIR_PATTERN,
    state_dirs,
)
from ground.instance_fs import MAX_PATH_CHARS as MAX_DIR_CHARS
from ground.instance_fs import workdir as check_workdir
from ground.instance_health import DEFAULT_START_TIMEOUT_S, MAX_HEALTH_ARGS, MAX_START_TIMEOUT_S
from ground.rootfs_image import DIGEST_PATTERN
from ground.users import MAX_GROUPS, MAX_ID
from migration.site import MAX_CRIU_PAGES, MAX_CRIU_US, MAX_PACE_BPS, MIN_PACE_BPS, InstanceSpec

# An instance name becomes a directory under the site's root, a runc container id and part of
# a network namespace's name: a plain name (INSTANCE_NAME: no '/', never '.' or '..').
MAX_INSTANCE_NAME = 63
INSTANCE_NAME_PATTERN = INSTANCE_NAME.pattern
# The command a container runs: argv, each argument without NUL (execve cannot take one).
MAX_ARGS = 256
MAX_ARG_CHARS = 4096
ARG_PATTERN = r"^[^\x00]*$"
# Files copied into /data: a plain name <- an absolute path (agent.files says which are allowed).
MAX_FILES = 64
MAX_PATH_CHARS = 4096
SOURCE_PATTERN = r"^/[^\x00]*$"
# Where its interface goes: an OpenFlow port OVS can be asked for (ofport_request: 1-65279).
MIN_BRIDGE_PORT, MAX_BRIDGE_PORT = 1, 65279
MIN_L4_PORT, MAX_L4_PORT = 1, 65535
# Its memory limit: at least 1 MiB (less cannot run a process), at most 1 TiB.
MIN_MEMORY_BYTES, MAX_MEMORY_BYTES = 1 << 20, 1 << 40
# Pre-copy rounds: the stop rule ends them after 8; a chain longer than this is a bug.
MAX_ROUND = 1000
# The controller's hold endpoint, which the source's CRIU calls with curl: http(s) only.
MAX_URL_CHARS = 2048
# a dump's sample of its memory (agent.compression: 4 MiB, tens of ms) and the copy's modes
MAX_SAMPLE_BYTES, MAX_SAMPLE_S = 1 << 30, 600.0
MIN_ZSTD_LEVEL, MAX_ZSTD_LEVEL = -7, 22
SAMPLE_DESCRIPTION = (
    "the answer's sample: how well the dump's memory compresses and how fast (15-60 ms more)"
)
COMPRESS_DESCRIPTION = (
    "zstd: the stream compressed (worth it where the link is slower than the compressor and "
    "the memory compresses); default: none"
)
URL_PATTERN = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~%-]*)*$"
# An agent's address for migration traffic ("ADDR:PORT" for a page server): IPv4.
ADDRESS_PATTERN = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}:[0-9]{1,5}$"
MAC_PATTERN = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
# A request body: the largest real one, a spec, is well under 4 KiB.
MAX_BODY_BYTES = 64 * 1024


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {value[:40]!r}") from None


def _address(value: str) -> str:
    """`ADDR:PORT` with an IPv4 address and a port 1-65535."""
    host, _, port = value.rpartition(":")
    _ipv4(host)
    if not MIN_L4_PORT <= int(port) <= MAX_L4_PORT:
        raise ValueError(f"port {port} is not within {MIN_L4_PORT}-{MAX_L4_PORT}")
    return value


def _unicast(value: str) -> str:
    """An interface's MAC: not multicast/broadcast (bit 0 of the first octet), not all zero."""
    first = int(value[:2], 16)
    if first & 1 or value.replace(":", "").strip("0") == "":
        raise ValueError(f"{value} is not a unicast MAC address")
    return value.lower()


InstanceName = Annotated[
    str, Field(min_length=1, max_length=MAX_INSTANCE_NAME, pattern=INSTANCE_NAME_PATTERN)
]
IPv4 = Annotated[
    str,
    Field(max_length=15),
    AfterValidator(_ipv4),
    WithJsonSchema({"type": "string", "format": "ipv4", "maxLength": 15}),
]
Address = Annotated[
    str,
    Field(max_length=21, pattern=ADDRESS_PATTERN),
    AfterValidator(_address),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 21,
            "pattern": ADDRESS_PATTERN,
            "description": "IPv4:PORT (port 1-65535)",
        }
    ),
]
Mac = Annotated[str, Field(max_length=17, pattern=MAC_PATTERN), AfterValidator(_unicast)]
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
Capability = Literal[ALL_CAPABILITIES]  # type: ignore[valid-type]
EnvItem = Annotated[
    str, Field(max_length=MAX_ENV_NAME + 1 + MAX_ENV_VALUE, pattern=ENV_ITEM_PATTERN)
]
Dir = Annotated[str, Field(min_length=2, max_length=MAX_DIR_CHARS, pattern=PATH_PATTERN)]
L4Port = Annotated[int, Field(ge=MIN_L4_PORT, le=MAX_L4_PORT)]
Url = Annotated[str, Field(max_length=MAX_URL_CHARS, pattern=URL_PATTERN)]
MAX_PORTS = 64  # an instance's declared TCP ports
Arg = Annotated[str, Field(max_length=MAX_ARG_CHARS, pattern=ARG_PATTERN)]
FileName = Annotated[str, Field(min_length=1, max_length=128, pattern=FILE_NAME_PATTERN)]
Source = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS, pattern=SOURCE_PATTERN)]
# pydantic documents a dict's key pattern as patternProperties, which leaves other keys valid:
# propertyNames says what every key must be
Files = Annotated[
    dict[FileName, Source],
    Field(max_length=MAX_FILES),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_FILES,
            "propertyNames": {"minLength": 1, "maxLength": 128, "pattern": FILE_NAME_PATTERN},
            "additionalProperties": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_PATH_CHARS,
                "pattern": SOURCE_PATTERN,
            },
        }
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SpecBody(_Body):
    """An instance as this site runs it (migration.site.InstanceSpec)."""

    name: InstanceName
    args: list[Arg] = Field(min_length=1, max_length=MAX_ARGS, description="its command (argv)")
    ip: IPv4
    prefix: int = Field(ge=1, le=32, description="of its IPv4 network")
    mac: Mac
    port: int = Field(
        ge=MIN_BRIDGE_PORT, le=MAX_BRIDGE_PORT, description="OpenFlow port on the bridge"
    )
    memory_bytes: int | None = Field(default=None, ge=MIN_MEMORY_BYTES, le=MAX_MEMORY_BYTES)
    files: Files = Field(
        default={},
        description="/data/<name> <- a host file in the directories this agent copies from "
        "(its --files-from; the project's workloads/ always)",
    )
    volume: bool = Field(default=False, description="a data volume at /volume")
    uid: Id = Field(default=0, description="its process's user id")
    gid: Id = Field(default=0, description="its process's group id")
    groups: list[Id] = Field(default=[], max_length=MAX_GROUPS, description="supplementary gids")
    capabilities: list[Capability] = Field(
        default=list(DEFAULT_CAPABILITIES),
        max_length=len(ALL_CAPABILITIES),
        json_schema_extra={"uniqueItems": True},
        description="bounding, permitted and effective (default: Podman's set)",
    )
    state: list[Dir] = Field(
        default=[],
        max_length=MAX_STATE_DIRS,
        json_schema_extra={"uniqueItems": True},
        description="writable directories that move with it: absolute, normalised, none inside "
        "another, not at or under /, /usr, /lib, /lib64, /bin, /sbin, /etc, /tmp, /run, "
        "/proc, /sys, /dev, /data or /volume",
    )
    env: list[EnvItem] = Field(
        default=[], max_length=MAX_ENV, description="NAME=value, each name once, over PATH"
    )
    workdir: Annotated[
        str, Field(max_length=MAX_DIR_CHARS, pattern=WORKDIR_PATTERN), AfterValidator(check_workdir)
    ] = DEFAULT_WORKDIR
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default=[],
        max_length=MAX_PORTS,
        description="TCP ports that must accept connections before it counts as started",
    )
    health: list[Arg] = Field(
        default=[],
        max_length=MAX_HEALTH_ARGS,
        description="a command run inside it that must exit 0 before it counts as started",
    )
    start_timeout_s: float = Field(
        default=DEFAULT_START_TIMEOUT_S,
        ge=1,
        le=MAX_START_TIMEOUT_S,
        description="how long creating it waits for it to be healthy",
    )
    image: str | None = Field(
        default=None,
        pattern=DIGEST_PATTERN,
        description="the content address of the image it runs from (sha256:...), which this "
        "site must have (PUT /v1/images/{digest}); none: the host's /usr, /etc... read-only",
    )

    @field_validator("capabilities")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a capability may be given only once")
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: list[str]) -> list[str]:
        return list(state_dirs(value))

    @field_validator("env")
    @classmethod
    def _env_once(cls, value: list[str]) -> list[str]:
        names = env_names(value)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"a variable may be given only once: {', '.join(twice)}")
        return value

    def spec(self) -> InstanceSpec:
        return InstanceSpec.from_dict(self.model_dump())


class CheckpointBody(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"leave_running": True},
                {"hold_url": "http://127.0.0.1:8080/v1/instances/counter/hold"},
            ]
        }
    )

    leave_running: bool = False
    on_predumps: bool = False  # only what changed since the last pre-dump round
    hold_url: Url | None = Field(
        default=None, description="the controller's hold endpoint, called at CRIU's freeze"
    )
    page_server: Address | None = Field(
        default=None,
        description="a whole final dump: its pages go to the destination's page server there "
        "(ADDR:PORT, started by its receive with pages_port) while CRIU dumps",
    )
    pace_bps: int | None = Field(
        default=None,
        ge=MIN_PACE_BPS,
        le=MAX_PACE_BPS,
        description="bit/s: those pages paced at this rate (its reservation's); default: unpaced",
    )
    sample: bool = Field(default=False, description=SAMPLE_DESCRIPTION)


class PreDumpBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"round": 1}]})

    round: int = Field(ge=1, le=MAX_ROUND, description="1 starts a new chain of pre-dumps")
    sample: bool = Field(default=False, description=SAMPLE_DESCRIPTION)


class SendBody(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"peer": "10.0.0.2", "port": 7100},
                {"peer": "10.0.0.2", "port": 7100, "delta": True, "pace_bps": 40_000_000},
            ]
        }
    )

    peer: IPv4 = Field(description="the receiving agent's address")
    port: L4Port
    delta: bool = False
    pace_bps: int | None = Field(
        default=None,
        ge=MIN_PACE_BPS,
        le=MAX_PACE_BPS,
        description="bit/s: the kernel paces the copy at this rate (SO_MAX_PACING_RATE), its "
        "reservation's, so that the reservation's meter drops none of its bursts; "
        "default: unpaced",
    )
    compress: Compress = Field(default="none", description=COMPRESS_DESCRIPTION)


class ReceiveBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"port": 7102}]})

    port: L4Port | None = Field(
        default=None,
        description="listen on this port (several migrations into one site each take their "
        "own); default: the agent's migration port",
    )
    pages_port: L4Port | None = Field(
        default=None,
        description="also a CRIU page server on this port, for the pages of the final dump "
        "(they come ahead of the rest); default: none",
    )
    lazy_from: Address | None = Field(
        default=None,
        description="a post-copy's source page server (ADDR:PORT): its lazy-pages daemon "
        "starts now, before the freeze, for the restore with the same lazy_from to take; "
        "default: none (the restore starts one)",
    )


class VolumeSendBody(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"peer": "10.0.0.2", "port": 7100},
                {"peer": "10.0.0.2", "port": 7100, "full": True},
            ]
        }
    )

    peer: IPv4 = Field(description="the agent receiving the volume (a replica's site)")
    port: L4Port
    full: bool = Field(
        default=False,
        description="send all of it (a replica made anew there); default: what changed since "
        "the last sync to that peer",
    )


class LinkBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"up": False}]})

    up: bool


class LazyBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"page_server": "10.0.0.1:7101"}]})

    page_server: Address = Field(description="where to serve the pages (ADDR:PORT)")
    on_predumps: bool = False
    hold_url: Url | None = None
    send_to: Address | None = Field(
        default=None,
        description="once the page server is ready: the link down and the images sent to the "
        "destination's receiver there (ADDR:PORT, as /send would), in this one step",
    )
    delta: bool = Field(default=False, description="with send_to: what changed since the last")
    pace_bps: int | None = Field(
        default=None,
        ge=MIN_PACE_BPS,
        le=MAX_PACE_BPS,
        description="with send_to: bit/s the copy is paced at (its reservation's)",
    )
    compress: Compress = Field(default="none", description=f"with send_to: {COMPRESS_DESCRIPTION}")


class RestoreBody(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"lazy_from": "10.0.0.1:7101"}]})

    lazy_from: Address | None = Field(default=None, description="the source's page server")


class SampleOut(BaseModel):
    """A sample of a dump's memory through the copy's compressor (agent.compression)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    raw_bytes: int = Field(ge=0, le=MAX_SAMPLE_BYTES, description="bytes read from the images")
    compressed_bytes: int = Field(ge=0, le=MAX_SAMPLE_BYTES, description="what zstd made of them")
    seconds: float = Field(ge=0, le=MAX_SAMPLE_S, description="the compressor's time")
    level: int = Field(ge=MIN_ZSTD_LEVEL, le=MAX_ZSTD_LEVEL, description="zstd's level")


class CriuDumpStatsOut(BaseModel):
    """CRIU's account of a dump (its stats-dump image), as a dump's answer carries it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    freezing_us: int = Field(ge=0, le=MAX_CRIU_US, description="until the tree was frozen")
    frozen_us: int = Field(ge=0, le=MAX_CRIU_US, description="frozen, to the dump's end")
    memdump_us: int = Field(ge=0, le=MAX_CRIU_US, description="collecting the pages")
    memwrite_us: int = Field(ge=0, le=MAX_CRIU_US, description="writing them (in memdump)")
    pages_scanned: int = Field(default=0, ge=0, le=MAX_CRIU_PAGES)
    pages_written: int = Field(default=0, ge=0, le=MAX_CRIU_PAGES)
    pages_lazy: int = Field(default=0, ge=0, le=MAX_CRIU_PAGES)


class CriuRestoreStatsOut(BaseModel):
    """CRIU's account of a restore (its stats-restore image)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    forking_us: int = Field(ge=0, le=MAX_CRIU_US)
    restore_us: int = Field(ge=0, le=MAX_CRIU_US, description="to the tasks about to run")
    pages_restored: int | None = Field(default=None, ge=0, le=MAX_CRIU_PAGES)


MAX_STEP_S = 86_400.0  # a step's seconds, as an answer reports them: at most a day


class RestoreOut(BaseModel):
    """What a restore took: the agent's step, the runc process in it, CRIU in that."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: str = Field(max_length=32)
    seconds: float = Field(ge=0, le=MAX_STEP_S)
    runc_s: float | None = Field(default=None, ge=0, le=MAX_STEP_S)
    criu: CriuRestoreStatsOut | None = None


MAX_NOTE_CHARS = 2000
MAX_MS = 1e9  # milliseconds: about 11 days


class MigrationNote(_Body):
    """How an instance came to be where it is: its last migration, as its orchestrator saw it
    (kept by the site where it ended, read back by `mecmig status` whoever started it)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"id": "mig-20261201-062552-28b8b6aee3", "outcome": "done", "strategy": "cold",
                 "source": "mec1", "destination": "mec2", "frozen_ms": 480.5}
            ]
        },
    )  # fmt: skip

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    outcome: Literal["done", "rolled_back", "failed", "running"]
    strategy: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
    source: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    destination: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    frozen_ms: float | None = Field(default=None, ge=0, le=MAX_MS)
    total_ms: float | None = Field(default=None, ge=0, le=MAX_MS)
    error: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)
