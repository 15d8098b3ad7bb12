"""`mecmig bench scale`: the controller at operator scale (issue 15).

On generated two-level fabrics (`mecmig.bench.scale_fabric`: sites under aggregation switches
in a ring) of 10, 100, 1,000 and 3,000 sites (--quick: 100 and 1,000), each size in a process of
its own (`mecmig.bench.scale_worker`): the state's build time and memory, then each operation's
latency (median, p95, max) and the flows it changes, on the pure `FabricState` and through the
REST API over software switches (`mecmig.bench.scale_rest`; link events through the runtime, as
a port status arrives). Then admission alone at 10,000 sites, and one point on real Open
vSwitch bridges (`mecmig.bench.scale_ovs`, root; skipped with --no-ovs or when OVS is not
there).

Goals (checked into summary.json's `goals`): at 1,000 sites every operation <= 5 ms median on
the pure state and <= 10 ms through REST, the state built in <= 1 s; admission at 10,000 sites
<= 10 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ground.runner import CommandError, SubprocessRunner
from mecmig.bench.report import command_line, utc_now, write_report, write_summary
from mecmig.bench.scale_report import markdown, plot

EXIT_OK, EXIT_FAILED = 0, 1
SIZES, QUICK_SIZES = (10, 100, 1000, 3000), (100, 1000)
ADMISSION_SITES = 10_000
OVS_SITES = 100  # the default of --ovs-sites
GOAL_SITES = 1000
GOALS_MS = {"state": 5.0, "rest": 10.0}
BUILD_GOAL_MS = 1000.0
ADMISSION_GOAL_MS = 10.0
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "results" / "scale"
ROW_FIELDS = ("sites", "operation", "median_ms", "p95_ms", "max_ms", "flows_changed")


class WorkerError(RuntimeError):
    """A size's worker process failed (its stderr's end is in the message)."""


def worker(args: list[str], timeout: float = 1800) -> dict[str, Any]:
    """Run `mecmig.bench.scale_worker` with `args` and return its JSON document."""
    argv = [sys.executable, "-W", "ignore", "-m", "mecmig.bench.scale_worker", *args]
    try:
        done = SubprocessRunner().run(argv, timeout=timeout)
    except CommandError as exc:
        raise WorkerError(f"{' '.join(args)}: {exc}") from exc
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def goals(sizes: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal of the issue, its measured value and whether it is met."""
    out: list[dict[str, Any]] = []
    for row in rows:
        limit = GOALS_MS.get(row["via"])
        if row["sites"] == GOAL_SITES and limit is not None:
            out.append(
                {
                    "goal": f"{row['operation']} via {row['via']} at {GOAL_SITES} sites, median",
                    "limit_ms": limit,
                    "value_ms": row["median_ms"],
                    "met": row["median_ms"] <= limit,
                }
            )
    for size in sizes:
        if size["sites"] == GOAL_SITES:
            out.append(
                {
                    "goal": f"build the state at {GOAL_SITES} sites",
                    "limit_ms": BUILD_GOAL_MS,
                    "value_ms": size["build_ms"],
                    "met": size["build_ms"] <= BUILD_GOAL_MS,
                }
            )
    for row in rows:
        if row["sites"] == ADMISSION_SITES and row["operation"] == "admission":
            out.append(
                {
                    "goal": f"admission at {ADMISSION_SITES} sites, median",
                    "limit_ms": ADMISSION_GOAL_MS,
                    "value_ms": row["median_ms"],
                    "met": row["median_ms"] <= ADMISSION_GOAL_MS,
                }
            )
    return out


def run(args: argparse.Namespace, console: Console) -> int:
    started, t0 = utc_now(), time.monotonic()
    out: Path = args.out
    sizes_wanted = QUICK_SIZES if args.quick else SIZES
    reps = args.reps or (20 if args.quick else 50)
    words = ["mecmig", "bench", "scale", *(["--quick"] if args.quick else [])]
    if out != DEFAULT_OUT:
        words += ["--out", str(out)]
    if args.reps:
        words += ["--reps", str(args.reps)]
    if args.no_ovs:
        words.append("--no-ovs")
    elif args.ovs_sites != OVS_SITES:
        words += ["--ovs-sites", str(args.ovs_sites)]
    rows: list[dict[str, Any]] = []
    sizes: list[dict[str, Any]] = []
    status = EXIT_OK
    try:
        for n in sizes_wanted:
            console.print(f"[bold]{n} sites[/]: state and REST, {reps} of each operation")
            doc = worker([str(n), str(min(reps, n))])
            size_rows = doc.pop("rows")
            for row in size_rows:
                row["build_ms"], row["rss_bytes"] = doc["build_ms"], doc["rss_bytes"]
            rows += size_rows
            sizes.append(doc)
            console.print(
                f"  built in {doc['build_ms']} ms, {doc['bytes_per_site']} B per site, "
                f"{doc['bytes_per_reservation']} B per reservation"
            )
        console.print(f"[bold]{ADMISSION_SITES} sites[/]: admission alone")
        adm = worker([str(ADMISSION_SITES), str(reps), "--admission-only"])
        adm["row"]["build_ms"], adm["row"]["rss_bytes"] = adm["build_ms"], None
        rows.append(adm["row"])
    except (WorkerError, ValueError) as exc:
        console.print(f"[red]failed:[/] {exc}")
        status = EXIT_FAILED
    ovs: dict[str, Any] | None = None
    if not args.no_ovs and status == EXIT_OK:
        from mecmig.bench.scale_ovs import OvsUnavailable, ovs_point

        try:
            console.print(f"[bold]{args.ovs_sites} sites on Open vSwitch[/] (real switches)")
            ovs = ovs_point(args.ovs_sites, reps=min(reps, 10))
            for row in ovs.pop("rows"):
                same = [
                    r
                    for r in rows
                    if (r["sites"], r["via"], r["operation"])
                    == (row["sites"], "state", row["operation"])
                ]
                if same and not row["flows_changed"]:  # not counted over HTTP: the state's
                    row["flows_changed"] = same[0]["flows_changed"]
                row["build_ms"], row["rss_bytes"] = None, None  # a process of its own
                rows.append(row)
        except OvsUnavailable as exc:
            console.print(f"[yellow]no Open vSwitch point:[/] {exc}")
            ovs = {"skipped": str(exc)}
    checked = goals(sizes, rows)
    duration = round(time.monotonic() - t0, 1)
    write_summary(
        out,
        command=command_line(words),
        started_at=started,
        quick=args.quick,
        rows=rows,
        summary={"goals": checked, "goals_met": all(g["met"] for g in checked)},
        extra={"sizes": sizes, "ovs": ovs, "duration_s": duration},
    )
    if rows:
        plot(rows, sizes, out / "scale.png")
    write_report(out, markdown(rows, sizes, checked, ovs, command_line(words), started, duration))
    for g in checked:
        mark = "[green]met[/]" if g["met"] else "[red]missed[/]"
        console.print(f"  {mark} {g['goal']}: {g['value_ms']} ms (goal <= {g['limit_ms']} ms)")
    console.print(f"results in {out}/")
    return status
