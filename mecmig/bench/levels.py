"""`mecmig bench levels`: seed 003's Table IV (viability of its three state levels) on real
containers.

scenarios/levels.yaml's three apps (seed 003's Table II) each move mec1 -> mec2 by each state
level, 5 times (once with --quick), every run from a fresh deployment at mec1:

- stateless (`hello`, httpstream; seed 003's BA): nothing to keep; the client GETs /health;
- counter (`usercount`, USPA): {user: count} in /volume, the file named by its environment;
  the client GETs /hit/car (each request counts one);
- memcached (`cache`, Debian's; ASW): 2000 keys in memory written before the move; the client
  gets one of them.

The client at ue1 sends a request on a new connection every 10 ms. The levels: sfp =
`filesystem` (files, bulk while serving and the delta at the stop, started afresh with the
scenario's command given as the manual command, without the environment); fccp = `restart`
(files and configuration); fullsp = `precopy` (the full state by CRIU, files too).

Per run: `viable` (it answers at the destination and its state is what it was at the stop:
mecmig.bench.levels_matrix), `state_intact`, `t_pre_ms` (to the freeze), `t_down_ms` (the
client's longest silence), `engine_down_ms` (freeze to serving), `bytes`; for sfp also whether
the same migration without a command was refused before anything moved. Outputs (on the
experiment harness): summary.json with the matrix beside Table IV, raw/, levels.csv, its
statistics, levels.png and report.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from mecmig.bench import ROOT, shown
from mecmig.bench.harness import Experiment, Metric, RunSpec
from mecmig.bench.harness_testbed import environment_ready, finish, run_on_testbed
from mecmig.bench.levels_matrix import APPS, LEVEL_NAMES, row_of
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_USAGE
from migration.strategies import LEVELS

SCENARIO = ROOT / "scenarios" / "levels.yaml"
DEFAULT_OUT = ROOT / "results" / "levels"
UE, SOURCE, DESTINATION = "ue1", "mec1", "mec2"
INSTANCES = {"stateless": "hello", "counter": "usercount", "memcached": "cache"}
PORT = {"stateless": 8080, "counter": 8080, "memcached": 11211}
POLL = {
    "stateless": ["--protocol", "http", "--path", "/health"],
    "counter": ["--protocol", "http", "--path", "/hit/car"],
    "memcached": ["--protocol", "memcached", "--key", "levels"],
}
KEYS, VALUE_SIZE, SEED = 2000, 256, 3
INTERVAL_MS = 10.0
# a request unanswered by then is given up and the next one goes: a connection CRIU's final
# dump left out half-accepted (agent.container: skip-in-flight) had its request ACKed by the
# source and never answered, and with the poll's 1 s every pre-copy run's T_down read ~1000 ms
# (the client's timeout, not the service's absence: frozen to serving took 330-550 ms)
REQUEST_TIMEOUT_MS = 150.0
LEAD_S, TAIL_S = 0.6, 0.8
REPEAT, QUICK_REPEAT = 5, 1


def experiment(repeat: int) -> Experiment:
    return Experiment(
        name="levels",
        scenario=shown(SCENARIO),
        workload="seed 003's apps (stateless httpstream, per-user counter on a volume, "
        f"memcached with {KEYS} keys) moved {SOURCE} -> {DESTINATION}; a client at {UE}, a "
        f"request on a new connection every {INTERVAL_MS:g} ms",
        sweep={"app": APPS, "level": LEVEL_NAMES},
        repetitions=repeat,
        metrics=(
            Metric("t_pre_ms", "to the freeze (T_pre)", "ms"),
            Metric("t_down_ms", "client's longest silence (T_down)", "ms"),
            Metric("engine_down_ms", "freeze to serving", "ms"),
            Metric("bytes", "bytes on the wire", "B"),
        ),
        fixed={
            "strategies": dict(LEVELS),
            "interval_ms": INTERVAL_MS,
            "keys": KEYS,
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
        },  # fmt: skip
    )


class LevelsBed:
    """The emulation (controller, Mininet, an agent per site) and an orchestrator over it."""

    def __init__(self, tb: Any, clients: dict[str, Any]) -> None:
        from orchestration.links import RestControllerLink
        from orchestration.orchestrator import Orchestrator
        from topology.scenario import load_scenario

        self.tb = tb
        self.sc = load_scenario(SCENARIO)
        self.orch = Orchestrator(self.sc, clients, RestControllerLink(tb.ctl.client))

    def in_ue(self, code: str) -> str:
        return str(self.tb.emu.run_on(UE, [sys.executable, "-c", code], timeout=30).stdout)

    def ip(self, app: str) -> str:
        return str(self.sc.instance(INSTANCES[app]).ip)

    def fill(self, app: str) -> None:
        """memcached: the keys whose presence is its state, and the one the client reads."""
        if app != "memcached":
            return
        out = self.in_ue(
            "import socket\nfrom workloads.memcached_check import fill\n"
            f"fill('{self.ip(app)}', 11211, {KEYS}, {VALUE_SIZE}, {SEED})\n"
            f"s = socket.create_connection(('{self.ip(app)}', 11211), timeout=5)\n"
            "s.sendall(b'set levels 0 0 4\\r\\nkept\\r\\n'); print(s.recv(64))"
        )
        if "STORED" not in out:
            raise RuntimeError(f"memcached fill: {out!r}")

    def keys(self, app: str) -> tuple[int, int] | None:
        """memcached: (keys present, keys written) now; None for the other apps."""
        if app != "memcached":
            return None
        out = self.in_ue(
            "from workloads.memcached_check import expected_values, verify\n"
            f"print(*verify('{self.ip(app)}', 11211, expected_values({KEYS}, {VALUE_SIZE}, "
            f"{SEED})))"
        )
        present, _missing = (int(w) for w in out.split()[-2:])
        return present, KEYS

    def refused_without_command(self, name: str) -> bool:
        """SFP without a command (the scenario's is configuration: it stays behind): refused
        before anything moved, the app still at the source and nothing at the destination."""
        from orchestration.orchestrator import CommandRefused

        try:
            self.orch.plan_migration(name, DESTINATION, strategy=LEVELS["sfp"])
        except CommandRefused:
            placed = self.orch.placement(name)
            return placed.at.get(SOURCE) == "running" and placed.at.get(DESTINATION) == "absent"
        return False

    def run(self, spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
        from migration.engine import MigrationError
        from mininet_scenarios.measure import Probe

        app, level = spec["app"], spec["level"]
        name, strategy = INSTANCES[app], LEVELS[level]
        self.orch.teardown(name)
        self.orch.deploy(name, SOURCE)
        try:
            self.fill(app)
            refused = self.refused_without_command(name) if level == "sfp" else None
            command = list(self.sc.instance(name).command) if level == "sfp" else None
            probe = Probe(
                self.tb.emu, UE, self.ip(app), PORT[app], interval_ms=INTERVAL_MS,
                module="workloads.levels_poll",
                extra=[*POLL[app], "--timeout-ms", f"{REQUEST_TIMEOUT_MS:g}"],
            )  # fmt: skip
            error: str | None = None
            try:
                time.sleep(LEAD_S)
                try:
                    record = self.orch.migrate(
                        name, DESTINATION, strategy=strategy, command=command,
                        listener=lambda event, rec, ph: on_phase(
                            f"{app} {level} {ph.name if ph is not None else event}"
                        ),
                    ).to_dict()  # fmt: skip
                except MigrationError as exc:
                    record, error = exc.record.to_dict(), str(exc)
                ended = time.monotonic()
                time.sleep(TAIL_S)
                poll = probe.stop(timeout=30)
            finally:
                probe.close()
            at = self.orch.where(name)
            keys = self.keys(app) if at is not None else None
        finally:
            self.orch.teardown(name)
        return row_of(
            app=app, level=level, strategy=strategy, record=record, poll=poll,
            interval_ms=INTERVAL_MS, ended_s=ended, at=at, keys=keys,
            refused_without_command=refused, manual_command=command is not None, error=error,
        )  # fmt: skip


@contextmanager
def levels_testbed() -> Iterator[LevelsBed]:
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.testbed import testbed

    with testbed(SCENARIO, instance_hosts=False) as tb, SiteAgents(tb.emu, SCENARIO) as agents:
        yield LevelsBed(tb, agents.clients)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, levels.png and report.md into `args.out`."""
    from mecmig.bench.levels_matrix import summarize
    from mecmig.bench.levels_report import plot_levels, report_markdown

    if args.repeat is not None and args.repeat < 1:
        console.print("[red]--repeat must be at least 1[/red]")
        return EXIT_USAGE
    if not environment_ready(console, SCENARIO):
        return EXIT_ENVIRONMENT
    repeat = args.repeat or (QUICK_REPEAT if args.quick else REPEAT)
    out: Path = args.out
    done = run_on_testbed(
        args, console, experiment(repeat), command_words(args), levels_testbed,
        lambda bed, spec, on_phase: bed.run(spec, on_phase) | {"repetition": spec.repetition},
        part="migrations", label=label, line=line,
    )  # fmt: skip
    session, runs = done.session, done.runs
    rows = runs.rows()
    summary = summarize(rows)
    return finish(
        done, console, rows=rows, summary=summary,
        extra={
            "scenario": shown(SCENARIO),
            "plan": {"apps": list(APPS), "levels": dict(LEVELS), "repeat": repeat,
                     "instances": INSTANCES, "interval_ms": INTERVAL_MS, "keys": KEYS},
        },
        plots=lambda: [plot_levels(rows, summary, out)],
        report=lambda files: report_markdown(rows, summary, session, runs, done.duration_s,
                                             files),
        failures=[f"{label(s)}: {r['error']}" for s, r in runs.done() if "error" in r],
    )  # fmt: skip


def label(spec: RunSpec) -> str:
    return f"{spec['app']} {spec['level']} ({LEVELS[spec['level']]}) #{spec.repetition}"


def line(spec: RunSpec, row: dict[str, Any]) -> str:
    verdict = "viable" if row.get("viable") else "[yellow]not viable[/yellow]"
    return (
        f"{label(spec)}: {verdict}, T_pre {row.get('t_pre_ms')} ms, T_down "
        f"{row.get('t_down_ms')} ms, {row.get('bytes')} B"
    )


def command_words(args: argparse.Namespace) -> list[str]:
    words = ["mecmig", "bench", "levels"]
    if args.quick:
        words.append("--quick")
    if args.repeat:
        words += ["--repeat", str(args.repeat)]
    if args.out != DEFAULT_OUT:
        words += ["--out", shown(args.out)]
    return words


def add_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench levels`'s command line."""
    b = bench.add_parser(
        "levels",
        help="seed 003's state levels (SFP, FCCP, full state) x its three apps: Table IV",
        description="On scenarios/levels.yaml: a stateless HTTP server, a per-user counter on "
        "a volume (its file named by its environment) and Debian's memcached, each moved "
        "mec1 -> mec2 by each of seed 003's state levels: sfp (strategy filesystem, with the "
        "scenario's command given as the manual command), fccp (restart), fullsp (precopy); "
        "5 times each (--quick: once). Rows: app, level, strategy, viable, state_intact, "
        "t_pre_ms, t_down_ms (client), bytes, repetition; the viability matrix beside seed "
        "003's Table IV. Writes summary.json, levels.png, CSVs and report.md into --out. Exit "
        "0 the run completed, 1 a run failed, 3 not root / no OVS / no runc or CRIU.",
    )
    b.add_argument("--quick", action="store_true", help="each cell once: about a minute")
    b.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help="where the results go (default: results/levels/)",
    )  # fmt: skip
    b.add_argument("--repeat", type=int, metavar="N", help="repetitions (default 5; --quick 1)")
