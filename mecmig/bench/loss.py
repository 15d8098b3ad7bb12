"""`mecmig bench loss`: seed 003's Table III, the state copy and the downtime under packet loss.

Seed 003 splits a migration's downtime into source operations + the copy of the state + target
operations, and finds that packet loss on the path between the MEC hosts (100 Mbit/s, loss 0,
0.1, 1 and 5 %) lengthens only the copy: at 5 % FullSP's copy went 0.516 -> 2.112 s and its
downtime 3.431 -> 5.027 s, by the same 1.596 s; FCCP's copy stayed under 0.04 s.

Here, on scenarios/loss.yaml (two sites, 100 Mbit/s links shaped by tc HTB), the memory workload
`counter` (memhog, 32 MiB, dirtying 1 MB/s) is deployed at mec1 and migrated to mec2 by each
strategy, at each loss, several times, while ue1 probes it over one TCP connection (the run
itself is `mecmig.bench.migration_cases.Bench`'s). The loss is iptables' statistic match in
mec2's MEC host for packets from mec1's (`mininet_scenarios.link_loss`): the migration's data
loses packets, nothing else does. Strategies and seed 003's levels:

- `restart` = FCCP (files, configuration and volume; memory state is not kept);
- `precopy` = FullSP as seed 003 does it (a full checkpoint while it runs, then the delta);
- `cold` = FullSP as one stop-and-copy of the whole checkpoint (tens of MB in the downtime).

Per run, from the migration's record (`migration.timeline`): the downtime (the freeze's start ->
the end of the restore or the start at the destination), its source term (the freeze: final
dump, or the stop), its copy (`transfer`), its target term (switch + restore / start) and what
lies between the phases; the packets the loss rule saw and dropped; the client's longest silence.
Outputs: summary.json (rows; per strategy and loss; the shape check), raw/, CSVs, loss.png and
report.md (`mecmig.bench.loss_report`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
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

SCENARIO = ROOT / "scenarios" / "loss.yaml"
LEVELS = {"restart": "fccp", "precopy": "fullsp", "cold": "fullsp"}  # strategy -> seed 003's
LOSSES_PCT = (0.0, 0.1, 1.0, 5.0)
MEMORY_BYTES = 32 << 20
DIRTY_RATE = 1_000_000  # bytes/s
DIRECTION = "forward"  # what the source sends loses packets (seed 003's netem: one egress)
SOURCE_PHASES = ("freeze_dump", "freeze_stop")
SERVING_PHASES = ("restore", "start")
SITES_TMPFS = "1g"  # each site's directory (instances, images) on a tmpfs of this size


@dataclass(frozen=True)
class Plan:
    strategies: tuple[str, ...]
    losses: tuple[float, ...]  # percent
    repeat: int


FULL = Plan(tuple(LEVELS), LOSSES_PCT, 5)  # seed 003: 5 runs each
QUICK = Plan(("restart", "cold"), (0.0, 5.0), 3)  # 3: a median per level


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        strategies=tuple(dict.fromkeys(args.strategies)) if args.strategies else base.strategies,
        losses=tuple(sorted(set(args.losses))) if args.losses else base.losses,
        repeat=args.repeat or base.repeat,
    )


def experiment(plan: Plan) -> Experiment:
    return Experiment(
        name="loss",
        scenario=shown(SCENARIO),
        workload=f"memhog 'counter' ({MEMORY_BYTES >> 20} MiB, dirtying {DIRTY_RATE / 1e6:g} "
        "MB/s) migrated mec1 -> mec2 over 100 Mbit/s links, packets from mec1's MEC host to "
        f"mec2's dropped at random ({DIRECTION}); ue1 probes it every 5 ms",
        sweep={"strategy": plan.strategies, "loss_pct": plan.losses},
        repetitions=plan.repeat,
        metrics=(
            Metric("copy_ms", "state copy", "ms"),
            Metric("downtime_ms", "downtime", "ms"),
            Metric("noncopy_ms", "downtime without the copy", "ms"),
            Metric("source_ms", "source operations", "ms"),
            Metric("target_ms", "target operations", "ms"),
            Metric("client_ms", "client's longest silence", "ms"),
        ),
        fixed={
            "memory_bytes": MEMORY_BYTES,
            "dirty_rate": DIRTY_RATE,
            "direction": DIRECTION,
            "levels": LEVELS,
        },
    )


# ------------------------------------------------------------------------------ rows (pure)


def _phase(by_name: dict[str, dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any] | None:
    for name in names:
        if name in by_name:
            return by_name[name]
    return None


def downtime_terms(phases: list[dict[str, Any]]) -> dict[str, float] | None:
    """Seed 003's additive downtime from a record's phases: downtime (the freeze's start -> the
    destination serves) = source (the freeze) + copy (transfer) + target (switch + restore or
    start) + between (the gaps between those phases). None when a phase is missing or unended."""
    by_name = {p["name"]: p for p in phases}
    source = _phase(by_name, SOURCE_PHASES)
    copy, switch = by_name.get("transfer"), by_name.get("switch")
    serve = _phase(by_name, SERVING_PHASES)
    if source is None or copy is None or switch is None or serve is None:
        return None
    if any(p.get("end_ms") is None for p in (source, copy, switch, serve)):
        return None
    downtime = serve["end_ms"] - source["start_ms"]
    source_ms = source["end_ms"] - source["start_ms"]
    copy_ms = copy["end_ms"] - copy["start_ms"]
    switch_ms = switch["end_ms"] - switch["start_ms"]
    target_ms = switch_ms + serve["end_ms"] - serve["start_ms"]
    return {
        "downtime_ms": round(downtime, 1),
        "source_ms": round(source_ms, 1),
        "copy_ms": round(copy_ms, 1),
        "target_ms": round(target_ms, 1),
        "switch_ms": round(switch_ms, 1),
        "between_ms": round(downtime - source_ms - copy_ms - target_ms, 1),
        "noncopy_ms": round(downtime - copy_ms, 1),
    }


def row_of(
    spec: RunSpec,
    case_row: dict[str, Any],
    record: dict[str, Any] | None,
    counted: list[dict[str, Any]],
) -> dict[str, Any]:
    """One run's row: the fields the issue names first, then the detail."""
    strategy, loss = spec["strategy"], spec["loss_pct"]
    phases: list[dict[str, Any]] = [] if record is None else record["phases"]
    terms = downtime_terms(phases) if phases else None
    transfer: dict[str, Any] = next((p for p in phases if p["name"] == "transfer"), {})
    seen = sum(int(c["seen"]) for c in counted)
    dropped = sum(int(c["dropped"]) for c in counted)
    row: dict[str, Any] = {
        "strategy": strategy,
        "level": LEVELS.get(strategy, strategy),
        "loss_pct": loss,
        "repetition": spec.repetition,
        "copy_ms": None,
        "downtime_ms": None,
        "source_ms": None,
        "target_ms": None,
        **(terms or {}),
        "bytes": transfer.get("bytes"),  # what the copy sent on the wire
        "bytes_total": (transfer.get("detail") or {}).get("bytes_total"),
        "bytes_migration": None if record is None else record.get("bytes_transferred"),
        "client_ms": case_row.get("downtime_ms"),  # the probe's longest silence
        "state_intact": case_row.get("state_intact"),
        "packets_seen": seen if counted else None,
        "packets_dropped": dropped if counted else None,
        "measured_loss_pct": round(100 * dropped / seen, 3) if seen else None,
        "total_ms": case_row.get("total_ms"),
        "outcome": None if record is None else record.get("outcome"),
        "phases": case_row.get("phases", {}),
        # the frozen window's parts (migration.profile): criu_memwrite is the checkpoint's write
        "frozen_profile_ms": (record or {}).get("metrics", {}).get("frozen_profile_ms"),
    }
    if "error" in case_row:
        row["error"] = case_row["error"]
    elif terms is None:
        row["error"] = "the migration's record lacks a phase of the downtime"
    return row


