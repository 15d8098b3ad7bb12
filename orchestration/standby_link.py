"""What warm replicas ask of the controller (issue 12 part 4): their ports as standbys of their
instance, and the promotion of one to primary. `orchestration.links`' `FacadeLink` and
`RestControllerLink` answer it (a refusal as `StandbyRefused`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class StandbyRefused(Exception):
    """The controller refused a standby operation (unknown instance or site: `status` 404; a
    port taken, no standby to promote: 409), with its message; nothing changed there."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@runtime_checkable
class StandbyLink(Protocol):
    def add_standby(self, instance: str, site: str, port: int) -> None:
        """Make `site`'s `port` a standby of `instance`: nothing steered there, its frames
        dropped there and never learned. Before the replica there starts."""
        ...

    def remove_standby(self, instance: str, site: str) -> None:
        """Forget the standby at `site`: after the replica there is removed."""
        ...

    def standby_sites(self, instance: str) -> list[str]:
        """Where `instance` has standbys (its warm replicas that are not the primary)."""
        ...

    def promote(
        self, instance: str, site: str, keep_old: bool = True, drain_ms: float = 0.0
    ) -> float:
        """Move `instance`'s traffic to its standby at `site` (the old place becomes a standby
        unless `keep_old` is false, its frames dropped `drain_ms` after the switch); the
        switch-over time in ms."""
        ...
