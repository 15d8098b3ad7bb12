"""`mecmig bench mobility`'s `replica` policy (issue 12, seed 002): the car's stateless `web`
(scenarios/replicas.yaml: the road and car of drive.yaml) is served by warm replicas, never
migrated. Follow-me (`FollowMe`, the known path) marks each site the car is predicted to reach;
`ReplicaFollower` places a replica there ahead of it and makes it the primary by a flow switch
at the handover, as `POST /v1/follow-me` does for a stateless service.

A handover's "move", for the rows of `mecmig.bench.mobility_rows`: asked when follow-me marked
its site (the handover, if no mark came), ready when the replica there was placed, frozen for
the switch-over only (`t_down_ms`: the controller's promote, in which nothing starts) and
serving when the switch was made. Nothing is copied (`bytes` 0), and a stateless service has
no state to keep (`state_intact` None). The client's gaps are taken apart (`stateless_rows`):
the switch's (`interruption_ms`) and the placement's ahead of it (`placement_gap_ms`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mecmig.bench.mobility_rows import (
    WINDOW_PAD_S,
    Arrival,
    Move,
    Reply,
    largest_gap_ms,
    match_moves,
)

REPLICA = "replica"
STATELESS_SERVICE = "web"
STATELESS_PORT = 8080


@dataclass(frozen=True)
class Switched:
    """One handover of the replicas: the site, when the switch began and ended (monotonic s),
    the controller's switch-over (ms); `error` when no switch was made."""

    site: str
    began_s: float
    ended_s: float
    switchover_ms: float | None
    error: str | None = None


def replica_moves(
    marks: Mapping[str, float],
    placed: Mapping[str, float],
    switches: Sequence[Switched],
) -> list[Move]:
    """A `Move` per handover of the replicas: asked at the first mark of its site (else the
    switch), ready when its replica was placed, frozen for the switch-over."""
    out = []
    for sw in switches:
        asked = marks.get(sw.site, sw.began_s)
        ready = placed.get(sw.site)
        out.append(
            Move(
                destination=sw.site,
                speculative=sw.site in marks,
                outcome="done" if sw.error is None else "failed",
                asked_s=min(asked, sw.began_s),
                ready_s=ready,
                freeze_s=sw.began_s,
                serving_s=sw.ended_s if sw.error is None else None,
                end_s=sw.ended_s,
                frozen_ms=sw.switchover_ms,
                bytes=0,
                error=sw.error,
            )
        )
    return out


def poll_replies(samples: Sequence[Sequence[Any]]) -> list[Reply]:
    """`workloads.http_poll --samples`' replies (`[reply_s, body]`), by time; each request was
    its own connection."""
    out = [
        Reply(float(t), None if body is None else int(body), i)
        for i, (t, body) in enumerate(samples)
    ]
    return sorted(out, key=lambda r: r.t_s)


def stateless_rows(
    rows: list[dict[str, Any]],
    arrivals: Sequence[Arrival],
    moves: Sequence[Move],
    replies: Sequence[Reply],
    interval_ms: float,
) -> list[dict[str, Any]]:
    """The replica policy's rows: no state to keep (`state_intact` None), `stateless` True,
    and two gaps apart (the rows' `interruption_ms` would span from follow-me's mark to the
    switch, over a second):

    - `interruption_ms`: the switch's, the client's largest gap from the handover to the
      switch's end (WINDOW_PAD_S either side): what seed 002's goal (10 ms) is about;
    - `placement_gap_ms`: the placement's, its largest gap from the mark to the replica placed
      (the same pad): starting a replica adds its port to the switch, which in this emulation
      (one userspace OVS for every site's switch, 2 cores) can stall all of them briefly."""
    for r in rows:
        r["state_intact"] = None
        r["stateless"] = True
    if not arrivals:
        return rows
    for r, a, m in zip(rows, arrivals, match_moves(arrivals, moves), strict=True):
        if m is None:
            continue
        lo, hi = min(a.wall_s, m.freeze_s or a.wall_s), max(a.wall_s, m.end_s)
        gap = largest_gap_ms(replies, lo - WINDOW_PAD_S, hi + WINDOW_PAD_S, interval_ms)
        r["interruption_ms"] = None if gap is None else round(gap, 1)
        placement = None
        if m.speculative and m.ready_s is not None:
            placement = largest_gap_ms(
                replies, m.asked_s - WINDOW_PAD_S, m.ready_s + WINDOW_PAD_S, interval_ms
            )
        r["placement_gap_ms"] = None if placement is None else round(placement, 1)
    return rows


