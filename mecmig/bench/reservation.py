"""`mecmig bench reservation`: do the meters hold TCP to the reserved rate, and how fast does the
controller re-point an instance's traffic?

Part 1 (the `--scenario`, default scenarios/default.yaml): TCP transfers (iperf3) from the first
site's MEC host to the second's on a port a reservation matches, for every reserved rate x meter
burst x sender pacing; plus one unreserved transfer as a baseline. Part 2 (three-sites): `video` is
re-plugged at another site and `relocate`d, again and again; the controller measures the switch-over
(first flow-mod sent -> last barrier reply) and the UE must still reach it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ground.runner import CommandError
from mecmig.bench import ROOT, environment_problem, progress, shown
from mecmig.bench.harness import Experiment, ExperimentRun, Metric, RunSpec, Session
from mecmig.bench.report import (
    command_line,
    fmt_rate,
    markdown_table,
    new_figure,
    save_figure,
    utc_now,
    write_report,
    write_summary,
)
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK

DEFAULT_OUT = ROOT / "results" / "reservation"
RELOCATION_SCENARIO = ROOT / "scenarios" / "three-sites.yaml"
INSTANCE, UE = "video", "ue1"
TOLERANCE = 0.10  # goal: goodput within +-10 % of the reserved rate
SWITCHOVER_GOAL_MS = 10.0
BASE_PORT, BASELINE_PORT = 5201, 5999
MBIT = 1_000_000


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    rates_mbit: tuple[int, ...]
    bursts_ms: tuple[int | None, ...]  # None: the controller's default burst
    seconds: float
    moves: int


FULL = Plan(rates_mbit=(1, 5, 20, 100), bursts_ms=(50, 200, None, 500, 1000), seconds=5, moves=10)
QUICK = Plan(rates_mbit=(5, 20), bursts_ms=(None,), seconds=2, moves=3)


@dataclass(frozen=True)
class Case:
    """One reserved transfer."""

    rate_bps: int
    burst_ms: int | None
    paced: bool

    @property
    def label(self) -> str:
        burst = "default burst" if self.burst_ms is None else f"burst {self.burst_ms} ms"
        return f"{fmt_rate(self.rate_bps)}, {burst}, {'paced' if self.paced else 'unpaced'}"


def cases(plan: Plan) -> list[Case]:
    """Every rate x burst x pacing combination of `plan`, in running order."""
    return [
        Case(rate * MBIT, burst, paced)
        for rate in plan.rates_mbit
        for burst in plan.bursts_ms
        for paced in (False, True)
    ]


def run(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark; write summary.json, reservation.png and report.md into `args.out`."""
    from mecmig.bench.reservation_stats import plot_switchover_vs_seed, statistics_markdown
    from topology.scenario import load_scenario

    scenario = load_scenario(args.scenario)  # ScenarioError: the CLI reports it, exit 1
    if len(scenario.sites) < 2:
        console.print(f"[red]{args.scenario}[/red] has fewer than two sites: nothing to send to")
        return EXIT_FAILED
    problem = environment_problem([scenario, load_scenario(RELOCATION_SCENARIO)])
    if problem:
        console.print(f"[red]environment not ready[/red]: {problem}", highlight=False)
        return EXIT_ENVIRONMENT
    plan = QUICK if args.quick else FULL
    out: Path = args.out
    started, t0 = utc_now(), time.monotonic()
    command = command_line(_command_words(args))
    session = Session(
        out,
        command=command,
        started_at=started,
        quick=plan is QUICK,
        resume=bool(getattr(args, "resume", False)),
    )
    meters = session.add(meters_experiment(args.scenario, plan), meter_specs(plan))
    moves = session.add(relocation_experiment(plan))
    failures: list[str] = []
    with progress(console) as bars:
        _reservation_part(args.scenario, plan, bars, meters, failures)
        _relocation_part(bars, moves, failures)
    duration = round(time.monotonic() - t0, 1)
    rows = session.rows()
    failures = row_failures(meters, moves) + failures
    summary = summarize(rows, failures)
    files = session.write_files()
    write_summary(
        out,
        command=command,
        started_at=started,
        quick=plan is QUICK,
        rows=rows,
        summary=summary,
        extra={
            "duration_s": duration,
            "scenario": shown(args.scenario),
            **session.summary_fields(),
            "files": files,
        },
    )
    _plot(rows, out / "reservation.png")
    plots = plot_switchover_vs_seed(moves, out)
    text = _markdown(rows, summary, command, started, duration, args, plan)
    write_report(out, text + "\n" + statistics_markdown(session, moves, files + plots))
    _print_results(console, rows, summary)
    console.print(
        f"results in {shown(out)}/ (summary.json, reservation.png, {', '.join(plots + files)}, "
        f"report.md, raw/); {duration} s"
    )
    session.print_status(console)
    for failure in failures:
        console.print(f"[red]failed[/red]: {failure}", highlight=False)
    return EXIT_FAILED if failures or not session.complete else EXIT_OK


