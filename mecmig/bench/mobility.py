"""`mecmig bench mobility`: a UE drives past three MEC sites and its service follows it, by each
migration strategy, started ahead of the handover (follow-me speculation) or at it (issue 12,
"Benchmark").

scenarios/drive.yaml: three sites along a 600 m road, one 5G cell each; `car` drives it at
72 km/h, handing over mec1 -> mec2 at 7.5 s and mec2 -> mec3 at 22.5 s; `kv` (memhog: 16 MiB
seeded memory, 1 MB/s dirtied, a counter; 64 MiB container) starts at mec1. Each run plays the
car's drive at a time scale (x2: 15 s of wall time; x8: 3.75 s; x15: 2 s) in the emulation
(`mininet_scenarios.ue_motion`: the car's link re-plugged at each new site, the controller told)
while the car's client (`workloads.probe`: one TCP connection, a PING every 5 ms) talks to kv,
and kv follows the car under one policy:

- `<strategy>` (precopy, postcopy, hybrid, cold; and seed 003's other state levels, restart
  and filesystem, which start kv afresh from its files: its memory is lost, as Table IV
  says, and the state goal does not judge them): follow-me with speculation
  (`orchestration.follow_me.FollowMe` + `orchestration.follower.Follower`, the known path as
  the predictor, `known_dwell` for the stay): the move starts ahead of the handover (pre-copy
  rounds, or for strategies without rounds the destination's preparation), is kept warm and
  commits when the car arrives;
- `<strategy>-reactive`: a plain migration asked for at the handover
  (`Orchestrator.plan_migration(...).run()` at once, one at a time).

Before each run kv is deployed afresh at mec1 and the car put back in cell1. A row per
handover (`mecmig.bench.mobility_rows`): ue, service, policy, speculative, interruption_ms,
state_intact, bytes, dwell_ms, viable, t_pre_ms, t_down_ms, serving_after_ms, repetition.
- `replica` (seed 002): the stateless `web` of scenarios/replicas.yaml (the same road, car and
  cells) is served by warm replicas: a replica placed ahead at each site follow-me marks, made
  the primary by a flow switch at the handover, never migrated
  (`mecmig.bench.mobility_replica`); the car's client is `workloads.http_poll` (a GET on a new
  connection every 5 ms), and that policy's runs get that scenario's testbed.

Outputs (on the experiment harness): summary.json (`rows`: one per handover; `summary`: per
policy the dwell-time statistics and the interruption), raw/ (a file per run), mobility.csv and
its statistics, mobility.png and report.md.
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from mecmig.bench import ROOT, shown
from mecmig.bench.harness import Experiment, Metric, RunSpec
from mecmig.bench.harness_testbed import environment_ready, finish, run_on_testbed
from mecmig.bench.mobility_replica import (
    REPLICA,
    STATELESS_PORT,
    STATELESS_SERVICE,
    ReplicaDriver,
    poll_replies,
    stateless_rows,
)
from mecmig.bench.mobility_rows import (
    Arrival,
    Client,
    Move,
    gaps_s,
    handover_rows,
    move_of,
    replies_of,
)
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_USAGE

SCENARIO = ROOT / "scenarios" / "drive.yaml"
REPLICA_SCENARIO = ROOT / "scenarios" / "replicas.yaml"
DEFAULT_OUT = ROOT / "results" / "mobility"
UE, SERVICE, HOME = "car", "kv", "mec1"
SERVICE_PORT = 7000
# the CRIU strategies (seed 003's full state), then its two other state levels: restart (FCCP:
# files and configuration) and filesystem (SFP: files only, started with a manual command,
# kv's own): kv's counter and memory are not in its files, so by them it arrives without
# its state, as Table IV says; `summarize` judges the state goal on the CRIU strategies only
STRATEGIES = ("precopy", "postcopy", "hybrid", "cold", "restart", "filesystem")
REACTIVE = "-reactive"
POLICIES = (*(p for s in STRATEGIES for p in (s, f"{s}{REACTIVE}")), REPLICA)
# scenario seconds per wall second: at x2 the car's 30 s drive takes 15 s and its stay at mec2
# is 7.5 s; at x8 that stay is 1.875 s, seed 003's shortest dwell per zone (1.854 s, Table V);
# at x15 it is 1.0 s, about its shortest per point of access (1.037 s), which none of its
# strategies fits
SCALES = (2.0, 8.0, 15.0)
MAX_SCALE = 16.0
INTERVAL_MS = 5.0
WARM_INTERVAL_S = 0.5
TICK_S = 0.1
MOVE_TIMEOUT_S = 120.0
# the goal's margin: speculative pre-copy's median interruption may exceed its reactive
# twin's by at most this (the two differ by the client's noise, the re-plug and the rounds)
MARGIN_MS = 150.0


def manual_command(orch: Any, strategy: str) -> tuple[str, ...] | None:
    """SFP's manual command (`filesystem`: the configuration stays behind): kv's own, as seed
    003's authors passed the CMD by hand; None for the other strategies (refused with one)."""
    return tuple(orch.sc.instance(SERVICE).command) if strategy == "filesystem" else None


