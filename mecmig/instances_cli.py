"""`mecmig deploy`, `mecmig status`, `mecmig logs` and `mecmig stop` (their options:
mecmig.instances_args): the scenario's instances through the sites' agents, reached as
`mecmig migrate` reaches them (mecmig.site_access).

`status` asks each agent with a short timeout (an agent that does not answer is named, and not
asked again for the next instance); the last migrations come from the controller's
`/v1/migrations`: what was started through its REST API since it started.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from controller.client import ControllerClientError
from mecmig.instances_render import print_status, status_json
from mecmig.site_access import AccessError, agent_sites, controller_client
from migration.site import Site, SiteError
from orchestration.agent_client import DEFAULT_TIMEOUT_S
from orchestration.client import MigrationClient
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator, OrchestratorError, SitesUnreachable
from orchestration.placement import LastMigration, StopReport, last_migrations
from topology.scenario import Scenario, load_scenario

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3
NO_AGENT = (
    "no site agent answers: start them (`mecmig emulate`, or `mecmig agent` at each site) or "
    "name them (--agent SITE=URL, --agent-token-file)"
)
STATUS_TIMEOUT_S = 10.0  # per agent: a status is quick, and one that hangs is as good as down
err_console = Console(stderr=True, soft_wrap=True)


def instance_command(args: argparse.Namespace, console: Console) -> int:
    """Run `mecmig deploy`, `status` or `stop` as `args.command` says."""
    sc = load_scenario(args.scenario)
    timeout = STATUS_TIMEOUT_S if args.command == "status" else DEFAULT_TIMEOUT_S
    try:
        sites = agent_sites(args, sc, timeout)
        client = controller_client(args) if args.command in ("deploy", "status") else None
    except AccessError as exc:
        err_console.print(f"mecmig {args.command}: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    if args.command == "status":
        return _status(console, Orchestrator(sc, sites), client, args.json)
    if args.command == "logs":
        return _logs(console, Orchestrator(sc, sites), args.instance, args.lines)
    names: list[str] = args.instances or [i.name for i in sc.instances]
    unknown = [n for n in names if n not in {i.name for i in sc.instances}]
    if unknown:
        known = ", ".join(i.name for i in sc.instances)
        _error(f"no instance {', '.join(unknown)} in scenario {sc.name} (instances: {known})")
        return EXIT_FAILED
    if args.command == "stop":
        return _stop(console, Orchestrator(sc, sites), names)
    return _deploy(console, sc, sites, client, names, args.site)


def _error(message: str) -> None:
    err_console.print(message, style="red", highlight=False, markup=False)


# ------------------------------------------------------------------------------ deploy


def _deploy(
    console: Console,
    sc: Scenario,
    sites: dict[str, Site],
    client: MigrationClient | None,
    names: list[str],
    site: str | None,
) -> int:
    if site is not None and site not in sites:
        _error(f"no site {site} in scenario {sc.name} (sites: {', '.join(sites)})")
        return EXIT_FAILED
    if client is not None:
        code = _check_controller(client, sc)
        if code != EXIT_OK:
            return code
    orch = Orchestrator(sc, sites, RestControllerLink(client) if client else None)
    failed = 0
    for name in names:
        where = site or sc.instance(name).site
        t0 = time.monotonic()
        try:
            with console.status(f"starting {name} at {where}..."):
                orch.deploy(name, site)
        except SitesUnreachable as exc:
            _error(f"{name}: not started: {exc}")
            if exc.everywhere:
                _error(NO_AGENT)
                return EXIT_ENVIRONMENT
            failed += 1
        except (OrchestratorError, SiteError) as exc:
            _error(f"{name}: not started: {exc}")
            failed += 1
        except ControllerClientError as exc:  # it runs; the controller did not move its traffic
            _error(
                f"{name}: started at {where}, but the controller did not point its traffic "
                f"there: {exc}"
            )
            failed += 1
        else:
            console.print(f"{name}: started at {where} ({time.monotonic() - t0:.1f} s)")
    return EXIT_FAILED if failed else EXIT_OK


def _check_controller(client: MigrationClient, sc: Scenario) -> int:
    """EXIT_OK if the controller answers and runs `sc`; else what to exit with (said why)."""
    try:
        health = client.health()
    except ControllerClientError as exc:
        _error(f"{exc}: start it (`mecmig controller --scenario FILE`), or --no-controller")
        return EXIT_ENVIRONMENT
    if health.scenario != sc.name:
        _error(
            f"the controller at {client.base_url} runs scenario {health.scenario!r}, "
            f"not {sc.name!r}"
        )
        return EXIT_FAILED
    return EXIT_OK


# ------------------------------------------------------------------------------ status


def _status(
    console: Console, orch: Orchestrator, client: MigrationClient | None, as_json: bool
) -> int:
    last, source = _last_migrations(client)
    with console.status("asking the sites' agents..."):
        rows = orch.status(last)
    if as_json:
        console.print_json(data=status_json(orch.sc.name, rows, last is not None, source))
    else:
        print_status(console, orch.sc.name, rows, last is not None, source)
    if orch.sites and rows and all(not r.placement.at for r in rows):
        _error(NO_AGENT)
        return EXIT_ENVIRONMENT
    return EXIT_OK


def _last_migrations(
    client: MigrationClient | None,
) -> tuple[dict[str, LastMigration] | None, str]:
    """The controller's last migration per instance (None: unknown) and where they come from
    (or why they are unknown)."""
    sites = "the sites where the instances run (each keeps its last migration)"
    if client is None:
        return None, f"{sites}; the controller not asked (--no-controller)"
    try:
        records = client.migrations()
    except ControllerClientError as exc:
        return None, f"{sites}; the controller at {client.base_url} did not say: {exc}"
    return last_migrations(records), f"{sites} and the controller at {client.base_url}"


# ------------------------------------------------------------------------------ logs


def _logs(console: Console, orch: Orchestrator, instance: str, lines: int) -> int:
    try:
        site, said = orch.logs(instance, lines)
    except SitesUnreachable as exc:
        _error(str(exc))
        return EXIT_ENVIRONMENT if exc.everywhere else EXIT_FAILED
    except (OrchestratorError, SiteError) as exc:
        _error(str(exc))
        return EXIT_FAILED
    err_console.print(f"{instance} at {site}: its last {len(said)} lines", highlight=False)
    for line in said:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return EXIT_OK


# ------------------------------------------------------------------------------ stop


def _stop(console: Console, orch: Orchestrator, names: list[str]) -> int:
    code = EXIT_OK
    for name in names:
        with console.status(f"stopping {name} at every site..."):
            report = orch.stop(name)
        _print_stop(console, report)
        if orch.sites and len(report.unreachable) == len(orch.sites):
            _error(NO_AGENT)
            return EXIT_ENVIRONMENT
        if not report.complete:
            code = EXIT_FAILED
    return code


def _print_stop(console: Console, report: StopReport) -> None:
    name = report.instance
    if report.removed:
        where = ", ".join(f"{site} (was {status})" for site, status in report.removed.items())
        console.print(f"{name}: removed at {where}", highlight=False)
    elif report.complete:
        console.print(f"{name}: at no site, nothing to remove", highlight=False)
    for site, why in {**report.failed, **report.unreachable}.items():
        _error(f"{name}: may still be at {site}: {why}")
