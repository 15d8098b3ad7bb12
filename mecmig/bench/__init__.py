"""`mecmig bench <name>`: benchmarks that produce the project's figures.

Each benchmark is a module `mecmig.bench.<name>` with `run(args, console) -> int` (the exit code:
0 the run completed, even if a goal was missed; 1 a case failed to run; 3 environment not ready).
It writes `summary.json`, a plot and `report.md` into `--out` with the helpers of
`mecmig.bench.report`; the README quotes only numbers a benchmark wrote there. Its runs go through
`mecmig.bench.harness` (a named experiment: scenario, workload, sweep, repetitions; raw JSON per
run, resumable, a crash marked; CSVs; mean, sd, 95 % CI and CV; the seeds' figures beside ours).
This module holds what running one needs: the preflight check and the progress display.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ground.runner import CommandError, SubprocessRunner

if TYPE_CHECKING:
    from topology.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]


def environment_problem(
    scenarios: Sequence[Scenario],
    tools: Sequence[str] = ("ovs-vsctl", "iperf3"),
    *,
    criu: bool = False,
) -> str | None:
    """Why a benchmark of `scenarios` cannot run here: not root, a tool or Mininet missing, OVS not
    running, bridges of theirs left by a crashed run, or (`criu`) the project's CRIU not built.
    None when it can."""
    if os.geteuid() != 0:
        return "the benchmark needs root (network namespaces, Open vSwitch)"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run scripts/bootstrap)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet's Python API is not importable (a venv without system site packages?)"
    runner = SubprocessRunner()
    try:
        runner.run(["ovs-vsctl", "--timeout=5", "show"], timeout=10)
        bridges = set(runner.run(["ovs-vsctl", "list-br"], timeout=10).stdout.split())
    except CommandError as exc:
        return f"Open vSwitch is not running (scripts/bootstrap starts it): {exc}"
    ours = {s.switch_name for sc in scenarios for s in sc.sites}
    ours |= {s.name for sc in scenarios for s in sc.switches}
    if bridges & ours:
        return f"bridge(s) {', '.join(sorted(bridges & ours))} exist; `mecmig cleanup` removes ours"
    if criu:
        from ground.paths import CriuMissing, criu_binary

        try:
            criu_binary()
        except CriuMissing as exc:
            return str(exc)
    return None


@contextmanager
def progress(console: Console) -> Iterator[Progress]:
    """Progress bars, one per part of a benchmark: `add_task(description, total=N, part=name)`."""
    columns = (
        TextColumn("{task.fields[part]:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as bars:
        yield bars


def shown(path: Path) -> str:
    """`path` relative to the project when it is inside it (for reports that get committed)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
