"""The migration engine's `ControllerLink`, answered by the controller: over its REST API
(`RestControllerLink`, what `mecmig migrate` uses) or in-process through the northbound facade
(`FacadeLink`, what `/v1/migrations` uses inside the controller: no HTTP round trip to itself).

Both behave the same: a refused reservation is taken again at what the path has left (reported
once, as information), a resize that cannot grow keeps the grant, and the instance's traffic can
be held while it is frozen, from the engine or from the source's CRIU (`hold_url`). Each
reservation is made with its migration as owner, and resized and released naming it (the
controller refuses a change that names another owner).

A controller with a token wants it on every request, the hold too; a source agent's CRIU does
not have it (it is the controller's secret, not the agents'), so with a token there is no
`hold_url`: the engine holds the traffic itself, just before the dump.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from controller.api_models import (
    ApiError,
    Conflict,
    HoldRequest,
    PromotionRequest,
    RelocationBatchRequest,
    RelocationRequest,
    ReservationRequest,
    ReservationView,
    StandbyRequest,
    TrafficMatch,
)
from controller.client import ClientError, ConflictError, ControllerClient
from controller.facade import Northbound
from controller.limits import MAX_RATE_BPS
from migration.network import Grant, RelocationIncomplete
from orchestration.standby_link import StandbyRefused

log = logging.getLogger(__name__)
T = TypeVar("T")


class Refused(Exception):
    """A reservation or resize the controller refused, with what the path has left."""

    def __init__(self, message: str, residual_bps: int) -> None:
        super().__init__(message)
        self.residual_bps = residual_bps


def reserve_or_residual(ask: Callable[[int], Grant], rate_bps: int, owner: str) -> Grant | None:
    """`ask(rate_bps)`; if refused, ask once more for the path's residual (None: nothing left).
    A rate above what the controller accepts at all (the engine's sizing can exceed any link
    when the budget is tiny) is asked as that bound, which admission then cuts to the path."""
    rate_bps = min(rate_bps, MAX_RATE_BPS)
    try:
        return ask(rate_bps)
    except Refused as exc:
        residual = exc.residual_bps
        if not 0 < residual < rate_bps:
            log.info("%s: no bandwidth reserved (%s)", owner, exc)
            return None
    log.info(
        "%s: %.1f Mbit/s asked, the path has %.1f Mbit/s left: reserving that",
        owner,
        rate_bps / 1e6,
        residual / 1e6,
    )
    try:
        return ask(residual)
    except Refused as exc:
        log.info("%s: no bandwidth reserved (%s)", owner, exc)
        return None


def grow_or_keep(ask: Callable[[int], Grant], grant: Grant, rate_bps: int) -> Grant:
    """Resize `grant` to `rate_bps`, else to the path's residual if that is more, else keep it."""
    rate_bps = min(rate_bps, MAX_RATE_BPS)
    try:
        return ask(rate_bps)
    except Refused as exc:
        if exc.residual_bps <= grant.rate_bps:
            log.info("reservation %d stays at %d bit/s: %s", grant.id, grant.rate_bps, exc)
            return grant
        try:
            return ask(exc.residual_bps)
        except Refused:
            return grant


class _Owners:
    """The owner each grant was reserved with (a link serves many migrations at once)."""

    def __init__(self) -> None:
        self._owners: dict[int, str] = {}

    def _granted(self, grant: Grant | None, owner: str) -> Grant | None:
        if grant is not None:
            self._owners[grant.id] = owner
        return grant

    def _owner(self, grant: Grant) -> str | None:
        return self._owners.get(grant.id)

    def _released(self, grant: Grant) -> None:
        self._owners.pop(grant.id, None)


class RestControllerLink(_Owners):
    """The controller's REST API (`mecmig controller`), through its client."""

    def __init__(self, client: ControllerClient) -> None:
        super().__init__()
        self.client = client

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        match: dict[str, object] = {"proto": "tcp"}
        if dst_port is not None:
            match["dst_port"] = dst_port

        def ask(rate: int) -> Grant:
            try:
                view = self.client.reserve(src, dst, rate, match=match, owner=owner)
            except ConflictError as exc:
                raise Refused(str(exc), _client_residual(exc)) from exc
            return Grant(view.id, view.rate_bps)

        return self._granted(reserve_or_residual(ask, rate_bps, owner), owner)

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        owner = self._owner(grant)

        def ask(rate: int) -> Grant:
            try:
                view = self.client.resize(grant.id, rate, owner=owner)
            except ConflictError as exc:
                raise Refused(str(exc), _client_residual(exc)) from exc
            return Grant(view.id, view.rate_bps)

        return grow_or_keep(ask, grant, rate_bps)

    def release(self, grant: Grant) -> None:
        self.client.release(grant.id, owner=self._owner(grant))
        self._released(grant)

    def reservations(self) -> list[ReservationView]:
        """Every reservation in force (the migration queue reads what others hold)."""
        return self.client.reservations()

    def relocate(self, instance: str, site: str, port: int) -> float:
        return _moved(instance, self.client.relocate(instance, site, port))

    def relocate_many(self, moves: Sequence[tuple[str, str, int]]) -> float:
        view = self.client.relocate_batch(list(moves))
        return _moved(", ".join(m[0] for m in moves), view)

    def hold(self, instance: str, timeout_s: float) -> bool:
        return bool(self.client.hold(instance, timeout_s).held)

    def release_hold(self, instance: str) -> int:
        return int(self.client.release_hold(instance).released_packets)

    def hold_url(self, instance: str) -> str | None:
        if self.client.token is not None:  # the agent's CRIU has no token to send
            return None
        return f"{self.client.base_url}/v1/instances/{instance}/hold"

    # standbys: warm replicas' ports (orchestration.replicas)

    def add_standby(self, instance: str, site: str, port: int) -> None:
        _standby(lambda: self.client.add_standby(instance, site, port))

    def remove_standby(self, instance: str, site: str) -> None:
        _standby(lambda: self.client.remove_standby(instance, site))

    def standby_sites(self, instance: str) -> list[str]:
        views = _standby(lambda: self.client.standbys(instance))
        return [v.site or v.switch for v in views]

    def promote(
        self, instance: str, site: str, keep_old: bool = True, drain_ms: float = 0.0
    ) -> float:
        return _moved(
            instance, _standby(lambda: self.client.promote(instance, site, keep_old, drain_ms))
        )


