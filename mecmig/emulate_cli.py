"""`mecmig emulate`: a scenario's network in Mininet, driven by a running `mecmig controller`, with
one site agent in each MEC host and the scenario's instances started at their home sites; it
stays up until Ctrl-C, so that `mecmig migrate` (from another shell) has something to move."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from controller.client import ControllerClient, ControllerClientError
from migration.site import SiteError
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator, OrchestratorError
from topology.mobility_events import moving_ues
from topology.scenario import load_scenario

EXIT_OK, EXIT_FAILED, EXIT_ENVIRONMENT = 0, 1, 3
SWITCHES_TIMEOUT_S = 30.0


def emulate_command(args: argparse.Namespace, console: Console) -> int:
    """Run the emulation until SIGINT/SIGTERM (or `--duration`); see the module docstring."""
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.emulation import EmulationError, emulate
    from mininet_scenarios.ue_motion import FollowLocation, UEMover

    path: Path = args.scenario
    sc = load_scenario(path)
    client = ControllerClient(args.controller, timeout=5.0)
    try:
        health = client.health()
    except ControllerClientError as exc:
        console.print(
            f"[red]no controller at {args.controller}[/red] ({exc}): start it first, e.g. "
            f"`mecmig controller --scenario {path}`",
            highlight=False,
        )
        return EXIT_ENVIRONMENT
    if health.scenario != sc.name:
        console.print(
            f"[red]the controller at {args.controller} runs scenario {health.scenario!r}, "
            f"not {sc.name!r}[/red]",
            highlight=False,
        )
        return EXIT_FAILED
    instances = sc.instances if args.deploy is None else [sc.instance(n) for n in args.deploy]
    stop = _stop_event(args.duration)
    try:
        with emulate(sc, controller=("127.0.0.1", args.of_port), instance_hosts=False) as emu:
            with console.status("waiting for every switch to connect to the controller..."):
                _wait_switches(client, health.switches_expected)
            agents = SiteAgents(emu, path, token_file=args.token_file)
            try:
                with console.status("starting a site agent in each MEC host..."):
                    agents.start()
                orch = Orchestrator(sc, agents.clients, RestControllerLink(client))
                for inst in instances:
                    with console.status(f"starting {inst.name} at {inst.site}..."):
                        orch.deploy(inst.name)
                _summary(console, sc.name, agents.endpoints, orch, [i.name for i in instances])
                _hint(console, path, agents.endpoints, args.token_file)
                moving = moving_ues(sc)
                following = (
                    FollowLocation(UEMover(emu, client), moving)
                    if moving
                    else contextlib.nullcontext()
                )
                with following:
                    if moving:
                        console.print(
                            f"UEs {', '.join(moving)} are re-plugged as the controller's location "
                            "service moves them: e.g. POST /v1/mobility/playback "
                            '{"time_scale": 2}, and POST /v1/follow-me {"ue": ...}',
                            highlight=False,
                        )
                    stop.wait()
                console.print("stopping: instances, agents, then the emulated network")
            finally:
                agents.stop()
    except (EmulationError, SiteError, OrchestratorError, ControllerClientError) as exc:
        console.print(f"[red]emulation failed[/red]: {exc}", highlight=False)
        return EXIT_FAILED
    return EXIT_OK


def _stop_event(duration: float | None) -> threading.Event:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    return stop


def _wait_switches(client: ControllerClient, expected: int) -> None:
    deadline = time.monotonic() + SWITCHES_TIMEOUT_S
    while (connected := client.health().switches_connected) < expected:
        if time.monotonic() > deadline:
            raise ControllerClientError(
                f"only {connected} of {expected} switches connected after {SWITCHES_TIMEOUT_S:g} s"
                " (is the controller's OpenFlow port --of-port?)"
            )
        time.sleep(0.2)


def _summary(
    console: Console,
    name: str,
    endpoints: dict[str, str],
    orch: Orchestrator,
    deployed: list[str],
) -> None:
    table = Table("site", "agent", "instances running", title=f"emulation of {name} is up")
    for site, endpoint in endpoints.items():
        here = [i for i in deployed if orch.where(i) == site]
        table.add_row(site, endpoint, ", ".join(here) or "-")
    console.print(table)


def _hint(
    console: Console,
    path: Path,
    endpoints: dict[str, str],
    token_file: Path | None,
) -> None:
    flags = ""
    if token_file is not None:
        flags = " " + " ".join(f"--agent {s}={url}" for s, url in endpoints.items())
        flags += f" --agent-token-file {token_file}"
    console.print(
        f"from another shell: mecmig migrate INSTANCE --to SITE --scenario {path}{flags}\n"
        "Ctrl-C here stops everything.",
        highlight=False,
    )
