"""`mecmig mobility`: the handovers of a scenario's moving UEs and their dwell times (pure: no
emulation, no root)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from topology.dwell import GRANULARITIES, Dwell, DwellStats, Strategy, analyse, stats
from topology.mobility_events import Handover, UEMobility, moving_ues, ue_mobility
from topology.mobility_paths import MotionLimitError
from topology.mobility_spec import MAX_TIME_S
from topology.mobility_trace import TraceError
from topology.scenario import ScenarioError, load_scenario

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_STRATEGIES = 16
err_console = Console(stderr=True, soft_wrap=True)


def _strategy(text: str) -> Strategy:
    try:
        return Strategy.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _until(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIME_S:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds, more than 0, at most {MAX_TIME_S:g}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "mobility",
        help="a scenario's UEs on its map: handovers, dwell times, viability",
        description="Move the scenario's UEs along their paths or traces on its map (no "
        "emulation), and print each change of serving cell (point of access), zone and site, "
        "then the dwell times (how long a UE stays where it arrives; seed 003 Table V) per "
        "point of access, zone and site: count, mean and minimum of the complete ones (open: "
        "still there at the end). With --strategy, the handovers each strategy fits, "
        "T_pre + T_down <= T_dwell. Exit codes: 0 ok, 2 bad command line or scenario.",
    )
    p.add_argument("scenario", type=Path, help="scenario YAML file with a map: and moving UEs")
    p.add_argument(
        "--until",
        type=_until,
        metavar="S",
        help="seconds to analyse (default: each UE's path or trace once; a loop: one round)",
    )
    p.add_argument(
        "--ue", action="append", default=[], metavar="NAME", help="only this UE (repeatable)"
    )
    p.add_argument(
        "--strategy",
        action="append",
        default=[],
        type=_strategy,
        metavar="NAME:T_PRE_MS:T_DOWN_MS",
        help=f"a migration strategy's pre-relocation time and downtime, e.g. precopy:1200:300 "
        f"(repeatable, at most {MAX_STRATEGIES})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead")


def mobility_command(args: argparse.Namespace, console: Console) -> int:
    strategies: list[Strategy] = args.strategy
    names = [s.name for s in strategies]
    if len(strategies) > MAX_STRATEGIES or len(set(names)) != len(names):
        return _usage(f"at most {MAX_STRATEGIES} strategies, each named once")
    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as exc:
        return _usage(str(exc), EXIT_FAILED)
    if sc.map is None:
        return _usage(f"{args.scenario}: the scenario has no map: (zones and cells)", EXIT_FAILED)
    moving = moving_ues(sc)
    unknown = [n for n in args.ue if n not in moving]
    if unknown:
        return _usage(f"{unknown[0]!r} is not a UE moving on the map (those are: {list(moving)})")
    try:
        ues = [ue_mobility(sc, n, args.until) for n in (args.ue or moving)]
    except (MotionLimitError, TraceError) as exc:
        return _usage(str(exc), EXIT_FAILED)
    if args.json:
        print(json.dumps(_report(sc.name, ues, strategies), indent=1), flush=True)
        return EXIT_OK
    _print(console, sc.name, ues, strategies)
    return EXIT_OK


def _usage(message: str, code: int = EXIT_USAGE) -> int:
    """`message` on stderr; exit 2 (a bad command line) or `code` (1: a bad scenario)."""
    err_console.print(f"mecmig mobility: {message}", highlight=False, markup=False)
    return code


# ------------------------------------------------------------------------------------ the report


def _report(name: str, ues: list[UEMobility], strategies: list[Strategy]) -> dict[str, Any]:
    everyone: dict[str, list[Dwell]] = {g: [] for g in GRANULARITIES}
    rows = []
    for m in ues:
        analysis = analyse(m.handovers, m.until, strategies)
        dwell = {}
        for g, (items, st) in analysis.items():
            everyone[g] += items
            dwell[g] = _stats_json(st) | {"dwells": [_dwell_json(d, strategies) for d in items]}
        initial = m.initial
        rows.append(
            {
                "ue": m.ue,
                "until_s": round(m.until, 3),
                "initial": {
                    "cell": initial.name if initial else None,
                    "zone": initial.zone if initial else None,
                    "site": initial.site if initial else None,
                },
                "handovers": [_handover_json(h) for h in m.handovers],
                "dwell": dwell,
            }
        )
    return {
        "scenario": name,
        "strategies": [
            {"name": s.name, "t_pre_ms": s.t_pre_ms, "t_down_ms": s.t_down_ms} for s in strategies
        ],
        "ues": rows,
        "all": {g: _stats_json(stats(items, strategies)) for g, items in everyone.items()},
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _stats_json(st: DwellStats) -> dict[str, Any]:
    return {
        "count": st.count,
        "open": st.open,
        "mean_s": _ms(st.mean_s),
        "min_s": _ms(st.min_s),
        "viable": {
            name: {"viable": ok, "of": of, "fraction": st.fraction(name)}
            for name, ok, of in st.viable
        },
    }


def _dwell_json(d: Dwell, strategies: list[Strategy]) -> dict[str, Any]:
    return {
        "target": d.target,
        "start_s": round(d.start_s, 3),
        "dwell_s": round(d.dwell_s, 3),
        "open": d.open,
        "viable": {s.name: None if d.open else s.fits(d.dwell_s) for s in strategies},
    }


def _handover_json(h: Handover) -> dict[str, Any]:
    return {
        "t_s": round(h.t_s, 3),
        **{k: getattr(h, k) for k in ("from_cell", "to_cell", "from_zone", "to_zone")},
        **{k: getattr(h, k) for k in ("from_site", "to_site")},
        "x": round(h.x, 2),
        "y": round(h.y, 2),
    }


def _print(console: Console, name: str, ues: list[UEMobility], strategies: list[Strategy]) -> None:
    spans = ", ".join(f"{m.ue} 0-{m.until:.1f} s" for m in ues)
    table = Table("t (s)", "UE", "cell", "zone", "site", box=box.SIMPLE_HEAD)
    table.title = f"{name}: handovers ({spans})"
    for m in ues:
        for h in m.handovers:
            table.add_row(
                f"{h.t_s:.3f}",
                h.ue,
                _change(h.from_cell, h.to_cell),
                _change(h.from_zone, h.to_zone) if h.from_zone != h.to_zone else "",
                _change(h.from_site, h.to_site) if h.from_site != h.to_site else "",
            )
    console.print(table)
    dwell = Table("UE", "per", "dwells", "mean s", "min s", "open", box=box.SIMPLE_HEAD)
    dwell.title = "dwell times (complete ones; open: still there at the end), share each fits"
    for s in strategies:
        dwell.add_column(s.name, justify="right")
    everyone: dict[str, list[Dwell]] = {g: [] for g in GRANULARITIES}
    for m in ues:
        for g, (items, st) in analyse(m.handovers, m.until, strategies).items():
            everyone[g] += items
            dwell.add_row(m.ue, g, *_stats_cells(st, strategies))
    if len(ues) > 1:
        for g, items in everyone.items():
            dwell.add_row("all", g, *_stats_cells(stats(items, strategies), strategies))
    console.print(dwell)
    for s in strategies:
        console.print(
            f"{s.name}: viable if T_pre {s.t_pre_ms:g} ms + T_down {s.t_down_ms:g} ms <= the dwell",
            highlight=False,
        )


def _change(old: str | None, new: str | None) -> str:
    return f"{old or '-'} -> {new or '-'}"


def _stats_cells(st: DwellStats, strategies: list[Strategy]) -> list[str]:
    cells = [str(st.count), _s(st.mean_s), _s(st.min_s), str(st.open)]
    for name, _, _ in st.viable:
        fraction = st.fraction(name)
        cells.append("-" if fraction is None else f"{fraction:.0%}")
    assert len(st.viable) == len(strategies)
    return cells


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
