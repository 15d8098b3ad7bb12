"""What migrations ask of the network: reservations for their traffic, the traffic switch, and
holding the instance's traffic while it is frozen (delivered after the restore, not dropped).

`ControllerLink` is the engine's view; `RestControllerLink` speaks to `mecmig controller` through
its REST client. Without a controller (a plain two-host setup) `NoNetwork` does nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from controller.client import ConflictError, ControllerClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    """A reservation in force: its id and the rate actually granted."""

    id: int
    rate_bps: int


class ControllerLink(Protocol):
    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        """Reserve up to `rate_bps` (less if that is all there is); None if nothing fits."""
        ...

    def resize(self, grant: Grant, rate_bps: int) -> Grant: ...

    def release(self, grant: Grant) -> None: ...

    def relocate(self, instance: str, site: str, port: int) -> float:
        """Move the instance's traffic; return the switch-over time in ms."""
        ...

    def hold(self, instance: str, timeout_s: float) -> bool:
        """Keep the instance's packets at the controller (False: this network cannot)."""
        ...

    def release_hold(self, instance: str) -> int:
        """Deliver the held packets where the instance is now; return how many."""
        ...

    def hold_url(self, instance: str) -> str | None:
        """Where a source agent's CRIU asks for the hold itself, once frozen (None: cannot)."""
        ...


class NoNetwork:
    """No controller: no reservations, no traffic switch (hosts on one L2 segment)."""

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        return None

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        return grant

    def release(self, grant: Grant) -> None:
        return None

    def relocate(self, instance: str, site: str, port: int) -> float:
        return 0.0

    def hold(self, instance: str, timeout_s: float) -> bool:
        return False

    def release_hold(self, instance: str) -> int:
        return 0

    def hold_url(self, instance: str) -> str | None:
        return None


class RestControllerLink:
    """The controller's REST API. A refused reservation is retried at what the path has left."""

    def __init__(self, client: ControllerClient) -> None:
        self.client = client

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        rate = rate_bps
        for _ in range(2):
            try:
                match: dict[str, object] = {"proto": "tcp"}
                if dst_port is not None:
                    match["dst_port"] = dst_port
                view = self.client.reserve(src, dst, rate, match=match, owner=owner)
                return Grant(view.id, view.rate_bps)
            except ConflictError as exc:
                residual = _residual(exc)
                log.warning("%s: %s", owner, exc)
                if residual <= 0 or residual >= rate:
                    return None
                rate = residual
        return None

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        try:
            view = self.client.resize(grant.id, rate_bps)
        except ConflictError as exc:
            residual = _residual(exc)
            if residual <= grant.rate_bps:
                log.warning("reservation %d cannot grow: %s", grant.id, exc)
                return grant
            view = self.client.resize(grant.id, residual)
        return Grant(view.id, view.rate_bps)

    def release(self, grant: Grant) -> None:
        self.client.release(grant.id)

    def relocate(self, instance: str, site: str, port: int) -> float:
        return float(self.client.relocate(instance, site, port).switchover_ms)

    def hold(self, instance: str, timeout_s: float) -> bool:
        return bool(self.client.hold(instance, timeout_s).held)

    def release_hold(self, instance: str) -> int:
        return int(self.client.release_hold(instance).released_packets)

    def hold_url(self, instance: str) -> str | None:
        return f"{self.client.base_url}/v1/instances/{instance}/hold"


def _residual(exc: ConflictError) -> int:
    body = exc.body if isinstance(exc.body, dict) else {}
    context = body.get("context", {}) if isinstance(body.get("context"), dict) else {}
    try:
        return int(context.get("residual_bps", 0))
    except (TypeError, ValueError):
        return 0
