"""The `mecmig agent` and `mecmig migrate` commands."""

from __future__ import annotations

import argparse
import json
import shlex
import socket
from pathlib import Path

from rich.console import Console

from agent.files import allowed_dirs
from agent.server import (
    AgentSetupError,
    build_agent,
    check_listen,
    listening_sockets,
    parse_listen,
    serve_agent,
)
from ground.paths import agent_socket, site_root
from ground.token import TokenFileError, read_token_file
from ground.units import fmt_bytes, parse_rate
from mecmig.site_access import AccessError, agent_sites, controller_client
from migration.engine import MigrationError
from migration.site import SiteError
from migration.timeline import MigrationRecord, PhaseRecord
from orchestration.links import RestControllerLink
from orchestration.orchestrator import CommandRefused, Orchestrator, OrchestratorError
from topology.scenario import Scenario, load_scenario

EXIT_USAGE = 2  # as mecmig.cli's: the command line (or what it names) is wrong
err_console = Console(stderr=True, soft_wrap=True)


def _where_to_serve(
    args: argparse.Namespace, sc: Scenario, site: str
) -> tuple[Path | None, tuple[str, int] | None]:
    """The agent's Unix socket and TCP address: --uds/--listen, else the scenario's `agent:`
    for the site, else the default Unix socket. ValueError if the scenario's cannot be served."""
    tcp = parse_listen(args.listen) if args.listen else None
    uds: Path | None = args.uds
    if tcp is not None or uds is not None:
        return uds, tcp
    endpoint = sc.site(site).agent
    if endpoint is None:
        return agent_socket(sc.name, site), None
    if endpoint.startswith("unix:"):
        return Path(endpoint[len("unix:") :]), None
    hostport = endpoint.removeprefix("http://")
    try:
        return None, parse_listen(hostport)
    except ValueError as exc:
        raise ValueError(
            f"the scenario's agent {endpoint} for site {site} is not an address this agent can "
            f"listen on ({exc}): pass --listen IP:PORT"
        ) from exc


def agent_command(args: argparse.Namespace) -> int:
    """Serve a site's agent; exit 2 (with what to pass instead) for a setup it refuses."""
    sc = load_scenario(args.scenario)
    try:
        site = sc.site(args.site)
    except KeyError:
        known = ", ".join(s.name for s in sc.sites)
        err_console.print(f"no site {args.site!r} in {args.scenario} (sites: {known})")
        return EXIT_USAGE
    address = args.address or str(site.agent_ip)
    sockets: list[socket.socket] = []
    try:
        token = read_token_file(args.token_file) if args.token_file else None
        uds, tcp = _where_to_serve(args, sc, site.name)
        check_listen(tcp, token)
        # bound before the agent touches its containers: a second agent for the site stops here
        sockets = listening_sockets(uds, tcp)
        agent = build_agent(
            sc,
            site.name,
            args.root or site_root(sc.name, site.name),
            address,
            args.root_netns_pid,
            files_from=allowed_dirs(args.files_from),
        )
    except (TokenFileError, AgentSetupError, ValueError) as exc:
        for s in sockets:
            s.close()
        if sockets and uds is not None:
            uds.unlink(missing_ok=True)
        err_console.print(f"mecmig agent: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    serve_agent(agent, uds, tcp, token, sockets=sockets)
    return 0


def migrate_command(args: argparse.Namespace, console: Console) -> int:
    sc = load_scenario(args.scenario)

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

    try:
        command = None if args.start_command is None else shlex.split(args.start_command)
    except ValueError as exc:  # an unclosed quote
        err_console.print(f"mecmig migrate: --command: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    try:
        sites = agent_sites(args, sc)
        client = controller_client(args)
    except AccessError as exc:
        err_console.print(f"mecmig migrate: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    orch = Orchestrator(sc, sites, RestControllerLink(client) if client else None)
    try:
        record = orch.migrate(
            args.instance,
            args.to,
            strategy=args.strategy,
            budget_ms=args.budget_ms,
            rate_bps=parse_rate(args.rate),
            listener=show,
            hold=args.hold,
            command=command,
        )
    except CommandRefused as exc:  # nothing moved: the command line is what is wrong
        err_console.print(f"mecmig migrate: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    except MigrationError as exc:
        record = exc.record
        console.print(f"[red]{exc}[/red]", highlight=False)
    except (OrchestratorError, SiteError) as exc:
        # e.g. SitesUnreachable: which site's agent, at which endpoint, and why
        console.print("[red]cannot migrate[/red]: ", end="", highlight=False)
        console.print(str(exc), highlight=False, markup=False)
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
    if m.get("frozen_profile_ms"):
        from migration.profile import largest_parts

        pages = f"; pages at {m['pages_mbps']:g} MB/s" if m.get("pages_mbps") else ""
        console.print(
            f"  frozen window: {largest_parts(m['frozen_profile_ms'])}{pages}", highlight=False
        )
    if "image_bytes_sent" in m:
        sent = int(m["image_bytes_sent"])
        console.print(
            f"  image {str(m.get('image', ''))[:19]}: "
            + (f"{fmt_bytes(sent)} sent to {record.destination} (it had not got it)"
               if sent else f"not sent ({record.destination} had it)"),
            highlight=False,
        )  # fmt: skip
    return 0 if record.outcome.value == "done" else 1
