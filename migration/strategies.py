"""The migration strategies, as data: what each one does, step by step, and how it behaves.

The engine's executor (`migration.engine.Migration.run`) walks a strategy's `steps`; the CLI's
choices, the REST model and the benchmarks list `STRATEGIES`. A new strategy is one entry here
(and, if it needs one, a new step on `Migration`).

Steps, in the words of the phase records:
- `prepare`: lock and plug the destination, reserve bandwidth for the migration's traffic;
- `rounds`: pre-copy rounds while the service runs (what they copy: `Rounds`), then the stop
  rule and the final reservation boost;
- `freeze_dump` / `lazy_dump` / `stop_source`: the freeze (a final dump; a dump without memory
  pages; or the end of the process, whose state is its files);
- `transfer`, `switch`: the copy, then the traffic to the destination's port;
- `restore` / `start_destination`: the service runs at the destination. **The point of no
  return** is passed when one of these succeeds.

Seed 003's three state levels (§2, Table I) are strategies here (`LEVELS`), each with its two
phases, a bulk copy while the service serves and the delta at the freeze:
- SFP, files only: `filesystem`. The destination starts afresh from the files without the
  instance's configuration (command, environment, working directory, user): only what its image
  gives, or a command supplied with the request (the paper's manual CMD; migration.fresh_start);
- FCCP, files and configuration (and the volume): `restart`;
- FullSP, the full state (memory, registers, sockets) by CRIU: `precopy` (also `cold`,
  `postcopy`, `hybrid`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Rounds(Enum):
    """What pre-copy rounds copy before the freeze."""

    NONE = "none"
    MEMORY = "memory"  # memory (pre-dumps, else full dumps left running) and files
    MEMORY_IF_TRACKED = "memory-if-tracked"  # memory pre-dumps with dirty tracking, else files
    FILES = "files"  # /data and /volume only


@dataclass(frozen=True)
class Strategy:
    """One way to move an instance (see the module docstring for the steps)."""

    name: str
    steps: tuple[str, ...]
    mode: str  # what runs, as the record says, where the kernel tracks no dirty memory
    predump_mode: str  # ... and where it does (CRIU pre-dumps chained by parent images)
    lazy: bool  # memory pages follow the restore (CRIU lazy pages)
    rounds: Rounds
    hold_at_freeze: bool  # the source's CRIU may ask for the hold once it has frozen the service
    hold_before_freeze: bool  # under `--hold auto`, the engine holds when CRIU cannot
    reservation_from_memory: bool  # size the reservation from the service's memory
    summary: str
    keeps_memory: bool = True  # the service's memory state arrives (restart: its files only)
    # the instance's configuration (command, env, workdir, user) runs at the destination;
    # False: a FreshStart (the image's, or a manual command) replaces it
    keeps_config: bool = True
    # the final dump's pages go to the destination while CRIU dumps (a page server there):
    # dump and copy overlap, only the rest of the images is copied after it
    pages_ahead: bool = False

    @property
    def may_predump(self) -> bool:
        return self.rounds in (Rounds.MEMORY, Rounds.MEMORY_IF_TRACKED)

    def mode_for(self, predumps: bool) -> str:
        return self.predump_mode if predumps else self.mode


_DUMP_STEPS = ("prepare", "freeze_dump", "transfer", "switch", "restore")
_LAZY_STEPS = ("prepare", "lazy_dump", "transfer", "switch", "restore")

# seed 003's FCCP: files and configuration
_RESTART = Strategy(
    name="restart",
    steps=("prepare", "rounds", "stop_source", "transfer", "switch", "start_destination"),
    mode="filesystem-state",
    predump_mode="filesystem-state",
    lazy=False,
    rounds=Rounds.FILES,
    hold_at_freeze=False,
    hold_before_freeze=True,
    reservation_from_memory=False,
    summary="files and configuration (seed 003's FCCP): stop, copy, start afresh",
    keeps_memory=False,
)

# "auto" holds from CRIU's freeze on where the source agent can (agent.hold_script): that costs
# the service no serving time. Where the engine must hold before the dump instead (~90 ms before
# CRIU freezes: runc's start), only the strategies whose restored process has all its memory gain
# from it (measured: cold at a 12 s freeze, +1.2 s without a hold, +3 ms with); a post-copy
# process first faults its pages in.
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            name="cold",
            steps=_DUMP_STEPS,
            mode="stop-and-copy",
            predump_mode="stop-and-copy",
            lazy=False,
            rounds=Rounds.NONE,
            hold_at_freeze=True,
            hold_before_freeze=True,
            reservation_from_memory=True,
            summary="stop-and-copy: final dump (its pages straight to the destination), "
            "the rest copied, restore",
            pages_ahead=True,
        ),
        Strategy(
            name="precopy",
            steps=("prepare", "rounds", *_DUMP_STEPS[1:]),
            mode="full-dump-delta",
            predump_mode="predump",
            lazy=False,
            rounds=Rounds.MEMORY,
            hold_at_freeze=True,
            hold_before_freeze=True,
            reservation_from_memory=False,
            summary="copy rounds while it serves, then a final dump of what changed",
        ),
        Strategy(
            name="postcopy",
            steps=_LAZY_STEPS,
            mode="lazy-pages",
            predump_mode="lazy-pages",
            lazy=True,
            rounds=Rounds.NONE,
            hold_at_freeze=True,
            hold_before_freeze=False,
            reservation_from_memory=True,
            summary="restore at once, memory pages follow on demand (CRIU lazy pages)",
        ),
        Strategy(
            name="hybrid",
            steps=("prepare", "rounds", *_LAZY_STEPS[1:]),
            mode="data-delta+lazy-pages",
            predump_mode="predump+lazy-pages",
            lazy=True,
            rounds=Rounds.MEMORY_IF_TRACKED,
            hold_at_freeze=True,
            hold_before_freeze=False,
            reservation_from_memory=True,
            summary="pre-copy rounds, then post-copy for the rest of the memory",
        ),
        _RESTART,
        # the same two phases, without the configuration
        replace(
            _RESTART,
            name="filesystem",
            mode="filesystem-only",
            predump_mode="filesystem-only",
            summary="files only, not the configuration (seed 003's SFP): stop, copy, start "
            "the image's command or the one given (--command)",
            keeps_config=False,
        ),
    )
}
# seed 003's state levels and the strategy that is each (the benchmark's `level` column)
LEVELS: dict[str, str] = {"sfp": "filesystem", "fccp": "restart", "fullsp": "precopy"}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)
HOLD_MODES = ("auto", "always", "never")
# the steps after which the destination serves: the point of no return
SERVING_STEPS = ("restore", "start_destination")


class UnknownStrategy(ValueError):
    """A strategy name that is not in the registry."""


def strategy(name: str) -> Strategy:
    """The strategy called `name`, or UnknownStrategy naming the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategy(
            f"unknown strategy {name!r} (known: {', '.join(STRATEGY_NAMES)})"
        ) from None
