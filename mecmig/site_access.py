"""How a command reaches the site agents and the controller, from the options of
mecmig.instances_args: one client per site (--agent SITE=URL, else the scenario's `agent:`, else
the local Unix socket; --agent-token-file) and the controller's client (--controller,
--controller-token-file or MECMIG_CONTROLLER_TOKEN_FILE; none with --no-controller).

Tests replace `site_clients` and `MigrationClient` here to run the commands over fakes.
"""

from __future__ import annotations

import argparse

from ground.token import TokenFileError, read_token_file
from migration.site import Site
from orchestration.agent_client import DEFAULT_TIMEOUT_S
from orchestration.client import MigrationClient
from orchestration.sites import EndpointError, parse_agent_flags, site_clients
from topology.scenario import Scenario

CONTROLLER_TIMEOUT_S = 10.0


class AccessError(Exception):
    """An option naming an endpoint or a token file that cannot be used (a command-line error:
    the message says which, and why)."""


def agent_sites(
    args: argparse.Namespace, sc: Scenario, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Site]:
    """One client per site of `sc`; a request unanswered within `timeout` s: unreachable."""
    try:
        endpoints = parse_agent_flags(args.agent, sc)
        token = read_token_file(args.agent_token_file) if args.agent_token_file else None
    except (EndpointError, TokenFileError) as exc:
        raise AccessError(str(exc)) from exc
    return dict(site_clients(sc, endpoints, token, timeout))


def controller_client(
    args: argparse.Namespace, timeout: float = CONTROLLER_TIMEOUT_S
) -> MigrationClient | None:
    """The controller's client, or None with --no-controller."""
    if args.no_controller:
        return None
    given = args.controller_token_file
    try:
        token = read_token_file(given) if given else None
        return MigrationClient(args.controller, timeout=timeout, token=token)
    except TokenFileError as exc:
        raise AccessError(str(exc)) from exc
