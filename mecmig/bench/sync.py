"""`mecmig bench sync`: what a warm replica's volume sync period costs (issue 12, seed 002:
"storage-dependent services get their volume synced from the primary every set period; measure
staleness against inter-site traffic for a few periods").

scenarios/sync.yaml: `notes` (workloads/volcount.py: a counter on its volume, read and written
at every request, and a 100-byte record appended to a log there per hit) runs at mec1, its warm
replica at mec2 (`orchestration.replicas.Replicas`, its port a standby at the controller). The
phone hits it on a new connection every 5 ms (`workloads.http_poll --path /hit`). A thread ticks
the replicas every 50 ms: each tick syncs the primary's volume to the replica when a period has
passed (the agents' volume sync: what changed since the last sync there). Every ~2 s the service
is handed over to the other site by a flow switch (the old primary becomes the replica), at
phases spread over the period.

Rows (one per handover; `mecmig.bench.sync_rows`): period_s, lost_hits, staleness_ms (how old
the new primary's data was at the switch, seen by the client), scheduled_staleness_ms,
within_period, switchover_ms. Per run: the syncs' bytes on the wire per second, their number
and duration, what the service wrote per second. Outputs: summary.json, raw/, sync.csv and its
statistics, sync.png and report.md.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console

from mecmig.bench import ROOT, shown
from mecmig.bench.harness import Experiment, Metric, RunSpec
from mecmig.bench.harness_testbed import (
    agents_testbed,
    bench_words,
    finish,
    harness_options,
    preflight,
    run_on_testbed,
)
from mecmig.bench.sync_rows import Switch, Synced, hits_of, run_rows, summarize, traffic
from mecmig.cli import EXIT_USAGE

SCENARIO = ROOT / "scenarios" / "sync.yaml"
DEFAULT_OUT = ROOT / "results" / "sync"
SERVICE, CLIENT, PORT = "notes", "phone", 8080
SITES = ("mec1", "mec2")
INTERVAL_MS = 5.0
LOG_BYTES = 100  # volcount's record per hit (scenarios/sync.yaml)
TICK_S = 0.05
DWELL_S = 2.0  # between handovers, plus a phase that walks through the period
PERIODS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Plan:
    periods: tuple[float, ...]
    handovers: int
    repeat: int


FULL = Plan(PERIODS, 6, 1)
QUICK = Plan((0.5, 2.0), 3, 1)


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        periods=tuple(dict.fromkeys(args.periods)) if args.periods else base.periods,
        handovers=args.handovers or base.handovers,
        repeat=args.repeat or base.repeat,
    )


def dwells(period_s: float, n: int) -> list[float]:
    """The wait before each of `n` handovers: DWELL_S plus a phase that steps through the
    period by the golden ratio, so that handovers fall at every point of the sync cycle."""
    return [DWELL_S + ((i + 1) * 0.618034 % 1.0) * period_s for i in range(n)]


def experiment(plan: Plan) -> Experiment:
    return Experiment(
        name="sync",
        scenario=shown(SCENARIO),
        workload=f"notes (volcount: a counter and a {LOG_BYTES}-byte record per hit on its "
        f"volume) at mec1, its replica at mec2 synced every period; the phone hits it every "
        f"{INTERVAL_MS:g} ms on a new connection; {plan.handovers} handovers per run",
        sweep={"period_s": plan.periods},
        repetitions=plan.repeat,
        metrics=(
            Metric("staleness_mean_ms", "new primary's data age at a handover (mean)", "ms"),
            Metric("sync_bytes_per_s", "inter-site bytes of the syncs per second", "B/s"),
        ),
        fixed={
            "service": SERVICE,
            "interval_ms": INTERVAL_MS,
            "log_bytes": LOG_BYTES,
            "handovers": plan.handovers,
            "dwell_s": DWELL_S,
        },  # fmt: skip
    )


class SyncBed:
    """scenarios/sync.yaml's emulation (controller, Mininet, an agent per site) and an
    orchestrator over it."""

    def __init__(self, tb: Any, clients: dict[str, Any]) -> None:
        from orchestration.links import RestControllerLink
        from orchestration.orchestrator import Orchestrator
        from topology.scenario import load_scenario

        self.tb = tb
        self.sc = load_scenario(SCENARIO)
        self.orch = Orchestrator(self.sc, clients, RestControllerLink(tb.ctl.client))

    def run(self, spec: RunSpec, handovers: int, on_phase: Callable[[str], None]) -> dict[str, Any]:
        from mininet_scenarios.measure import Probe
        from orchestration.replicas import Replicas

        period = float(spec["period_s"])
        on_phase("deploying notes and its replica")
        self.orch.teardown(SERVICE)
        self.orch.deploy(SERVICE, SITES[0])
        reps = Replicas(self.orch, SERVICE, sync_period_s=period, probe_interval_s=0.5)
        lock, stop = threading.Lock(), threading.Event()
        errors: list[str] = []
        try:
            reps.place([SITES[1]])
            probe = Probe(
                self.tb.emu, CLIENT, str(self.sc.instance(SERVICE).ip), PORT,
                interval_ms=INTERVAL_MS, module="workloads.http_poll",
                extra=("--path", "/hit", "--timeout-ms", "3000", "--samples"),
            )  # fmt: skip

            def ticks() -> None:
                while not stop.wait(TICK_S):
                    with lock:
                        try:
                            reps.tick()
                        except Exception as exc:  # noqa: BLE001 - recorded: the row says so
                            errors.append(f"tick: {type(exc).__name__}: {exc}")

            ticker = threading.Thread(target=ticks, name="sync-ticks", daemon=True)
            switches: list[Switch] = []
            try:
                ticker.start()
                started = time.monotonic()
                for i, wait in enumerate(dwells(period, handovers)):
                    on_phase(f"handover {i + 1}/{handovers}")
                    time.sleep(wait)
                    with lock:
                        target = next(s for s in SITES if s != reps.primary)
                        stale = reps.sync.staleness(target, time.monotonic()) if reps.sync else None
                        began = time.monotonic()
                        switch_ms = reps.handover(target)
                        ended = time.monotonic()
                    switches.append(Switch(target, began, ended, switch_ms, stale))
                time.sleep(1.0)
                span = time.monotonic() - started
                poll = probe.stop()
            finally:
                stop.set()
                ticker.join()
                probe.close()
        finally:
            with lock:
                for site in list(reps.set.sites):
                    if site != reps.primary:
                        reps.retire(site)
            self.orch.teardown(SERVICE)
        history = reps.sync.history if reps.sync is not None else []
        syncs = [Synced(r.site, r.started, r.ended, r.bytes, r.full) for r in history]
        hits = hits_of(poll["samples"])
        rows = run_rows(hits, switches, syncs, period, spec.repetition)
        moved = traffic(syncs, span)
        ages = [float(r["staleness_ms"]) for r in rows if r["staleness_ms"] is not None]
        out: dict[str, Any] = {
            "period_s": period,
            **moved,
            "write_bytes_per_s": round(len(hits) * LOG_BYTES / span, 1),
            "hits": len(hits),
            "client_failures": poll["failures"],
            "staleness_mean_ms": round(sum(ages) / len(ages), 1) if ages else None,
            "staleness_max_ms": max(ages) if ages else None,
            "switches": [asdict(s) for s in switches],
            "handovers": rows,
        }
        if errors or len(switches) != handovers:
            out["error"] = "; ".join(errors) or f"{len(switches)} of {handovers} handovers"
        return out


@contextmanager
def sync_testbed() -> Iterator[SyncBed]:
    with agents_testbed(SCENARIO) as (tb, clients):
        bed = SyncBed(tb, clients)
        try:
            yield bed
        finally:
            bed.orch.teardown(SERVICE)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, the plot and report.md into `args.out`."""
    from mecmig.bench.sync_report import plot_sync, report_markdown

    if args.handovers is not None and not 1 <= args.handovers <= 50:
        console.print("[red]--handovers takes 1 to 50[/red]")
        return EXIT_USAGE
    if args.periods and any(not 0.1 <= p <= 60 for p in args.periods):
        console.print("[red]--periods take 0.1 to 60 seconds[/red]")
        return EXIT_USAGE
    refused = preflight(args, console, SCENARIO)
    if refused is not None:
        return refused
    plan = plan_from(args)

    def run_one(bed: SyncBed, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        row = bed.run(spec, plan.handovers, on_phase)
        row["repetition"] = spec.repetition
        return row

    done = run_on_testbed(
        args, console, experiment(plan), command_words(args), sync_testbed, run_one,
        part="periods", label=label, line=line,
    )  # fmt: skip
    runs = [r for r in done.runs.rows() if "error" not in r]
    rows = [h for r in runs for h in r["handovers"]]
    summary = summarize(rows, runs)
    return finish(
        done, console, rows=rows, summary=summary,
        extra={"scenario": shown(SCENARIO), "plan": asdict(plan), "runs": [
            {k: v for k, v in r.items() if k not in ("handovers", "switches")} for r in runs
        ]},
        plots=lambda: [plot_sync(summary, rows, args.out)],
        report=lambda files: report_markdown(
            rows, summary, done.session.command, done.session.started_at, done.duration_s,
            plan, done.session, done.runs, files,
        ),
        failures=[f"{label(s)}: {r['error']}" for s, r in done.runs.done() if "error" in r],
    )  # fmt: skip


def label(spec: RunSpec) -> str:
    return f"period {spec['period_s']:g} s #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    return (
        f"{label(spec)}: staleness at handovers "
        + ", ".join(f"{h['staleness_ms']}" for h in row["handovers"])
        + f" ms; syncs {row['syncs']} ({row['sync_bytes_per_s']} B/s)"
        + (f" [red]{row['error']}[/red]" if "error" in row else "")
    )


