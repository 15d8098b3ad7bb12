"""The northbound API's data: request and response models (pydantic) and the facade they talk to.

The REST server (`controller.rest`) and the Python client (`controller.client`) both use these
models; the os-ken app implements `ControllerAPI`. Errors the facade raises map to HTTP codes:
`NotFound` 404, `Forbidden` 403 (a reservation another owner holds), `Conflict` 409 (e.g.
admission refused), `Invalid` 422.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from controller.limits import (
    MAX_BURST_KB,
    MAX_HOLD_S,
    MAX_L4_PORT,
    MAX_NAME_LENGTH,
    MAX_OWNER_LENGTH,
    MAX_RATE_BPS,
    MAX_RATE_TEXT_LENGTH,
    MAX_SWITCH_PORT,
    MIN_L4_PORT,
    MIN_SWITCH_PORT,
    NAME_PATTERN,
    OWNER_PATTERN,
    RATE_TEXT_PATTERN,
)
from ground.units import parse_rate

_RATE_TEXT = re.compile(RATE_TEXT_PATTERN)


def _rate(value: object) -> int:
    """A request's rate: a whole number of bit/s, or a text like '40Mbit', within the bounds
    of `controller.limits` (exactly what the JSON schema below admits, or less)."""
    if isinstance(value, float) and not value.is_integer():  # 1.5, inf, nan
        if not math.isfinite(value):
            raise ValueError(f"a bit rate must be a finite number, got {value!r}")
        raise ValueError(f"a bit rate in bit/s is a whole number, got {value!r}")
    if isinstance(value, str) and (
        len(value) > MAX_RATE_TEXT_LENGTH or _RATE_TEXT.fullmatch(value) is None
    ):
        raise ValueError(
            f"cannot read {value[:MAX_RATE_TEXT_LENGTH]!r} as a bit rate (e.g. '40Mbit', "
            "'1.5 Gbit/s', '500kbps', or a number of bit/s)"
        )
    return parse_rate(value, max_bps=MAX_RATE_BPS)


RATE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_RATE_BPS},
        {"type": "string", "pattern": RATE_TEXT_PATTERN, "maxLength": MAX_RATE_TEXT_LENGTH},
    ],
    "description": f"bit/s (1 to {MAX_RATE_BPS}), or a text such as '40Mbit' or '1.5 Gbit/s' "
    "within the same bounds",
    "examples": ["40Mbit", 40_000_000],
}
Rate = Annotated[int, BeforeValidator(_rate), WithJsonSchema(RATE_SCHEMA)]


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {value[:40]!r}") from None


IPv4 = Annotated[
    str,
    Field(max_length=15),
    AfterValidator(_ipv4),
    WithJsonSchema({"type": "string", "format": "ipv4", "maxLength": 15}),
]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)]
L4Port = Annotated[int, Field(ge=MIN_L4_PORT, le=MAX_L4_PORT)]
SwitchPort = Annotated[int, Field(ge=MIN_SWITCH_PORT, le=MAX_SWITCH_PORT)]
Proto = Literal["tcp", "udp", "any"]


class ApiError(Exception):
    """An error the API reports to its caller with a message (never a traceback)."""

    status = 400

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class NotFound(ApiError):
    status = 404


class Forbidden(ApiError):
    status = 403


class Conflict(ApiError):
    status = 409


class Invalid(ApiError):
    status = 422


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Model):
    """A request body: strict, so that what the document calls invalid is refused (`true` is
    no port, `"7"` no number), and nothing it does not name is taken."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ------------------------------------------------------------------------------ topology views


class SwitchView(_Model):
    name: str
    dpid: int
    site: str | None = None
    connected: bool


class LinkDirectionView(_Model):
    src: str
    dst: str
    capacity_bps: int
    reserved_bps: int
    residual_bps: int


