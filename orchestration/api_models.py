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
from migration.strategies import HOLD_MODES, STRATEGY_NAMES

StrategyName = Enum("StrategyName", {name: name for name in STRATEGY_NAMES}, type=str)  # type: ignore[misc]
HoldMode = Enum("HoldMode", {name: name for name in HOLD_MODES}, type=str)  # type: ignore[misc]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
MAX_BUDGET_MS = 3_600_000.0


class MigrationRequest(BaseModel):
    """Live-migrate `instance` to site `to`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance: Name
    to: Name = Field(description="destination site")
    strategy: StrategyName = Field(default=StrategyName(DEFAULT_STRATEGY))
    budget_ms: float = Field(
        default=DOWNTIME_BUDGET_MS, gt=0, le=MAX_BUDGET_MS, description="downtime budget"
    )
    rate: Rate = Field(
        default=MIGRATION_RATE_BPS,
        le=MAX_RATE_BPS,
        description="reservation for the copy rounds (bit/s, or '200Mbit')",
    )
    hold: HoldMode = Field(
        default=HoldMode(HOLD_MODE),
        description="hold the instance's traffic at the controller while it is frozen",
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
