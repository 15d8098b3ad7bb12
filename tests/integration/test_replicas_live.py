"""Warm replicas on real OVS, os-ken and runc (issue 12, part 4; seed 002): `web`, stateless, runs
at mec1 with replicas waiting at mec2 and mec3 (scenarios/replicas.yaml), while the UE sends a
GET on a new connection every 5 ms (workloads.http_poll).

- The replicas run but serve nobody: their ports are standbys at the controller (a drop flow),
  so every reply comes from the primary.
- A handover is a flow switch only (the controller's promote; nothing starts): the client's
  silence across the switch, net of its own jitter on this host, is within 10 ms in 2 of 3,
  and from then on the replica at mec2 answers (its own counter).
- The primary killed (SIGKILL of its container), the backup takes over: the failure is seen
  within the detector's bound and the client's longest gap stays within that bound plus the
  switch.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from controller.client import ControllerClientError
from ground.paths import RUN_DIR
from ground.runner import SubprocessRunner
from mecmig.bench.mobility_replica import poll_replies
from mecmig.bench.mobility_rows import Reply, largest_gap_ms
from mininet_scenarios.ue_motion import FollowLocation, UEMover
from orchestration.replicas import Replicas
from tests.integration.live import ROOT, Orchestrated, orchestrated

# a hang (a process that never ends, a switch that never answers) fails here, not in CI's limit
pytestmark = pytest.mark.timeout(600)

SERVICE = "web"
PROBE_S, MISSES = 0.1, 3


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrated]:
    with orchestrated("replicas.yaml", tmp_path_factory.mktemp("agents")) as o:
        yield o
        o.orch.teardown(SERVICE)
        for site in ("mec2", "mec3"):
            with contextlib.suppress(ControllerClientError):  # gone already is fine
                o.tb.ctl.client.remove_standby(SERVICE, site)


class Poll:
    """workloads.http_poll on the phone: a GET /counter on a new connection every 5 ms (a
    request unanswered for 3 s failed)."""

    def __init__(self, bed: Orchestrated) -> None:
        server = str(bed.sc.instance(SERVICE).ip)
        self.proc = bed.tb.emu.host("phone").popen(
            [sys.executable, "-m", "workloads.http_poll", server, "8080", "--interval-ms", "5",
             "--json", "--timeout-ms", "3000", "--samples"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        )  # fmt: skip
        self.started = time.monotonic()
        time.sleep(1.0)

    def result(self) -> dict[str, Any]:
        time.sleep(1.0)
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err.decode()
        data: dict[str, Any] = json.loads(out)
        return data


def _wait_serving(bed: Orchestrated) -> None:
    ue = bed.tb.emu.host("phone")
    ip = bed.sc.instance(SERVICE).ip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "HTTP/1" in ue.cmd(f"curl -s -m 1 -i http://{ip}:8080/health | head -1"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{SERVICE} does not answer")


def test_a_replica_switch_and_a_failover_cost_the_client_what_the_switch_costs(
    bed: Orchestrated,
) -> None:
    bed.orch.teardown(SERVICE)
    bed.orch.deploy(SERVICE, "mec1")
    _wait_serving(bed)
    reps = Replicas(bed.orch, SERVICE, probe_interval_s=PROBE_S, misses=MISSES)
    report = reps.place(["mec2", "mec3"])
    assert sorted(reps.set.sites) == ["mec1", "mec2", "mec3"], report
    standbys = bed.tb.ctl.client.standbys(SERVICE)
    assert sorted(s.site for s in standbys) == ["mec2", "mec3"]
    placement = bed.orch.placement(SERVICE).at
    assert placement == {"mec1": "running", "mec2": "running", "mec3": "running"}

    # three handovers, 1.5 s apart, under one client: mec2, mec3, then mec1 again
    poll = Poll(bed)
    moves: list[tuple[str, float, float]] = []  # (site, at ms in the client's time, switch ms)
    spans: list[tuple[float, float]] = []  # each handover's call, monotonic s
    for site in ("mec2", "mec3", "mec1"):
        began = time.monotonic()
        moves.append((site, (began - poll.started) * 1000, reps.handover(site)))
        spans.append((began, time.monotonic()))
        time.sleep(1.5)
    handed = poll.result()
    replies = poll_replies(handed["samples"])
    # what to look at if a switch is not seen (once here in ~50 runs: the third one, no gap):
    # the counters from 30 ms before each handover to 50 ms after it, and the standbys now
    around = [[r.counter for r in replies if b - 0.03 <= r.t_s <= e + 0.05] for b, e in spans]
    standbys_now = sorted(str(s.site) for s in bed.tb.ctl.client.standbys(SERVICE))
    brief = {k: handed[k] for k in ("gaps", "bodies_changed", "failures", "failed")} | {
        "moves": moves, "around": around, "standbys": standbys_now
    }  # fmt: skip
    # a request caught mid-connection by a switch may be refused by the new primary, which never
    # saw that connection (seen once in CI: 1 refused, a 207 ms gap): at most one per switch
    assert handed["ok"] > 800 and handed["failures"] <= len(moves), brief
    assert len(handed["bodies_changed"]) == 3, brief  # each switch: another process answers
    # each handover's cost to the client: its silence across the switch to the other process,
    # net of its own jitter (as for the car below)
    jitter = min(5.0, jitter_ms(replies, spans, 5.0))
    untils = [b for b, _ in spans[1:]] + [math.inf]
    costs = [switch_gap_ms(replies, b, u, 5.0) for (b, _), u in zip(spans, untils, strict=True)]
    brief |= {"costs": costs, "jitter": jitter}
    assert sorted(costs)[1] - jitter <= 10.0, brief  # seed 002's 10 ms, in at least 2 of 3
    assert max(costs) <= 1100.0, brief  # at worst one SYN sent again (TCP: after 1 s)
    assert reps.set.primary == "mec1"
    switch_ms = max(m[2] for m in moves)
    poll = Poll(bed)  # now the primary dies: the backup takes over
    runc_root = RUN_DIR / "runc" / f"{bed.sc.name}-mec1"
    SubprocessRunner().run(["runc", "--root", str(runc_root), "kill", SERVICE, "KILL"])
    # the clock starts when runc has sent the signal, not when runc starts: runc's own start-up
    # (tens of ms, more on busy cores) is not the detector's (CI, 5247869: 0.621 s, bound 0.6)
    killed = time.monotonic()
    failover = None
    while failover is None and time.monotonic() - killed < 10:
        events = reps.tick()
        failover = next((e for e in events if e.kind == "failover"), None)
        time.sleep(0.02)
    detected_s = time.monotonic() - killed
    failed = poll.result()
    assert failover is not None, reps.events
    bound_s = PROBE_S * MISSES + PROBE_S  # the detector's bound, plus one probe's own time
    assert detected_s <= bound_s + 0.2, detected_s
    assert reps.set.primary == failover.site != "mec1"
    assert failed["max_gap_ms"] <= (bound_s + 0.2) * 1000, failed
    print(
        f"\n  handovers: switch-over up to {switch_ms:.1f} ms, the client's gap across each "
        f"{costs} ms (jitter {jitter:.1f} ms; {handed['ok']} replies); failover to "
        f"{failover.site} after {detected_s * 1000:.0f} ms, the client's longest gap "
        f"{failed['max_gap_ms']:.0f} ms"
    )


def test_a_stateless_service_follows_a_car_by_replicas_and_flow_switches(
    bed: Orchestrated,
) -> None:
    """`POST /v1/follow-me {"ue": "car"}` (its `follow: [web]`) and the controller's playback at
    x2: a replica is placed ahead of the car at each next site, and at each handover the one
    there becomes the primary by a flow switch, with no migration; the emulation re-plugs the
    car as the location service moves it (FollowLocation), make-before-break, its links
    plugged ahead (standbys): no packet is lost, and the car's client, a GET on a new
    connection every 5 ms, sees no gap over 10 ms beyond its interval at either move (seed
    002's goal): across the car's re-plug and across the switch to the replica, net of the
    client's own jitter on this host (p99 of its gaps away from the moves, at most 5 ms; here
    1-5 ms). The replica's first reply needs its client's MAC: its ARP request was answered
    only after the handover's promotions, each waiting for its barriers (9.7-29.5 ms at the
    moves); answered on the switch's event thread now, 3.4-11.1 ms in 4 runs of 5. A request
    caught mid-connection by a switch may be reset by the new primary, which never saw that
    connection (as in the test above; seen in 2 CI runs of 3, one request of ~2,700): at most
    one per handover, and only that kind of failure. Over the whole drive it sees none over
    50 ms: what is left is the userspace datapath's stall when a replica placed ahead gets its
    port on OVS (12-18 ms seen here, ~0.5-0.9 s before the handover). Before the
    make-before-break swap each handover lost a SYN (gaps 0.21-1.03 s); with the car's link
    plugged at the move, its add-port stall
    was in the move (gaps 12-19 ms)."""
    bed.orch.teardown(SERVICE)
    bed.orch.deploy(SERVICE, "mec1")
    _wait_serving(bed)
    client = bed.tb.ctl.client
    base = client.base_url
    mover = TimedMover(bed.tb.emu, client)
    follow = FollowLocation(mover, ["car"])
    with follow:
        server = str(bed.sc.instance(SERVICE).ip)
        proc = bed.tb.emu.host("car").popen(
            [sys.executable, "-m", "workloads.http_poll", server, "8080", "--interval-ms", "5",
             "--json", "--timeout-ms", "3000", "--samples"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        )  # fmt: skip
        started = time.monotonic()
        try:
            r = requests.post(f"{base}/v1/follow-me", json={"ue": "car"}, timeout=10)
            assert r.status_code == 201, r.text
            time.sleep(1.0)
            played = time.monotonic() - started
            r = requests.post(f"{base}/v1/mobility/playback", json={"time_scale": 2}, timeout=10)
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 40
            view: dict[str, Any] = {}
            while time.monotonic() < deadline:
                view = requests.get(f"{base}/v1/follow-me/car", timeout=10).json()
                if view["services"][0]["replicas"].get("mec3") == "primary":
                    break
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=30)
            requests.delete(f"{base}/v1/follow-me/car", timeout=30)
    assert proc.returncode == 0, err.decode()
    poll: dict[str, Any] = json.loads(out)
    web = view["services"][0]
    assert web["replicas"]["mec3"] == "primary", view
    marks = [a for a in view["history"] if a["action"] == "nothing"]
    assert [a["target"] for a in marks] == ["mec2", "mec3"], view["history"]
    assert not [a for a in view["history"] if a["action"] in ("start", "commit")]
    migrations = requests.get(f"{base}/v1/migrations", timeout=10).json()
    assert not [m for m in migrations if m["instance"] == SERVICE], migrations
    assert [cell for _, cell in follow.replugged] == ["cell2", "cell3"]
    assert poll["ok"] > 1000 and len(poll["bodies_changed"]) == 2, poll["bodies_changed"]
    # the car's handovers (7.5 and 22.5 s into the drive, at x2), in the client's time
    handovers_ms = [(played + t / 2) * 1000 for t in (7.5, 22.5)]
    replies = poll_replies(poll["samples"])
    # each move's cost to the client: its silence across the car's re-plug, and across the
    # switch to the replica (where the replying process changed), net of the client's own
    # jitter: the 99th percentile of its gaps over a second from any move (on this 2-core host
    # 1-4 ms, with gaps of 10-28 ms far from any move now and then), at most 5 ms. The longest
    # gap in the second around each move is printed, not held.
    at_moves = [handover_gap_ms(replies, began, ended, 5.0) for began, ended in mover.times]
    jitter = min(5.0, jitter_ms(replies, mover.times, 5.0))
    around = [
        largest_gap_ms(replies, began - 0.3, ended + 0.5, 5.0) for began, ended in mover.times
    ]
    around = [None if g is None else round(g, 1) for g in around]
    brief = {k: poll[k] for k in ("gaps", "failures", "failed", "max_gap_ms")} | {
        "at": handovers_ms, "at_moves": at_moves, "around": around, "jitter": jitter
    }  # fmt: skip
    print(
        f"\n  the car's client: {poll['ok']} replies, longest gap {poll['max_gap_ms']:.0f} ms, "
        f"at the moves {at_moves} ms (its own jitter, p99 away from them: {jitter:.1f} ms; "
        f"in the second around them {around} ms), gaps over 10 ms: {poll['gaps']}"
    )
    assert poll["failures"] <= 2, brief  # one per handover at most
    assert {why for _, why in poll["failed"]} <= {"reset"}, brief
    assert len(at_moves) == 2 and all(g - jitter <= 10.0 for g in at_moves), brief
    assert poll["max_gap_ms"] <= 50.0, brief  # no SYN lost (1 s), a replica port's addition


def handover_gap_ms(replies: list[Reply], began: float, ended: float, interval_ms: float) -> float:
    """The client's longest silence (beyond its interval) at one of the car's moves: across its
    re-plug (`began`..`ended`, monotonic s), and from the last reply of the process that served
    it before to the first of the replica (where the counter goes back; the one within a second
    of the re-plug: the flow switch and the re-plug follow the same move of the car)."""
    replug = largest_gap_ms(replies, began, ended, interval_ms) or 0.0
    switch = switch_gap_ms(replies, began - 1.0, ended + 1.0, interval_ms)
    return round(max(replug, switch), 1)


def switch_gap_ms(replies: list[Reply], began: float, until: float, interval_ms: float) -> float:
    """The client's silence (beyond its interval) from the last reply of the process that served
    it to the first of the next (where the counter goes back), the one that came in `began` ..
    `until` (monotonic s). For a handover alone: from its start to the next one's, not a second
    after it: a SYN lost in the switch is sent again a second later, and its reply is then the
    first of the next process (CI: no switch seen within switch + 1 s)."""
    switches = [
        (a, b)
        for a, b in zip(replies, replies[1:], strict=False)
        if a.counter is not None and b.counter is not None and b.counter < a.counter
        and began <= b.t_s < until
    ]  # fmt: skip
    assert len(switches) == 1, (began, until, switches)
    [(a, b)] = switches
    return round(max(0.0, (b.t_s - a.t_s) * 1000 - interval_ms), 1)


def jitter_ms(replies: list[Reply], moves: list[tuple[float, float]], interval_ms: float) -> float:
    """The 99th percentile of the client's gaps (beyond its interval, at least 0) between
    replies more than a second from any move: what it sees anyway on this host."""
    gaps = sorted(
        max(0.0, (b.t_s - a.t_s) * 1000 - interval_ms)
        for a, b in zip(replies, replies[1:], strict=False)
        if all(b.t_s < began - 1.0 or a.t_s > ended + 1.0 for began, ended in moves)
    )
    return round(gaps[int(0.99 * (len(gaps) - 1))], 1) if gaps else 0.0


class TimedMover(UEMover):
    """A UEMover that keeps when each of its re-plugs began and ended (monotonic s)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.times: list[tuple[float, float]] = []

    def replug(self, ue: str, cell: str) -> tuple[str, int, float, float] | None:
        began = time.monotonic()
        done = super().replug(ue, cell)
        if done is not None:
            self.times.append((began, time.monotonic()))
        return done