def policy_name(strategy: str, speculative: bool) -> str:
    return strategy if speculative else f"{strategy}{REACTIVE}"


def strategy_of(policy: str) -> tuple[str, bool]:
    """'precopy-reactive' -> ('precopy', False); 'hybrid' -> ('hybrid', True); 'replica' ->
    ('replica', True)."""
    if policy.endswith(REACTIVE):
        return policy[: -len(REACTIVE)], False
    return policy, True


@dataclass(frozen=True)
class Plan:
    policies: tuple[str, ...]
    repeat: int
    scales: tuple[float, ...]


FULL = Plan(POLICIES, 3, SCALES)
QUICK = Plan(("precopy", f"precopy{REACTIVE}", REPLICA), 1, (2.0,))


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        policies=tuple(dict.fromkeys(args.policies)) if args.policies else base.policies,
        repeat=args.repeat or base.repeat,
        scales=tuple(dict.fromkeys(args.scales)) if args.scales else base.scales,
    )


def experiment(plan: Plan) -> Experiment:
    return Experiment(
        name="mobility",
        scenario=shown(SCENARIO),
        workload="the car drives past mec1, mec2, mec3 at a time scale (two handovers); "
        "kv (memhog, 16 MiB seeded, 1 MB/s dirtied) follows it; the car's client pings kv "
        f"every {INTERVAL_MS:g} ms over one TCP connection; replica: web (stateless HTTP, "
        "scenarios/replicas.yaml) served by warm replicas, the car's client a GET on a new "
        f"connection every {INTERVAL_MS:g} ms",
        sweep={"scale": plan.scales, "policy": plan.policies},
        repetitions=plan.repeat,
        metrics=(
            Metric("max_interruption_ms", "largest interruption over the drive", "ms"),
            Metric("mean_t_pre_ms", "mean T_pre per move", "ms"),
            Metric("mean_t_down_ms", "mean T_down (frozen window) per move", "ms"),
            Metric("mean_serving_after_ms", "handover to the service serving there", "ms"),
        ),
        fixed={
            "ue": UE,
            "service": SERVICE,
            "interval_ms": INTERVAL_MS,
            "warm_interval_s": WARM_INTERVAL_S,
            "predictor": "known-path",
        },
    )


# ------------------------------------------------------------------------------ the drivers


class Reactive:
    """Moves the service at each handover to another site: a plain migration, asked for at
    once and run to its end, one at a time (a handover during a move is served after it)."""

    def __init__(self, orch: Any, strategy: str, site: str) -> None:
        self.orch, self.strategy, self.site = orch, strategy, site
        self.moves: list[Move] = []
        self.errors: list[str] = []
        self._queue: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="reactive-moves", daemon=True)
        self._thread.start()

    def on_handover(self, h: Any) -> None:
        if h.to_site is not None and h.to_site != self.site:
            self.site = h.to_site
            self._queue.put((h.to_site, time.monotonic()))

    def close(self, timeout: float = MOVE_TIMEOUT_S) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.errors.append(f"a move still ran after {timeout:g} s")

    def _work(self) -> None:
        from migration.engine import MigrationError
        from orchestration.orchestrator import OrchestratorError

        while (item := self._queue.get()) is not None:
            target, asked = item
            try:
                command = manual_command(self.orch, self.strategy)
                mig = self.orch.plan_migration(
                    SERVICE, target, strategy=self.strategy, command=command
                )
            except OrchestratorError as exc:
                self.errors.append(f"to {target}: not planned: {exc}")
                continue
            try:
                mig.run()
            except MigrationError as exc:
                self.errors.append(f"to {target}: {exc}")
            except Exception as exc:  # noqa: BLE001 - recorded; the run's row says so
                self.errors.append(f"to {target}: {type(exc).__name__}: {exc}")
            self.moves.append(
                move_of(mig.record.to_dict(), mig.timeline.t0, asked, speculative=False)
            )


