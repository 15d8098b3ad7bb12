"""`mecmig bench patterns`: seed 000's Tables I and II and Fig. 5 on real containers.

scenarios/chains.yaml's 2-function chain `pair` (fw: workloads/sfcfwd.py forwarding in user space
with 32 MiB of seeded memory; video: workloads/httpstream.py, an HTTP streaming server) moves
between mec1 and mec2, back and forth, under each pattern (async, wait-for-me, round-robin), with
and without network awareness, at each final-iteration bandwidth (0.3 MB/s, 2 MB/s, unlimited),
10 times (3 with --quick), pre-copy. Per run:

- a client at ue1 keeps ONE HTTP/1.1 connection to video through fw, a GET every 5 ms
  (workloads.memcached_probe --protocol http): the chain's downtime is its longest silence;
- the source site's CPU load (its agent's process tree and its containers' cgroups) is sampled
  at 10 Hz (orchestration.cpu_sampler): Fig. 5;
- each function's frozen window, the freeze spread, total time and bytes come from the chain's
  record; the state is intact if the client's connection survived with every request answered,
  fw is the same process with the same memory and its flow counters grew, and video counted
  every request the client saw answered.

Outputs (on the experiment harness): summary.json, raw/, patterns.csv, its statistics,
patterns.png (downtime and total time per pattern and bandwidth), cpu.png (Fig. 5) and report.md
with seed 000's numbers beside ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mecmig.bench import ROOT, shown
from mecmig.bench.harness import Experiment, Metric, RunSpec
from mecmig.bench.harness_testbed import environment_ready, finish, run_on_testbed
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_USAGE

SCENARIO = ROOT / "scenarios" / "chains.yaml"
DEFAULT_OUT = ROOT / "results" / "patterns"
CHAIN, UE, FORWARDER, SERVER, SERVER_PORT = "pair", "ue1", "fw", "video", 8080
FUNCTIONS = (FORWARDER, SERVER)
FORWARDER_SEED, FORWARDER_MEMORY = 42, 32 << 20  # as scenarios/chains.yaml starts fw
PATTERN_NAMES = ("async", "wait-for-me", "round-robin")
MBYTE = 8_000_000  # 1 MB/s in bit/s
BANDWIDTHS: tuple[int | None, ...] = (int(0.3 * MBYTE), 2 * MBYTE, None)  # None: unlimited
STRATEGY = "precopy"
BUDGET_MS = 1000.0
PROBE_INTERVAL_MS = 5.0
PROBE_LEAD_S, PROBE_TAIL_S = 1.0, 0.5
CPU_HZ = 10.0


@dataclass(frozen=True)
class Plan:
    patterns: tuple[str, ...]
    aware: tuple[bool, ...]
    bandwidths: tuple[int | None, ...]
    repeat: int


FULL = Plan(PATTERN_NAMES, (False, True), BANDWIDTHS, 10)
QUICK = Plan(PATTERN_NAMES, (False, True), BANDWIDTHS, 3)


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        patterns=tuple(dict.fromkeys(args.patterns)) if args.patterns else base.patterns,
        aware=base.aware,
        bandwidths=tuple(args.bandwidths) if args.bandwidths else base.bandwidths,
        repeat=args.repeat or base.repeat,
    )


def bandwidth_text(bps: int | None) -> str:
    return "unlimited" if bps is None else f"{bps / MBYTE:g} MB/s"


def experiment(plan: Plan) -> Experiment:
    return Experiment(
        name="patterns",
        scenario=shown(SCENARIO),
        workload=f"chain '{CHAIN}' ({FORWARDER}: sfcfwd, 32 MiB seeded memory; {SERVER}: "
        f"httpstream) moved between mec1 and mec2 ({STRATEGY}, budget {BUDGET_MS:g} ms), "
        f"a client at {UE} with one HTTP connection through it (a GET every 5 ms)",
        sweep={
            "pattern": plan.patterns,
            "network_aware": plan.aware,
            "bandwidth_bps": plan.bandwidths,
        },
        repetitions=plan.repeat,
        metrics=(
            Metric("chain_downtime_ms", "chain downtime (client)", "ms"),
            Metric("total_ms", "total time", "ms"),
            Metric("freeze_spread_ms", "first to last freeze", "ms"),
            Metric("cpu_mean", "source site CPU, mean", "cores"),
            Metric("cpu_peak", "source site CPU, peak", "cores"),
        ),
        fixed={"strategy": STRATEGY, "budget_ms": BUDGET_MS, "cpu_hz": CPU_HZ},
    )


# ------------------------------------------------------------------------------ the testbed


class ChainBed:
    """The emulation (controller, Mininet, an agent per site) with the chain deployed."""

    def __init__(self, tb: Any, clients: dict[str, Any]) -> None:
        from orchestration.links import RestControllerLink
        from orchestration.orchestrator import Orchestrator
        from topology.scenario import load_scenario

        self.tb = tb
        self.clients = clients
        self.sc = load_scenario(SCENARIO)
        self.orch = Orchestrator(self.sc, clients, RestControllerLink(tb.ctl.client))
        for fn in FUNCTIONS:
            self.orch.teardown(fn)
            self.orch.deploy(fn)

    def ask(self, code: str) -> str:
        return str(self.tb.emu.run_on(UE, [sys.executable, "-c", code], timeout=15).stdout)

    def forwarder_stats(self) -> dict[str, Any]:
        from workloads import workload_path

        ip = str(self.sc.instance(FORWARDER).ip)
        argv = [sys.executable, str(workload_path("sfcfwd")), "--ask", ip]
        out = self.tb.emu.run_on(UE, argv, timeout=15).stdout
        data: dict[str, Any] = json.loads(out)
        return data

    def server_counter(self) -> int:
        ip = str(self.sc.instance(SERVER).ip)
        code = (
            "import http.client as h;c=h.HTTPConnection("
            f"'{ip}',{SERVER_PORT},timeout=5);c.request('GET','/counter');"
            "print(c.getresponse().read().decode().strip())"
        )
        return int(self.ask(code).strip())

    def run(self, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        from mininet_scenarios.measure import Probe
        from orchestration.chain_migration import ChainMigrationError
        from orchestration.chain_plan import plan_chain_migration
        from orchestration.cpu_sampler import CpuSampler

        source = self.orch.where(FORWARDER) or "mec1"
        to = "mec2" if source == "mec1" else "mec1"
        fw0, video0 = self.forwarder_stats(), self.server_counter()
        probe = Probe(
            self.tb.emu, UE, str(self.sc.instance(SERVER).ip), SERVER_PORT,
            interval_ms=PROBE_INTERVAL_MS, module="workloads.memcached_probe",
            extra=["--protocol", "http"],
        )  # fmt: skip
        error: str | None = None
        try:
            time.sleep(PROBE_LEAD_S)
            sampler = CpuSampler({source: self.clients[source]}, hz=CPU_HZ).start()
            try:
                cm = plan_chain_migration(
                    self.orch, CHAIN, to, pattern=spec["pattern"], strategy=STRATEGY,
                    budget_ms=BUDGET_MS, network_aware=spec["network_aware"],
                    final_bandwidth_bps=spec["bandwidth_bps"],
                    listener=lambda event, rec, fn, ph: on_phase(
                        f"{fn or 'chain'} {ph.name}" if ph is not None else event
                    ),
                )  # fmt: skip
                record = cm.run()
            except ChainMigrationError as exc:
                record, error = exc.record, str(exc)
            finally:
                cpu = sampler.stop()[source]
            time.sleep(PROBE_TAIL_S)
            client = probe.stop(timeout=60)
        finally:
            probe.close()
        fw1, video1 = self.forwarder_stats(), self.server_counter()
        return row_of(record.to_dict(), client, cpu.to_dict(), (fw0, fw1), (video0, video1),
                      source, to, error)  # fmt: skip


def row_of(
    record: dict[str, Any],
    client: dict[str, Any],
    cpu: dict[str, Any],
    fw: tuple[dict[str, Any], dict[str, Any]],
    video: tuple[int, int],
    source: str,
    to: str,
    error: str | None,
) -> dict[str, Any]:
    """One run's row (the fields the issue names, then the detail)."""
    from workloads.sfcfwd import expected_fingerprint

    m = record["metrics"]
    (fw0, fw1), (v0, v1) = fw, video
    replies = int(client.get("replies", 0))
    fw_intact = (
        fw1["started"] == fw0["started"]
        and fw1["fingerprint"] == expected_fingerprint(FORWARDER_SEED, FORWARDER_MEMORY)
        and fw1["forwarded"] > fw0["forwarded"]
    )
    connection = bool(client.get("same_connection")) and client.get("failures", 1) == 0
    video_intact = v1 - v0 >= replies  # every answered GET counted by the moved server
    row: dict[str, Any] = {
        "pattern": record["pattern"],
        "network_aware": record["network_aware"],
        "bandwidth_bps": None,  # filled by the caller from the spec
        "chain_downtime_ms": round(float(client["downtime_ms"]), 1),
        "function_downtime_ms": m.get("function_frozen_ms", {}),
        "freeze_spread_ms": m.get("freeze_spread_ms"),
        "chain_frozen_ms": m.get("chain_frozen_ms"),
        "total_ms": None if record["total_ms"] is None else round(record["total_ms"], 1),
        "bytes": record["bytes_transferred"],
        "cpu_mean": cpu["mean"],
        "cpu_peak": cpu["peak"],
        "state_intact": bool(connection and fw_intact and video_intact and not error),
        "outcome": record["outcome"],
        "switchover_ms": m.get("switchover_ms"),
        "frozen_windows_overlap": m.get("frozen_windows_overlap"),
        "from": source,
        "to": to,
        "client": {k: client.get(k) for k in ("replies", "failures", "same_connection",
                                              "reconnects", "duration_ms")},  # fmt: skip
        "state": {"connection": connection, "forwarder": fw_intact, "server": video_intact,
                  "server_counted": v1 - v0, "forwarded": fw1["forwarded"] - fw0["forwarded"]},
        "cpu": cpu,
        "functions": {
            name: {
                "frozen_ms": rec["metrics"].get("frozen_ms"),
                "total_ms": rec["total_ms"],
                "bytes": rec["bytes_transferred"],
                "rounds": rec["metrics"].get("rounds"),
                "phases": [(p["name"], p["start_ms"], p["end_ms"]) for p in rec["phases"]],
            }
            for name, rec in record["members"].items()
        },
    }  # fmt: skip
    if error:
        row["error"] = error
    return row


