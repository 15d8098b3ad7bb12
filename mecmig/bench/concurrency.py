"""`mecmig bench concurrency`: many migrations asked for at once over one shared link, under the
three queue policies (issue 11, part 4).

scenarios/concurrency.yaml: ten services start at mec1, seven single instances (memhog, 4-24 MiB,
0-2 MB/s dirtied) and three chains of user-space forwarders in front of a key-value store (two
of 2 functions, one of 3). Their users sit at mec2, so every migration mec1 -> mec2 crosses
mec1's 100 Mbit/s link to the core (shaped: HTB both ways), the only slow one. For n = 1, 2, 5
and 10 (the first n services of `JOBS`: mixed sizes, strategies and patterns, each with its own
downtime budget and deadline), the n migrations are submitted together to the migration queue
(orchestration.migration_queue, the code behind `/v1/migration-queue`) under each policy:

- `best-effort`: everything starts at once, nothing reserved;
- `one-per-link`: one migration at a time on a link, first come first served (KubeVirt's rule);
- `network-aware`: earliest deadline first, each migration reserved (a meter) at the rate its
  grant gives it, its final iteration sized to fit its budget; what does not fit waits.

Before each run the n services are deployed afresh at mec1 (so every run starts alike). Per
migration: `completion_ms` (submission to its end, queueing included), `wait_ms`, `downtime_ms`
(the migration record's frozen window: freeze to serving at the destination; a chain's from its
first function's freeze to its last function's restore), whether it met its budget and its
deadline, and `state_intact`: it ended done at mec2, and every function is the same process
with its memory (a memhog's counter and uptime went on, its fingerprint is its seed's; a
forwarder's start time and fingerprint are kept and it forwarded the chain's requests). The
controller's reservations on every link are polled every 100 ms: never above its capacity.

Outputs (on the experiment harness): summary.json (`rows`: a row per migration), raw/ (a file
per run), concurrency.csv and its statistics, concurrency.png (mean completion time and deadline
misses per policy and n) and report.md with the goals.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mecmig.bench import ROOT, shown
from mecmig.bench.harness import Experiment, Metric, RunSpec
from mecmig.bench.harness_testbed import environment_ready, finish, run_on_testbed
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_USAGE
from orchestration.queue_jobs import JobKind

SCENARIO = ROOT / "scenarios" / "concurrency.yaml"
DEFAULT_OUT = ROOT / "results" / "concurrency"
SOURCE, DESTINATION = "mec1", "mec2"
POLICIES = ("best-effort", "one-per-link", "network-aware")
SINGLES_UE = "ue1"  # single instances are asked from here; a chain's from its own UE
POLL_S = 0.1
RUN_TIMEOUT_S = 900.0
UPTIME_SLACK_MS = 250.0  # a memhog's uptime vs the wall clock between two snapshots


@dataclass(frozen=True)
class JobSpec:
    """One service's migration: a single instance or a chain, with its budget and deadline
    (seconds from submission: the user's predicted time to leave the old site's coverage)."""

    kind: JobKind
    name: str
    strategy: str
    budget_ms: float
    deadline_s: float
    pattern: str = "wait-for-me"


# n takes the first n: every n mixes sizes, kinds and strategies; deadlines are not in order
JOBS: tuple[JobSpec, ...] = (
    JobSpec("instance", "kv1", "precopy", 1000, 20),
    JobSpec("chain", "c1", "precopy", 1500, 12),
    JobSpec("instance", "kv2", "precopy", 1000, 30),
    JobSpec("instance", "kv3", "postcopy", 1000, 6),
    JobSpec("chain", "c2", "precopy", 1500, 15, "round-robin"),
    JobSpec("instance", "kv4", "precopy", 1000, 25),
    JobSpec("instance", "kv5", "precopy", 1000, 40),
    JobSpec("chain", "c3", "precopy", 1500, 18),
    JobSpec("instance", "kv6", "precopy", 1000, 10),
    JobSpec("instance", "kv7", "precopy", 1000, 45),
)


@dataclass(frozen=True)
class Plan:
    ns: tuple[int, ...]
    policies: tuple[str, ...]
    repeat: int


FULL = Plan((1, 2, 5, 10), POLICIES, 3)
QUICK = Plan((2, 5), POLICIES, 1)


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        ns=tuple(dict.fromkeys(args.n)) if args.n else base.ns,
        policies=tuple(dict.fromkeys(args.policies)) if args.policies else base.policies,
        repeat=args.repeat or base.repeat,
    )


def experiment(plan: Plan) -> Experiment:
    return Experiment(
        name="concurrency",
        scenario=shown(SCENARIO),
        workload="the first n of ten services (7 memhog instances of 4-24 MiB, 3 chains of "
        "sfcfwd forwarders before a memhog) asked to move mec1 -> mec2 at once over one shared "
        "100 Mbit/s link, each with a downtime budget and a deadline",
        sweep={"n": plan.ns, "policy": plan.policies},
        repetitions=plan.repeat,
        metrics=(
            Metric("mean_completion_ms", "mean completion time", "ms"),
            Metric("makespan_ms", "last completion", "ms"),
            Metric("deadline_misses", "deadlines missed", "migrations"),
            Metric("budget_misses", "budgets missed", "migrations"),
        ),
        fixed={
            "jobs": [
                f"{j.name}:{j.kind}:{j.strategy}:{j.pattern if j.kind == 'chain' else '-'}:"
                f"{j.budget_ms:g}ms:{j.deadline_s:g}s"
                for j in JOBS
            ]
        },
    )


# ------------------------------------------------------------------------------ state checks


@dataclass(frozen=True)
class Workload:
    """What runs in an instance, read from its scenario command: which program, its seed and
    the size of its seeded memory (what its fingerprint must be)."""

    program: str  # "memhog" | "sfcfwd"
    seed: int
    size: int

    def fingerprint(self) -> str:
        if self.program == "memhog":
            from workloads.memhog import expected_fingerprint as memhog_fingerprint

            return memhog_fingerprint(self.seed, self.size)
        from workloads.sfcfwd import expected_fingerprint

        return expected_fingerprint(self.seed, self.size)


def workload_of(command: str | Sequence[str]) -> Workload:
    """'/usr/bin/python3 /data/memhog.py --size 4MiB ...' -> Workload('memhog', 42, 4 MiB)."""
    from workloads.sfcfwd import parse_size

    words = shlex.split(command) if isinstance(command, str) else list(command)
    program = next((Path(w).stem for w in words if w.endswith(".py")), "")
    if program not in ("memhog", "sfcfwd"):
        raise ValueError(f"not a memhog or sfcfwd command: {command!r}")
    opts = dict(zip(words, [*words[1:], ""], strict=True))
    size_word = opts.get("--size" if program == "memhog" else "--memory")
    default_size = "64MiB" if program == "memhog" else "16MiB"
    return Workload(program, int(opts.get("--seed", "42")), parse_size(size_word or default_size))


def member_intact(w: Workload, before: dict[str, Any], after: dict[str, Any]) -> bool:
    """The same process with its memory: a memhog's counter went on, its uptime grew by the
    time between the two snapshots (a process started anew in between has less) and its
    fingerprint is its seed's; a forwarder kept its start time and fingerprint and forwarded."""
    if "error" in before or "error" in after:
        return False
    if after.get("fingerprint") != w.fingerprint():
        return False
    if w.program == "memhog":
        # its uptime is wall-clock time since its start: a restarted process's falls behind
        lived = after["uptime_ms"] - before["uptime_ms"]
        elapsed = (after["asked_at"] - before["asked_at"]) * 1000.0
        return bool(
            abs(lived - elapsed) <= UPTIME_SLACK_MS and after["counter"] > before["counter"]
        )
    return bool(after["started"] == before["started"] and after["forwarded"] > before["forwarded"])


