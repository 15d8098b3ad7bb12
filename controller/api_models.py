"""The northbound API's data: request and response models (pydantic) and the facade they talk to.

The REST server (`controller.rest`) and the Python client (`controller.client`) both use these
models; the os-ken app implements `ControllerAPI`. Errors the facade raises map to HTTP codes:
`NotFound` 404, `Conflict` 409 (e.g. admission refused), `Invalid` 422.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ground.units import parse_rate

Rate = Annotated[int, BeforeValidator(parse_rate), Field(gt=0, description="bit/s, or '40Mbit'")]


class ApiError(Exception):
    """An error the API reports to its caller with a message (never a traceback)."""

    status = 400

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Invalid(ApiError):
    status = 422


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class TrafficMatch(_Model):
    """Which packets a reservation carries (all given fields must match)."""

    ip_src: str | None = Field(default=None, description="source IPv4 (default: src host's)")
    ip_dst: str | None = Field(default=None, description="destination IPv4 (default: dst host's)")
    proto: Literal["tcp", "udp", "any"] = "tcp"
    dst_port: int | None = Field(default=None, ge=1, le=65535)
    src_port: int | None = Field(default=None, ge=1, le=65535)


class ReservationRequest(_Model):
    """Reserve `rate` from host/site `src` to host/site `dst` for the matching traffic."""

    src: str
    dst: str
    rate: Rate
    match: TrafficMatch = TrafficMatch()
    burst_kb: int | None = Field(default=None, ge=0, description="meter burst (default: auto)")
    owner: str | None = Field(default=None, description="free text, e.g. 'mig=7'")


class ResizeRequest(_Model):
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


class RelocationRequest(_Model):
    """Move instance `instance` (same IP and MAC) to `to`: a site, or a switch and port."""

    instance: str
    to: str = Field(description="site or switch name")
    port: int | None = Field(default=None, ge=1, description="port on the switch (default: site's)")


class RelocationView(_Model):
    instance: str
    old_switch: str
    old_port: int
    new_switch: str
    new_port: int
    switches_touched: list[str]
    flow_mods: int
    switchover_ms: float = Field(description="first flow-mod sent -> last barrier reply")


class HoldRequest(_Model):
    """Hold an instance's traffic at the controller (while it is frozen for a migration)."""

    timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="released by itself after this long"
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

    def resize(self, rid: int, rate_bps: int) -> ReservationView: ...

    def release(self, rid: int) -> None: ...

    def relocate(self, req: RelocationRequest) -> RelocationView: ...

    def hold(self, instance: str, req: HoldRequest) -> HoldView: ...

    def release_hold(self, instance: str) -> HoldReleaseView: ...
