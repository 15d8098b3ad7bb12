"""`make demo`: the default scenario, built for real in Mininet with userspace OVS.

Until the controller lands, the switches run in OVS's standalone (learning) mode, which is loop-free
only on tree topologies; the demo refuses a meshed scenario instead of flooding it.
"""

from __future__ import annotations

import time

import networkx as nx
from rich.console import Console
from rich.table import Table

from mecmig.show import show_scenario
from topology.scenario import Scenario
from topology.world import agent_host, topology_from_scenario

HTTP_PORT = 8080


def run_demo(console: Console, sc: Scenario) -> int:
    """Build `sc`, prove every host reaches every other and HTTP flows UE -> video; 0 if all did."""
    from mininet_scenarios.emulation import EmulationError, emulate

    if not nx.is_tree(topology_from_scenario(sc).graph):
        console.print(
            f"[red]scenario {sc.name} has a loop[/red]: without the controller the switches "
            "are learning switches and would flood it. Use a tree scenario "
            "(scenarios/default.yaml)."
        )
        return 1
    show_scenario(console, sc)
    started = time.monotonic()
    try:
        with (
            console.status("starting Mininet (userspace OVS)..."),
            emulate(sc, fail_mode="standalone") as emu,
        ):
            console.print(f"emulation up in {time.monotonic() - started:.2f} s")
            with console.status("ping between every pair of hosts..."):
                losses = emu.pingall()
            failed = {pair: loss for pair, loss in losses.items() if loss == 100}
            console.print(
                f"pingall: {len(losses) - len(failed)}/{len(losses)} host pairs reachable",
                style="green" if not failed else "red",
            )
            for (a, b), _ in sorted(failed.items()):
                console.print(f"  unreachable: {a} -> {b}", style="red")
            http_ok = _http_demo(console, emu, sc)
    except EmulationError as exc:
        console.print(f"[red]cannot run the emulation[/red]: {exc}")
        return 3
    console.print(f"torn down; demo took {time.monotonic() - started:.1f} s")
    return 0 if not failed and http_ok else 1


def _http_demo(console: Console, emu: object, sc: Scenario) -> bool:
    """Serve HTTP from each chain's last function and fetch it from the chain's UE (real TCP)."""
    table = Table("chain", "client", "server", "HTTP", "time", title="TCP through the emulation")
    ok = True
    for chain in sc.chains:
        server = emu.host(chain.functions[-1])  # type: ignore[attr-defined]
        pid = server.cmd(f"python3 -m http.server {HTTP_PORT} >/dev/null 2>&1 & echo $!").strip()
        try:
            # the UE, and every MEC host (whose requests cross the core links)
            for client in (chain.ue, *(agent_host(s.name) for s in sc.sites)):
                code, seconds = _fetch(emu.host(client), server.IP())  # type: ignore[attr-defined]
                ok &= code == "200"
                table.add_row(chain.name, client, chain.functions[-1], code, f"{seconds} s")
        finally:
            server.cmd(f"kill {pid}")
    console.print(table)
    return ok


def _fetch(client: object, ip: str) -> tuple[str, str]:
    out = ""
    for _ in range(20):  # the server needs a moment to bind
        out = client.cmd(  # type: ignore[attr-defined]
            f"curl -s -m 2 -o /dev/null -w '%{{http_code}} %{{time_total}}' http://{ip}:{HTTP_PORT}/"
        ).strip()
        if out.startswith("200"):
            break
        time.sleep(0.1)
    code, _, seconds = out.partition(" ")
    return code or "-", seconds or "-"
