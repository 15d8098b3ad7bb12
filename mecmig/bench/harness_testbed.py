"""A benchmark of one experiment on one testbed, on the experiment harness: the run skeleton
`mecmig bench patterns` and `mecmig bench concurrency` share.

`environment_ready` checks the host first (root, OVS, runc, CRIU). `run_on_testbed` opens the
session (resumed when `--resume` asks), shows the progress, starts the testbed only when runs
are left to do and runs them there (`ExperimentRun.execute`: a raw JSON per run, a crashed run
kept incomplete, summary.json marked incomplete as it goes); a testbed that failed (to start, in
a run, or to stop) is noted, not raised, so that what was measured is still written. `finish`
then writes the CSVs, summary.json (the benchmark's fields, then the harness's), the plots and
report.md, says where they are and what failed, and gives the exit code.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from mecmig.bench import ROOT, environment_problem, progress, shown
from mecmig.bench.harness import Experiment, ExperimentRun, Row, RunSpec, Session
from mecmig.bench.report import command_line, utc_now, write_report, write_summary
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE

Bed = TypeVar("Bed")


@dataclass
class BenchRun:
    """A benchmark's session and its one experiment, once its runs have run."""

    session: Session
    runs: ExperimentRun
    duration_s: float = 0.0
    crashed: list[str] = field(default_factory=list)  # 'testbed: <error>': the testbed failed


def environment_ready(console: Console, scenario: Path) -> bool:
    """Whether `scenario`'s testbed can start here (root, OVS, runc, CRIU); if not, says why."""
    from topology.scenario import load_scenario

    problem = environment_problem([load_scenario(scenario)], tools=("ovs-vsctl", "runc"), criu=True)
    if problem:
        console.print(f"[red]environment not ready[/red]: {problem}", highlight=False)
        return False
    return True


def preflight(args: argparse.Namespace, console: Console, scenario: Path) -> int | None:
    """The exit code when the benchmark cannot run (EXIT_USAGE: --repeat below 1;
    EXIT_ENVIRONMENT: see `environment_ready`), None when it can."""
    if getattr(args, "repeat", None) is not None and args.repeat < 1:
        console.print("[red]--repeat must be at least 1[/red]")
        return EXIT_USAGE
    if not environment_ready(console, scenario):
        return EXIT_ENVIRONMENT
    return None


@contextmanager
def agents_testbed(scenario: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Controller + Mininet for `scenario` (its instances left to the agents) and an agent per
    site: (the testbed, the agents' clients by site); all torn down after."""
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.testbed import testbed

    with testbed(scenario, instance_hosts=False) as tb, SiteAgents(tb.emu, scenario) as agents:
        yield tb, agents.clients


def harness_options(b: argparse.ArgumentParser, name: str, *, quick: str, repeat: str) -> None:
    """--quick, --out (results/<name>/) and --repeat N of a benchmark on the harness."""
    b.add_argument("--quick", action="store_true", help=quick)
    b.add_argument(
        "--out", type=Path, default=ROOT / "results" / name, metavar="DIR",
        help=f"where the results go (default: results/{name}/)",
    )  # fmt: skip
    b.add_argument("--repeat", type=int, metavar="N", help=repeat)


def bench_words(name: str, args: argparse.Namespace, *options: str) -> list[str]:
    """The command line that runs benchmark `name` again: --quick, `options`, --repeat and
    --out as `args` (of `harness_options`) hold them."""
    words = ["mecmig", "bench", name, *(["--quick"] if args.quick else []), *options]
    if args.repeat:
        words += ["--repeat", str(args.repeat)]
    if args.out != ROOT / "results" / name:
        words += ["--out", shown(args.out)]
    return words


def run_on_testbed(
    args: argparse.Namespace,
    console: Console,
    experiment: Experiment,
    words: Sequence[str],
    testbed: Callable[[], AbstractContextManager[Bed]],
    run_one: Callable[[Bed, RunSpec, Callable[[str], None]], Row],
    *,
    part: str,
    label: Callable[[RunSpec], str],
    line: Callable[[RunSpec, Row], str],
) -> BenchRun:
    """Run `experiment` into `args.out` (`words`: the command line that runs it again):
    `run_one(bed, spec, on_phase)` makes each pending run's row on the bed `testbed()` yields,
    which is started only when runs are pending. `part` names the progress bar, `label` a run
    while it runs, `line` a run and its row when it ended."""
    started, t0 = utc_now(), time.monotonic()
    session = Session(
        args.out, command=command_line(words), started_at=started, quick=bool(args.quick),
        resume=bool(getattr(args, "resume", False)),
    )  # fmt: skip
    done = BenchRun(session, session.add(experiment))
    with progress(console) as bars:
        done.runs.track(bars, part=part, description="starting the testbed")
        if done.runs.pending():
            try:
                with testbed() as bed:
                    done.runs.execute(
                        lambda spec, on_phase: run_one(bed, spec, on_phase), label=label, line=line
                    )
            except Exception as exc:  # noqa: BLE001 - the testbed itself failed: report what we have
                done.crashed.append(f"testbed: {type(exc).__name__}: {exc}")
    done.duration_s = round(time.monotonic() - t0, 1)
    return done


def finish(
    done: BenchRun,
    console: Console,
    *,
    rows: Sequence[Row],
    summary: dict[str, Any],
    extra: dict[str, Any],
    plots: Callable[[], list[str]],
    report: Callable[[list[str]], str],
    failures: Sequence[str],
) -> int:
    """Write the CSVs, summary.json (`rows`, `summary`, its duration, `extra`, the harness's
    fields and the files), the `plots()` and report.md (`report(files)`), then say where they
    are, which runs are left and what failed (`failures`, then the testbed's). The exit code:
    EXIT_FAILED when anything failed or a run did not complete, else EXIT_OK."""
    session = done.session
    files = session.write_files()
    write_summary(
        session.out, command=session.command, started_at=session.started_at,
        quick=session.quick, rows=rows, summary=summary,
        extra={
            "duration_s": done.duration_s,
            **extra,
            **session.summary_fields(),
            "files": files,
        },
    )  # fmt: skip
    made = plots()
    write_report(session.out, report(files + made))
    console.print(
        f"results in {shown(session.out)}/ (summary.json, {', '.join(made + files)}, report.md, "
        f"raw/); {done.duration_s} s",
        highlight=False,
    )
    session.print_status(console)
    failed = [*failures, *done.crashed]
    for failure in failed:
        console.print(f"[red]failed[/red]: {failure}", highlight=False)
    return EXIT_FAILED if failed or not session.complete else EXIT_OK