def row_failures(meters: ExperimentRun, moves: ExperimentRun) -> list[str]:
    """A line per run that completed with an error: what it was, and the error."""
    lines = [
        f"{meter_label(spec)}: {row['error']}" for spec, row in meters.done() if "error" in row
    ]
    lines += [
        f"relocation {row['from']} -> {row['to']}: {row['error']}"
        for _, row in moves.done()
        if "error" in row
    ]
    return lines


# ------------------------------------------------------------------------------ the experiments


def meters_experiment(scenario: Path, plan: Plan) -> Experiment:
    """Part 1 as a named experiment: rate x burst x pacing (and one unreserved baseline)."""
    return Experiment(
        name="meters",
        scenario=shown(scenario),
        workload="iperf3 TCP from the first site's MEC host to the second's, on a port a "
        "reservation matches (the baseline: a port none matches)",
        sweep={
            "reserved_bps": tuple(r * MBIT for r in plan.rates_mbit),
            "burst_ms": plan.bursts_ms,
            "paced": (False, True),
        },
        metrics=(
            Metric("ratio", "TCP goodput / reserved rate", "1"),
            Metric("goodput_bps", "TCP goodput", "bit/s"),
        ),
        fixed={"seconds": plan.seconds},
        group_by=("case", "reserved_bps", "burst_ms", "paced"),
    )


def meter_specs(plan: Plan) -> list[RunSpec]:
    """The baseline transfer, then every case of `plan` in running order."""
    specs = [RunSpec.of(case="baseline")]
    specs += [
        RunSpec.of(case="reservation", reserved_bps=c.rate_bps, burst_ms=c.burst_ms, paced=c.paced)
        for c in cases(plan)
    ]
    return specs


def case_of(spec: RunSpec) -> Case | None:
    """The reserved transfer of a run (None: the baseline)."""
    if spec["case"] == "baseline":
        return None
    return Case(spec["reserved_bps"], spec["burst_ms"], spec["paced"])


def meter_label(spec: RunSpec) -> str:
    case = case_of(spec)
    return "baseline" if case is None else case.label


def relocation_experiment(plan: Plan) -> Experiment:
    """Part 2 as a named experiment: `plan.moves` relocations, one statistics group."""
    return Experiment(
        name="relocation",
        scenario=shown(RELOCATION_SCENARIO),
        workload=f"'{INSTANCE}' re-plugged at the next site and relocated through the REST API, "
        f"then {UE} pings it",
        sweep={"move": tuple(range(1, plan.moves + 1))},
        metrics=(
            Metric("switchover_ms", "switch-over (first flow-mod -> last barrier reply)", "ms"),
            Metric("flow_mods", "flow-mods sent", "1"),
        ),
        group_by=(),
        measured=lambda row: "error" not in row and row.get("switchover_ms") is not None,
    )


def move_label(spec: RunSpec) -> str:
    return f"move {spec['move']}"


# ------------------------------------------------------------------------------ part 1: meters


def _errors() -> tuple[type[Exception], ...]:
    """What a case can fail with (imported late: the controller/Mininet stack is heavy)."""
    from controller.client import ControllerClientError
    from controller.process import ControllerStartError
    from mininet_scenarios.emulation import EmulationError

    return (
        ControllerClientError,
        ControllerStartError,
        EmulationError,
        CommandError,
        OSError,
    )


