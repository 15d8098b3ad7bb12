"""The migration queue on real OVS, os-ken, runc and CRIU (issue 11, part 4): network-aware, four
instances of scenarios/chains.yaml asked to move mec1 -> mec2 at once over 1 Gbit/s links. Each
needs most of a link to fit its 1 s budget, so the scheduler starts what fits and queues the rest
with positions; while they run, the controller's reservations on every link, polled every 50 ms,
never exceed its capacity; every job ends done, one after another as the link frees."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from orchestration.migration_queue import MigrationQueue
from orchestration.orchestrator import Orchestrator
from orchestration.queue_jobs import QueueJob
from tests.integration.live import orchestrated

MOVED = ("fw", "video", "fw3", "ids3")


@dataclass
class Bed:
    orch: Orchestrator
    client: object


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    with orchestrated("chains.yaml", tmp_path_factory.mktemp("agents")) as o:
        for name in MOVED:
            o.orch.teardown(name)
            o.orch.deploy(name)
        yield Bed(o.orch, o.tb.ctl.client)
        for name in MOVED:
            o.orch.teardown(name)


def test_network_aware_queues_what_does_not_fit_and_never_overcommits_a_link(bed: Bed) -> None:
    queue = MigrationQueue(bed.orch, "network-aware")
    jobs = [QueueJob("instance", name, "mec2", strategy="cold") for name in MOVED]
    submitted = queue.submit(jobs)
    started = [s for s in submitted if s.state == "started"]
    queued = [s for s in submitted if s.state == "queued"]
    assert started and queued, submitted  # what does not fit waits
    assert sorted(s.position for s in queued if s.position is not None) == list(
        range(1, len(queued) + 1)
    )
    worst: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        topo = bed.client.topology()  # type: ignore[attr-defined]
        for link in topo.links:
            for d in link.directions:
                key = (d.src, d.dst)
                worst[key] = max(worst.get(key, 0.0), d.reserved_bps / d.capacity_bps)
                assert d.reserved_bps <= d.capacity_bps, (key, d)
        state = queue.state()
        if not state.running and not state.queue:
            break
        time.sleep(0.05)
    state = queue.state()
    assert not state.running and not state.queue, state
    assert [j.state for j in state.ended] == ["done"] * len(MOVED), state.ended
    assert all(bed.orch.where(name) == "mec2" for name in MOVED)
    assert max(worst.values()) > 0.5, worst  # the reservations were really there
    print(f"\n  started at once: {len(started)}, queued: {len(queued)}; "
          f"highest share of a link reserved: {max(worst.values()):.2f}")  # fmt: skip