@contextmanager
def chain_testbed() -> Iterator[ChainBed]:
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.testbed import testbed

    with testbed(SCENARIO, instance_hosts=False) as tb, SiteAgents(tb.emu, SCENARIO) as agents:
        yield ChainBed(tb, agents.clients)


# ------------------------------------------------------------------------------ the run


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, the plots and report.md into `args.out`."""
    from mecmig.bench.patterns_report import plot_cpu, plot_patterns, report_markdown, summarize

    if args.repeat is not None and args.repeat < 1:
        console.print("[red]--repeat must be at least 1[/red]")
        return EXIT_USAGE
    if not environment_ready(console, SCENARIO):
        return EXIT_ENVIRONMENT
    plan = plan_from(args)
    out: Path = args.out
    done = run_on_testbed(
        args, console, experiment(plan), command_words(args), chain_testbed, run_one,
        part="chain migrations", label=label, line=line,
    )  # fmt: skip
    session, runs, duration = done.session, done.runs, done.duration_s
    rows = runs.rows()
    summary = summarize(rows, plan)
    return finish(
        done, console, rows=rows, summary=summary,
        extra={
            "scenario": shown(SCENARIO),
            "plan": {
                "patterns": list(plan.patterns),
                "network_aware": list(plan.aware),
                "bandwidths_bps": list(plan.bandwidths),
                "repeat": plan.repeat,
                "strategy": STRATEGY,
                "budget_ms": BUDGET_MS,
                "memory": {"fw": "32 MiB seeded (sfcfwd --memory 32MiB)", "video": "httpstream"},
            },
            "cpu_series": cpu_series(rows),
        },
        plots=lambda: [plot_patterns(rows, plan, out), plot_cpu(rows, out)],
        report=lambda files: report_markdown(rows, summary, session.command, session.started_at,
                                             duration, plan, session, runs, files),
        failures=[f"{label(s)}: {r['error']}" for s, r in runs.done() if "error" in r],
    )  # fmt: skip


def run_one(bed: ChainBed, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
    """One run's row: the bed's, with its bandwidth and repetition."""
    row = bed.run(spec, on_phase)
    row["bandwidth_bps"] = spec["bandwidth_bps"]
    row["repetition"] = spec.repetition
    return row


def cpu_series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fig. 5 in the JSON: each run's source CPU series, with what it was."""
    return [
        {
            "pattern": r["pattern"],
            "network_aware": r["network_aware"],
            "bandwidth_bps": r["bandwidth_bps"],
            "repetition": r.get("repetition"),
            "t_s": r["cpu"]["t_s"],
            "cores": r["cpu"]["cores"],
        }
        for r in rows
        if isinstance(r.get("cpu"), dict)
    ]


