"""Follow-me on real OVS, os-ken, runc and CRIU (issue 12): `scenarios/drive.yaml` played at a
time scale, its UEs re-plugged in Mininet as their cells change (mininet_scenarios.ue_motion)
while the follow-me driver (orchestration.follower) moves their service by speculative
pre-copy.

- The car drives past mec1, mec2 and mec3: the key-value store starts pre-copy towards each
  next site before the car gets there and commits at the handover; it ends at mec3 with its
  memory state and the car's one TCP connection to it.
- The turner heads for zone02 and turns back before it enters: the speculation started
  towards mec2 is cancelled; the store never went through a final freeze, nothing is left at
  mec2, and it serves on at mec1 with its state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from migration.timeline import MigrationRecord, Outcome
from mininet_scenarios.ue_motion import UEMover
from orchestration.follow_me import Cancel, Commit, Followed, FollowMe, Start, estimate_times
from orchestration.follower import Follower, orchestrator_launcher
from orchestration.prediction import known_dwell, straight_ahead
from orchestration.speculation import SpecState, Speculation
from tests.integration.live import ROOT, Orchestrated, drive_followed, orchestrated
from topology.mobility_events import ue_mobility

# a hang (a process that never ends, a switch that never answers) fails here, not in CI's limit
pytestmark = pytest.mark.timeout(600)

SCALE = 2.0  # scenario seconds per second: the car's 30 s drive takes 15 s
MiB = 2**20
SERVICE = "kv"


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrated]:
    with orchestrated("drive.yaml", tmp_path_factory.mktemp("agents")) as o:
        yield o
        o.orch.teardown(SERVICE)


class Probe:
    """`workloads.probe` on the UE: one TCP connection to the store, a PING every 5 ms."""

    def __init__(self, bed: Orchestrated, ue: str) -> None:
        server = str(bed.sc.instance(SERVICE).ip)
        self.proc = bed.tb.emu.host(ue).popen(
            [sys.executable, "-m", "workloads.probe", server, "7000", "--duration", "0",
             "--interval-ms", "5", "--stall-timeout-ms", "60000", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        )  # fmt: skip
        time.sleep(1.0)

    def result(self) -> dict[str, Any]:
        time.sleep(1.0)
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err.decode()
        data: dict[str, Any] = json.loads(out)
        return data


def follow(bed: Orchestrated, ue: str) -> tuple[Follower, UEMover, float]:
    """Drive `ue` through its path at SCALE with follow-me on `kv`; the follower, the mover
    and the wall time the drive started."""
    mob = ue_mobility(bed.sc, ue)
    site = bed.orch.where(SERVICE)
    assert site is not None
    t_pre, t_down = estimate_times(32 * MiB, 1_000_000_000, "precopy")
    policy = FollowMe(
        ue,
        [Followed(SERVICE, site, t_pre, t_down)],
        straight_ahead(mob),
        serving_site=site,
        dwell=known_dwell(mob),
        scale=SCALE,
    )
    speculate = partial(Speculation, warm_interval_s=0.5)
    follower = Follower(policy, orchestrator_launcher(bed.orch, speculate=speculate))
    mover, start = drive_followed(bed.tb, follower, mob, SCALE)
    return follower, mover, start


def record_of(spec: Speculation) -> MigrationRecord:
    record: MigrationRecord = spec.move.m.record  # type: ignore[attr-defined]
    return record


def phase_names(record: MigrationRecord) -> list[str]:
    return [p.name for p in record.phases]


def test_a_speculation_towards_a_site_the_ue_turns_away_from_is_cancelled_unfrozen(
    bed: Orchestrated,
) -> None:
    bed.orch.teardown(SERVICE)
    bed.orch.deploy(SERVICE, "mec1")
    probe = Probe(bed, "turner")
    follower, mover, _ = follow(bed, "turner")
    client = probe.result()
    kinds = [(type(d.action).__name__, d.result) for d in follower.history]
    assert ("Start", "started") in kinds, kinds
    assert ("Cancel", "requested") in kinds, kinds
    assert not any(isinstance(d.action, Commit) for d in follower.history), kinds
    [(name, spec)] = follower.ended
    assert name == SERVICE and spec.state is SpecState.CANCELLED
    record = record_of(spec)
    assert record.outcome is Outcome.ROLLED_BACK
    assert record.metrics["speculation"]["outcome"] == "cancelled", record.metrics
    assert "freeze_dump" not in phase_names(record), phase_names(record)
    assert any(p.startswith("precopy") for p in phase_names(record)), phase_names(record)
    # the store serves on at mec1 with its state; nothing of it is left at mec2
    assert bed.orch.where(SERVICE) == "mec1"
    assert bed.orch.placement(SERVICE).at == {"mec1": "running", "mec2": "absent", "mec3": "absent"}
    assert client["same_connection"] and client["counter_monotonic"], client
    assert client["fingerprint_stable"], client
    assert not mover.log  # the turner never left cell1: nothing was re-plugged
    pauses = spec.summary().get("rounds_dump_ms")
    print(
        f"\n  cancelled after {len(record.phases)} phases; pre-dump time {pauses} ms; the "
        f"client's longest gap {client['downtime_ms']:.0f} ms"
    )


def test_the_service_follows_a_car_past_three_sites_with_its_state_and_connection(
    bed: Orchestrated,
) -> None:
    bed.orch.teardown(SERVICE)
    bed.orch.deploy(SERVICE, "mec1")
    probe = Probe(bed, "car")
    follower, mover, start = follow(bed, "car")
    client = probe.result()
    assert bed.orch.where(SERVICE) == "mec3"
    starts = [d.action for d in follower.history if isinstance(d.action, Start)]
    commits = [d.action for d in follower.history if isinstance(d.action, Commit)]
    assert [(s.target, s.speculative) for s in starts] == [("mec2", True), ("mec3", True)]
    assert [c.target for c in commits] == ["mec2", "mec3"]
    assert not any(isinstance(d.action, Cancel) for d in follower.history)
    ended = [(name, spec) for name, spec in follower.ended]
    assert [spec.state for _, spec in ended] == [SpecState.DONE, SpecState.DONE]
    handovers = {h.handover.t_s: h for h in mover.log}
    assert sorted(handovers) == [7.5, 22.5]
    assert all(h.switch is not None for h in mover.log)  # each a new site: re-plugged
    for (_, spec), at_s in zip(ended, (7.5, 22.5), strict=True):
        record = record_of(spec)
        assert record.outcome is Outcome.DONE, record.error
        names = phase_names(record)
        assert any(p.startswith("precopy") for p in names), names
        freeze = next(p for p in record.phases if p.name == "freeze_dump")
        first_round = next(p for p in record.phases if p.name.startswith("precopy"))
        assert first_round.start_ms < freeze.start_ms
        # rounds before the handover, the freeze after it (commit at the handover)
        handover_ms = (start + at_s / SCALE - spec.move.m.timeline.t0) * 1000.0  # type: ignore[attr-defined]
        assert first_round.start_ms < handover_ms <= freeze.start_ms + 50, (
            first_round.start_ms, handover_ms, freeze.start_ms,
        )  # fmt: skip
    assert client["same_connection"] and client["counter_monotonic"], client
    assert client["fingerprint_stable"], client
    print(
        f"\n  client's longest gap {client['downtime_ms']:.0f} ms over two moves; re-plugs "
        + ", ".join(f"{m.replug_ms:.0f} ms" for m in mover.log if m.replug_ms is not None)
    )
