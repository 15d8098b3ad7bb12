"""The command lines of `mecmig deploy`, `mecmig status` and `mecmig stop`, and the options every
command that reaches the site agents and the controller takes (`mecmig migrate` too).

Kept apart from the commands (mecmig.instances_cli) so that building the parser imports nothing
heavy: `mecmig --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ground import defaults

INSTANCE_COMMANDS = ("deploy", "status", "logs", "stop")


def add_site_options(p: argparse.ArgumentParser, default_scenario: Path) -> None:
    """--scenario, --agent SITE=URL (repeatable) and --agent-token-file."""
    p.add_argument(
        "--scenario",
        type=Path,
        default=default_scenario,
        metavar="FILE",
        help="the scenario (default: %(default)s)",
    )
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="SITE=URL",
        help="where SITE's agent answers: http://HOST:PORT or unix:/path/to.sock (repeatable; "
        "default: the scenario's agent: for the site, else the local Unix socket)",
    )
    p.add_argument(
        "--agent-token-file",
        type=Path,
        metavar="PATH",
        help="the agents' shared token (a file of mode 600), sent to every agent",
    )


def add_controller_options(p: argparse.ArgumentParser, without: str) -> None:
    """--controller URL, --controller-token-file, --no-controller (`without`: what that skips)."""
    p.add_argument(
        "--controller", default=defaults.CONTROLLER_URL, help="controller REST URL (%(default)s)"
    )
    p.add_argument("--no-controller", action="store_true", help=without)
    p.add_argument(
        "--controller-token-file",
        type=Path,
        metavar="PATH",
        help="the controller's token (a file of mode 600), for a controller started with "
        "--token-file (default: the file MECMIG_CONTROLLER_TOKEN_FILE names, if set)",
    )


def add_instance_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], default_scenario: Path
) -> None:
    """`mecmig deploy`, `mecmig status`, `mecmig stop`."""
    p = sub.add_parser(
        "deploy",
        help="start instances of the scenario at their sites",
        description="Start each INSTANCE (default: every instance of the scenario) as a runc "
        "container through its site's agent, at --site or else at the instance's site in the "
        "scenario, and point its traffic there through the controller. An instance that runs "
        "already, or that a site holds a copy of (stopped, left by a failed start or "
        "migration), is refused: `mecmig stop` removes it first. So is one whose agents cannot "
        "all be asked (a copy could run there). A service that does not start is reported "
        "with what its agent said. Exit 0 all started, 1 one was not (or an unknown name), 2 "
        "bad command line, 3 no agent or no controller answers.",
    )
    p.add_argument("instances", nargs="*", metavar="INSTANCE", help="(default: all)")
    p.add_argument(
        "--site", help="start them at this site (default: each at its site in the scenario)"
    )
    add_site_options(p, default_scenario)
    add_controller_options(p, "no controller: the traffic is not pointed at the new place")

    p = sub.add_parser(
        "status",
        help="where each instance runs, its status and its last migration",
        description="Ask every site's agent about every instance of the scenario and print a "
        "table: where it runs, its status (running; else what a site holds of it, e.g. stopped; "
        "unknown when an agent that does not answer might hold it; absent), copies at other "
        "sites, and its last migration (id, outcome, strategy, frozen time) as the "
        "controller's /v1/migrations records it: migrations started through the controller's "
        "REST API since it started; those of `mecmig migrate` are not recorded there, and "
        "without a controller the column says unknown. Agents that do not answer are named. "
        "Exit 0, 2 bad command line, 3 no agent answers.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (as GET /v1/status) instead")
    add_site_options(p, default_scenario)
    add_controller_options(p, "do not ask the controller for the last migrations")

    p = sub.add_parser(
        "logs",
        help="the last lines an instance wrote, read where it runs now",
        description="Print the last lines INSTANCE wrote on its stdout and stderr, read from "
        "its site's agent at the site where it runs now (its log moves with it when it "
        "migrates; a site keeps 1 MiB of it plus one older MiB). Servers that log to files of "
        "their own (nginx's /var/log/nginx) keep them in their state directories. Exit 0, 1 an "
        "unknown name or it runs nowhere, 2 bad command line, 3 no agent answers.",
    )
    p.add_argument("instance", metavar="INSTANCE")
    p.add_argument(
        "-n", "--lines", type=int, default=100, choices=range(1, 10_001), metavar="N",
        help="how many of its last lines (1-10000, default 100)",
    )  # fmt: skip
    add_site_options(p, default_scenario)

    p = sub.add_parser(
        "stop",
        help="stop instances and remove them from every site",
        description="Stop each INSTANCE and remove it, with whatever a failed start or "
        "migration left of it, at every site (each agent's destroy); print what was removed "
        "where. Exit 0 done (also when it was nowhere), 1 a site could not remove it or be "
        "asked (it may still be there), or an unknown name; 2 bad command line; 3 no agent "
        "answers.",
    )
    p.add_argument("instances", nargs="+", metavar="INSTANCE")
    add_site_options(p, default_scenario)