def label(spec: RunSpec) -> str:
    aware = " network-aware" if spec["network_aware"] else ""
    return f"{spec['pattern']}{aware} {bandwidth_text(spec['bandwidth_bps'])} #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    if "error" in row and row.get("chain_downtime_ms") is None:
        return f"{label(spec)}: [red]{row['error']}[/red]"
    return (
        f"{label(spec)}: chain down {row['chain_downtime_ms']} ms, total {row['total_ms']} ms, "
        f"spread {row['freeze_spread_ms']} ms, CPU peak {row['cpu_peak'] or 0:.2f}, "
        f"state {'intact' if row['state_intact'] else '[red]NOT intact[/red]'}"
    )


def command_words(args: argparse.Namespace) -> list[str]:
    words = ["mecmig", "bench", "patterns"]
    if args.quick:
        words.append("--quick")
    if args.patterns:
        words += ["--patterns", *args.patterns]
    if args.bandwidths:
        words += ["--bandwidths", *(bandwidth_text(b).replace(" ", "") for b in args.bandwidths)]
    if args.repeat:
        words += ["--repeat", str(args.repeat)]
    if args.out != DEFAULT_OUT:
        words += ["--out", shown(args.out)]
    return words


def parse_bandwidth(text: str) -> int | None:
    """'0.3MB/s', '2MB/s', '16Mbit', 'unlimited' -> bit/s (None: unlimited)."""
    from ground.units import parse_rate

    t = text.strip().lower()
    if t in ("unlimited", "none", "full"):
        return None
    if t.endswith("mb/s"):
        return int(float(t[:-4]) * MBYTE)
    return parse_rate(text)
