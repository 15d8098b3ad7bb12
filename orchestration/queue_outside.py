"""What others hold on the migration queue's links: the controller's reservations that are not
the queue's own (a migration started on its own through `/v1/migrations`, a reservation an
operator made through `/v1/reservations`). The queue grants each link its capacity less that
(`Scheduler.set_outside`), read at every submission and end and, while a job runs or waits,
every `OUTSIDE_POLL_S`, so that what waits starts when the outside releases.

A reservation is the queue's when its owner is one of the queue's job ids, or a chain member's
`<job id>.<i>` (orchestration.chain_plan names them so).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Protocol, runtime_checkable

from controller.api_models import ReservationView
from orchestration.schedule_models import DirectedLink
from orchestration.scheduler import links_of_path

OUTSIDE_POLL_S = 0.5


@runtime_checkable
class ListsReservations(Protocol):
    """Where the reservations are read (orchestration.links' FacadeLink and RestControllerLink)."""

    def reservations(self) -> Sequence[ReservationView]: ...


def owned_by_queue(owner: str | None, ids: Collection[str]) -> bool:
    """Whether a reservation with this owner is one of the jobs `ids` (a chain's members too)."""
    if owner is None:
        return False
    return owner in ids or owner.rsplit(".", 1)[0] in ids


def outside_usage(
    views: Iterable[ReservationView], ids: Collection[str]
) -> dict[DirectedLink, int]:
    """The bandwidth per directed link held by reservations that are not the jobs `ids`'."""
    usage: dict[DirectedLink, int] = {}
    for view in views:
        if owned_by_queue(view.owner, ids):
            continue
        for link in links_of_path(view.path):
            usage[link] = usage.get(link, 0) + view.rate_bps
    return usage
