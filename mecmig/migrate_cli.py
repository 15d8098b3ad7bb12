"""The `mecmig agent` and `mecmig migrate` commands."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from agent.server import build_agent, serve_agent
from controller.client import ControllerClient
from ground.paths import agent_socket, site_root
from ground.units import fmt_bytes, parse_rate
from migration.engine import MigrationError
from migration.network import ControllerLink
from migration.site import SiteError
from migration.timeline import MigrationRecord, PhaseRecord
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator, OrchestratorError
from orchestration.sites import site_clients
from topology.scenario import load_scenario


def agent_command(args: argparse.Namespace) -> int:
    sc = load_scenario(args.scenario)
    site = sc.site(args.site)
    address = args.address or str(site.agent_ip)
    agent = build_agent(
        sc, site.name, args.root or site_root(sc.name, site.name), address, args.root_netns_pid
    )
    tcp = None
    if args.listen:
        host, _, port = args.listen.rpartition(":")
        tcp = (host, int(port))
    uds = args.uds or (agent_socket(sc.name, site.name) if tcp is None else None)
    serve_agent(agent, uds, tcp)
    return 0


def migrate_command(args: argparse.Namespace, console: Console) -> int:
    sc = load_scenario(args.scenario)
    network: ControllerLink | None = None
    if not args.no_controller:
        network = RestControllerLink(ControllerClient(args.controller))

    def show(event: str, rec: MigrationRecord, phase: PhaseRecord | None) -> None:
        if event == "phase_done" and phase is not None:
            extra = f" {fmt_bytes(phase.bytes)}" if phase.bytes else ""
            console.print(
                f"  {rec.id} {phase.name:<12} {phase.duration_ms or 0:8.1f} ms{extra}",
                highlight=False,
            )
        elif event == "phase_failed" and phase is not None:
            console.print(
                f"  {rec.id} {phase.name:<12} FAILED: {phase.detail.get('error')}",
                style="red",
                highlight=False,
            )
        elif event == "point_of_no_return":
            console.print(f"  {rec.id} point of no return passed", style="dim")

    orch = Orchestrator(sc, site_clients(sc), network)
    try:
        record = orch.migrate(
            args.instance,
            args.to,
            strategy=args.strategy,
            budget_ms=args.budget_ms,
            rate_bps=parse_rate(args.rate),
            listener=show,
            hold=args.hold,
        )
    except MigrationError as exc:
        record = exc.record
        console.print(f"[red]{exc}[/red]", highlight=False)
    except (OrchestratorError, SiteError) as exc:
        console.print(f"[red]cannot migrate[/red]: {exc}", highlight=False)
        return 1
    if args.json:
        args.json.write_text(json.dumps(record.to_dict(), indent=1))
    m = record.metrics
    console.print(
        f"{record.id} {record.instance} {record.source} -> {record.destination}: "
        f"{record.outcome.value}, total {record.total_ms or 0:.0f} ms, frozen "
        f"{m.get('frozen_ms', 0):.0f} ms, {fmt_bytes(record.bytes_transferred)} on the wire "
        f"({record.strategy}, {record.mode})",
        highlight=False,
    )
    return 0 if record.outcome.value == "done" else 1