class LinkView(_Model):
    a: str
    b: str
    a_port: int
    b_port: int
    capacity_bps: int
    latency_ms: float | None = None
    up: bool
    directions: list[LinkDirectionView]


class SiteView(_Model):
    name: str
    switch: str
    cpus: float
    memory_bytes: int


class TopologyView(_Model):
    sites: list[SiteView]
    switches: list[SwitchView]
    links: list[LinkView]


class InstanceView(_Model):
    name: str
    kind: Literal["instance", "ue", "agent", "learned"]
    ip: str | None = None
    mac: str
    switch: str
    port: int
    site: str | None = None


class ChainView(_Model):
    name: str
    ue: str
    functions: list[str]
    proto: str
    port: int | None = None


# ------------------------------------------------------------------------------ reservations


class TrafficMatch(_Request):
    """Which packets a reservation carries (all given fields must match)."""

    ip_src: IPv4 | None = Field(default=None, description="source IPv4 (default: src host's)")
    ip_dst: IPv4 | None = Field(default=None, description="destination IPv4 (default: dst host's)")
    proto: Proto = "tcp"
    dst_port: L4Port | None = None
    src_port: L4Port | None = None

    @model_validator(mode="after")
    def _ports_need_a_protocol(self) -> TrafficMatch:
        if self.proto == "any" and (self.dst_port is not None or self.src_port is not None):
            raise ValueError("ports need proto 'tcp' or 'udp' (proto 'any' matches every port)")
        return self


class ReservationRequest(_Request):
    """Reserve `rate` from host/site `src` to host/site `dst` for the matching traffic."""

    src: Name
    dst: Name
    rate: Rate
    match: TrafficMatch = TrafficMatch()
    burst_kb: int | None = Field(
        default=None, ge=0, le=MAX_BURST_KB, description="meter burst in kbit (default: auto)"
    )
    owner: str | None = Field(
        default=None,
        max_length=MAX_OWNER_LENGTH,
        pattern=OWNER_PATTERN,
        description="free text, e.g. 'mig=7'",
    )

    @model_validator(mode="after")
    def _two_ends(self) -> ReservationRequest:
        if self.src == self.dst:
            raise ValueError(f"src and dst are both {self.src!r}: a reservation joins two ends")
        return self


class ResizeRequest(_Request):
    rate: Rate


class ReservationView(_Model):
    id: int
    src: str
    dst: str
    rate_bps: int
    burst_kb: int
    path: list[str]
    match: TrafficMatch
    meter_id: int
    cookie: str = Field(description="hex cookie on this reservation's flows")
    owner: str | None = None


# ------------------------------------------------------------------------------ relocation


class RelocationRequest(_Request):
    """Move instance `instance` (same IP and MAC) to `to`: a site, or a switch and port."""

    instance: Name
    to: Name = Field(description="site or switch name")
    port: SwitchPort | None = Field(
        default=None, description="port on the switch (default: the site's, or a free one)"
    )


class RelocationView(_Model):
    instance: str
    old_switch: str
    old_port: int
    new_switch: str
    new_port: int
    switches_touched: list[str]
    flow_mods: int
    switchover_ms: float = Field(description="first flow-mod sent -> last barrier reply")
    switches_pending: list[str] = Field(
        default=[],
        description="switches this move changes that are not connected now: they get it when "
        "they connect; until then the instance's traffic may not reach it through them",
    )


MAX_MOVES = 16  # functions of one chain moved in one change


class RelocationBatchRequest(_Request):
    """Move several instances in one change (a chain's functions): every move is checked
    before any is made, and one plan carries them all."""

    moves: list[RelocationRequest] = Field(min_length=1, max_length=MAX_MOVES)


class RelocationBatchView(_Model):
    moves: list[RelocationView]
    switches_touched: list[str]
    flow_mods: int
    switchover_ms: float = Field(description="first flow-mod sent -> last barrier reply")
    switches_pending: list[str] = Field(
        default=[], description="switches the change touches that are not connected now"
    )


