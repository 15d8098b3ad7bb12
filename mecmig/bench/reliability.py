"""`mecmig bench reliability`: every fault at every phase boundary, counted; then a soak.

On scenarios/reliability.yaml (one testbed for the whole run, `mecmig.bench.reliability_rig`):
Debian's memcached moves from mec1 to mec2 while its client at mec3 increments a counter in it
every 5 ms over one TCP connection.

The matrix: for each fault of `mecmig.bench.faults`, each phase boundary it applies to and each
strategy, one migration with the fault fired at that boundary, then the recovery an operator
would do. A row records the outcome, where the service answers (it must be the source before
the point of no return, the destination after it), whether its counter survived, whether the
client kept its connection, and what was left behind (the leak inventory before the service
was deployed and after it was removed, by kind; plus stale copies while it still ran). A row is
green when all of those hold.

The soak: N migrations back and forth (strategies in turn) under the same client; no client gap
may exceed its migration's frozen window + 50 ms, the counter must survive, the inventory must
be the same after as before, and the controller's and agents' resident memory may grow by less
than 10 % (measured from the end of a warm-up of WARMUP migrations).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from agent.leaks import fd_targets
from mecmig.bench import environment_problem, progress, shown
from mecmig.bench.fault_names import PHASES
from mecmig.bench.faults import FAULTS, Fault, Shot, recover
from mecmig.bench.reliability_report import markdown, plot
from mecmig.bench.reliability_rig import (
    DESTINATION,
    INSTANCE,
    SCENARIO,
    SOURCE,
    Rig,
    rig,
)
from mecmig.bench.report import command_line, utc_now, write_report, write_summary
from mininet_scenarios.leaks import Inventory

EXIT_OK, EXIT_FAILED, EXIT_ENVIRONMENT = 0, 1, 3
STRATEGIES = ("cold", "precopy", "postcopy", "hybrid")
SLACK_MS = 50.0
FD_SETTLE_S = 8.0  # a keep-alive connection's idle timeout (5 s) and some margin
SETTLE_S = 1.0  # after the recovery, before the client stops: it has time to come back
LEAD_S = 0.5  # the client runs this long before the migration
PAUSE_S = 0.5  # between soak migrations
WARMUP = 10  # soak migrations before the resident-memory baseline
RSS_GOAL = 0.10


@dataclass(frozen=True)
class Plan:
    faults: tuple[str, ...]
    phases: tuple[str, ...]
    strategies: tuple[str, ...]
    soak: int


FULL = Plan(tuple(FAULTS), tuple(PHASES), STRATEGIES, 200)
QUICK_ROWS = (
    ("kill-source-agent", "freeze", "cold"),
    ("kill-destination-agent", "transfer", "precopy"),
    ("kill-criu-dump", "freeze", "cold"),
    ("kill-criu-restore", "restore", "cold"),
    ("cut-link", "transfer", "cold"),
    ("fill-disk", "transfer", "cold"),
    ("restart-controller", "switch", "cold"),
    ("disconnect-switch", "switch", "cold"),
    ("second-migration", "transfer", "cold"),
    ("kill-source-agent", "after", "postcopy"),
)
QUICK_SOAK = 20


def cases(plan: Plan, quick: bool) -> list[tuple[Fault, str, str]]:
    if quick:
        return [(FAULTS[f], p, s) for f, p, s in QUICK_ROWS]
    return [
        (FAULTS[f], p, s)
        for f in plan.faults
        for p in plan.phases
        for s in plan.strategies
        if FAULTS[f].applies(p, s)
    ]


# ------------------------------------------------------------------ leaks


def leak_counts(before: Inventory, after: Inventory) -> dict[str, int]:
    """What appeared, per kind (processes by their kind: a restarted agent is no leak), and
    what grew in bytes or descriptors (descriptors of processes alive both times)."""
    out: dict[str, int] = {}
    for kind in sorted(set(before.items) | set(after.items)):
        old, new = before.items.get(kind, frozenset()), after.items.get(kind, frozenset())
        if kind == "processes":
            a = Counter(p.split()[0] for p in old)
            b = Counter(p.split()[0] for p in new)
            out[kind] = sum(max(0, b[k] - a[k]) for k in b)
        else:
            out[kind] = len(new - old)
    for key in ("disk_bytes", "image_bytes"):
        out[key] = max(0, after.numbers.get(key, 0) - before.numbers.get(key, 0))
    fds = [
        after.numbers[k] - before.numbers[k]
        for k in before.numbers
        if k.startswith("fds ") and k in after.numbers
    ]
    out["fds"] = max(0, sum(fds))
    return out


def stale_copies(inv: Inventory, serving: Sequence[str]) -> int:
    """Instance directories of the service at sites where it does not run, and image dirs."""
    dirs = [d for d in inv.items.get("instance_dirs", ()) if d.endswith(f"/{INSTANCE}")]
    stale = [d for d in dirs if not any(f"/{site}/" in f"/{d}" for site in serving)]
    return len(stale) + len(inv.items.get("image_dirs", ()))


# ------------------------------------------------------------------ one row


def run_case(r: Rig, fault: Fault, phase: str, strategy: str) -> dict[str, Any]:
    """One migration with `fault` at `phase`; see the module docstring."""
    r.orch.teardown(INSTANCE)
    before = r.inventory(r.fd_pids())
    fds_before = {pid: fd_targets(pid) for pid in r.fd_pids()}
    r.deploy()
    probe = r.start_probe()
    time.sleep(LEAD_S)
    shot = Shot(r, strategy)
    fired = threading.Event()
    target = PHASES[phase]

    def listener(event: str, record: Any, ph: Any) -> None:
        aimed = (
            event == "point_of_no_return"
            if target is None
            else event == "phase_started" and ph is not None and ph.name == target
        )
        if not aimed or fired.is_set():
            return
        fired.set()
        try:
            fault.inject(shot)
        except Exception as exc:  # noqa: BLE001 - recorded: the row says the fault did not fire
            shot.notes["inject_error"] = str(exc)

    from migration.engine import MigrationError
    from orchestration.orchestrator import OrchestratorError

    record = None
    t0 = time.monotonic()
    try:
        record = r.orch.migrate(INSTANCE, DESTINATION, strategy=strategy, listener=listener)
        outcome = record.outcome.value
        error = record.error
    except MigrationError as exc:
        record = exc.record
        outcome, error = record.outcome.value, str(exc)
    except OrchestratorError as exc:
        outcome, error = "refused", str(exc)
    migrate_s = time.monotonic() - t0
    recover(fault, shot)
    time.sleep(fault.settle_s)
    result = probe.stop()
    a = r.assess(probe, result)
    past = record is not None and record.point_of_no_return_ms is not None
    # where a migration that stood put it: this one, or (second-migration) the other one
    moved = past or shot.notes.get("second") == "done"
    expected = "destination" if moved else "source"
    running = r.inventory(r.fd_pids())
    stale = stale_copies(running, a.running_at)
    r.orch.teardown(INSTANCE)
    after = r.inventory(r.fd_pids())
    leaks = leak_counts(before, after)
    fd_notes: dict[str, Any] = {}
    if leaks["fds"]:
        leaks["fds"], fd_notes = settle_fds(r, before, fds_before)
    leaks["stale_copies"] = stale
    green = (
        fired.is_set()
        and "inject_error" not in shot.notes
        and a.service_at == expected
        and a.state_intact
        and a.connection_kept
        and not any(leaks.values())
    )
    return {
        "fault": fault.name,
        "phase": phase,
        "strategy": strategy,
        "outcome": outcome,
        "service_at": a.service_at,
        "expected_at": expected,
        "state_intact": a.state_intact,
        "connection_kept": a.connection_kept,
        "leaks": leaks,
        "green": green,
        "fired": fired.is_set(),
        "migrate_s": round(migrate_s, 2),
        "error": (error or "")[:400] or None,
        "detail": {**shot.notes, **a.detail, **fd_notes, "running_at": a.running_at},
    }


def settle_fds(
    r: Rig, before: Inventory, fds_before: dict[int, dict[str, str]]
) -> tuple[int, dict[str, Any]]:
    """Descriptors still counted after FD_SETTLE_S, and what they point at.

    A daemon can hold one descriptor more than before for a few seconds with nothing leaked: the
    bench's HTTP client opened a second keep-alive connection to an agent while two requests ran
    at once (a second migration, a fault's own call), and the agent's server closes it only when
    it has idled `timeout_keep_alive` (uvicorn: 5 s). A leak stays; so the count is taken again
    until it is back to the baseline or FD_SETTLE_S has passed, and what remains is named."""
    start = time.monotonic()
    extra = 1
    while time.monotonic() - start < FD_SETTLE_S:
        time.sleep(0.25)
        extra = leak_counts(before, r.inventory(r.fd_pids()))["fds"]
        if not extra:
            break
    notes: dict[str, Any] = {"fds_settled_s": round(time.monotonic() - start, 2)}
    if extra:
        new: dict[str, list[str]] = {}
        for pid, old in fds_before.items():
            now = fd_targets(pid)
            added = sorted(t for fd, t in now.items() if old.get(fd) != t)
            if added:
                new[str(pid)] = added
        notes["fds_new"] = new
    return extra, notes


# ------------------------------------------------------------------ the soak


def run_soak(r: Rig, n: int, bar: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """N migrations back and forth (STRATEGIES in turn) under one client; see the docstring."""
    from migration.engine import MigrationError

    r.orch.teardown(INSTANCE)
    # leaks are counted with the service gone at both ends: while it runs, its own files
    # (the last restore's CRIU log, say) differ with where it last moved, and are no leak
    leaks_before = r.inventory(r.fd_pids())
    soak_fds_before = {pid: fd_targets(pid) for pid in r.fd_pids()}
    r.deploy()
    probe = r.start_probe()
    time.sleep(LEAD_S)
    rss0: dict[str, int] = r.rss_bytes()
    hops: list[dict[str, Any]] = []
    where = SOURCE
    for i in range(n):
        to = DESTINATION if where == SOURCE else SOURCE
        strategy = STRATEGIES[i % len(STRATEGIES)]
        start = time.monotonic()
        try:
            rec = r.orch.migrate(INSTANCE, to, strategy=strategy)
        except MigrationError as exc:
            rec = exc.record
        hops.append(
            {
                "n": i + 1,
                "strategy": strategy,
                "to": to,
                "start_s": start,
                "outcome": rec.outcome.value,
                "frozen_ms": rec.metrics.get("frozen_ms"),
                "error": rec.error,
            }
        )
        if rec.point_of_no_return_ms is not None:
            where = to
        if i + 1 == WARMUP:
            rss0 = r.rss_bytes()
        if bar is not None:
            bar()
        time.sleep(PAUSE_S)
    time.sleep(SETTLE_S)
    rss1 = r.rss_bytes()
    result = probe.stop()
    a = r.assess(probe, result)
    r.orch.teardown(INSTANCE)
    leaks_after = r.inventory(r.fd_pids())
    _place_gaps(hops, result.get("gaps", []))
    over = [h for h in hops if h["over"]]
    failed = [h for h in hops if h["outcome"] != "done"]
    growth = {k: round(rss1[k] / rss0[k] - 1, 4) for k in rss0 if k in rss1 and rss0[k]}
    leaks = leak_counts(leaks_before, leaks_after)
    fd_notes: dict[str, Any] = {}
    if leaks["fds"]:  # a keep-alive connection closing late, or a leak: settle_fds says which
        leaks["fds"], fd_notes = settle_fds(r, leaks_before, soak_fds_before)
    rss_growth = max(growth.values(), default=0.0)
    soak: dict[str, Any] = {
        "migrations": n,
        "strategies": list(STRATEGIES),
        "done": n - len(failed),
        "state_lost": 0 if a.state_intact else 1,
        "connection_kept": a.connection_kept,
        "gaps_over_window": len(over),
        "longest_gap_over_window_ms": max(
            (h["longest_gap_ms"] - h["frozen_ms"] for h in hops if h["frozen_ms"]), default=None
        ),
        "leaks_before": leaks_before.counts(),
        "leaks_after": leaks_after.counts(),
        "leaked": {k: v for k, v in leaks.items() if v},
        **fd_notes,
        "rss_bytes_before": rss0,
        "rss_bytes_after": rss1,
        "rss_growth": rss_growth,
        "rss_growth_by_process": growth,
        "rss_baseline": f"after {min(WARMUP, n)} warm-up migrations",
        "counter": a.counter,
        "client": {k: v for k, v in result.items() if k != "gaps"},
    }
    soak["green"] = (
        not failed
        and not over
        and soak["state_lost"] == 0
        and a.connection_kept
        and not soak["leaked"]
        and rss_growth < RSS_GOAL
    )
    for h in hops:
        h.pop("start_s", None)
    return soak, hops


def _place_gaps(hops: list[dict[str, Any]], gaps: list[dict[str, Any]]) -> None:
    """Each client gap goes to the migration during or after which it started."""
    for i, hop in enumerate(hops):
        until = hops[i + 1]["start_s"] if i + 1 < len(hops) else float("inf")
        mine = [
            (g["end_s"] - g["start_s"]) * 1000
            for g in gaps
            if hop["start_s"] <= g["start_s"] < until
        ]
        hop["longest_gap_ms"] = round(max(mine, default=0.0), 1)
        frozen = hop["frozen_ms"]
        hop["over"] = frozen is not None and hop["longest_gap_ms"] > frozen + SLACK_MS


# ------------------------------------------------------------------ the command


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, reliability.png and report.md into `args.out`."""
    from topology.scenario import load_scenario

    problem = environment_problem([load_scenario(SCENARIO)], tools=("ovs-vsctl", "runc"))
    if problem:
        console.print(f"[red]environment not ready[/red]: {problem}", highlight=False)
        return EXIT_ENVIRONMENT
    plan = Plan(
        tuple(args.faults or FULL.faults),
        tuple(args.phases or FULL.phases),
        tuple(args.strategies or FULL.strategies),
        args.soak if args.soak is not None else (QUICK_SOAK if args.quick else FULL.soak),
    )
    todo = cases(plan, args.quick and not (args.faults or args.phases or args.strategies))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started, t0 = utc_now(), time.monotonic()
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    soak: dict[str, Any] | None = None
    hops: list[dict[str, Any]] = []
    with progress(console) as bars, rig(out / "work") as r:
        task = bars.add_task("", total=len(todo), part="faults")
        for fault, phase, strategy in todo:
            bars.update(task, description=f"{fault.name} at {phase}, {strategy}")
            try:
                row = run_case(r, fault, phase, strategy)
            except Exception as exc:  # noqa: BLE001 - one row that could not run; go on
                failures.append(f"{fault.name} at {phase} ({strategy}): {exc}")
                console.print(traceback.format_exc(), highlight=False, markup=False)
                row = {"fault": fault.name, "phase": phase, "strategy": strategy,
                       "outcome": "not run", "green": False, "error": str(exc)[:400]}  # fmt: skip
                with contextlib.suppress(Exception):
                    r.orch.teardown(INSTANCE)
            rows.append(row)
            bars.advance(task)
        if plan.soak:
            stask = bars.add_task("", total=plan.soak, part="soak")
            bars.update(stask, description=f"{plan.soak} migrations, {', '.join(STRATEGIES)}")
            try:
                soak, hops = run_soak(r, plan.soak, lambda: bars.advance(stask))
            except Exception as exc:  # noqa: BLE001
                failures.append(f"soak: {exc}")
                console.print(traceback.format_exc(), highlight=False, markup=False)
    duration = round(time.monotonic() - t0, 1)
    command = command_line(_command_words(args))
    summary = {
        "rows": len(rows),
        "green": sum(1 for r_ in rows if r_.get("green")),
        "soak_green": bool(soak and soak.get("green")),
    }
    write_summary(
        out,
        command=command,
        started_at=started,
        quick=args.quick,
        rows=rows,
        summary=summary,
        extra={"duration_s": duration, "scenario": shown(SCENARIO), "soak": soak, "hops": hops},
    )
    plot(rows, hops, out / "reliability.png")
    table = markdown(rows, soak, command, started, duration, FAULTS)
    (out / "faults.md").write_text(table)
    write_report(out, table)
    console.print(
        f"{summary['green']}/{summary['rows']} rows green; soak "
        f"{'green' if summary['soak_green'] else 'NOT green' if soak else 'not run'}"
    )
    console.print(
        f"results in {shown(out)}/ (summary.json, reliability.png, report.md); {duration} s"
    )
    for failure in failures:
        console.print(f"[red]failed[/red]: {failure}", highlight=False)
    return EXIT_FAILED if failures else EXIT_OK


def _command_words(args: argparse.Namespace) -> list[str]:
    words = ["mecmig", "bench", "reliability"]
    if args.quick:
        words.append("--quick")
    for flag, values in (("--faults", args.faults), ("--phases", args.phases)):
        if values:
            words += [flag, *values]
    if args.strategies:
        words += ["--strategies", *args.strategies]
    if args.soak is not None:
        words += ["--soak", str(args.soak)]
    return [*words, "--out", str(args.out)]