class FacadeLink(_Owners):
    """The same, answered in-process by the controller's northbound facade. `rest_url` is the
    controller's own REST API, which a source agent's CRIU calls to hold the traffic once frozen
    (None: the engine holds it before the dump instead; so for a controller with a token)."""

    def __init__(self, northbound: Northbound, rest_url: str | None = None) -> None:
        super().__init__()
        self.nb = northbound
        self.rest_url = rest_url

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        def ask(rate: int) -> Grant:
            req = ReservationRequest(
                src=src,
                dst=dst,
                rate=rate,
                match=TrafficMatch(proto="tcp", dst_port=dst_port),
                owner=owner,
            )
            try:
                view = self.nb.reserve(req)
            except Conflict as exc:
                raise Refused(str(exc), _facade_residual(exc)) from exc
            return Grant(view.id, view.rate_bps)

        return self._granted(reserve_or_residual(ask, rate_bps, owner), owner)

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        owner = self._owner(grant)

        def ask(rate: int) -> Grant:
            try:
                view = self.nb.resize(grant.id, rate, owner=owner)
            except Conflict as exc:
                raise Refused(str(exc), _facade_residual(exc)) from exc
            return Grant(view.id, view.rate_bps)

        return grow_or_keep(ask, grant, rate_bps)

    def release(self, grant: Grant) -> None:
        self.nb.release(grant.id, owner=self._owner(grant))
        self._released(grant)

    def reservations(self) -> list[ReservationView]:
        """Every reservation in force (the migration queue reads what others hold)."""
        return self.nb.reservations()

    def relocate(self, instance: str, site: str, port: int) -> float:
        view = self.nb.relocate(RelocationRequest(instance=instance, to=site, port=port))
        return _moved(instance, view)

    def relocate_many(self, moves: Sequence[tuple[str, str, int]]) -> float:
        req = RelocationBatchRequest(
            moves=[RelocationRequest(instance=i, to=site, port=port) for i, site, port in moves]
        )
        return _moved(", ".join(m[0] for m in moves), self.nb.relocate_batch(req))

    def hold(self, instance: str, timeout_s: float) -> bool:
        return bool(self.nb.hold(instance, HoldRequest(timeout_s=timeout_s)).held)

    def release_hold(self, instance: str) -> int:
        return int(self.nb.release_hold(instance).released_packets)

    def hold_url(self, instance: str) -> str | None:
        if self.rest_url is None:
            return None
        return f"{self.rest_url}/v1/instances/{instance}/hold"

    # standbys: warm replicas' ports (orchestration.replicas)

    def add_standby(self, instance: str, site: str, port: int) -> None:
        _standby(lambda: self.nb.add_standby(instance, StandbyRequest(to=site, port=port)))

    def remove_standby(self, instance: str, site: str) -> None:
        _standby(lambda: self.nb.remove_standby(instance, site))

    def standby_sites(self, instance: str) -> list[str]:
        return [v.site or v.switch for v in _standby(lambda: self.nb.standbys(instance))]

    def promote(
        self, instance: str, site: str, keep_old: bool = True, drain_ms: float = 0.0
    ) -> float:
        req = PromotionRequest(to=site, keep_old=keep_old, drain_ms=drain_ms)
        return _moved(instance, _standby(lambda: self.nb.promote(instance, req)))


def _standby(call: Callable[[], T]) -> T:
    """`call()`; a refusal (4xx, from the facade or over HTTP) as StandbyRefused."""
    try:
        return call()
    except ClientError as exc:
        if exc.status >= 500:
            raise
        raise StandbyRefused(exc.message, exc.status) from exc
    except ApiError as exc:
        if exc.status >= 500:
            raise
        raise StandbyRefused(exc.message, exc.status) from exc


def _client_residual(exc: ConflictError) -> int:
    body = exc.body if isinstance(exc.body, dict) else {}
    context = body.get("context")
    return _as_int(context.get("residual_bps") if isinstance(context, dict) else None)


def _facade_residual(exc: Conflict) -> int:
    return _as_int(exc.context.get("residual_bps"))


def _as_int(value: object) -> int:
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def _moved(instance: str, view: Any) -> float:
    """The switch-over time of a relocation; RelocationIncomplete if switches it changes were
    not connected (an older controller says nothing of them: none)."""
    pending = list(getattr(view, "switches_pending", None) or [])
    if pending:
        raise RelocationIncomplete(instance, pending, float(view.switchover_ms))
    return float(view.switchover_ms)
