"""One source for every default and for the strategy list: the CLI, the REST model, the
orchestrator and the engine read `ground.defaults` and `migration.strategies` (issue 9: the
budget had four defaults, the rate two, and the strategy list was spelt out four times)."""

from __future__ import annotations

import argparse
import inspect

from ground import defaults
from ground.units import parse_rate
from mecmig.cli import _parser
from migration.engine import Plan
from migration.strategies import HOLD_MODES, STRATEGIES, STRATEGY_NAMES
from orchestration.api_models import MigrationRequest
from orchestration.orchestrator import Orchestrator


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = _parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise AssertionError("no subcommands")


def _option(p: argparse.ArgumentParser, dest: str) -> argparse.Action:
    return next(a for a in p._actions if a.dest == dest)


def test_migrate_cli_defaults_are_the_ones() -> None:
    p = _subparser("migrate")
    assert _option(p, "budget_ms").default == defaults.DOWNTIME_BUDGET_MS
    assert parse_rate(_option(p, "rate").default) == defaults.MIGRATION_RATE_BPS
    assert _option(p, "strategy").default == defaults.DEFAULT_STRATEGY
    assert list(_option(p, "strategy").choices or ()) == list(STRATEGY_NAMES)
    assert _option(p, "hold").default == defaults.HOLD_MODE
    assert tuple(_option(p, "hold").choices or ()) == HOLD_MODES
    assert _option(p, "controller").default == defaults.CONTROLLER_URL


def test_controller_cli_defaults_are_the_ones() -> None:
    p = _subparser("controller")
    assert _option(p, "rest_host").default == defaults.REST_HOST
    assert _option(p, "rest_port").default == defaults.REST_PORT
    assert _option(p, "of_port").default == defaults.OPENFLOW_PORT


def test_rest_model_defaults_are_the_ones() -> None:
    req = MigrationRequest(instance="svc", to="mec2")
    assert req.budget_ms == defaults.DOWNTIME_BUDGET_MS
    assert req.rate == defaults.MIGRATION_RATE_BPS
    assert req.strategy.value == defaults.DEFAULT_STRATEGY
    assert req.hold.value == defaults.HOLD_MODE
    assert [s.value for s in type(req.strategy)] == list(STRATEGY_NAMES)


def test_orchestrator_and_engine_defaults_are_the_ones() -> None:
    for fn in (Orchestrator.migrate, Orchestrator.plan_migration):
        params = inspect.signature(fn).parameters
        assert params["budget_ms"].default == defaults.DOWNTIME_BUDGET_MS
        assert params["rate_bps"].default == defaults.MIGRATION_RATE_BPS
        assert params["strategy"].default == defaults.DEFAULT_STRATEGY
        assert params["hold"].default == defaults.HOLD_MODE
    fields = Plan.__dataclass_fields__
    assert fields["budget_ms"].default == defaults.DOWNTIME_BUDGET_MS
    assert fields["rate_bps"].default == defaults.MIGRATION_RATE_BPS
    assert fields["hold"].default == defaults.HOLD_MODE


def test_the_registry_describes_every_strategy() -> None:
    assert STRATEGY_NAMES == ("cold", "precopy", "postcopy", "hybrid", "restart", "filesystem")
    for s in STRATEGIES.values():
        assert s.steps[0] == "prepare" and s.steps[-1] in ("restore", "start_destination")
        assert ("lazy_dump" in s.steps) == s.lazy
        assert ("rounds" in s.steps) == (s.rounds.value != "none")
        assert s.summary and s.mode
    assert defaults.DEFAULT_STRATEGY in STRATEGIES and defaults.HOLD_MODE in HOLD_MODES


def test_the_bench_reads_the_registry() -> None:
    from mecmig.bench.migration_cases import ENGINE_STRATEGIES, PEER_STRATEGIES
    from mecmig.bench.migration_cases import STRATEGIES as BENCH

    assert tuple(n for n, s in STRATEGIES.items() if s.keeps_memory) == ENGINE_STRATEGIES
    ours = (*ENGINE_STRATEGIES, "baseline")
    assert BENCH in (ours, (*ours, *PEER_STRATEGIES))  # the peer's where podman is installed
    assert "restart" not in ENGINE_STRATEGIES  # its memory does not arrive: nothing to compare
