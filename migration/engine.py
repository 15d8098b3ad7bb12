"""The migration phase machine: strategies built from phases that can each be called alone.

    prepare -> [pre-copy rounds] -> freeze + final dump -> transfer -> switch -> restore
            -> (point of no return) -> release -> clean-up

Pre-copy rounds are CRIU pre-dumps chained by parent images where the source kernel tracks dirty
memory (`Plan.dirty_tracking`, from its agent's `criu check`): each round and the final dump then
hold only what changed since the round before (mode `predump`). Where it does not, or where the
first pre-dump fails, the rounds are full dumps with the service left running and the transfer
sends only what changed since the last copy (mode `full-dump-delta`; the fallback is recorded).

Before the point of no return every failure rolls back: the destination is wiped, the traffic
(if it was switched) goes back, and the service runs at the source with its state (restored from
its own final dump if that dump had stopped it). After it, clean-up is best effort. The phases are
public methods on a `Migration`, so chain patterns (barriers between phases, phases in turn across
several containers) compose them without rewriting them.

Each copy picks its compression (`migration.compression.choose`) from the link's rate (the
grant's; without a grant, the rate the plan asks for) and the latest sample of the memory: every
memory round's dump carries one (the service runs on meanwhile), and a final dump asks for one
only where no round did and the link is slower than `SAMPLE_BELOW_BPS` (a sample costs 15-60 ms
of the frozen window; above that rate zstd never pays here). No sample: the copy goes plain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from ground.defaults import (
    DOWNTIME_BUDGET_MS,
    HOLD_MODE,
    MIGRATION_PORT,
    MIGRATION_RATE_BPS,
    PAGE_SERVER_PORT,
)
from migration.compression import Choice, Sample, choose
from migration.network import ControllerLink, Grant, NoNetwork, RelocationIncomplete
from migration.profile import dump_detail, frozen_profile, pages_mbps, restore_detail
from migration.site import (
    MAX_PACE_BPS,
    MIN_PACE_BPS,
    DumpInfo,
    FreshStart,
    Handoff,
    SendInfo,
    Site,
    SiteError,
    SiteRefused,
    SiteUnreachable,
)
from migration.stoprule import Round, final_rate_bps, should_stop
from migration.strategies import HOLD_MODES, SERVING_STEPS, Rounds, Strategy, strategy
from migration.timeline import Clock, Listener, MigrationRecord, Outcome, Timeline, monotonic

log = logging.getLogger(__name__)
T = TypeVar("T")
HOLD_TIMEOUT_S = 120.0  # a hold the engine could not release ends by itself
DUMP_ESTIMATE_S = 0.3  # before the first dump is measured
RESTORE_ESTIMATE_S = 0.3  # before the first restore is measured
UNREACHABLE_GRACE_S = 20.0  # after the point of no return: how long an agent may be away
RETRY_STEP_S = 0.5
# what a reservation's meter lets through at once (controller.reservations.BURST_SECONDS), and
# at most what a lazy dump's images (no pages) weigh (1.3-1.8 MB measured for memhog)
METER_BURST_S = 0.3
LAZY_IMAGES_BYTES = 4_000_000
# a final dump samples its memory for the copy's compression only on links slower than this:
# the compressed copy ran at 1.2-1.5 Gbit/s here (mecmig bench compression)
SAMPLE_BELOW_BPS = 2_000_000_000
# cold sends its pages ahead by CRIU's page server (dump and copy overlap, migration.strategies)
# from this link rate on; below it the copy is slow enough that zstd on compressible memory
# (which only the copy after the dump can do) saves more than the overlap (the dump's write,
# about 1.5 ms/MiB here): at 100 Mbit/s 64 MiB take 5.6 s plain, 2.1 s zstd (results/compression)
PAGES_AHEAD_FROM_BPS = 400_000_000


class MigrationError(Exception):
    """A migration that did not complete; `record` says how far it got and how it ended."""

    def __init__(self, message: str, record: MigrationRecord) -> None:
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class Plan:
    """What to migrate, where, how."""

    instance: str
    source: Site
    destination: Site
    destination_site: str  # site name for the controller
    destination_port: int
    strategy: str = "cold"
    budget_ms: float = DOWNTIME_BUDGET_MS
    rate_bps: int = MIGRATION_RATE_BPS
    dirty_tracking: bool = False
    predicted_bytes: int = 0  # the service's memory size: sizes a cold migration's reservation
    hold: str = HOLD_MODE  # hold its traffic at the controller while frozen: HOLD_MODES
    # the ports its copy and its post-copy pages use (several migrations between two sites at
    # once each take their own: see orchestration's ports_of)
    transfer_port: int = MIGRATION_PORT
    page_server_port: int = PAGE_SERVER_PORT
    # size the reservation to fit the budget (from the memory for cold and post-copy; the last
    # round's reservation from the round before, seed 000 §III-D); False: `rate_bps` throughout,
    # a fixed bandwidth cap like seed 000's limited transfers without network awareness
    fit_budget: bool = True
    # the final (frozen) iteration's bandwidth, seed 000's limit: the reservation is resized to
    # it before the freeze (with fit_budget: to what fits the budget, at most this)
    final_rate_bps: int | None = None
    # what the destination starts when the strategy does not keep the configuration
    # (`filesystem`, seed 003's SFP): the image's command or a manual one (migration.site)
    fresh: FreshStart | None = None
    # the copies' compression: "auto" chooses per copy (migration.compression.choose); "none"
    # or "zstd" forces it (a benchmark reproducing a paper's uncompressed copies: bench loss)
    compress: str = "auto"


class Migration:
    """One migration, phase by phase (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        network: ControllerLink | None = None,
        clock: Clock = monotonic,
        listener: Listener | None = None,
        *,
        migration_id: str,
        sleep: Callable[[float], None] = time.sleep,
        grace_s: float = UNREACHABLE_GRACE_S,
    ) -> None:
        self.strategy: Strategy = strategy(plan.strategy)
        if plan.hold not in HOLD_MODES:
            raise ValueError(f"unknown hold mode {plan.hold!r} (known: {', '.join(HOLD_MODES)})")
        if not migration_id:
            raise ValueError("a migration needs an id (the caller gives it)")
        if not self.strategy.keeps_config and (plan.fresh is None or not plan.fresh.args):
            raise ValueError(
                f"strategy {plan.strategy} starts {plan.instance} without its configuration: "
                "it needs a command (its image's, or one given with the request)"
            )
        if self.strategy.keeps_config and plan.fresh is not None:
            raise ValueError(
                f"strategy {plan.strategy} keeps {plan.instance}'s configuration: a command "
                "to start it with is only for a strategy that does not (filesystem)"
            )
        self.plan = plan
        self.net = network or NoNetwork()
        self.record = MigrationRecord(
            id=migration_id,
            instance=plan.instance,
            source=plan.source.name,
            destination=plan.destination.name,
            strategy=plan.strategy,
        )
        self.timeline = Timeline(self.record, clock, listener)
        self.clock, self.sleep, self.grace_s = clock, sleep, grace_s
        self.grant: Grant | None = None
        self.rounds: list[Round] = []
        self.switched = False
        self.prepared = False  # the destination holds this migration's target
        self.touched_source = False  # a dump or stop of ours ran at the source (maybe half-way)
        self.dumped_final = False
        self.lazy_serving = False  # a post-copy source is frozen, serving its pages
        self.handed_off: SendInfo | None = None  # the lazy dump sent the images itself
        self.source_link_down = False  # ... and took the service's link down at the source
        self.stopped_source = False  # the restart strategy ended the source's process
        self._tx0: int | None = None
        self._receiving: int | None = None  # the destination listens already (pages_ahead)
        self.past_point_of_no_return = False
        # a chain's functions: the destination serves (`serving`), but the point of no return
        # is the chain's, passed by `commit()` once every function serves
        self.defer_point_of_no_return = False
        self.serving = False
        self.holding = False  # the controller keeps the instance's packets (see hold_traffic)
        self.restore_s = RESTORE_ESTIMATE_S
        # CRIU pre-dumps with parent images (soft-dirty tracking at the source)
        self.predumps = plan.dirty_tracking and self.strategy.may_predump
        self.predump_rounds = 0
        self.sample: Sample | None = None  # the latest dump's sample of the memory
        self.image_bytes = 0  # the latest dump's size
        self.choice: Choice | None = None  # the last copy's compression

    @property
    def tag(self) -> str:
        return f"{self.record.id} instance={self.plan.instance}"

    # ------------------------------------------------------------------ phases

    def prepare(self) -> None:
        """Destination: a locked namespace plugged in but down; reservation for our traffic."""
        p = self.plan
        with self.timeline.phase("prepare") as ph:
            spec = replace(p.source.spec(p.instance), port=p.destination_port)
            if p.fresh is not None:  # its configuration stays behind (seed 003's SFP)
                spec = p.fresh.apply(spec)
                ph.detail.update(config_kept=False, manual_command=p.fresh.manual)
                self.record.metrics["fresh_start"] = {
                    "args": list(p.fresh.args), "manual": p.fresh.manual,
                }  # fmt: skip
            p.destination.prepare_target(spec)
            self.prepared = True
        rate = p.rate_bps
        if self.strategy.reservation_from_memory and p.predicted_bytes and p.fit_budget:
            # cold: nothing is copied before the freeze, size the one copy to fit the budget;
            # post-copy: the memory is the bulk, and the service waits on every page it pulls
            floor = p.rate_bps if p.final_rate_bps is None else 0
            rate = int(
                final_rate_bps(
                    p.predicted_bytes, p.budget_ms, DUMP_ESTIMATE_S, self.restore_s, floor
                )
            )
        if self.strategy.reservation_from_memory and p.final_rate_bps is not None:
            rate = min(rate, p.final_rate_bps) if p.fit_budget else p.final_rate_bps
        with self.timeline.phase("reserve", rate_bps=rate) as ph:
            # post-copy pages flow from the source's port 7101, a cold dump's that go ahead to
            # the destination's: match the agents' pair instead
            ahead = self.strategy.pages_ahead and rate >= PAGES_AHEAD_FROM_BPS
            port = None if self.strategy.lazy or ahead else p.transfer_port
            self.grant = self.net.reserve(
                p.source.name, p.destination.name, rate, port, self.record.id
            )
            ph.detail["granted_bps"] = self.grant.rate_bps if self.grant else None
        self.record.metrics["dirty_tracking"] = p.dirty_tracking
        self._set_mode()

    def _set_mode(self) -> None:
        self.record.mode = self.strategy.mode_for(self.predumps)

    @property
    def memory_rounds(self) -> bool:
        """Whether pre-copy rounds copy memory: pre-copy always; hybrid only with pre-dumps
        (without dirty tracking each round would be a full dump: memory is left to the lazy
        final phase, the rounds move files only)."""
        rounds = self.strategy.rounds
        return rounds is Rounds.MEMORY or (rounds is Rounds.MEMORY_IF_TRACKED and self.predumps)

    def precopy_round(self, dump_memory: bool | None = None) -> Round:
        """The service keeps running: dump it (pre-dump, or a full dump left running) and send
        what changed. `dump_memory=False` sends only its files (/data, /volume); None: as the
        strategy and the kernel say (`memory_rounds`)."""
        n = len(self.rounds) + 1
        with self.timeline.phase(f"precopy-{n}") as ph:
            dump_s = 0.0
            dump = (
                self._memory_round(n)
                if (self.memory_rounds if dump_memory is None else dump_memory)
                else None
            )
            if dump is not None:
                dump_s = dump.seconds
                self._dumped(dump)
                ph.detail.update(image_bytes=dump.image_bytes, pre_dump=self.predumps)
            sent = self._transfer(delta=n > 1)
            ph.bytes = sent.bytes_on_wire
            ph.detail.update(dump_s=dump_s, send_s=sent.seconds, **self._compress_detail())
        rnd = Round(sent.bytes_on_wire, dump_s, sent.seconds)
        self.rounds.append(rnd)
        return rnd

    def _memory_round(self, n: int) -> DumpInfo | None:
        """Round `n`'s dump: a pre-dump chained onto round n-1 where the kernel tracks dirty
        memory, else a full dump left running. A first pre-dump that fails (the kernel or CRIU
        cannot track after all) falls back to full dumps; a later one fails the migration."""
        p = self.plan
        if self.predumps:
            try:
                dump = self._at_source(lambda: p.source.pre_dump(p.instance, n, sample=True))
                self.predump_rounds = n
                return dump
            except SiteUnreachable:
                raise
            except SiteError as exc:
                if n > 1:
                    raise
                log.warning("%s: pre-dump failed, falling back to full dumps: %s", self.tag, exc)
                self.record.metrics["predump_fallback"] = str(exc)
                self.predumps = False
                self._set_mode()
                if not self.memory_rounds:
                    return None  # hybrid: memory goes lazily, the rounds move files only
        return self._at_source(
            lambda: p.source.checkpoint(p.instance, leave_running=True, sample=True)
        )

    def _at_source(self, step: Callable[[], T]) -> T:
        """Run a step that dumps or stops the service at the source: from now on a rollback
        resumes it there, unless the source refused before doing anything (SiteRefused) or
        the request never reached it (no connection to its agent)."""
        before = self.touched_source
        self.touched_source = True
        try:
            return step()
        except SiteRefused:
            self.touched_source = before
            raise
        except SiteUnreachable as exc:
            if not exc.delivered:
                self.touched_source = before
            raise

    @property
    def chained(self) -> bool:
        """The final dump holds only what changed since the last pre-dump round."""
        return self.predumps and self.predump_rounds > 0

    def boost(self) -> None:
        """Size the final iteration's reservation from the last round (seed 000 §III-D), at
        most the plan's final bandwidth; without fit_budget, the final bandwidth as it is."""
        p = self.plan
        if self.grant is None or not self.rounds:
            return
        if not p.fit_budget:
            if p.final_rate_bps is None:
                return
            rate = float(p.final_rate_bps)
        else:
            last = self.rounds[-1]
            floor = self.grant.rate_bps if p.final_rate_bps is None else 0
            rate = final_rate_bps(last.wire_bytes, p.budget_ms, last.dump_s, self.restore_s, floor)
            if p.final_rate_bps is not None:
                rate = min(rate, float(p.final_rate_bps))
        with self.timeline.phase("boost", from_bps=self.grant.rate_bps, want_bps=int(rate)) as ph:
            self.grant = self.net.resize(self.grant, int(rate))
            ph.detail["granted_bps"] = self.grant.rate_bps

    def _wants_hold(self, at_freeze: bool) -> bool:
        s = self.strategy
        return self.plan.hold == "always" or (
            self.plan.hold == "auto" and (s.hold_at_freeze if at_freeze else s.hold_before_freeze)
        )

    def hold_at_freeze(self) -> str | None:
        """The URL the source's CRIU calls once it has frozen the service (then holding costs
        no serving time), or None; then, if the network can, the traffic is held right now."""
        if not self._wants_hold(at_freeze=True):
            return None
        try:
            url = self.net.hold_url(self.plan.instance)
        except Exception as exc:  # noqa: BLE001 - an optimisation, never a reason to fail
            log.warning("%s: no hold URL (%s)", self.tag, exc)
            url = None
        if url is None:
            self.hold_traffic()
            return None
        self.holding = True  # from the freeze on it may hold: release (idempotent) in any case
        return url

    def _held_by(self, url: str | None, dump: DumpInfo) -> bool:
        if url is not None:
            self.holding = dump.held
        return self.holding

    def hold_traffic(self) -> bool:
        """Just before the freeze: the controller keeps the instance's packets instead of the
        network lock dropping them, so that no client waits for its TCP retransmission timeout
        (200 ms, then 400, 800 ...) after the restore; `deliver_held` hands them over. Without
        a controller that can, the lock drops them and TCP retransmits (as before)."""
        if not self._wants_hold(at_freeze=False):
            return False
        try:
            self.holding = self.net.hold(self.plan.instance, HOLD_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - an optimisation, never a reason to fail
            log.warning("%s: traffic not held (%s): the lock drops it meanwhile", self.tag, exc)
            self.holding = False
        return self.holding

    def deliver_held(self) -> None:
        """After the restore (or the rollback): the held packets go to where the instance is."""
        if not self.holding:
            return
        with self.timeline.phase("deliver") as ph:
            ph.detail["packets"] = self.net.release_hold(self.plan.instance)
            self.holding = False

    def _receive_ahead(self) -> str | None:
        """Before the freeze of a strategy whose pages go ahead (cold): the destination listens
        for the copy and runs a CRIU page server, to which the source's CRIU sends the pages
        while it dumps (dump and copy overlap; the small rest of the images follows), on a
        link of PAGES_AHEAD_FROM_BPS or more. Its address, or None."""
        p = self.plan
        if not self.strategy.pages_ahead or self.chained:
            return None
        if self._link_bps() < PAGES_AHEAD_FROM_BPS:
            return None
        with self.timeline.phase("receive", pages_port=p.page_server_port):
            self._receiving = p.destination.start_receive(
                p.instance, p.transfer_port, pages_port=p.page_server_port
            )
        return f"{p.destination.address}:{p.page_server_port}"

    def final_dump(self) -> None:
        """Freeze: the last dump stops the service at the source."""
        pages = self._receive_ahead()
        ahead: dict[str, Any] = {}
        if pages is not None:  # paced as a cold copy is (see _pace)
            ahead = {"page_server": pages, "pace_bps": self._pace()}
        with self.timeline.phase("freeze_dump") as ph:
            t0 = self.clock()
            url = self.hold_at_freeze()
            ph.detail["hold_ms"] = (self.clock() - t0) * 1000.0
            # pages that went ahead are not in the images: nothing to sample
            sample = pages is None and self.sample is None and self._link_bps() < SAMPLE_BELOW_BPS
            dump = self._at_source(
                lambda: self.plan.source.checkpoint(
                    self.plan.instance,
                    leave_running=False,
                    on_predumps=self.chained,
                    hold_url=url,
                    sample=sample,
                    **ahead,
                )
            )
            self.dumped_final = True
            ph.detail["pages_to"] = pages
            self._dumped(dump)
            ph.detail["sampled"] = dump.sample is not None
            ph.detail.update(held=self._held_by(url, dump), held_at_freeze=url is not None)
            ph.detail.update(
                image_bytes=dump.image_bytes, dump_s=dump.seconds, on_predumps=self.chained
            )
            ph.detail["frozen_at"] = dump.frozen_at
            ph.detail.update(dump_detail(dump))

    def lazy_dump(self) -> None:
        """Freeze, dump all but the memory pages; the source then serves its pages. The
        destination listens before the freeze, and the source's agent takes the link down and
        sends the images as soon as its page server is ready (a `Handoff`): no round trip to
        the engine between the freeze and the restore but the restore's own."""
        p = self.plan
        page_server = f"{p.source.address}:{p.page_server_port}"
        with self.timeline.phase("receive"):  # before the freeze: costs no frozen time
            # and the lazy-pages daemon for the restore: its start costs the window nothing
            port = p.destination.start_receive(p.instance, p.transfer_port, lazy_from=page_server)
        # the images (~2 MB, no pages) go unpaced where the meter's burst holds them: paced at a
        # post-copy's reservation (sized from the memory) they took 108-116 ms instead of ~40
        pace = self._pace()
        if pace is None or pace * METER_BURST_S / 8 >= LAZY_IMAGES_BYTES:
            pace = None
        handoff = Handoff(p.destination.address, port, bool(self.rounds), pace)
        with self.timeline.phase("freeze_dump", lazy=True) as ph:
            t0 = self.clock()
            url = self.hold_at_freeze()
            ph.detail["hold_ms"] = (self.clock() - t0) * 1000.0
            dump = self._at_source(
                lambda: p.source.lazy_checkpoint(
                    p.instance,
                    page_server,
                    on_predumps=self.chained,
                    hold_url=url,
                    handoff=handoff,
                )
            )
            self.lazy_serving = True
            self.handed_off = dump.sent
            self.source_link_down = dump.link_down
            if dump.sent is not None:
                ph.detail["handoff_s"] = dump.sent.seconds
            ph.detail.update(held=self._held_by(url, dump), held_at_freeze=url is not None)
            ph.detail["on_predumps"] = self.chained
            ph.detail.update(image_bytes=dump.image_bytes, dump_s=dump.seconds)
            ph.detail["frozen_at"] = dump.frozen_at
            ph.detail.update(dump_detail(dump))

    def stop_source(self) -> None:
        """Restart strategy: end the service at the source (its files stay)."""
        with self.timeline.phase("freeze_stop") as ph:
            t0 = self.clock()
            ph.detail["held"] = self.hold_traffic()
            ph.detail["hold_ms"] = (self.clock() - t0) * 1000.0
            self._at_source(lambda: self.plan.source.stop(self.plan.instance))
            self.stopped_source = True

    def start_destination(self) -> None:
        """Restart strategy: start the service afresh at the destination with its files."""
        p = self.plan
        with self.timeline.phase("start"):
            p.destination.start(p.instance)
            status = p.destination.status(p.instance)
            if status != "running":
                raise RuntimeError(f"started instance is {status}")
        self._served()

    def pull_pages(self) -> None:
        """After a post-copy restore: wait until every page has moved (the source then ends)."""
        p = self.plan
        with self.timeline.phase("pages") as ph:
            ph.detail["seconds"] = self._patiently(
                "pages", lambda: p.destination.finish_pages(p.instance)
            )
            self.lazy_serving = False  # the destination has every page: the source may end
            try:
                self._patiently("pages", lambda: p.source.finish_lazy_checkpoint(p.instance))
            except SiteRefused:
                if not self.record.metrics.get("unreachable_retries"):
                    raise
                # its agent restarted and forgot the page server; the destination has said
                # every page arrived, which is what this call would have confirmed
                ph.detail["source_agent_restarted"] = True
            tx = self._tx()
            if tx is not None and self._tx0 is not None:
                ph.bytes = max(0, tx - self._tx0)  # the pages, as the source's agent sent them

    def transfer(self) -> None:
        with self.timeline.phase("transfer") as ph:
            delta = bool(self.rounds)
            # the frozen copy after rounds (what they left: small) goes unpaced, in the meter's
            # burst; a cold copy (everything) is paced like a round (module docstring of _pace)
            if self.handed_off is not None:  # the lazy dump sent it (the restore finishes it)
                sent = self.handed_off
                ph.detail["handed_off"] = True
            else:
                sent = self._transfer(delta=delta, pace=not delta)
            ph.bytes = sent.bytes_on_wire + sent.pages_bytes
            ph.detail.update(mode=sent.mode, bytes_total=sent.bytes_total, send_s=sent.seconds)
            if sent.pages_bytes:  # these came during the dump (see _receive_ahead)
                ph.detail.update(pages_bytes=sent.pages_bytes, rest_bytes=sent.bytes_on_wire)
            if self.handed_off is None:
                ph.detail.update(self._compress_detail())

    def switch(self) -> None:
        """Source link down, traffic to the destination port (still locked: no RST)."""
        p = self.plan
        with self.timeline.phase("switch") as ph:
            if not self.source_link_down:  # else the lazy dump's handoff took it down
                p.source.set_link(p.instance, False)
            self.switched = True
            t0 = self.clock()
            ph.detail["switchover_ms"] = self.net.relocate(
                p.instance, p.destination_site, p.destination_port
            )
            ph.detail["steer_ms"] = (self.clock() - t0) * 1000.0  # the controller's steer

    def restore(self) -> None:
        p = self.plan
        lazy_from = f"{p.source.address}:{p.page_server_port}" if self.lazy_serving else None
        if lazy_from is not None:
            self._tx0 = self._tx()
        with self.timeline.phase("restore", lazy=lazy_from is not None) as ph:
            info = p.destination.restore(p.instance, lazy_from=lazy_from)
            ph.detail.update(restore_detail(info))
            status = info.status if info is not None and info.status else None
            status = status or p.destination.status(p.instance)
            if status != "running":
                raise RuntimeError(f"restored instance is {status}")
            self.restore_s = (ph.detail.get("seconds") or 0) or self.restore_s
        self._served()

    def _served(self) -> None:
        self.serving = True
        if not self.defer_point_of_no_return:
            self.commit()

    def commit(self) -> None:
        """---- POINT OF NO RETURN: the destination serves. For a migration whose restore
        deferred it (a chain's function), the chain calls this once every function serves."""
        if not self.serving:
            raise RuntimeError(f"{self.tag}: commit before the destination serves")
        if not self.past_point_of_no_return:
            self.past_point_of_no_return = True
            self.timeline.mark_point_of_no_return()

    def release(self) -> None:
        if self.grant is not None:
            with self.timeline.phase("release"):
                self.net.release(self.grant)
                self.grant = None

    def cleanup(self) -> None:
        with self.timeline.phase("cleanup"):
            p = self.plan
            self._patiently("cleanup", lambda: p.source.destroy(p.instance))

    def _transfer(self, delta: bool, pace: bool = True) -> SendInfo:
        """One copy, paced at the reservation's rate (as it is when the copy starts: a resize
        during it applies from the next) unless `pace` is off. The post-copy page server is
        not paced."""
        p = self.plan
        port, self._receiving = self._receiving, None
        if port is None:
            port = p.destination.start_receive(p.instance, p.transfer_port)
        pace_bps = self._pace() if pace else None
        link = self._link_bps()
        if p.compress in ("none", "zstd"):
            forced: Literal["none", "zstd"] = "zstd" if p.compress == "zstd" else "none"
            self.choice = Choice(forced, 0, 0.0, 0.0, "asked for by the migration's plan")
        elif link > 0:
            self.choice = choose(link, self.sample, total_bytes=max(self.image_bytes, 1))
        else:
            self.choice = Choice("none", 0, 0.0, 0.0, "no link rate known")
        p.source.send(
            p.instance, p.destination.address, port, delta=delta, pace_bps=pace_bps,
            compress=self.choice.compress,
        )  # fmt: skip
        return p.destination.finish_receive(p.instance)

    def _dumped(self, dump: DumpInfo) -> None:
        """Keep what the next copy's compression is chosen from: the dump's size and sample."""
        self.image_bytes = dump.image_bytes
        if dump.sample is not None:
            self.sample = dump.sample

    def _link_bps(self) -> float:
        """The copy's link rate, as the engine knows it: the grant's, else the plan's."""
        rate = self.grant.rate_bps if self.grant is not None else 0
        return float(rate if rate > 0 else self.plan.rate_bps)

    def _compress_detail(self) -> dict[str, object]:
        """The last copy's compression and why, for its phase's detail."""
        c = self.choice
        if c is None:
            return {}
        return {"compress": c.compress, "compress_why": c.why}

    def _pace(self) -> int | None:
        """The grant's rate, within what a site paces at; None (unpaced) without a grant or
        for one of no rate. A meter polices: an unpaced copy got about 0.7 of its rate. But a
        paced sender forgoes the meter's burst (300 ms of the rate): pacing pre-copy's frozen
        delta copy too lengthened chain downtime at 2 MB/s from 0.69 to 0.94 s and at 0.3 MB/s
        from 1.39 to 1.57 s (mecmig bench patterns, wait-for-me), so that copy goes unpaced."""
        rate = self.grant.rate_bps if self.grant is not None else 0
        return min(max(rate, MIN_PACE_BPS), MAX_PACE_BPS) if rate > 0 else None

    # ------------------------------------------------------------------ rollback

    def rollback(self, error: BaseException) -> None:
        """Everything back as before: destination wiped, traffic back, source serving."""
        if self.past_point_of_no_return:
            raise MigrationError(
                f"{self.tag}: past the point of no return: no rollback", self.record
            )
        log.error("%s: rolling back after: %s", self.tag, error)
        with self.timeline.phase("rollback", error=str(error)) as ph:
            steps: list[str] = []
            undo: tuple[tuple[str, Callable[[], object]], ...] = (
                ("destination wiped", self._wipe_destination),
                ("page server stopped", self._stop_page_server),
                ("source resumed", lambda: steps.append(self._resume_source())),
                ("traffic back", self._switch_back),
                ("held traffic delivered", self._deliver_quietly),
                ("reservation released", self.release_quietly),
            )
            for what, step in undo:
                try:
                    step()
                    steps.append(what)
                except Exception as exc:  # noqa: BLE001 - each step is tried; the first error wins
                    steps.append(f"{what}: FAILED ({exc})")
            ph.detail["steps"] = steps
            if any("FAILED" in s for s in steps):
                raise MigrationError(f"rollback incomplete: {steps}", self.record)

    def _resume_source(self) -> str:
        """The source serves again. Only what this migration did is undone: a source it never
        froze or stopped is left as it is (a second migration of the same instance that fails
        must not restore the first one's dump, nor lift its lock)."""
        p = self.plan
        if not self.touched_source:
            return "untouched"
        if self.stopped_source:
            # its state is its files: start it again from them
            self._patiently("resume", lambda: p.source.start(p.instance))
            return "started again from its files"
        return self._patiently("resume", lambda: p.source.resume(p.instance))

    def _wipe_destination(self) -> None:
        if not self.prepared:
            return  # the target there, if any, is not ours (another migration's, or a service)
        try:
            p = self.plan
            self._patiently("wipe", lambda: p.destination.destroy(p.instance))
        except SiteUnreachable:
            # nothing to do now: its agent removes abandoned targets when it starts again
            log.warning(
                "%s: destination agent unreachable; it cleans up when it restarts", self.tag
            )

    def _stop_page_server(self) -> None:
        if self.lazy_serving:
            # the page server keeps the service frozen: its agent (or the one that starts
            # after it, adopting it) must end it
            p = self.plan
            self._patiently("abort pages", lambda: p.source.abort_lazy_checkpoint(p.instance))
            self.lazy_serving = False

    def _switch_back(self) -> None:
        if self.switched:
            spec = self._patiently("spec", lambda: self.plan.source.spec(self.plan.instance))
            try:
                self.net.relocate(self.plan.instance, self.plan.source.name, spec.port)
            except RelocationIncomplete as exc:  # back home: as good as it gets, for now
                log.warning("%s: traffic back, but %s", self.tag, exc)

    def _deliver_quietly(self) -> None:
        if self.holding:
            self.net.release_hold(self.plan.instance)
            self.holding = False

    def release_quietly(self) -> None:
        if self.grant is not None:
            self.net.release(self.grant)
            self.grant = None

    # ------------------------------------------------------------------ strategies

    def run(self) -> MigrationRecord:
        """Run the plan's strategy to the end; raise MigrationError (record inside) if it failed."""
        cpu0 = self.begin()
        try:
            for step in self.strategy.steps:
                self.step(step)
            if not self.past_point_of_no_return:
                raise RuntimeError(
                    f"strategy {self.strategy.name} ended before the destination served"
                )
        except BaseException as exc:  # any failure before the point of no return, Ctrl-C too
            if self.past_point_of_no_return:
                raise
            failure = self.abandon(exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: rolled back, now let it through
            raise failure from exc
        return self.conclude(cpu0)

    def begin(self) -> tuple[int, int] | None:
        """Log the start; the source's CPU counters now (for `conclude`)."""
        log.info(
            "%s: %s migration %s -> %s",
            self.tag,
            self.plan.strategy,
            self.plan.source.name,
            self.plan.destination.name,
        )
        return self._cpu()

    def abandon(self, exc: BaseException) -> MigrationError:
        """Before the point of no return: roll back and finish the record; the error to raise
        (a MigrationError from the rollback itself is raised here)."""
        try:
            self.rollback(exc)
        except MigrationError as rb:
            self.timeline.finish(Outcome.FAILED, str(rb))
            raise
        self.timeline.finish(Outcome.ROLLED_BACK, str(exc) or type(exc).__name__)
        return MigrationError(f"{self.tag}: rolled back: {exc}", self.record)

    def conclude(self, cpu0: tuple[int, int] | None) -> MigrationRecord:
        """After the point of no return: deliver, pull pages, release, clean up, finish."""
        errors = self._after_point_of_no_return()
        self._metrics(cpu0)
        self.timeline.finish(
            Outcome.DONE if not errors else Outcome.FAILED, "; ".join(errors) or None
        )
        return self.record

    def step(self, name: str) -> None:
        """One step of the strategy (see migration.strategies); the steps that make the
        destination serve mark the point of no return themselves (unless deferred)."""
        steps: dict[str, Callable[[], None]] = {
            "prepare": self.prepare,
            "rounds": self._iterate,
            "freeze_dump": self.final_dump,
            "lazy_dump": self.lazy_dump,
            "stop_source": self.stop_source,
            "transfer": self.transfer,
            "switch": self.switch,
            "restore": self.restore,
            "start_destination": self.start_destination,
        }
        steps[name]()
        if name in SERVING_STEPS and not self.serving:
            raise RuntimeError(f"{self.tag}: step {name} did not make the destination serve")

    def _iterate(self) -> None:
        while not self.iterate_once():
            pass

    def iterate_once(self) -> bool:
        """One pre-copy round and the stop rule; True when the rounds are over (the final
        iteration's reservation is then sized: `boost`). A chain's round-robin pattern calls
        it for each function in turn."""
        dump_memory = False if self.strategy.rounds is Rounds.FILES else None
        rate = float(self.grant.rate_bps if self.grant else self.plan.rate_bps)
        self.precopy_round(dump_memory)
        decision = should_stop(self.rounds, rate, self.plan.budget_ms, self.restore_s)
        log.info(
            "%s: round %d moved %d bytes; %s (predicted downtime %.0f ms)%s",
            self.tag,
            len(self.rounds),
            self.rounds[-1].wire_bytes,
            decision.reason,
            decision.predicted_downtime_ms,
            f": {decision.detail}" if decision.detail else "",
        )
        if not decision.stop:
            return False
        self.record.metrics["stop_reason"] = decision.reason
        if decision.detail:
            self.record.metrics["stop_detail"] = decision.detail
        self.boost()
        return True

    def _after_point_of_no_return(self) -> list[str]:
        errors = []
        steps = (
            (self.deliver_held, self.pull_pages, self.release, self.cleanup)
            if self.lazy_serving
            else (self.deliver_held, self.release, self.cleanup)
        )
        for step in steps:
            if step == self.cleanup and self.lazy_serving:
                # the pages did not all arrive (or nobody could say): the source's page server
                # may still be what the destination's memory comes from; ending it would end
                # the service. It stays, and the record says so.
                log.warning("%s: source kept: its page server may still be serving", self.tag)
                errors.append("cleanup: skipped: the source may still be serving pages")
                continue
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - best effort after the point of no return
                log.warning("%s: %s failed (migration stands): %s", self.tag, step.__name__, exc)
                errors.append(f"{step.__name__}: {exc}")
        return errors

    def _patiently(self, what: str, call: Callable[[], T]) -> T:
        """A call to the source that must happen (after the point of no return, or resuming it
        in a rollback); while its agent does not answer (it crashed and its supervisor starts
        it again), try again for up to `grace_s`: giving up at once would leave the source's
        copy behind for good, or the service frozen."""
        deadline = self.clock() + self.grace_s
        waited = 0
        while True:
            try:
                return call()
            except SiteUnreachable as exc:
                if self.clock() >= deadline:
                    raise
                if not waited:
                    log.warning(
                        "%s: %s: %s; trying again for up to %.0f s",
                        self.tag, what, exc, self.grace_s,
                    )  # fmt: skip
                waited += 1
                self.record.metrics["unreachable_retries"] = (
                    int(self.record.metrics.get("unreachable_retries", 0)) + 1
                )
                self.sleep(RETRY_STEP_S)

    def _tx(self) -> int | None:
        try:
            return self.plan.source.tx_bytes()
        except Exception:  # noqa: BLE001 - byte accounting is optional
            return None

    def _cpu(self) -> tuple[int, int] | None:
        try:
            return self.plan.source.cpu_jiffies()
        except Exception:  # noqa: BLE001 - CPU accounting is optional
            return None

    def _metrics(self, cpu0: tuple[int, int] | None) -> None:
        rec = self.record
        # the frozen window: the final dump (or the stop, for the strategies that start the
        # service afresh) to the restore (or that start)
        freeze = rec.phase("freeze_dump") or rec.phase("freeze_stop")
        restore = rec.phase("restore") or rec.phase("start")
        if freeze and restore and restore.end_ms is not None:
            rec.metrics["frozen_ms"] = restore.end_ms - freeze.start_ms
            # where it went (migration.profile): CRIU's, runc's, the agents', the network's
            rec.metrics["frozen_profile_ms"] = frozen_profile(rec)
        rec.metrics["pages_mbps"] = pages_mbps(rec)
        cpu1 = self._cpu()
        if cpu0 and cpu1 and cpu1[1] > cpu0[1]:
            rec.metrics["source_cpu_util"] = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
        rec.metrics["rounds"] = len(self.rounds)
        rec.metrics["predump_rounds"] = self.predump_rounds
