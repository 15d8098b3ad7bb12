"""How `mecmig status` shows the instances: a table (where each runs, its status, copies at other
sites, its last migration) with the agents that did not answer named under it, or JSON in the
shape of the controller's `GET /v1/status`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestration.instance_models import InstanceStatusView
from orchestration.placement import InstanceStatus, LastMigration

OUTCOME_STYLES = {"done": "green", "rolled_back": "yellow", "failed": "red", "running": "cyan"}
STATUS_STYLES = {"running": "green", "absent": "dim", "unknown": "yellow"}


def status_json(
    scenario: str, rows: list[InstanceStatus], known: bool, source: str
) -> dict[str, Any]:
    """`{"scenario", "instances": [as GET /v1/status], "migrations": {"known", "source"}}`;
    `last_migration` is null both when there was none and when unknown: `migrations.known`
    tells which."""
    return {
        "scenario": scenario,
        "instances": [InstanceStatusView.of(r).model_dump(mode="json") for r in rows],
        "migrations": {"known": known, "source": source},
    }


def print_status(
    console: Console, scenario: str, rows: list[InstanceStatus], known: bool, source: str
) -> None:
    """The table, then the agents that could not say (once each), then where the last
    migrations come from."""
    table = Table(
        "instance",
        "site",
        "status",
        "last migration",
        "outcome",
        "strategy",
        "frozen",
        title=f"instances of {scenario}",
    )
    for row in rows:
        table.add_row(row.name, row.site or "-", _status_cell(row), *_migration_cells(row, known))
    console.print(table)
    unreachable: dict[str, str] = {}
    for row in rows:
        for site, why in row.placement.errors.items():
            unreachable.setdefault(site, why)
    for site, why in unreachable.items():
        console.print(Text(f"{site} could not say: {why}", style="yellow"))
    console.print(Text(f"last migrations: {source}", style="dim"))


def _status_cell(row: InstanceStatus) -> Text:
    placed = row.placement
    text = Text(row.status, style=STATUS_STYLES.get(row.status, "yellow"))
    if len(placed.running) > 1:
        text = Text(f"running at {', '.join(placed.running)}: two copies", style="bold red")
    others = {s: st for s, st in placed.present.items() if st != "running"}
    if others and placed.running:
        text.append(" (also " + ", ".join(f"{st} at {s}" for s, st in others.items()) + ")")
    elif len(others) > 1:
        text.append(" (" + ", ".join(f"{st} at {s}" for s, st in others.items()) + ")")
    elif others:
        text.append(f" at {next(iter(others))}")
    return text


def _migration_cells(row: InstanceStatus, known: bool) -> tuple[str | Text, ...]:
    last: LastMigration | None = row.last_migration
    if last is None:  # "?": no site kept one, and the controller was not asked
        return ("-" if known else "?", "", "", "")
    frozen = f"{last.frozen_ms:.0f} ms" if last.frozen_ms is not None else "-"
    outcome = Text(last.outcome, style=OUTCOME_STYLES.get(last.outcome, ""))
    route = f"{last.id} ({last.source} -> {last.destination})"
    return (route, outcome, last.strategy, frozen)
