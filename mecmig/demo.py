"""`make demo`: the whole system on one machine, for real.

The controller (os-ken) drives a Mininet network of userspace OVS switches built from the scenario;
every host reaches every other; then, if the scenario has a memory-workload instance, the site
agents start its container, a UE opens ONE TCP connection to it and probes it every 5 ms, and the
instance is live-migrated to another site and back (with a bandwidth reservation and the traffic
switch), while the probe measures what the user sees.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ground.units import fmt_bps, fmt_bytes
from mecmig.show import show_scenario
from migration.timeline import MigrationRecord
from topology.scenario import Scenario, load_scenario


def run_demo(console: Console, path: Path, strategies: tuple[str, ...]) -> int:
    """Run the demo on the scenario at `path`; 0 if everything worked."""
    from mininet_scenarios.emulation import EmulationError
    from mininet_scenarios.testbed import testbed

    sc = load_scenario(path)
    show_scenario(console, sc)
    target = _migratable(sc)
    started = time.monotonic()
    console.print("starting the controller and Mininet (userspace OVS)...")
    try:
        with testbed(path, instance_hosts=target is None) as tb:
            console.print(
                f"controller and {len(sc.sites) + len(sc.switches)} switches up in "
                f"{time.monotonic() - started:.1f} s (REST API: {tb.ctl.client.base_url}/v1)"
            )
            ok = _reachability(console, tb)
            if target is not None:
                ok &= _migrations(console, tb, path, sc, target, strategies)
    except EmulationError as exc:
        console.print(f"[red]cannot run the emulation[/red]: {exc}")
        return 3
    console.print(f"torn down; demo took {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


def _migratable(sc: Scenario) -> str | None:
    for inst in sc.instances:
        if "/data/memhog.py" in inst.command:
            return inst.name
    return None


def _reachability(console: Console, tb: Any) -> bool:
    with console.status("ping between every pair of hosts..."):
        losses = tb.emu.pingall()
    failed = sorted(pair for pair, loss in losses.items() if loss == 100)
    style = "green" if not failed else "red"
    console.print(
        f"pingall: {len(losses) - len(failed)}/{len(losses)} host pairs reachable", style=style
    )
    for a, b in failed:
        console.print(f"  unreachable: {a} -> {b}", style="red")
    return not failed


def _migrations(
    console: Console, tb: Any, path: Path, sc: Scenario, name: str, strategies: tuple[str, ...]
) -> bool:
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.emulation import EmulationError
    from mininet_scenarios.measure import wait_answering
    from orchestration.links import RestControllerLink
    from orchestration.orchestrator import Orchestrator
    from topology.world import agent_host

    inst = sc.instance(name)
    ue = sc.ues[0].name if sc.ues else agent_host(sc.sites[-1].name)
    others = [s.name for s in sc.sites if s.name != inst.site]
    if not others:
        console.print("only one site: nothing to migrate to")
        return True
    hops = [others[0], inst.site]
    ok = True
    with SiteAgents(tb.emu, path) as agents:
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        with console.status(f"starting {name} (runc container) at {inst.site}..."):
            orch.deploy(name)
            try:
                wait_answering(tb.emu, ue, str(inst.ip), inst.ports[0] if inst.ports else 7000)
            except EmulationError as exc:
                console.print(f"[red]{name} does not answer after deploy[/red]: {exc}")
                return False
        table = Table(
            "strategy",
            "route",
            "outcome",
            "client downtime",
            "frozen",
            "total",
            "on the wire",
            "same TCP conn.",
            "state kept",
            title=f"live migration of {name} ({fmt_bytes(inst.memory)}), seen from {ue}",
        )
        for i, strategy in enumerate(strategies):
            dest = hops[i % 2]
            source = orch.where(name) or "?"
            probe = _start_probe(tb, ue, str(inst.ip))
            with console.status(f"{strategy}: migrating {name} {source} -> {dest}..."):
                record = _migrate(orch, name, dest, strategy)
            result = _stop_probe(console, probe)
            kept = result.get("counter_monotonic") and result.get("fingerprint_stable")
            ok &= record.outcome.value == "done" and bool(kept)
            table.add_row(
                strategy,
                f"{source} -> {dest}",
                record.outcome.value,
                f"{result.get('downtime_ms', float('nan')):.0f} ms",
                f"{record.metrics.get('frozen_ms', 0):.0f} ms",
                f"{record.total_ms or 0:.0f} ms",
                fmt_bytes(record.bytes_transferred),
                "yes" if result.get("same_connection") else "no",
                "yes" if kept else "NO",
            )
            _phases(console, record)
        console.print(table)
        views = tb.ctl.client.reservations()
        console.print(
            f"reservations left in force: {len(views)}; link use now: "
            + ", ".join(
                f"{d.src}->{d.dst} {fmt_bps(d.reserved_bps)}"
                for link in tb.ctl.client.topology().links
                for d in link.directions
            )
        )
    return ok


def _migrate(orch: Any, name: str, dest: str, strategy: str) -> MigrationRecord:
    from migration.engine import MigrationError

    try:
        record: MigrationRecord = orch.migrate(name, dest, strategy=strategy, budget_ms=1000)
    except MigrationError as exc:
        record = exc.record
    return record


def _phases(console: Console, record: MigrationRecord) -> None:
    parts = [f"{p.name} {p.duration_ms or 0:.0f}" for p in record.phases]
    console.print(
        f"  {record.id} ({record.strategy}, {record.mode}) phases [ms]: " + ", ".join(parts),
        highlight=False,
        style="dim",
    )


def _start_probe(tb: Any, host: str, ip: str) -> Any:
    from mininet_scenarios.measure import Probe

    probe = Probe(tb.emu, host, ip, 7000, interval_ms=5)
    time.sleep(1.0)
    return probe


def _stop_probe(console: Console, probe: Any) -> dict[str, Any]:
    from mininet_scenarios.emulation import EmulationError

    time.sleep(1.0)
    try:
        result: dict[str, Any] = probe.stop(timeout=30)
    except EmulationError as exc:
        console.print(f"[red]the probe gave no result[/red]: {exc}", highlight=False)
        return {}
    finally:
        probe.close()
    return result
