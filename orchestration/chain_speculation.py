"""A service function chain moved speculatively (issue 12, "Chains follow as chains"): the
`speculation.Movable` over a `ChainMigration`, so that

    Speculation(ChainMove(plan_chain_migration(orch, chain, target, pattern="wait-for-me")))

warms the whole chain ahead of the UE's handover and commits it at the handover:

- warming: every function's prepare, then pre-copy rounds per the chain's pattern (async and
  wait-for-me: one round for every function at once, a barrier after each; round-robin: one
  function after the other, never two at once) until every function's stop rule ended its rounds;
- ready: a warm round for every function, the same way, every `warm_interval_s`;
- commit: the final freezes (wait-for-me: all at the same moment), the copies, the chain's one
  switch (`relocate_many`), the restores, the chain's one point of no return, the clean-up;
- cancel (or a failure before the point of no return): the chain's rollback: every function
  serves at its source (none went through its final freeze), nothing left at the destination,
  every reservation released. The chain's record says `rolled_back`.

The speculation's summary goes into the chain record's metrics (`metrics["speculation"]`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migration.timeline import Outcome
from orchestration.chain_migration import ChainMigration
from orchestration.chain_record import ChainRecord


class ChainMove:
    """A chain's migration, step by step (see the module docstring)."""

    def __init__(self, chain: ChainMigration) -> None:
        self.cm = chain

    @property
    def record(self) -> ChainRecord:
        return self.cm.record

    @property
    def name(self) -> str:
        return self.cm.record.chain

    @property
    def source(self) -> str:
        """Where the chain runs before the move (its first function's site)."""
        return self.cm.ms[0].plan.source.name

    @property
    def destination(self) -> str:
        return self.cm.record.destination

    @property
    def has_rounds(self) -> bool:
        return self.cm.has_rounds

    @property
    def past_point_of_no_return(self) -> bool:
        return self.cm.past_point_of_no_return

    def begin(self) -> None:
        self.cm.begin()

    def prepare(self) -> None:
        self.cm.prepare()

    def iterate_once(self) -> bool:
        return self.cm.iterate_once()

    def warm_round(self) -> None:
        self.cm.warm_round()

    def finish(self, warmed: bool, serving: Callable[[], None]) -> None:
        self.cm.finish(warmed, serving)

    def abandon(self, exc: BaseException) -> bool:
        self.cm.abandon(exc)
        return self.cm.record.outcome is Outcome.ROLLED_BACK

    def metrics(self) -> dict[str, Any]:
        return self.cm.record.metrics

    def rounds_dump_s(self) -> float:
        return sum(r.dump_s for m in self.cm.ms for r in m.rounds)

    def now_ms(self) -> float:
        return self.cm.now_ms()