def _reservation_part(
    scenario: Path, plan: Plan, bars: Progress, meters: ExperimentRun, failures: list[str]
) -> None:
    from mininet_scenarios.testbed import testbed
    from topology.scenario import load_scenario
    from topology.world import agent_host

    sites = load_scenario(scenario).sites
    src, dst = agent_host(sites[0].name), agent_host(sites[1].name)
    ports = {case: BASE_PORT + i for i, case in enumerate(cases(plan))}
    meters.track(bars, part="reservations")
    if not meters.pending():
        return
    try:
        with testbed(scenario) as tb:

            def run_one(spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
                case = case_of(spec)
                if case is None:
                    return _baseline(tb, src, dst, plan.seconds)
                return _reserved_transfer(tb, case, src, dst, ports[case], plan.seconds)

            meters.execute(run_one, label=meter_label)
    except _errors() as exc:
        failures.append(f"reservation testbed ({scenario.name}): {exc}")


def _baseline(tb: Any, src: str, dst: str, seconds: float) -> dict[str, Any]:
    from mininet_scenarios.measure import goodput_bps

    row: dict[str, Any] = {
        "case": "baseline",
        "label": f"no reservation, port {BASELINE_PORT}",
        "reserved_bps": None,
        "burst_kb": None,
        "burst_ms": None,
        "paced": False,
        "port": BASELINE_PORT,
        "seconds": seconds,
        "goodput_bps": None,
        "ratio": None,
        "within_10pct": None,
    }
    try:
        row["goodput_bps"] = round(goodput_bps(tb.emu, src, dst, BASELINE_PORT, seconds))
    except _errors() as exc:
        row["error"] = f"transfer failed: {exc}"
    return row


def _reserved_transfer(
    tb: Any, case: Case, src: str, dst: str, port: int, seconds: float
) -> dict[str, Any]:
    """Reserve, transfer on the matched port, release; one row (with 'error' if it failed)."""
    from controller.client import ConflictError
    from mininet_scenarios.measure import goodput_bps

    burst_kb = None if case.burst_ms is None else round(case.rate_bps * case.burst_ms / 1e6)
    row: dict[str, Any] = {
        "case": "reservation",
        "label": case.label,
        "reserved_bps": case.rate_bps,
        "burst_kb": burst_kb,
        "burst_ms": case.burst_ms,
        "burst_default": case.burst_ms is None,
        "paced": case.paced,
        "port": port,
        "seconds": seconds,
        "goodput_bps": None,
        "ratio": None,
        "within_10pct": None,
    }
    client = tb.ctl.client
    try:
        res = client.reserve(
            src, dst, case.rate_bps, match={"proto": "tcp", "dst_port": port}, burst_kb=burst_kb
        )
    except ConflictError as exc:  # the scenario's path cannot carry this rate: not a failure
        row["skipped"] = f"admission refused: {exc.message}"
        return row
    except _errors() as exc:
        row["error"] = f"reserve failed: {exc}"
        return row
    row["burst_kb"] = res.burst_kb
    row["burst_ms"] = round(res.burst_kb * 1e6 / case.rate_bps, 1)
    try:
        pace = case.rate_bps if case.paced else None
        goodput = goodput_bps(tb.emu, src, dst, port, seconds, pace_bps=pace)
        ratio = goodput / case.rate_bps
        row.update(
            goodput_bps=round(goodput),
            ratio=round(ratio, 4),
            within_10pct=abs(ratio - 1) <= TOLERANCE,
        )
    except _errors() as exc:
        row["error"] = f"transfer failed: {exc}"
    try:
        client.release(res.id)
    except _errors() as exc:
        row.setdefault("error", f"release of reservation {res.id} failed: {exc}")
    return row


# ------------------------------------------------------------------------------ part 2: relocation


def _relocation_part(bars: Progress, moves: ExperimentRun, failures: list[str]) -> None:
    """Move `video` round the sites (home first): move i goes from the i-th site to the next.
    A resumed run starts with the instance at home: it is first put, unmeasured, where its
    move starts. A move that fails ends the part (where the host is then is unknown)."""
    from mininet_scenarios.testbed import testbed

    moves.track(bars, part="relocations")
    if not moves.pending():
        return
    try:
        with testbed(RELOCATION_SCENARIO) as tb:
            model = tb.emu.topo.model
            site_of = {s.switch: s.name for s in model.sites}
            home = site_of[model.attachment(INSTANCE).switch]
            names = [s.name for s in model.sites]
            order = names[names.index(home) :] + names[: names.index(home)]  # home site first
            where = [home]

            def run_one(spec: RunSpec, on_phase: Callable[[str], None]) -> dict[str, Any]:
                i = spec["move"]
                start, to = order[(i - 1) % len(order)], order[i % len(order)]
                if where[0] != start:
                    on_phase(f"to {start} first (unmeasured)")
                    first = _move(tb, where[0], start)
                    if "error" in first:
                        return {**_move_row(start, to), "error": f"to {start}: {first['error']}"}
                    where[0] = start
                on_phase(f"{INSTANCE}: {start} -> {to}")
                row = _move(tb, start, to)
                if "error" not in row:
                    where[0] = to
                return row

            moves.execute(run_one, label=move_label, stop=lambda row: "error" in row)
    except _errors() as exc:
        failures.append(f"relocation testbed ({RELOCATION_SCENARIO.name}): {exc}")


def _move_row(here: str, to: str) -> dict[str, Any]:
    return {
        "case": "relocation",
        "from": here,
        "to": to,
        "switch": None,
        "port": None,
        "switchover_ms": None,
        "flow_mods": None,
        "switches": None,
        "ping_loss_pct": None,
        "ping_ok": False,
    }


def _move(tb: Any, here: str, to: str) -> dict[str, Any]:
    """Re-plug the instance at site `to`, relocate it there, ping it from the UE."""
    model = tb.emu.topo.model
    switch = model.site(to).switch
    row = {**_move_row(here, to), "switch": switch}
    try:
        port = next_host_port(tb.ctl.client, model, INSTANCE, switch)
        row["port"] = port
        tb.emu.move_host(INSTANCE, switch, port, keep_old=False)
        view = tb.ctl.client.relocate(INSTANCE, to, port=port)
        loss = tb.emu.ping(UE, INSTANCE, count=3)
    except _errors() as exc:
        row["error"] = str(exc)
        return row
    row.update(
        switchover_ms=view.switchover_ms,
        flow_mods=view.flow_mods,
        switches=view.switches_touched,
        ping_loss_pct=loss,
        ping_ok=loss == 0,
    )
    return row


def next_host_port(client: Any, model: Any, host: str, switch: str) -> int:
    """The port the controller would give `host` on `switch` (its declared one there, else the
    one after every port in use), so Mininet can plug it in exactly there first."""
    declared = model.attachment(host)
    if declared.switch == switch:
        return int(declared.port)
    used = {i.port for i in client.instances() if i.switch == switch and i.name != host}
    used |= {ln.port_on(switch) for ln in model.links if switch in (ln.a, ln.b)}
    return max(used, default=0) + 1


# ------------------------------------------------------------------------------ summary


def summarize(rows: list[dict[str, Any]], failures: list[str]) -> dict[str, Any]:
    """Per rate the best burst/pacing; switch-over median/max; whether the goals were met."""
    measured = [r for r in rows if r["case"] == "reservation" and r["ratio"] is not None]
    per_rate = []
    for rate in sorted({r["reserved_bps"] for r in measured}):
        mine = [r for r in measured if r["reserved_bps"] == rate]
        best = min(mine, key=lambda r: abs(r["ratio"] - 1))
        default = {r["paced"]: r["ratio"] for r in mine if r["burst_default"]}
        per_rate.append(
            {
                "reserved_bps": rate,
                "best": {
                    k: best[k] for k in ("burst_ms", "burst_kb", "burst_default", "paced", "ratio")
                },
                "default_burst_ratio": {"unpaced": default.get(False), "paced": default.get(True)},
                "cases_within_10pct": sum(r["within_10pct"] for r in mine),
                "cases": len(mine),
                "met_by_best": bool(best["within_10pct"]),
                "met_by_default_burst": set(default) == {False, True}  # both measured
                and all(abs(v - 1) <= TOLERANCE for v in default.values()),
            }
        )
    moves = [r for r in rows if r["case"] == "relocation" and r["switchover_ms"] is not None]
    times = [r["switchover_ms"] for r in moves]
    baseline = next((r["goodput_bps"] for r in rows if r["case"] == "baseline"), None)
    goodput_met = bool(per_rate) and all(p["met_by_default_burst"] for p in per_rate)
    switchover_met = bool(times) and max(times) <= SWITCHOVER_GOAL_MS
    return {
        "baseline_goodput_bps": baseline,
        "goodput": {
            "goal": "goodput within ±10 % of the reserved rate, with the controller's default "
            "meter burst, paced or not, at every rate",
            "per_rate": per_rate,
            "skipped": [r["label"] for r in rows if "skipped" in r],
            "met": goodput_met,
            "met_by_best_setting": bool(per_rate) and all(p["met_by_best"] for p in per_rate),
        },
        "switchover": {
            "goal": f"every switch-over <= {SWITCHOVER_GOAL_MS:g} ms",
            "goal_ms": SWITCHOVER_GOAL_MS,
            "moves": len(moves),
            "median_ms": round(statistics.median(times), 3) if times else None,
            "max_ms": max(times) if times else None,
            "min_ms": min(times) if times else None,
            "ping_ok": sum(r["ping_ok"] for r in moves),
            "met": switchover_met,
        },
        "goals_met": goodput_met and switchover_met,
        "failures": failures,
        "completed": not failures,
    }


# ------------------------------------------------------------------------------ outputs


def _burst_name(burst_ms: float, default: bool) -> str:
    return f"{burst_ms:g} ms (default)" if default else f"{burst_ms:g} ms"


def _series(rows: list[dict[str, Any]]) -> dict[tuple[float, bool, bool], list[dict[str, Any]]]:
    """Measured reservation rows by (burst ms, default burst?, paced), each sorted by rate."""
    series: dict[tuple[float, bool, bool], list[dict[str, Any]]] = {}
    for r in rows:
        if r["case"] == "reservation" and r["ratio"] is not None:
            series.setdefault((r["burst_ms"], r["burst_default"], r["paced"]), []).append(r)
    for line in series.values():
        line.sort(key=lambda r: r["reserved_bps"])
    return dict(sorted(series.items()))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Goodput/reserved vs rate (unpaced, paced: one line per burst) and switch-over per move."""
    import matplotlib

    fig, (unpaced, paced, moves) = new_figure(ncols=3, width=5.0, height=4.6)
    series = _series(rows)
    bursts = sorted({key[0] for key in series})
    cmap = matplotlib.colormaps["viridis"]
    color = {b: cmap(0.92 * i / max(1, len(bursts) - 1)) for i, b in enumerate(bursts)}
    measured = [r for line in series.values() for r in line]
    rates = sorted({r["reserved_bps"] / MBIT for r in measured})
    top = max([1.3, *(r["ratio"] + 0.05 for r in measured)])
    for ax, is_paced in ((unpaced, False), (paced, True)):
        ax.axhspan(1 - TOLERANCE, 1 + TOLERANCE, color="tab:green", alpha=0.12)
        ax.axhline(1.0, color="tab:green", lw=0.8)
        for (burst, default, p), line in series.items():
            if p != is_paced:
                continue
            ax.plot(
                [r["reserved_bps"] / MBIT for r in line],
                [r["ratio"] for r in line],
                color=color[burst],
                marker="o",
                lw=2.6 if default else 1.4,
                label=_burst_name(burst, default),
            )
        if rates:
            ax.set_xscale("log")
            ax.set_xticks(rates, [f"{r:g}" for r in rates])
            ax.minorticks_off()
        ax.set_ylim(0, top)
        ax.set_xlabel("reserved rate (Mbit/s)")
        ax.set_title(f"sender {'paced at the reserved rate' if is_paced else 'not paced'}")
        ax.grid(alpha=0.3)
    unpaced.set_ylabel("TCP goodput / reserved rate (band: goal ±10 %)")
    handles, labels = unpaced.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncol=len(handles),
            fontsize=8,
            title="meter burst (ms of the reserved rate)",
            title_fontsize=8,
        )
    fig.suptitle("Reservations: OpenFlow meters under TCP  |  relocation switch-over")
    _plot_switchover(moves, rows)
    save_figure(fig, path)


def _plot_switchover(ax: Any, rows: list[dict[str, Any]]) -> None:
    moves = [r for r in rows if r["case"] == "relocation" and r["switchover_ms"] is not None]
    if moves:
        xs = list(range(1, len(moves) + 1))
        ys = [r["switchover_ms"] for r in moves]
        ax.bar(xs, ys, color=["tab:blue" if r["ping_ok"] else "tab:red" for r in moves])
        ax.set_xticks(xs, [f"{r['from']}→{r['to']}" for r in moves], rotation=45, ha="right")
        med = statistics.median(ys)
        ax.axhline(med, color="tab:gray", ls=":", label=f"median {med:.2f} ms")
    else:
        ax.text(0.5, 0.5, "no relocation measured", ha="center", transform=ax.transAxes)
    ax.axhline(
        SWITCHOVER_GOAL_MS, color="tab:red", ls="--", label=f"goal {SWITCHOVER_GOAL_MS:g} ms"
    )
    ax.set_ylabel("switch-over (ms)")
    ax.set_title(f"relocation of {INSTANCE}: first flow-mod → last barrier reply", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


Pair = tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]


def _pivot(rows: list[dict[str, Any]]) -> list[Pair]:
    """Reservation rows per rate and burst: (either row, unpaced row, paced row), in run order."""
    pairs: dict[tuple[Any, ...], dict[bool, dict[str, Any]]] = {}
    for r in rows:
        if r["case"] == "reservation":
            burst = None if r["burst_default"] else r["burst_kb"]
            pairs.setdefault((r["reserved_bps"], burst), {})[r["paced"]] = r
    return [(next(iter(p.values())), p.get(False), p.get(True)) for p in pairs.values()]


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["ratio"] is None:
        return "skipped" if "skipped" in row else "failed"
    mark = "✓" if row["within_10pct"] else "✗"
    return f"{row['ratio']:.3f} {mark} ({fmt_rate(row['goodput_bps'])})"


def _yes(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def _markdown(
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    command: str,
    started: str,
    duration: float,
    args: argparse.Namespace,
    plan: Plan,
) -> str:
    from mecmig.bench.report import host_facts

    host = host_facts()
    gp, so = summary["goodput"], summary["switchover"]
    rates = ", ".join(f"{r:g}" for r in plan.rates_mbit)
    bursts = ", ".join("default (300)" if b is None else f"{b}" for b in plan.bursts_ms)
    text = [
        "# Reservation benchmark: meters under TCP, and relocation switch-over\n",
        f"Produced by `{command}` (started {started}, took {duration:.0f} s) on Linux "
        f"{host['kernel']}, {host['cpu_count']} CPUs ({host['cpu_model']}), Open vSwitch "
        f"{host['ovs_version']} (userspace datapath).",
    ]
    if plan is QUICK:
        text.append("\n> `--quick` run: fewer cases and 2 s transfers; do not quote these numbers.")
    text += [
        "\n## What was run\n",
        f"- **Meters** on `{shown(args.scenario)}`: iperf3 TCP transfers of {plan.seconds:g} s "
        "from the first site's MEC host to the second's, on a port that a reservation matches "
        "(OpenFlow 1.3 meter at the path's first switch, drop band at the reserved rate). "
        f"Reserved rates {rates} Mbit/s x meter burst {bursts} ms of the rate x sender pacing "
        "off / on (iperf3 `--fq-rate` at the reserved rate). Each reservation is released after "
        "its transfer. Baseline, same hosts on a port no reservation matches: "
        f"{fmt_rate(summary['baseline_goodput_bps'])}.",
        f"- **Relocation** on `scenarios/three-sites.yaml`: `{INSTANCE}` is re-plugged at another "
        "site's switch (Mininet: new link first, old one removed), then `relocate`d through the "
        f"REST API; {plan.moves} moves round the sites. The controller times the switch-over from "
        f"its first flow-mod to the last barrier reply. Then `{UE}` pings `{INSTANCE}` (3 pings).",
        "\n## Goals\n",
        markdown_table(
            ["goal", "measured", "result"],
            [
                [gp["goal"], _ratios_text(gp["per_rate"]), _yes(gp["met"])],
                [
                    so["goal"],
                    f"median {so['median_ms']} ms, max {so['max_ms']} ms over {so['moves']} moves;"
                    f" ping ok {so['ping_ok']}/{so['moves']}",
                    _yes(so["met"]),
                ],
            ],
        ),
        "\n## Meters: goodput / reserved rate (✓ within ±10 %)\n",
        markdown_table(
            ["reserved", "meter burst", "unpaced", "paced"],
            [
                [fmt_rate(any_["reserved_bps"]), _burst_cell(any_), _cell(a), _cell(b)]
                for any_, a, b in _pivot(rows)
            ],
        ),
        "\nBest setting per rate (ratio closest to 1):\n",
        markdown_table(
            ["reserved", "best burst", "sender", "ratio", "cases within ±10 %"],
            [
                [
                    fmt_rate(p["reserved_bps"]),
                    _burst_cell(p["best"]),
                    "paced" if p["best"]["paced"] else "unpaced",
                    f"{p['best']['ratio']:.3f}",
                    f"{p['cases_within_10pct']}/{p['cases']}",
                ]
                for p in gp["per_rate"]
            ],
        ),
        "\n## Relocation switch-over\n",
        markdown_table(
            ["#", "from", "to", "new port", "switch-over (ms)", "flow-mods", "switches", "ping"],
            [
                [
                    i,
                    r["from"],
                    r["to"],
                    f"{r['switch']}:{r['port']}",
                    r["switchover_ms"],
                    r["flow_mods"],
                    ", ".join(r["switches"] or []),
                    "ok" if r["ping_ok"] else f"loss {r['ping_loss_pct']} %",
                ]
                for i, r in enumerate((r for r in rows if r["case"] == "relocation"), 1)
            ],
        ),
        "\n![goodput/reserved by burst and pacing; switch-over per move](reservation.png)\n",
    ]
    if summary["failures"]:
        text += ["## Failures\n", *(f"- {f}" for f in summary["failures"])]
    return "\n\n".join(block.strip("\n") for block in text) + "\n"


def _burst_cell(row: dict[str, Any]) -> str:
    if row["burst_ms"] is None:
        return "default"
    return _burst_name(row["burst_ms"], row["burst_default"])


def _ratios_text(per_rate: list[dict[str, Any]]) -> str:
    parts = []
    for p in per_rate:
        d = p["default_burst_ratio"]
        shown = "/".join("-" if d[k] is None else f"{d[k]:.2f}" for k in ("unpaced", "paced"))
        parts.append(f"{fmt_rate(p['reserved_bps'])}: {shown}")
    return "default burst, unpaced/paced: " + "; ".join(parts)


def _print_results(console: Console, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    table = Table(title="goodput / reserved rate (green: within ±10 %; goodputs in report.md)")
    for col in ("reserved", "meter burst", "unpaced", "paced"):
        table.add_column(col, justify="right" if col != "meter burst" else "left")

    def styled(row: dict[str, Any] | None) -> str:
        color = "green" if row and row["within_10pct"] else "red"
        return f"[{color}]{_cell(row).split(' (')[0]}[/{color}]"

    for any_, a, b in _pivot(rows):
        table.add_row(fmt_rate(any_["reserved_bps"]), _burst_cell(any_), styled(a), styled(b))
    console.print(table)
    gp, so = summary["goodput"], summary["switchover"]
    console.print(f"baseline (no reservation): {fmt_rate(summary['baseline_goodput_bps'])}")
    for p in gp["per_rate"]:
        best = p["best"]
        console.print(
            f"{fmt_rate(p['reserved_bps'])}: best {best['ratio']:.3f} with burst "
            f"{_burst_cell(best)}, {'paced' if best['paced'] else 'unpaced'}",
            highlight=False,
        )
    console.print(
        f"switch-over: median {so['median_ms']} ms, max {so['max_ms']} ms over {so['moves']} "
        f"moves; ping ok {so['ping_ok']}/{so['moves']}",
        highlight=False,
    )
    for name, goal in (("goodput", gp), ("switch-over", so)):
        mark = "[green]met[/green]" if goal["met"] else "[red]not met[/red]"
        console.print(f"goal {name}: {goal['goal']}: {mark}", highlight=False)


def _command_words(args: argparse.Namespace) -> list[str]:
    words = ["mecmig", "bench", "reservation"]
    if args.quick:
        words.append("--quick")
    if args.out.resolve() != DEFAULT_OUT:
        words += ["--out", str(args.out)]
    if args.scenario.resolve() != (ROOT / "scenarios" / "default.yaml"):
        words += ["--scenario", str(args.scenario)]
    return words
