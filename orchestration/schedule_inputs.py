"""The scheduler's inputs, built and checked: directed links of a path, capacities from a
topology or from what a `LinkLoad`'s reservations leave, the min rate a request needs
(migration.stoprule), and the checks `Scheduler.submit` and `estimate` share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from migration.stoprule import final_rate_bps
from orchestration.schedule_models import (
    DirectedLink,
    DuplicateMigrationError,
    MigrationRequest,
    NeverFitsError,
    Policy,
    UnknownLinkInRequestError,
)
from topology.admission import LinkLoad
from topology.model import Topology
from topology.paths import path_links


def links_of_path(path: Sequence[str]) -> tuple[DirectedLink, ...]:
    """The directed links a switch path crosses, as a request lists them."""
    return tuple(path_links(path))


def capacities_of(source: Topology | LinkLoad) -> dict[DirectedLink, int]:
    """Capacity per directed link: both directions of every link of a topology, or, from a
    `LinkLoad`, what its reservations leave (its residual; 0 on a link that is down)."""
    if isinstance(source, Topology):
        return dict(LinkLoad(source).capacity)
    return {link: source.residual(*link) for link in source.capacity}


def min_rate_bps(
    predicted_final_bytes: float,
    budget_ms: float,
    dump_s: float = 0.0,
    restore_s: float = 0.0,
    floor_bps: float = 0.0,
) -> int:
    """The min rate a request needs: migration.stoprule.final_rate_bps, rounded up to bit/s."""
    return math.ceil(final_rate_bps(predicted_final_bytes, budget_ms, dump_s, restore_s, floor_bps))


def check_capacities(caps: Mapping[DirectedLink, int]) -> dict[DirectedLink, int]:
    out = dict(caps)
    for link, cap in out.items():
        if cap < 0:
            raise ValueError(f"capacity of {link[0]}->{link[1]} must be >= 0, got {cap}")
    return out


def check_request_links(
    policy: Policy, caps: Mapping[DirectedLink, int], req: MigrationRequest
) -> None:
    for link in req.links:
        if link not in caps:
            raise UnknownLinkInRequestError(req.id, link)
    if policy is Policy.NETWORK_AWARE:
        for link in req.links:
            if req.min_rate_bps > caps[link]:
                raise NeverFitsError(req.id, link, req.min_rate_bps, caps[link])


def check_new(
    policy: Policy,
    caps: Mapping[DirectedLink, int],
    requests: Iterable[MigrationRequest],
    taken: Mapping[str, str],
) -> None:
    """Refuse a batch of requests: an id already `taken` (id -> its state) or repeated in the
    batch, an unknown link, or (network-aware) a min rate above a link's capacity."""
    seen: set[str] = set()
    for req in requests:
        if req.id in taken:
            raise DuplicateMigrationError(req.id, taken[req.id])
        if req.id in seen:
            raise DuplicateMigrationError(req.id, "in the same batch")
        seen.add(req.id)
        check_request_links(policy, caps, req)
