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


def test_what_an_operator_reserved_is_not_granted_and_jobs_start_when_it_is_released(
    bed: Bed,
) -> None:
    """An operator's reservation fills the link (990 of 1000 Mbit/s, UDP, not the migrations'
    traffic): the queue starts nothing, the jobs wait naming the link; once it is released,
    the queue's poll sees it and they run, at the whole link, and end done."""
    src = bed.orch.where("fw")
    assert src is not None and bed.orch.where("video") == src
    dst = "mec1" if src == "mec2" else "mec2"
    client = bed.client
    operator = client.reserve(  # type: ignore[attr-defined]
        src, dst, "990Mbit", match={"proto": "udp", "dst_port": 9}, owner="operator"
    )
    queue = MigrationQueue(bed.orch, "network-aware")
    try:
        jobs = [QueueJob("instance", name, dst, strategy="cold") for name in ("fw", "video")]
        submitted = queue.submit(jobs)
        assert [s.state for s in submitted] == ["queued", "queued"], submitted
        time.sleep(1.5)  # three polls: still nothing fits beside the operator's
        state = queue.state()
        assert not state.running and len(state.queue) == 2, state
        assert all(j.waiting_for for j in state.queue), state.queue
        released = time.monotonic()
        client.release(operator.id, owner="operator")  # type: ignore[attr-defined]
        started_after = None
        grants: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for view in client.reservations():  # type: ignore[attr-defined]
                assert view.owner != "operator"
                grants.append(view.rate_bps)
            state = queue.state()
            if state.running and started_after is None:
                started_after = time.monotonic() - released
            if not state.running and not state.queue:
                break
            time.sleep(0.05)
        state = queue.state()
        assert [j.state for j in state.ended] == ["done", "done"], state.ended
        assert started_after is not None and started_after < 1.5, started_after
        assert grants and max(grants) > 500_000_000, grants  # the whole link, once free
        assert bed.orch.where("fw") == dst and bed.orch.where("video") == dst
    finally:
        queue.close()
        for view in client.reservations():  # type: ignore[attr-defined]
            if view.owner == "operator":
                client.release(view.id, owner="operator")  # type: ignore[attr-defined]
    print(f"\n  started {started_after:.2f} s after the operator released the link")