def command_words(args: argparse.Namespace) -> list[str]:
    options = []
    if args.periods:
        options += ["--periods", *(f"{p:g}" for p in dict.fromkeys(args.periods))]
    if args.handovers:
        options += ["--handovers", str(args.handovers)]
    return bench_words("sync", args, *options)


def add_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench sync`'s command line."""
    b = bench.add_parser(
        "sync",
        help="a replicated service that keeps data on its volume: staleness at a handover "
        "against the inter-site traffic of its syncs, per sync period",
        description="On scenarios/sync.yaml: notes (a counter and a log on its volume, read "
        "at every request) runs at mec1 with a warm replica at mec2 whose volume is synced "
        "every period (0.25, 0.5, 1, 2, 4 s); the phone hits it every 5 ms; the service is "
        "handed over between the sites 6 times per period. Rows (one per handover): "
        "period_s, lost_hits, staleness_ms (how old the new primary's data was), "
        "scheduled_staleness_ms, within_period, switchover_ms; per period the syncs' bytes "
        "per second. Writes summary.json, sync.png, CSVs and report.md into --out. Exit 0 "
        "the run completed, 1 a run failed, 3 not root / no OVS / no runc.",
    )
    harness_options(
        b, "sync", quick="periods 0.5 and 2 s, 3 handovers each: about a minute",
        repeat="repetitions (default 1)",
    )  # fmt: skip
    b.add_argument("--periods", nargs="+", type=float, metavar="S", help="sync periods (s)")
    b.add_argument("--handovers", type=int, metavar="N", help="handovers per run (default 6)")