# ------------------------------------------------------------------------------ the testbed


class LossBed:
    """The testbed (controller, Mininet, an agent per site) and the migration bench on it."""

    def __init__(self, tb: Any, clients: dict[str, Any]) -> None:
        from mecmig.bench.migration_cases import Bench
        from mininet_scenarios.link_loss import site_ips
        from topology.scenario import load_scenario

        sc = load_scenario(SCENARIO)
        self.tb = tb
        self.bench = Bench(tb, clients, sc)
        # seed 003's copies are uncompressed, and the loss must meet the whole checkpoint: the
        # engine would choose zstd for memhog's mostly-zero memory on these 100 Mbit/s links
        self.bench.compress = "none"
        self.ips = site_ips(sc)

    def run(self, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        from mecmig.bench.migration_cases import DESTINATION, SOURCE, Case
        from mininet_scenarios.link_loss import LinkLoss

        case = Case(spec["strategy"], MEMORY_BYTES, DIRTY_RATE, spec.repetition)
        loss = LinkLoss(
            self.tb.emu, self.ips, SOURCE, DESTINATION, spec["loss_pct"], direction=DIRECTION
        )
        with loss:
            case_row = self.bench.run_case(case, on_phase)
            counted = [c.to_dict() for c in loss.counters()]
        record = self.bench.last_record
        return row_of(spec, case_row, None if record is None else record.to_dict(), counted)


@contextmanager
def loss_testbed() -> Iterator[LossBed]:
    """The testbed, with both sites' directories on a tmpfs each (SITES_TMPFS): CRIU's write of
    the checkpoint to ext4 took 11-60 ms from run to run on this machine (its page-cache copy,
    4 MiB in 1.5 or 6 ms) and 14-16 ms to a tmpfs, noise in the source term that the shape
    compares across loss levels."""
    from ground.paths import site_root
    from ground.runner import SubprocessRunner
    from mecmig.bench.migration_cases import DESTINATION, SOURCE
    from mecmig.bench.site_tmpfs import site_tmpfs
    from topology.scenario import load_scenario

    name, runner = load_scenario(SCENARIO).name, SubprocessRunner()
    with ExitStack() as stack:
        for site in (SOURCE, DESTINATION):
            stack.enter_context(site_tmpfs(runner, site_root(name, site), SITES_TMPFS))
        tb, clients = stack.enter_context(agents_testbed(SCENARIO))
        yield LossBed(tb, clients)


# ------------------------------------------------------------------------------ the run


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, loss.png and report.md into `args.out`."""
    from mecmig.bench.loss_report import plot_loss, report_markdown, summarize

    refused = preflight(args, console, SCENARIO)
    if refused is not None:
        return refused
    plan = plan_from(args)
    out: Path = args.out
    done = run_on_testbed(
        args, console, experiment(plan), command_words(args), loss_testbed,
        lambda bed, spec, on_phase: bed.run(spec, on_phase),
        part="migrations", label=label, line=line,
    )  # fmt: skip
    rows = done.runs.rows()
    summary = summarize(rows, plan)
    return finish(
        done, console, rows=rows, summary=summary,
        extra={
            "scenario": shown(SCENARIO),
            "plan": {
                "strategies": list(plan.strategies),
                "levels": {s: LEVELS.get(s, s) for s in plan.strategies},
                "losses_pct": list(plan.losses),
                "repeat": plan.repeat,
                "memory_bytes": MEMORY_BYTES,
                "dirty_rate": DIRTY_RATE,
                "link": "100 Mbit/s (tc HTB on both ends of each switch link)",
                "loss": f"iptables statistic DROP in hmec2's INPUT for packets from hmec1 "
                f"({DIRECTION})",
                "sites": f"each site's directory on a tmpfs of its own ({SITES_TMPFS})",
            },
        },
        plots=lambda: [plot_loss(rows, plan, out)],
        report=lambda files: report_markdown(rows, summary, plan, done, files),
        failures=[f"{label(s)}: {r['error']}" for s, r in done.runs.done() if "error" in r],
    )  # fmt: skip


def label(spec: RunSpec) -> str:
    return f"{spec['strategy']} at {spec['loss_pct']:g} % loss #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    if row.get("downtime_ms") is None:
        return f"{label(spec)}: [red]{row.get('error')}[/red]"
    measured = row.get("measured_loss_pct")
    dropped = "" if measured is None else f", {row['packets_dropped']} dropped ({measured} %)"
    return (
        f"{label(spec)}: copy {row['copy_ms']} ms, downtime {row['downtime_ms']} ms (source "
        f"{row['source_ms']}, target {row['target_ms']}), client {row['client_ms']} ms{dropped}"
    )


def command_words(args: argparse.Namespace) -> list[str]:
    strategies = ["--strategies", *args.strategies] if args.strategies else []
    losses = ["--losses", *(f"{x:g}" for x in args.losses)] if args.losses else []
    return bench_words("loss", args, *strategies, *losses)


def loss_value(text: str) -> float:
    """A --losses value: a percentage in [0, 100]."""
    value = float(text)
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"{text}: a loss is a percentage from 0 to 100")
    return value


def add_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench loss`'s command line."""
    b = bench.add_parser(
        "loss",
        help="seed 003's Table III: state copy and downtime under packet loss, per strategy",
        description="On scenarios/loss.yaml (two sites, 100 Mbit/s links): the memhog "
        "'counter' (32 MiB, dirtying 1 MB/s) migrates mec1 -> mec2 by restart (seed 003's "
        "FCCP), precopy and cold (FullSP) at packet loss 0, 0.1, 1 and 5 % on the path "
        "between the MEC hosts (iptables statistic DROP at mec2's host for packets from "
        "mec1's), 5 times each, while ue1 probes it. Rows: strategy, level, loss_pct, "
        "copy_ms, downtime_ms, source_ms, target_ms, between_ms, client_ms, bytes, packets "
        "seen and dropped, repetition. Shape check (seed 003): the loss lengthens only the "
        "copy (the downtime without the copy stays within a small spread while the FullSP "
        "copy grows), FCCP's copy under 40 ms. Writes summary.json, loss.png, CSVs, raw/ and "
        "report.md into --out. About 10 minutes. Exit 0 the run completed (shape met or not), "
        "1 a run failed, 3 not root / no OVS / no runc or CRIU.",
    )
    harness_options(
        b, "loss",
        quick="restart and cold at 0 and 5 %% loss, 3 runs each: about a minute; a smoke test",
        repeat="repetitions (default 5; --quick 3)",
    )  # fmt: skip
    b.add_argument("--strategies", nargs="+", choices=tuple(LEVELS), help="only these")
    b.add_argument(
        "--losses", nargs="+", type=loss_value, metavar="PCT",
        help="packet loss levels in percent (default 0 0.1 1 5; --quick 0 5)",
    )  # fmt: skip
