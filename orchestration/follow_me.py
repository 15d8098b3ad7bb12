"""Follow-me decisions (issue 12, "Triggers and prediction"): when the services that follow a UE
start moving speculatively, commit, or give up. Pure: times are given (or read from an injected
clock), actions are returned; no threads, no I/O. `orchestration.follower` carries them out.

For each followed service (an instance or a chain, at its site, with its expected pre-relocation
time T_pre and downtime T_down), at each tick or handover:

- **Start** a speculation towards the site the UE is predicted to reach, once the predicted lead
  time is at most T_pre + `margin_s` (early enough for the rounds, no earlier: a speculation holds
  a reservation and pauses the service for each round). A UE already served by another site
  than its service's (no warning came, or a speculation failed) gets a Start that is not
  speculative, followed by its Commit at once.
- **Commit** when the UE's serving site becomes the speculation's target (its handover into a
  zone of that site).
- **Cancel** when the prediction no longer leads there (the UE turned away, or another site is
  next; a UE handed over to a third site: cancel, then start towards it), or `timeout_s` after
  the start. Once the predicted arrival time has come, the prediction looks past the target
  (the UE is there, its handover not yet announced): for `grace_s` after it the speculation
  waits for the handover instead of reading that as a turn.
- **Nothing** for stateless services: warm replicas serve them (issue 12, part 4, separate
  work); they are marked once per target.

Each Start says how the move fits the UE's stay at the target: seed 003's viability
T_pre + T_down <= T_dwell, with T_dwell the predicted time from the arrival to the UE's next
change of site (None when no change follows: the dwell is open).

Times: `t` is the mobility's time (scenario seconds); T_pre and T_down are wall seconds and
`scale` is the playback's (scenario seconds per wall second), so a lead of L scenario seconds
gives L / scale seconds of work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ground.defaults import DOWNTIME_BUDGET_MS
from migration.engine import DUMP_ESTIMATE_S, RESTORE_ESTIMATE_S
from migration.strategies import Rounds
from migration.strategies import strategy as strategy_named
from orchestration.prediction import DwellOf, Predictor, predicted_dwell
from topology.mobility_events import Handover, SiteChange

Kind = Literal["instance", "chain"]
MARGIN_S = 1.0
GRACE_S = 2.0  # wall seconds a speculation waits for a handover predicted for now
TIMEOUT_S = 60.0
RETRY_S = 5.0
PREPARE_ESTIMATE_S = 0.5  # the destination's namespace and the reservation
ROUNDS_FACTOR = 1.25  # the rounds after the first copy: what the service dirtied meanwhile


@dataclass(frozen=True)
class Followed:
    """A service that follows the UE: where it runs now, and how long moving it takes."""

    name: str
    site: str
    t_pre_s: float
    t_down_s: float
    kind: Kind = "instance"
    stateless: bool = False

    def __post_init__(self) -> None:
        if self.t_pre_s < 0 or self.t_down_s < 0:
            raise ValueError(f"{self.name}: T_pre and T_down must not be negative")


def estimate_times(
    memory_bytes: int,
    rate_bps: int,
    strategy: str = "precopy",
    budget_ms: float = DOWNTIME_BUDGET_MS,
) -> tuple[float, float]:
    """(T_pre, T_down) in seconds for moving `memory_bytes` at `rate_bps`: with rounds, the
    first copies everything and the later ones what was dirtied (ROUNDS_FACTOR), and the stop
    rule aims the final iteration at the budget; without, everything goes while frozen (cold),
    or the restore comes at once and the pages follow it (post-copy). Rough: measured times
    (a benchmark's) are better, and `Followed` takes them as given."""
    s = strategy_named(strategy)
    copy_s = memory_bytes * 8 / max(rate_bps, 1)
    if s.rounds is Rounds.MEMORY or s.rounds is Rounds.MEMORY_IF_TRACKED:
        t_down = budget_ms / 1000.0 if not s.lazy else DUMP_ESTIMATE_S + RESTORE_ESTIMATE_S
        return PREPARE_ESTIMATE_S + copy_s * ROUNDS_FACTOR, t_down
    if s.lazy:
        return PREPARE_ESTIMATE_S, DUMP_ESTIMATE_S + RESTORE_ESTIMATE_S
    if s.rounds is Rounds.FILES:  # restart: the files in rounds, then a fresh start
        return PREPARE_ESTIMATE_S, DUMP_ESTIMATE_S + RESTORE_ESTIMATE_S
    return PREPARE_ESTIMATE_S, DUMP_ESTIMATE_S + copy_s + RESTORE_ESTIMATE_S


@dataclass(frozen=True)
class Viability:
    """Seed 003: the move fits if T_pre + T_down <= T_dwell (None: the dwell is not known)."""

    t_pre_s: float
    t_down_s: float
    dwell_s: float | None
    viable: bool | None
    lead_s: float | None = None  # wall seconds of warning before the handover
    in_time: bool | None = None  # T_pre <= the warning: the rounds end before the handover


@dataclass(frozen=True)
class Start:
    service: str
    kind: Kind
    source: str
    target: str
    t_s: float
    speculative: bool
    expected_at_s: float | None  # the predicted handover (None: the UE is there already)
    viability: Viability


@dataclass(frozen=True)
class Commit:
    service: str
    kind: Kind
    target: str
    t_s: float
    warned_s: float  # wall seconds from the start to this commit


@dataclass(frozen=True)
class Cancel:
    service: str
    kind: Kind
    target: str
    t_s: float
    reason: str


@dataclass(frozen=True)
class Nothing:
    service: str
    kind: Kind
    target: str
    t_s: float
    reason: str


Action = Start | Commit | Cancel | Nothing


@dataclass
class _Track:
    svc: Followed
    site: str
    target: str | None = None
    started_s: float = 0.0
    expected_s: float | None = None  # the predicted arrival at the target (scenario time)
    committing: bool = False
    retry_at: float = float("-inf")
    marked: str | None = None  # stateless: the target it was last marked for
    dropped: bool = False


@dataclass
class FollowMe:
    """The decisions for one UE's services (see the module docstring)."""

    ue: str
    services: Sequence[Followed]
    predict: Predictor
    serving_site: str | None  # the site serving the UE now
    clock: Callable[[], float] | None = None
    margin_s: float = MARGIN_S
    grace_s: float = GRACE_S
    timeout_s: float = TIMEOUT_S
    retry_s: float = RETRY_S
    scale: float = 1.0
    dwell: DwellOf | None = None  # default: `predicted_dwell(predict)`
    tracks: dict[str, _Track] = field(init=False)

    def __post_init__(self) -> None:
        if (
            self.margin_s < 0 or self.grace_s < 0 or self.timeout_s <= 0 or self.retry_s < 0
            or self.scale <= 0
        ):  # fmt: skip
            raise ValueError("follow-me: margin, grace, timeout, retry and scale must be positive")
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"follow-me: a service is listed twice: {names}")
        self.tracks = {s.name: _Track(s, s.site) for s in self.services}

    # ------------------------------------------------------------------ inputs

    def tick(self, t: float | None = None) -> list[Action]:
        """The decisions at time `t` (default: the clock's)."""
        t = self._now(t)
        prediction = self.predict(t)
        out: list[Action] = []
        for track in self.tracks.values():
            if not track.dropped:
                out += self._decide(track, t, prediction)
        return out

    def on_handover(self, h: Handover, t: float | None = None) -> list[Action]:
        """The UE's serving cell changed (to one of `h.to_site`, or none): its new site, then
        the decisions at once."""
        if h.ue != self.ue:
            raise ValueError(f"follow-me for {self.ue}: a handover of {h.ue}")
        self.serving_site = h.to_site
        return self.tick(h.t_s if t is None else t)

    def settled(self, service: str, site: str, t: float | None = None) -> None:
        """A service's move ended (the driver says where it runs now). If it is not where it
        was going, no new start for `retry_s`."""
        track = self.tracks[service]
        if site != track.target and track.target is not None and (t is not None or self.clock):
            track.retry_at = self._now(t) + self.retry_s
        track.site, track.target, track.committing = site, None, False

    def drop(self, service: str) -> None:
        """Stop following `service` (its moves cannot be carried out)."""
        self.tracks[service].dropped = True

    def where(self, service: str) -> str:
        return self.tracks[service].site

    def target(self, service: str) -> str | None:
        return self.tracks[service].target

    # ------------------------------------------------------------------ decisions

    def _now(self, t: float | None) -> float:
        if t is not None:
            return t
        if self.clock is None:
            raise ValueError("follow-me: no time given and no clock")
        return self.clock()

    def _decide(self, tr: _Track, t: float, p: SiteChange | None) -> list[Action]:
        svc, ue_site = tr.svc, self.serving_site
        if svc.stateless:
            return self._mark(tr, t, p)
        if tr.committing:
            return []  # the driver settles it
        out: list[Action] = []
        if tr.target is not None:
            if ue_site == tr.target:
                tr.committing = True
                return [Commit(svc.name, svc.kind, tr.target, t, (t - tr.started_s) / self.scale)]
            reason = self._cancel_reason(tr, t, p)
            if reason is None:
                return []
            out.append(Cancel(svc.name, svc.kind, tr.target, t, reason))
            tr.target = None
        if t < tr.retry_at:
            return out
        if ue_site is not None and ue_site != tr.site:
            start = self._start(tr, t, ue_site, None, speculative=False)
            tr.committing = True
            return [*out, start, Commit(svc.name, svc.kind, ue_site, t, 0.0)]
        if p is not None and p.site != tr.site and self._due(svc, p):
            out.append(self._start(tr, t, p.site, p, speculative=True))
        return out

    def _due(self, svc: Followed, p: SiteChange) -> bool:
        return p.lead_s / self.scale <= svc.t_pre_s + self.margin_s

    def _cancel_reason(self, tr: _Track, t: float, p: SiteChange | None) -> str | None:
        ue_site = self.serving_site
        if ue_site is not None and ue_site not in (tr.site, tr.target):
            return f"the UE is at {ue_site} now"
        if (t - tr.started_s) / self.scale >= self.timeout_s:
            return f"timeout: no handover to {tr.target} within {self.timeout_s:g} s"
        due = tr.expected_s
        if due is not None and due <= t <= due + self.grace_s * self.scale:
            return None  # arrived as predicted: its handover is on its way
        if p is None:
            return "prediction: no change of site ahead"
        if p.site != tr.target:
            return f"prediction: next site {p.site}"
        return None

    def _start(
        self, tr: _Track, t: float, target: str, p: SiteChange | None, *, speculative: bool
    ) -> Start:
        svc = tr.svc
        tr.target, tr.started_s = target, t
        tr.expected_s = p.at_s if p is not None else None
        arrival = p.at_s if p is not None else t
        lead = p.lead_s / self.scale if p is not None else 0.0
        return Start(
            svc.name, svc.kind, tr.site, target, t, speculative,
            p.at_s if p is not None else None, self.viability(svc, arrival, target, lead),
        )  # fmt: skip

    def viability(
        self, svc: Followed, arrival_s: float, site: str, lead_s: float | None = None
    ) -> Viability:
        """How moving `svc` fits the UE's stay at `site` from `arrival_s` (seed 003)."""
        stay = (self.dwell or predicted_dwell(self.predict))(arrival_s, site)
        dwell = stay / self.scale if stay is not None else None
        need = svc.t_pre_s + svc.t_down_s
        return Viability(
            svc.t_pre_s, svc.t_down_s, dwell, None if dwell is None else need <= dwell,
            lead_s, None if lead_s is None else svc.t_pre_s <= lead_s,
        )  # fmt: skip

    def _mark(self, tr: _Track, t: float, p: SiteChange | None) -> list[Action]:
        svc, ue_site = tr.svc, self.serving_site
        target = ue_site if ue_site is not None and ue_site != tr.site else None
        if target is None and p is not None and p.site != tr.site and self._due(svc, p):
            target = p.site
        if target is None or target == tr.marked:
            return []
        tr.marked = target
        reason = "stateless: served by warm replicas (issue 12, part 4), not migrated"
        return [Nothing(svc.name, svc.kind, target, t, reason)]