# ------------------------------------------------------------------------------ the testbed


class ConcurrencyBed:
    """The emulation (controller, Mininet, an agent per site) and the orchestrator."""

    def __init__(self, tb: Any, clients: dict[str, Any]) -> None:
        from orchestration.links import RestControllerLink
        from orchestration.orchestrator import Orchestrator
        from topology.scenario import load_scenario

        self.tb = tb
        self.sc = load_scenario(SCENARIO)
        self.orch = Orchestrator(self.sc, clients, RestControllerLink(tb.ctl.client))
        self.workloads = {i.name: workload_of(i.command) for i in self.sc.instances}

    def members(self, job: JobSpec) -> tuple[str, ...]:
        if job.kind == "chain":
            return tuple(self.sc.chain(job.name).functions)
        return (job.name,)

    def ue_of(self, job: JobSpec) -> str:
        return self.sc.chain(job.name).ue if job.kind == "chain" else SINGLES_UE

    def deploy(self, jobs: tuple[JobSpec, ...], on_phase: Callable[[str], None]) -> None:
        """Every member of `jobs` afresh at its home site (mec1)."""
        names = [m for job in jobs for m in self.members(job)]
        for i, name in enumerate(names, 1):
            on_phase(f"deploying {name} ({i}/{len(names)})")
            self.orch.teardown(name)
            self.orch.deploy(name)

    def teardown_all(self) -> None:
        for inst in self.sc.instances:
            self.orch.teardown(inst.name)

    def snapshot(self, jobs: tuple[JobSpec, ...]) -> dict[str, dict[str, Any]]:
        """Every member's state, asked from its users' UE (a chain's requests go through it)."""
        by_ue: dict[str, list[str]] = {}
        for job in jobs:
            by_ue.setdefault(self.ue_of(job), []).extend(self.members(job))
        out: dict[str, dict[str, Any]] = {}
        for ue, names in by_ue.items():
            argv = [sys.executable, "-m", "workloads.state_probe"]
            for name in names:
                argv += [f"--{self.workloads[name].program}", str(self.sc.instance(name).ip)]
            res = self.tb.emu.run_on(ue, argv, check=False, timeout=60)
            try:
                answers: dict[str, dict[str, Any]] = json.loads(res.stdout)
            except ValueError:
                answers = {}
            for name in names:
                ip = str(self.sc.instance(name).ip)
                out[name] = answers.get(ip, {"error": f"no answer ({res.stderr.strip()[-200:]})"})
        return out

    def link_shares(self) -> dict[str, float]:
        """Each directed link's reserved share of its capacity, as the controller has it."""
        topo = self.tb.ctl.client.topology()
        return {
            f"{d.src}->{d.dst}": d.reserved_bps / d.capacity_bps
            for link in topo.links
            for d in link.directions
            if d.capacity_bps
        }

    def run(self, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        from orchestration.migration_queue import MigrationQueue
        from orchestration.queue_jobs import QueueJob

        n, policy = int(spec["n"]), str(spec["policy"])
        jobs = JOBS[:n]
        self.deploy(jobs, on_phase)
        before = self.snapshot(jobs)
        queue = MigrationQueue(self.orch, policy)
        qjobs = [
            QueueJob(
                j.kind, j.name, DESTINATION, strategy=j.strategy, budget_ms=j.budget_ms,
                deadline_s=j.deadline_s, pattern=j.pattern,
            )
            for j in jobs
        ]  # fmt: skip
        submitted = queue.submit(qjobs)
        t0 = time.monotonic()
        ids = [s.id for s in submitted]
        peak: dict[str, float] = {}
        while True:
            for key, share in self.link_shares().items():
                peak[key] = max(peak.get(key, 0.0), share)
            state = queue.state()
            if not state.running and not state.queue:
                break
            ended = len(state.ended)
            on_phase(f"{ended}/{n} ended, {len(state.running)} running, {len(state.queue)} queued")
            if time.monotonic() - t0 > RUN_TIMEOUT_S:
                raise TimeoutError(f"{n} migrations not ended after {RUN_TIMEOUT_S:g} s")
            time.sleep(POLL_S)
        on_phase("checking state")
        after = self.snapshot(jobs)
        rows = []
        for job, jid, sub in zip(jobs, ids, submitted, strict=True):
            entry = queue.entry(jid)
            assert entry is not None
            rows.append(self.migration_row(job, entry, sub.position, before, after))
        return run_row(policy, n, rows, peak)

    def migration_row(
        self,
        job: JobSpec,
        entry: Any,
        position: int | None,
        before: dict[str, dict[str, Any]],
        after: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        record = entry.record.to_dict() if entry.record is not None else None
        metrics = record["metrics"] if record is not None else {}
        key = "chain_frozen_ms" if job.kind == "chain" else "frozen_ms"
        downtime = metrics.get(key)
        completion = None if entry.ended_s is None else (entry.ended_s - entry.submitted_s) * 1e3
        members = self.members(job)
        states = {m: member_intact(self.workloads[m], before[m], after[m]) for m in members}
        where = {m: self.orch.where(m) for m in members}
        done = entry.state == "done"
        row: dict[str, Any] = {
            "migration": job.name,
            "kind": job.kind,
            "strategy": job.strategy,
            "pattern": job.pattern if job.kind == "chain" else None,
            "members": list(members),
            "completion_ms": None if completion is None else round(completion, 1),
            "wait_ms": None
            if entry.started_s is None
            else round((entry.started_s - entry.submitted_s) * 1e3, 1),
            "downtime_ms": None if downtime is None else round(float(downtime), 1),
            "budget_ms": job.budget_ms,
            "budget_met": bool(done and downtime is not None and downtime <= job.budget_ms),
            "deadline_ms": job.deadline_s * 1e3,
            "deadline_met": bool(
                done and completion is not None and completion <= job.deadline_s * 1e3
            ),
            "state_intact": bool(
                done and all(states.values()) and all(s == DESTINATION for s in where.values())
            ),
            "outcome": entry.state,
            "queued_position": position,
            "total_ms": None if record is None else record["total_ms"],
            "bytes": None if record is None else record["bytes_transferred"],
            "member_state": {m: {"intact": states[m], "at": where[m]} for m in members},
        }
        if job.kind == "chain" and record is not None:
            row["function_downtime_ms"] = metrics.get("function_frozen_ms", {})
        if entry.error:
            row["error"] = entry.error
        return row


def run_row(
    policy: str, n: int, rows: list[dict[str, Any]], peak: dict[str, float]
) -> dict[str, Any]:
    """One run: its migrations' rows and what the statistics summarize."""
    completions = [r["completion_ms"] for r in rows if r["completion_ms"] is not None]
    for r in rows:
        r.update(policy=policy, n=n)
    out: dict[str, Any] = {
        "policy": policy,
        "n": n,
        "mean_completion_ms": round(statistics.fmean(completions), 1) if completions else None,
        "makespan_ms": max(completions) if completions else None,
        "deadline_misses": sum(not r["deadline_met"] for r in rows),
        "budget_misses": sum(not r["budget_met"] for r in rows),
        "state_lost": sum(not r["state_intact"] for r in rows),
        "failed": sum(r["outcome"] != "done" for r in rows),
        "link_peak_share": {k: round(v, 3) for k, v in sorted(peak.items())},
        "link_overcommitted": any(v > 1.0 + 1e-9 for v in peak.values()),
        "migrations": rows,
    }
    return out


@contextmanager
def concurrency_testbed() -> Iterator[ConcurrencyBed]:
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.testbed import testbed

    with testbed(SCENARIO, instance_hosts=False) as tb, SiteAgents(tb.emu, SCENARIO) as agents:
        bed = ConcurrencyBed(tb, agents.clients)
        try:
            yield bed
        finally:
            bed.teardown_all()


# ------------------------------------------------------------------------------ the run


def migration_rows(run_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """summary.json's rows: one per migration, with its run's repetition."""
    return [
        {**m, "repetition": r.get("repetition")} for r in run_rows for m in r.get("migrations", [])
    ]


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, the plot and report.md into `args.out`."""
    from mecmig.bench.concurrency_report import plot_concurrency, report_markdown, summarize

    if args.repeat is not None and args.repeat < 1:
        console.print("[red]--repeat must be at least 1[/red]")
        return EXIT_USAGE
    if args.n and any(not 1 <= n <= len(JOBS) for n in args.n):
        console.print(f"[red]--n takes 1 to {len(JOBS)}[/red]")
        return EXIT_USAGE
    if not environment_ready(console, SCENARIO):
        return EXIT_ENVIRONMENT
    plan = plan_from(args)
    out: Path = args.out
    done = run_on_testbed(
        args, console, experiment(plan), command_words(args), concurrency_testbed, run_one,
        part="batches", label=label, line=line,
    )  # fmt: skip
    session, runs, duration = done.session, done.runs, done.duration_s
    batches = runs.rows()
    summary = summarize(batches, plan)
    return finish(
        done, console, rows=migration_rows(batches), summary=summary,
        extra={
            "scenario": shown(SCENARIO),
            "plan": {
                "n": list(plan.ns), "policies": list(plan.policies), "repeat": plan.repeat,
                "shared_link": "mec1-core, 100 Mbit/s (shaped)",
                "jobs": [j.__dict__ for j in JOBS],
            },
            "batches": [{k: v for k, v in r.items() if k != "migrations"} for r in batches],
        },
        plots=lambda: [plot_concurrency(batches, plan, out)],
        report=lambda files: report_markdown(batches, summary, session.command,
                                             session.started_at, duration, plan, session, runs,
                                             files),
        failures=[
            f"{label(s)}: {m['migration']}: {m['error']}"
            for s, r in runs.done()
            for m in r.get("migrations", [])
            if "error" in m
        ],
    )  # fmt: skip


def run_one(bed: ConcurrencyBed, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
    """One run's row: the bed's, with its repetition."""
    row = bed.run(spec, on_phase)
    row["repetition"] = spec.repetition
    return row


def label(spec: RunSpec) -> str:
    return f"{spec['policy']} n={spec['n']} #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    n = row["n"]
    lost = row["state_lost"]
    return (
        f"{label(spec)}: mean completion {row['mean_completion_ms']} ms, last "
        f"{row['makespan_ms']} ms, deadlines met {n - row['deadline_misses']}/{n}, budgets met "
        f"{n - row['budget_misses']}/{n}, state "
        + ("intact" if not lost else f"[red]lost in {lost}[/red]")
    )


def command_words(args: argparse.Namespace) -> list[str]:
    words = ["mecmig", "bench", "concurrency"]
    if args.quick:
        words.append("--quick")
    if args.n:
        words += ["--n", *map(str, args.n)]
    if args.policies:
        words += ["--policies", *args.policies]
    if args.repeat:
        words += ["--repeat", str(args.repeat)]
    if args.out != DEFAULT_OUT:
        words += ["--out", shown(args.out)]
    return words


def add_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench concurrency`'s command line."""
    b = bench.add_parser(
        "concurrency",
        help="many migrations at once over one shared link: best-effort, one-per-link, "
        "network-aware",
        description="On scenarios/concurrency.yaml: the first n of ten services (seven "
        "single instances, three chains) leave mec1 for mec2 at once, all across mec1's "
        "100 Mbit/s link, for n = 1, 2, 5, 10, under each policy of the migration queue "
        "(best-effort: all at once, nothing reserved; one-per-link: one at a time per link, "
        "first come first served; network-aware: earliest deadline first, reserved, final "
        "iteration sized to the budget), 3 times each. Each migration has a downtime budget "
        "and a deadline. Rows (one per migration): policy, n, migration, completion_ms, "
        "downtime_ms, budget_ms, budget_met, deadline_ms, deadline_met, state_intact. Goals: "
        "network-aware meets every budget at every n; at n = 10 its mean completion is at most "
        "half of best-effort's and its deadline misses at most a third of one-per-link's. "
        "Writes summary.json, concurrency.png, CSVs and report.md into --out. Exit 0 the run "
        "completed (goals met or not), 1 a migration failed, 3 not root / no OVS / no runc or "
        "CRIU.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="n = 2 and 5, once each: a few minutes; a smoke test (do not quote its numbers)",
    )
    b.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help="where the results go (default: results/concurrency/)",
    )  # fmt: skip
    b.add_argument("--n", nargs="+", type=int, metavar="N", help="batch sizes (default 1 2 5 10)")
    b.add_argument("--policies", nargs="+", choices=POLICIES, help="only these policies")
    b.add_argument("--repeat", type=int, metavar="N", help="repetitions (default 3; --quick 1)")