class ReplicaDriver:
    """Follow-me by replicas for `web`, ticked every `tick_s` with the drive's time (see the
    module docstring). `marks`, `placed` and `switches` are what the rows are made of."""

    def __init__(
        self, orch: Any, mob: Any, home: str, scale: float, start: float, tick_s: float
    ) -> None:
        from orchestration.follow_me import Followed, FollowMe
        from orchestration.follow_replicas import ReplicaFollower
        from orchestration.follower import Follower
        from orchestration.prediction import known_dwell, known_path
        from orchestration.replicas import Replicas

        policy = FollowMe(
            mob.ue, [Followed(STATELESS_SERVICE, home, 0.0, 0.0, stateless=True)],
            known_path(mob), serving_site=home, dwell=known_dwell(mob), scale=scale,
        )  # fmt: skip
        self.follower = Follower(policy, self._no_launch)
        self.replicas = Replicas(orch, STATELESS_SERVICE)
        self.served = ReplicaFollower(self.follower.settled, {STATELESS_SERVICE: self.replicas})
        self.marks: dict[str, float] = {}
        self.switches: list[Switched] = []
        self.scale, self.start, self.tick_s = scale, start, tick_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._ticks, name="replica-ticks", daemon=True)
        self._ticker.start()

    @staticmethod
    def _no_launch(action: Any) -> Any:
        raise AssertionError(f"a stateless service is never migrated: {action}")

    def _ticks(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self._lock:
                done = self.follower.tick((time.monotonic() - self.start) * self.scale)
                self._marked(done)
                self.served.on_actions(done)
                self.served.tick()

    def _marked(self, done: Sequence[Any]) -> None:
        now = time.monotonic()
        for d in done:
            site = getattr(d.action, "target", None)
            if d.result == "marked" and site is not None:
                self.marks.setdefault(site, now)

    def on_handover(self, h: Any) -> None:
        if h.to_site is None or h.to_site == h.from_site:
            return
        with self._lock:
            done = self.follower.on_handover(h)
            self._marked(done)
            before = len(self.served.served[STATELESS_SERVICE].switches)
            began = time.monotonic()
            self.served.on_handover(h)
            ended = time.monotonic()
            made = self.served.served[STATELESS_SERVICE].switches[before:]
            self.switches.append(
                Switched(h.to_site, began, ended, made[-1][1])
                if made
                else Switched(h.to_site, began, ended, None, error="no switch made")
            )
            self.served.on_actions(done)

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            self.follower.close()
            self.served.close()

    @property
    def placed(self) -> dict[str, float]:
        """Each site's first placement (monotonic s: `Replicas`' clock)."""
        out: dict[str, float] = {}
        for e in self.replicas.events:
            if e.kind == "placed":
                out.setdefault(e.site, e.at)
        return out

    @property
    def moves(self) -> list[Move]:
        return replica_moves(self.marks, self.placed, self.switches)

    @property
    def errors(self) -> list[str]:
        return [f"to {s.site}: {s.error}" for s in self.switches if s.error]

    def history(self) -> list[str]:
        return [
            f"{type(d.action).__name__} {getattr(d.action, 'target', '')} at "
            f"{d.action.t_s:.2f} s: {d.result}"
            for d in self.follower.history
        ] + [f"{e.kind} {e.site} {e.detail or ''}".rstrip() for e in self.replicas.events]
