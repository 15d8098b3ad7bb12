"""From a scenario's chain to a `ChainMigration`: every function checked and planned before
anything of the chain changes."""

from __future__ import annotations

from ground.defaults import DEFAULT_STRATEGY, DOWNTIME_BUDGET_MS, HOLD_MODE, MIGRATION_RATE_BPS
from migration.network import NoNetwork
from migration.timeline import MigrationRecord, PhaseRecord
from orchestration.chain_migration import ChainListener, ChainMigration
from orchestration.chain_record import ChainRecord, Pattern
from orchestration.ids import new_migration_id
from orchestration.orchestrator import NotServing, Orchestrator, UnknownName


def plan_chain_migration(
    orch: Orchestrator,
    chain: str,
    to: str,
    *,
    pattern: str = Pattern.WAIT_FOR_ME.value,
    strategy: str = DEFAULT_STRATEGY,
    budget_ms: float = DOWNTIME_BUDGET_MS,
    rate_bps: int = MIGRATION_RATE_BPS,
    network_aware: bool = False,
    hold: str = HOLD_MODE,
    listener: ChainListener | None = None,
    migration_id: str | None = None,
    final_bandwidth_bps: int | None = None,
) -> ChainMigration:
    """A migration of every function of `chain` to site `to`, ready to `run()`. Raises
    OrchestratorError (nothing changed) if the chain, the site, the pattern or the strategy is
    unknown, or a function does not run or runs at `to` already. `network_aware=False`: the
    functions' copies reserve no bandwidth.

    `final_bandwidth_bps`: the bandwidth of each function's final (frozen) iteration, seed 000's
    limit (Tables I and II): the rounds run under a reservation of `rate_bps`, then each
    function's reservation becomes that bandwidth for the final copy, or, with network
    awareness, what that copy needs to fit the budget, at most that bandwidth."""
    try:
        spec = orch.sc.chain(chain)
    except KeyError:
        known = ", ".join(c.name for c in orch.sc.chains) or "none"
        raise UnknownName(f"no chain called {chain!r} (chains: {known})") from None
    try:
        kind = Pattern(pattern)
    except ValueError:
        known = ", ".join(p.value for p in Pattern)
        raise UnknownName(f"unknown pattern {pattern!r} (known: {known})") from None
    if orch.network is None and len(spec.functions) > 1:
        raise NotServing("a chain's steering needs the controller (none is configured)")
    chain_id = migration_id or new_migration_id()
    holder: list[ChainRecord] = []

    def member_events(event: str, record: MigrationRecord, phase: PhaseRecord | None) -> None:
        if listener is not None and holder:
            listener(event, holder[0], record.instance, phase)

    migrations = [
        orch.plan_migration(
            function,
            to,
            strategy=strategy,
            budget_ms=budget_ms,
            rate_bps=rate_bps,
            listener=member_events,
            hold=hold,
            migration_id=f"{chain_id}.{i}",
            reserve=network_aware or final_bandwidth_bps is not None,
            fit_budget=network_aware,
            final_rate_bps=final_bandwidth_bps,
        )
        for i, function in enumerate(spec.functions, start=1)
    ]
    cm = ChainMigration(
        chain,
        migrations,
        kind,
        orch.network or NoNetwork(),
        migration_id=chain_id,
        network_aware=network_aware,
        listener=listener,
    )
    holder.append(cm.record)
    return cm
