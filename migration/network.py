"""What migrations ask of the network: reservations for their traffic, the traffic switch, and
holding the instance's traffic while it is frozen (delivered after the restore, not dropped).

`ControllerLink` is the engine's view; the orchestration layer's links (`orchestration.links`)
answer it over the controller's REST API or in-process. Without a controller (a plain two-host
setup) `NoNetwork` does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    """A reservation in force: its id and the rate actually granted."""

    id: int
    rate_bps: int


class RelocationIncomplete(Exception):
    """The controller moved an instance's traffic, but switches on the way that the move
    changes are not connected: they get it when they connect, and until then the traffic may
    not reach the instance through them. Before the point of no return, a migration stops
    there and rolls back; a move back to the source is as good as it can be."""

    def __init__(self, instance: str, switches: list[str], switchover_ms: float) -> None:
        super().__init__(
            f"{instance}: switches {', '.join(switches)} are not connected to the controller: "
            "the traffic cannot be moved to the destination through them now"
        )
        self.switches = switches
        self.switchover_ms = switchover_ms


class ControllerLink(Protocol):
    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        """Reserve up to `rate_bps` (less if that is all there is); None if nothing fits."""
        ...

    def resize(self, grant: Grant, rate_bps: int) -> Grant: ...

    def release(self, grant: Grant) -> None: ...

    def relocate(self, instance: str, site: str, port: int) -> float:
        """Move the instance's traffic; return the switch-over time in ms. RelocationIncomplete
        if switches it had to change are not connected (they get the change on connect)."""
        ...

    def relocate_many(self, moves: Sequence[tuple[str, str, int]]) -> float:
        """Move several instances' traffic in one change, (instance, site, port) each (a
        chain's functions: no switch holds some moved and others not); the switch-over time
        in ms. Nothing moves if one move cannot be made. RelocationIncomplete as `relocate`."""
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

    def relocate_many(self, moves: Sequence[tuple[str, str, int]]) -> float:
        return 0.0

    def hold(self, instance: str, timeout_s: float) -> bool:
        return False

    def release_hold(self, instance: str) -> int:
        return 0

    def hold_url(self, instance: str) -> str | None:
        return None


class WithoutReservations:
    """A controller's link whose migrations reserve nothing (they share the links best
    effort), but whose traffic is still moved and held."""

    def __init__(self, inner: ControllerLink) -> None:
        self.inner = inner

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        return None

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        return grant

    def release(self, grant: Grant) -> None:
        return None

    def relocate(self, instance: str, site: str, port: int) -> float:
        return self.inner.relocate(instance, site, port)

    def relocate_many(self, moves: Sequence[tuple[str, str, int]]) -> float:
        return self.inner.relocate_many(moves)

    def hold(self, instance: str, timeout_s: float) -> bool:
        return self.inner.hold(instance, timeout_s)

    def release_hold(self, instance: str) -> int:
        return self.inner.release_hold(instance)

    def hold_url(self, instance: str) -> str | None:
        return self.inner.hold_url(instance)
