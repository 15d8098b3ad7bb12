"""The data of `/v1/migrations` (pydantic): what a caller asks for and the record it gets back.

The strategy list and every default come from the one registry and the one defaults module, so the
REST API, the CLI and the engine cannot disagree.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from controller.api_models import Rate
from controller.limits import MAX_RATE_BPS
from ground.defaults import DEFAULT_STRATEGY, DOWNTIME_BUDGET_MS, HOLD_MODE, MIGRATION_RATE_BPS
from migration.site import MAX_COMMAND_WORDS, MAX_WORD_CHARS, WORD_PATTERN
from migration.strategies import HOLD_MODES, STRATEGY_NAMES
from orchestration.chain_record import PATTERNS
from topology.scenario import NAME_PATTERN as SCENARIO_NAME_PATTERN

StrategyName = Enum("StrategyName", {name: name for name in STRATEGY_NAMES}, type=str)  # type: ignore[misc]
HoldMode = Enum("HoldMode", {name: name for name in HOLD_MODES}, type=str)  # type: ignore[misc]
# instances and sites are the scenario's, named by its rule (1-9 lowercase letters and digits)
MAX_NAME_LENGTH = 9
Name = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=SCENARIO_NAME_PATTERN)
]
MAX_BUDGET_MS = 3_600_000.0
# a migration id (`mig-20261130-213455-3fa2c1b80e`), bounded loosely: an unknown one is a 404
MAX_MIGRATION_ID_LENGTH = 64
MIGRATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# one word of a manual start command (strategy filesystem): no NUL, execve takes none
CommandWord = Annotated[str, Field(min_length=1, max_length=MAX_WORD_CHARS, pattern=WORD_PATTERN)]


class MigrationRequest(BaseModel):
    """Live-migrate `instance` to site `to`."""

    # strict: what the document calls invalid is refused (`"500"` is no budget, `true` no rate)
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        json_schema_extra={
            "examples": [
                {"instance": "counter", "to": "mec2", "strategy": "cold"},
                {"instance": "counter", "to": "mec1", "budget_ms": 500, "rate": "100Mbit"},
                {
                    "instance": "hello",
                    "to": "mec2",
                    "strategy": "filesystem",
                    "command": ["/usr/bin/python3", "/data/httpstream.py", "--port", "8080"],
                },
            ]
        },
    )

    instance: Name
    to: Name = Field(description="destination site")
    strategy: StrategyName = Field(default=StrategyName(DEFAULT_STRATEGY), strict=False)
    budget_ms: float = Field(
        default=DOWNTIME_BUDGET_MS,
        gt=0,
        le=MAX_BUDGET_MS,
        allow_inf_nan=False,
        description="downtime budget",
    )
    rate: Rate = Field(
        default=MIGRATION_RATE_BPS,
        le=MAX_RATE_BPS,
        description="reservation for the copy rounds (bit/s, or '200Mbit')",
    )
    hold: HoldMode = Field(
        default=HoldMode(HOLD_MODE),
        strict=False,
        description="hold the instance's traffic at the controller while it is frozen",
    )
    command: list[CommandWord] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_COMMAND_WORDS,
        description="strategy filesystem only (seed 003's SFP, the configuration stays behind): "
        "the command (argv) the destination starts, the paper's manual CMD; without it, the "
        "image's command, and a migration of an instance whose image names none is refused "
        "(422). Any other strategy keeps the instance's own command: 422 if given",
    )


class MigrationView(BaseModel):
    """A migration's record: phases with monotonic times (ms since it started), bytes, outcome."""

    model_config = ConfigDict(extra="ignore")

    id: str
    instance: str
    source: str
    destination: str
    strategy: str
    mode: str
    outcome: str
    error: str | None = None
    point_of_no_return_ms: float | None = None
    total_ms: float | None = None
    bytes_transferred: int = 0
    phases: list[dict[str, Any]]
    metrics: dict[str, Any]


PatternName = Enum("PatternName", {p: p for p in PATTERNS}, type=str)  # type: ignore[misc]


class ChainMigrationRequest(BaseModel):
    """Move every function of `chain` to site `to`, with one of seed 000's patterns."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        json_schema_extra={
            "examples": [
                {"chain": "pair", "to": "mec2", "pattern": "wait-for-me"},
                {"chain": "triple", "to": "mec1", "pattern": "round-robin", "strategy": "cold"},
            ]
        },
    )

    chain: Name
    to: Name = Field(description="destination site")
    pattern: PatternName = Field(
        default=PatternName("wait-for-me"),
        strict=False,
        description="async: each function unsupervised, in parallel; wait-for-me: every step "
        "for all at once, one shared freeze; round-robin: every step for one function after "
        "the other",
    )
    strategy: StrategyName = Field(default=StrategyName(DEFAULT_STRATEGY), strict=False)
    budget_ms: float = Field(
        default=DOWNTIME_BUDGET_MS,
        gt=0,
        le=MAX_BUDGET_MS,
        allow_inf_nan=False,
        description="downtime budget of each function",
    )
    rate: Rate = Field(
        default=MIGRATION_RATE_BPS,
        le=MAX_RATE_BPS,
        description="reservation for each function's copy rounds (bit/s, or '200Mbit')",
    )
    hold: HoldMode = Field(default=HoldMode(HOLD_MODE), strict=False)
    network_aware: bool = Field(
        default=False,
        description="reserve bandwidth per function's migration (admission against the "
        "links' capacity; the final iteration sized to fit the budget); false: the copies "
        "share the links best effort, as seed 000's patterns without its network awareness",
    )


class ChainMigrationView(BaseModel):
    """A chain migration's record: the chain's phases (its one switch), each function's
    migration record on the same clock, and the chain's figures (`metrics`: chain_frozen_ms,
    function_frozen_ms, freeze_spread_ms, switchover_ms, bytes, total_ms)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    chain: str
    functions: list[str]
    destination: str
    pattern: str
    strategy: str
    network_aware: bool
    outcome: str
    error: str | None = None
    point_of_no_return_ms: float | None = None
    total_ms: float | None = None
    bytes_transferred: int = 0
    phases: list[dict[str, Any]]
    members: dict[str, MigrationView]
    metrics: dict[str, Any]