class Speculative:
    """Follow-me with speculation (as tests/integration/test_follow_me_live.py drives it):
    `FollowMe` decides, `Follower` carries it out, ticked every TICK_S with the drive's time."""

    def __init__(self, bed: MobilityBed, strategy: str, scale: float, start: float) -> None:
        from orchestration.follow_me import Followed, FollowMe, Start, estimate_times
        from orchestration.follower import Follower, orchestrator_launcher
        from orchestration.prediction import known_dwell, known_path
        from orchestration.speculation import Speculation

        memory = bed.sc.instance(SERVICE).memory
        t_pre, t_down = estimate_times(memory, bed.uplink_bps(HOME), strategy)
        policy = FollowMe(
            UE, [Followed(SERVICE, HOME, t_pre, t_down)], known_path(bed.mob),
            serving_site=HOME, dwell=known_dwell(bed.mob), scale=scale,
        )  # fmt: skip
        base = orchestrator_launcher(
            bed.orch, strategy=strategy,
            speculate=partial(Speculation, warm_interval_s=WARM_INTERVAL_S),
            command=manual_command(bed.orch, strategy),
        )  # fmt: skip
        self.asked: list[tuple[Any, Start, float]] = []

        def launch(a: Start) -> Speculation:
            t = time.monotonic()
            spec = base(a)
            self.asked.append((spec, a, t))
            return spec

        self.follower = Follower(policy, launch)
        self.scale, self.start = scale, start
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._ticks, name="follow-ticks", daemon=True)
        self._ticker.start()

    def _ticks(self) -> None:
        while not self._stop.wait(TICK_S):
            self.follower.tick((time.monotonic() - self.start) * self.scale)

    def on_handover(self, h: Any) -> None:
        self.follower.on_handover(h)

    def close(self, timeout: float = MOVE_TIMEOUT_S) -> None:
        """After the drive: the ticks go on until the service runs where the UE is (a move
        still under way when the car arrived at its last site is followed by one there, as
        follow-me's REST service would do) or `timeout`; then the follower is closed."""
        from orchestration.speculation import SpecState

        deadline = time.monotonic() + timeout
        policy = self.follower.policy
        while time.monotonic() < deadline:
            for spec in list(self.follower.speculations.values()):  # a commit under way ends
                spec.wait_for(
                    SpecState.DONE, SpecState.CANCELLED, SpecState.FAILED,
                    timeout=max(0.0, deadline - time.monotonic()),
                )  # fmt: skip
            if not self.follower.speculations and policy.where(SERVICE) in (
                policy.serving_site, None,
            ):  # fmt: skip
                break
            time.sleep(TICK_S)
        self._stop.set()
        self._ticker.join()
        self.follower.close(timeout=timeout)

    @property
    def moves(self) -> list[Move]:
        from orchestration.speculation import SingleMove

        out = []
        for spec, start, asked in self.asked:
            mv = spec.move
            if isinstance(mv, SingleMove):
                out.append(
                    move_of(
                        mv.m.record.to_dict(), mv.m.timeline.t0, asked,
                        speculative=start.speculative,
                    )
                )  # fmt: skip
        return out

    @property
    def errors(self) -> list[str]:
        return [
            f"{type(d.action).__name__} {d.action.target}: {d.result}"
            for d in self.follower.history
            if d.result not in ("started", "requested", "marked")
        ]

    def history(self) -> list[str]:
        return [
            f"{type(d.action).__name__} {getattr(d.action, 'target', '')} at "
            f"{d.action.t_s:.2f} s: {d.result}"
            for d in self.follower.history
        ]


