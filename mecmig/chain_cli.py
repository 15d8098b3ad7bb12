"""`mecmig migrate-chain`: a whole service function chain to another site, with progress."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from ground.units import fmt_bytes, parse_rate
from mecmig.site_access import AccessError, agent_sites, controller_client
from migration.site import SiteError
from migration.timeline import PhaseRecord
from orchestration.chain_migration import ChainMigrationError
from orchestration.chain_plan import plan_chain_migration
from orchestration.chain_record import ChainRecord
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator, OrchestratorError, SitesUnreachable
from topology.scenario import load_scenario

EXIT_USAGE = 2
EXIT_ENV = 3
err_console = Console(stderr=True, soft_wrap=True)


def migrate_chain_command(args: argparse.Namespace, console: Console) -> int:
    sc = load_scenario(args.scenario)

    def show(event: str, rec: ChainRecord, function: str | None, phase: PhaseRecord | None) -> None:
        who = function or "chain"
        if event == "phase_done" and phase is not None:
            extra = f" {fmt_bytes(phase.bytes)}" if phase.bytes else ""
            if phase.name == "switch":
                extra = f" switch-over {phase.detail.get('switchover_ms', 0):.1f} ms"
            console.print(
                f"  {rec.id} {who:<9} {phase.name:<12} {phase.duration_ms or 0:8.1f} ms{extra}",
                highlight=False,
            )
        elif event == "phase_failed" and phase is not None:
            console.print(
                f"  {rec.id} {who:<9} {phase.name:<12} FAILED: {phase.detail.get('error')}",
                style="red",
                highlight=False,
            )
        elif event == "point_of_no_return" and function is None:
            console.print(f"  {rec.id} chain     point of no return passed", style="dim")

    try:
        sites = agent_sites(args, sc)
        client = controller_client(args)
    except AccessError as exc:
        err_console.print(f"mecmig migrate-chain: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    if client is None:
        err_console.print(
            "mecmig migrate-chain: a chain's steering needs the controller (drop --no-controller)"
        )
        return EXIT_USAGE
    orch = Orchestrator(sc, sites, RestControllerLink(client))
    try:
        cm = plan_chain_migration(
            orch,
            args.chain,
            args.to,
            pattern=args.pattern,
            strategy=args.strategy,
            budget_ms=args.budget_ms,
            rate_bps=parse_rate(args.rate),
            network_aware=args.network_aware,
            hold=args.hold,
            listener=show,
        )
        record = cm.run()
    except ChainMigrationError as exc:
        record = exc.record
        console.print(f"[red]{exc}[/red]", highlight=False)
    except SitesUnreachable as exc:
        console.print("[red]cannot migrate[/red]: ", end="", highlight=False)
        console.print(str(exc), highlight=False, markup=False)
        return EXIT_ENV if exc.everywhere else 1
    except (OrchestratorError, SiteError, ValueError) as exc:
        console.print("[red]cannot migrate[/red]: ", end="", highlight=False)
        console.print(str(exc), highlight=False, markup=False)
        return 1
    if args.json:
        args.json.write_text(json.dumps(record.to_dict(), indent=1))
    m = record.metrics
    frozen = ", ".join(f"{f} {ms:.0f}" for f, ms in m.get("function_frozen_ms", {}).items())
    console.print(
        f"{record.id} chain {record.chain} -> {record.destination} ({record.pattern}, "
        f"{record.strategy}{', network-aware' if record.network_aware else ''}): "
        f"{record.outcome.value}, total {record.total_ms or 0:.0f} ms, chain frozen "
        f"{m.get('chain_frozen_ms', 0):.0f} ms (freezes {m.get('freeze_spread_ms', 0):.1f} ms "
        f"apart; per function: {frozen or '-'} ms), switch-over "
        f"{m.get('switchover_ms', 0):.1f} ms, {fmt_bytes(record.bytes_transferred)} on the wire",
        highlight=False,
    )
    return 0 if record.outcome.value == "done" else 1