# ------------------------------------------------------------------------------ standbys


class StandbyRequest(_Request):
    """Make a port at `to` a standby of the instance: the port of a warm replica (same IP and
    MAC) that nothing is steered to and whose frames are dropped there."""

    to: Name = Field(description="site or switch name")
    port: SwitchPort | None = Field(
        default=None,
        description="port on the switch (default: the instance's declared port there, else a "
        "free one)",
    )


class StandbyView(_Model):
    instance: str
    switch: str
    port: int
    site: str | None = None


MAX_DRAIN_MS = 10_000.0


class PromotionRequest(_Request):
    """Move the instance's traffic to its standby at `to` (a flow switch: nothing starts)."""

    to: Name = Field(description="site or switch of one of the instance's standbys")
    keep_old: bool = Field(
        default=True,
        description="the old place becomes a standby (else it is forgotten: remove its "
        "replica first, or its frames will be learned)",
    )
    drain_ms: float = Field(
        default=0.0,
        ge=0,
        le=MAX_DRAIN_MS,
        allow_inf_nan=False,
        description="with keep_old: the old place's frames are dropped only this long after "
        "the switch, so that replies to requests it took before it still get through; until "
        "then, what still comes down the old site's uplink for the instance goes back up to "
        "the new place (unless deliver_old)",
    )
    deliver_old: bool = Field(
        default=False,
        description="with drain_ms: until then, what still arrives at the old place's switch "
        "for the instance leaves by its old port, not back the way it came (where OpenFlow "
        "drops it). For one host with a link at each place (a UE's move); not for replicas, "
        "where a new connection would reach the old one",
    )


class PromotionView(RelocationView):
    old_place: Literal["standby", "forgotten"] = Field(
        description="what the old place is now: a standby of the instance, or nothing"
    )


class HoldRequest(_Request):
    """Hold an instance's traffic at the controller (while it is frozen for a migration)."""

    timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=MAX_HOLD_S,
        allow_inf_nan=False,
        description="released by itself after this long",
    )


class HoldView(_Model):
    instance: str
    held: bool
    timeout_s: float


class HoldReleaseView(_Model):
    instance: str
    released_packets: int = Field(description="held packets sent to the instance's port")
    dropped_packets: int = Field(description="packets beyond the hold's buffer limits")
    held_ms: float


class Health(_Model):
    status: Literal["ok"] = "ok"
    scenario: str
    switches_connected: int
    switches_expected: int


class ControllerAPI(Protocol):
    """What the northbound API can ask of the controller. Implementations are thread-safe."""

    def health(self) -> Health: ...

    def topology_view(self) -> TopologyView: ...

    def instances(self) -> list[InstanceView]: ...

    def chains(self) -> list[ChainView]: ...

    def reservations(self) -> list[ReservationView]: ...

    def reservation(self, rid: int) -> ReservationView: ...

    def reserve(self, req: ReservationRequest) -> ReservationView: ...

    def resize(self, rid: int, rate_bps: int, owner: str | None = None) -> ReservationView:
        """Forbidden unless `owner` is the reservation's (None for one reserved without)."""
        ...

    def release(self, rid: int, owner: str | None = None) -> None:
        """Forbidden unless `owner` is the reservation's (None for one reserved without)."""
        ...

    def relocate(self, req: RelocationRequest) -> RelocationView: ...

    def relocate_batch(self, req: RelocationBatchRequest) -> RelocationBatchView: ...

    def hold(self, instance: str, req: HoldRequest) -> HoldView: ...

    def standbys(self, instance: str) -> list[StandbyView]: ...

    def add_standby(self, instance: str, req: StandbyRequest) -> StandbyView: ...

    def remove_standby(self, instance: str, at: str) -> None: ...

    def promote(self, instance: str, req: PromotionRequest) -> PromotionView: ...

    def release_hold(self, instance: str) -> HoldReleaseView: ...