# ------------------------------------------------------------------------------ the testbed


class MobilityBed:
    """The emulation of drive.yaml (controller, Mininet, an agent per site), the orchestrator,
    the car's mobility and the one mover that re-plugs it (it knows where the car hangs)."""

    def __init__(self, tb: Any, clients: dict[str, Any], scenario: Path = SCENARIO) -> None:
        from mininet_scenarios.ue_motion import UEMover
        from orchestration.links import RestControllerLink
        from orchestration.orchestrator import Orchestrator
        from topology.mobility_events import ue_mobility
        from topology.scenario import load_scenario

        self.tb = tb
        self.scenario = scenario
        self.service = STATELESS_SERVICE if scenario == REPLICA_SCENARIO else SERVICE
        self.sc = load_scenario(scenario)
        self.orch = Orchestrator(self.sc, clients, RestControllerLink(tb.ctl.client))
        self.mob = ue_mobility(self.sc, UE)
        self.mover = UEMover(tb.emu, tb.ctl.client)
        assert self.mob.initial is not None
        self.home_cell = self.mob.initial.name
        self.cell = self.home_cell

    def uplink_bps(self, site: str) -> int:
        """The slowest link at the site's switch (as follow-me's REST service estimates)."""
        from ground.defaults import MIGRATION_RATE_BPS

        switch = self.sc.switch_of(site)
        rates = [
            ln.capacity for ln in self.sc.links
            if switch in (self.sc.switch_of(n) for n in ln.between)
        ]  # fmt: skip
        return min(rates, default=MIGRATION_RATE_BPS)

    def go_home(self) -> None:
        """The car back in its first cell (re-plugged at mec1 if it is elsewhere)."""
        from topology.mobility_events import Handover

        if self.cell == self.home_cell:
            return
        radio = self.mover.radio
        old, new = radio.cell(self.cell), radio.cell(self.home_cell)
        x, y = self.mob.position(0.0)
        self.mover.apply(
            Handover(0.0, UE, old.name, new.name, old.zone, new.zone, old.site, new.site, x, y)
        )
        self.cell = self.home_cell

    def start_probe(self) -> Any:
        """`workloads.probe` on the car (`mininet_scenarios.measure.Probe`), every request
        kept (`--samples`: their reply times on the monotonic clock)."""
        from mininet_scenarios.measure import Probe

        server = str(self.sc.instance(SERVICE).ip)
        return Probe(
            self.tb.emu, UE, server, SERVICE_PORT, interval_ms=INTERVAL_MS,
            extra=("--stall-timeout-ms", "60000", "--samples"),
        )  # fmt: skip

    def run(self, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        from orchestration.prediction import known_dwell

        policy, scale = str(spec["policy"]), float(spec["scale"])
        if policy == REPLICA:
            return self.run_replica(spec, on_phase)
        strategy, speculative = strategy_of(policy)
        on_phase("deploying kv at mec1")
        self.orch.teardown(SERVICE)
        self.go_home()
        self.orch.deploy(SERVICE, HOME)
        probe = self.start_probe()
        try:
            time.sleep(1.0)
            on_phase(f"driving at x{scale:g}")
            dwell = known_dwell(self.mob)
            arrivals: list[Arrival] = []
            start = time.monotonic()
            driver: Speculative | Reactive = (
                Speculative(self, strategy, scale, start)
                if speculative
                else Reactive(self.orch, strategy, HOME)
            )
            self.mover.time_scale = scale
            try:
                self._play(start, scale, arrivals, dwell, driver.on_handover)
                on_phase("waiting for the last move")
            finally:
                driver.close()
            time.sleep(1.0)
            result = probe.stop()
        finally:
            probe.close()
        client = Client(
            replies_of(result.get("samples", [])),
            float(result["interval_ms"]),
            bool(result["same_connection"]),
            bool(result["counter_monotonic"]),
            result.get("fingerprint_stable"),
        )
        moves = driver.moves
        rows = handover_rows(
            ue=UE, service=SERVICE, policy=policy, strategy=strategy, speculative=speculative,
            scale=scale, arrivals=arrivals, moves=moves, client=client,
            repetition=spec.repetition,
        )  # fmt: skip
        for row in rows:
            row["scale"] = scale
        out = run_row(policy, strategy, speculative, rows, result, moves, driver, self)
        # what rows are made of, kept in raw/ (the client's silences, not its every reply)
        out["arrivals"] = [asdict(a) for a in arrivals]
        out["client_gaps_s"] = gaps_s(client.replies, client.interval_ms)
        return out

    def run_replica(self, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        """The `replica` policy (`mecmig.bench.mobility_replica`): web at mec1, follow-me by
        replicas while the car drives, its client a GET on a new connection every 5 ms."""
        from mininet_scenarios.measure import Probe
        from orchestration.prediction import known_dwell

        scale = float(spec["scale"])
        on_phase("deploying web at mec1")
        self.orch.teardown(STATELESS_SERVICE)
        self.go_home()
        self.orch.deploy(STATELESS_SERVICE, HOME)
        server = str(self.sc.instance(STATELESS_SERVICE).ip)
        probe = Probe(
            self.tb.emu, UE, server, STATELESS_PORT, interval_ms=INTERVAL_MS,
            extra=("--timeout-ms", "3000", "--samples"), module="workloads.http_poll",
        )  # fmt: skip
        arrivals: list[Arrival] = []
        try:
            time.sleep(1.0)
            on_phase(f"driving at x{scale:g}")
            dwell = known_dwell(self.mob)
            start = time.monotonic()
            driver = ReplicaDriver(self.orch, self.mob, HOME, scale, start, TICK_S)
            self.mover.time_scale = scale
            try:
                self._play(start, scale, arrivals, dwell, driver.on_handover)
            finally:
                driver.close()
            time.sleep(1.0)
            poll = probe.stop()
        finally:
            probe.close()
        client = Client(poll_replies(poll["samples"]), INTERVAL_MS, True, True, True)
        moves = driver.moves
        rows = stateless_rows(
            handover_rows(
                ue=UE, service=STATELESS_SERVICE, policy=REPLICA, strategy=REPLICA,
                speculative=True, scale=scale, arrivals=arrivals, moves=moves, client=client,
                repetition=spec.repetition,
            ),
            arrivals, moves, client.replies, client.interval_ms,
        )  # fmt: skip
        for row in rows:
            row["scale"] = scale
        summary = {"downtime_ms": poll["max_gap_ms"], "same_connection": None,
                   "counter_monotonic": None, "fingerprint_stable": None}  # fmt: skip
        out_row = run_row(REPLICA, REPLICA, True, rows, summary, moves, driver, self)
        out_row["follow_me"] = driver.history()
        out_row["client_failures"] = poll["failures"]
        out_row["arrivals"] = [asdict(a) for a in arrivals]
        out_row["client_gaps_s"] = gaps_s(client.replies, client.interval_ms)
        return out_row

    def _play(
        self,
        start: float,
        scale: float,
        arrivals: list[Arrival],
        dwell: Callable[[float, str], float | None],
        then: Callable[[Any], None],
    ) -> None:
        """The car's drive from `start` at `scale`: each handover re-plugs it (`arrivals`
        records those to another site), then `then(handover)`; returns at the path's end."""
        from topology.mobility_playback import Playback, play

        def handle(h: Any) -> None:
            wall = time.monotonic()
            moved = self.mover.apply(h)
            if h.to_cell is not None:
                self.cell = h.to_cell
            if h.to_site is not None and h.to_site != h.from_site:
                arrivals.append(
                    Arrival(h.t_s, wall, h.from_site, h.to_site, dwell(h.t_s, h.to_site),
                            moved.replug_ms)
                )  # fmt: skip
            then(h)

        play(Playback(self.mob.handovers, start, scale), time.monotonic, time.sleep, handle)
        end = start + self.mob.until / scale
        while time.monotonic() < end:
            time.sleep(0.05)


def run_row(
    policy: str,
    strategy: str,
    speculative: bool,
    rows: list[dict[str, Any]],
    probe: dict[str, Any],
    moves: list[Move],
    driver: Speculative | Reactive | ReplicaDriver,
    bed: MobilityBed,
) -> dict[str, Any]:
    """One run: its handovers' rows and what the harness's statistics summarize."""

    def mean(key: str) -> float | None:
        vals = [float(r[key]) for r in rows if r[key] is not None]
        return round(sum(vals) / len(vals), 1) if vals else None

    gaps = [r["interruption_ms"] for r in rows if r["interruption_ms"] is not None]
    out: dict[str, Any] = {
        "policy": policy,
        "strategy": strategy,
        "speculative": speculative,
        "max_interruption_ms": max(gaps) if gaps else None,
        "mean_t_pre_ms": mean("t_pre_ms"),
        "mean_t_down_ms": mean("t_down_ms"),
        "mean_serving_after_ms": mean("serving_after_ms"),
        "client_downtime_ms": round(float(probe["downtime_ms"]), 1),
        "same_connection": probe["same_connection"],
        "counter_monotonic": probe["counter_monotonic"],
        "fingerprint_stable": probe.get("fingerprint_stable"),
        "ends_at": bed.orch.where(bed.service),
        "state_lost": sum(r["state_intact"] is False for r in rows),
        "moves": [asdict(m) for m in moves],
        "handovers": rows,
    }
    if isinstance(driver, Speculative):
        out["follow_me"] = driver.history()
    problems = driver.errors
    if len(rows) != 2 or any(r["outcome"] != "done" for r in rows):
        problems = [*problems, f"{len(rows)} handovers, outcomes {[r['outcome'] for r in rows]}"]
    if problems:
        out["error"] = "; ".join(problems)
    return out


class Beds:
    """The testbed each policy needs: drive.yaml's for the strategies, replicas.yaml's for
    `replica` (the same road, car and cells). One runs at a time: asking for the other stops
    the one running (its service torn down) and starts it."""

    def __init__(self) -> None:
        self._stack: ExitStack | None = None
        self._bed: MobilityBed | None = None

    def for_policy(self, policy: str) -> MobilityBed:
        scenario = REPLICA_SCENARIO if policy == REPLICA else SCENARIO
        if self._bed is not None and self._bed.scenario == scenario:
            return self._bed
        self.close()
        self._bed = self._open(scenario)
        return self._bed

    def _open(self, scenario: Path) -> MobilityBed:
        from mininet_scenarios.agents import SiteAgents
        from mininet_scenarios.testbed import testbed

        with ExitStack() as stack:
            tb = stack.enter_context(testbed(scenario, instance_hosts=False))
            agents = stack.enter_context(SiteAgents(tb.emu, scenario))
            bed = MobilityBed(tb, agents.clients, scenario)
            stack.callback(bed.orch.teardown, bed.service)
            stack.callback(bed.mover.close)  # the car's links plugged ahead, its standbys
            self._stack = stack.pop_all()
        return bed

    def close(self) -> None:
        stack, self._stack, self._bed = self._stack, None, None
        if stack is not None:
            stack.close()


@contextmanager
def mobility_testbed() -> Iterator[Beds]:
    beds = Beds()
    try:
        yield beds
    finally:
        beds.close()


# ------------------------------------------------------------------------------ the run


def handover_rows_of(run_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """summary.json's rows: one per handover."""
    return [h for r in run_rows for h in r.get("handovers", [])]


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, the plot and report.md into `args.out`."""
    from mecmig.bench.mobility_report import plot_mobility, report_markdown
    from mecmig.bench.mobility_rows import summarize_scales

    if args.repeat is not None and args.repeat < 1:
        console.print("[red]--repeat must be at least 1[/red]")
        return EXIT_USAGE
    if args.scales and any(not 0.5 <= x <= MAX_SCALE for x in args.scales):
        console.print(f"[red]--scales take 0.5 to {MAX_SCALE:g}[/red]")
        return EXIT_USAGE
    if not environment_ready(console, SCENARIO):
        return EXIT_ENVIRONMENT
    plan = plan_from(args)
    done = run_on_testbed(
        args, console, experiment(plan), command_words(args), mobility_testbed,
        run_one, part="drives", label=label, line=line,
    )  # fmt: skip
    runs_done = done.runs.rows()
    rows = handover_rows_of(runs_done)
    summary = summarize_scales(rows, plan.policies, plan.scales, MARGIN_MS)
    return finish(
        done, console, rows=rows, summary=summary,
        extra={
            "scenario": shown(SCENARIO),
            "plan": {
                "policies": list(plan.policies), "repeat": plan.repeat,
                "scales": list(plan.scales),
                "ue": UE, "service": SERVICE, "interval_ms": INTERVAL_MS,
                "margin_ms": MARGIN_MS, "predictor": "known-path",
                "replica": {"scenario": shown(REPLICA_SCENARIO), "service": STATELESS_SERVICE,
                            "client": "workloads.http_poll (a GET on a new connection)"},
            },
        },
        plots=lambda: [plot_mobility(rows, plan, args.out)],
        report=lambda files: report_markdown(
            rows, summary, done.session.command, done.session.started_at, done.duration_s,
            plan, done.session, done.runs, files,
        ),
        failures=[f"{label(s)}: {r['error']}" for s, r in done.runs.done() if "error" in r],
    )  # fmt: skip


def run_one(beds: Beds, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
    bed = beds.for_policy(str(spec["policy"]))
    row = bed.run(spec, on_phase)
    row["repetition"] = spec.repetition
    return row


def label(spec: RunSpec) -> str:
    return f"{spec['policy']} x{spec['scale']:g} #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    parts = [
        f"{h['from_site']}->{h['to_site']}: gap {h['interruption_ms']} ms, T_pre {h['t_pre_ms']}, "
        f"T_down {h['t_down_ms']} ms"
        for h in row["handovers"]
    ]
    lost = row["state_lost"]
    return (
        f"{label(spec)}: " + "; ".join(parts) + "; state "
        + ("intact" if not lost else f"[red]lost in {lost}[/red]")
        + (f" [red]{row['error']}[/red]" if "error" in row else "")
    )  # fmt: skip


def command_words(args: argparse.Namespace) -> list[str]:
    words = ["mecmig", "bench", "mobility"]
    if args.quick:
        words.append("--quick")
    if args.policies:
        words += ["--policies", *args.policies]
    if args.repeat:
        words += ["--repeat", str(args.repeat)]
    if args.scales:
        words += ["--scales", *(f"{x:g}" for x in dict.fromkeys(args.scales))]
    if args.out != DEFAULT_OUT:
        words += ["--out", shown(args.out)]
    return words


def add_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench mobility`'s command line."""
    b = bench.add_parser(
        "mobility",
        help="a car drives past three sites, its service follows: each strategy, speculative "
        "or at the handover",
        description="On scenarios/drive.yaml: the car drives past mec1, mec2 and mec3 (two "
        "handovers) at time scales x2, x8 and x15 (its stay at mec2: 7.5 s, 1.875 s, 1.0 s) "
        "while "
        "its client pings kv (memhog) every 5 ms over one TCP connection; kv follows the car "
        "under each policy: a strategy (precopy, "
        "postcopy, hybrid, cold; restart and filesystem, seed 003's levels that start kv afresh "
        "from its files) started ahead of the handover by follow-me's speculation, or "
        "the same strategy as a plain migration at the handover (<strategy>-reactive); 3 "
        "times each. Rows (one per handover): ue, service, policy, speculative, "
        "interruption_ms, state_intact, bytes, dwell_ms, viable (seed 003: T_pre + T_down <= "
        "T_dwell), t_pre_ms, t_down_ms, repetition; per policy the dwell-time statistics. "
        "Policy replica: the stateless web of scenarios/replicas.yaml (the same road and car) "
        "served by warm replicas placed ahead, a flow switch at each handover; its client a "
        "GET on a new connection every 5 ms. Writes summary.json, mobility.png, CSVs and report.md "
        "into --out. Exit 0 the run completed (goals met or not), 1 a run failed, 3 not root "
        "/ no OVS / no runc or CRIU.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="precopy, precopy-reactive and replica at x2, once each: about 3 minutes",
    )
    b.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help="where the results go (default: results/mobility/)",
    )  # fmt: skip
    b.add_argument("--policies", nargs="+", choices=POLICIES, help="only these policies")
    b.add_argument("--repeat", type=int, metavar="N", help="repetitions (default 3; --quick 1)")
    b.add_argument(
        "--scales", nargs="+", type=float, metavar="X",
        help="time scales, scenario seconds per wall second (default 2 8 15; --quick 2; 0.5 to 16)",
    )  # fmt: skip
