"""`/v1/follow-me`: a moving UE's services follow it (orchestration.follow_service), by
speculative migration ahead of each handover (issue 12).

- `POST /v1/follow-me {"ue", "services"?, "strategy"?, "predictor"?, "budget_ms"?, "pattern"?}`
  → 201 and the state: services (default: the UE's `follow:`) start pre-copy towards the site
  the UE is predicted to reach (its known path, or dead reckoning), commit at the handover,
  cancel if it turns away. 404: unknown UE, instance or chain; 409: the UE is followed already,
  does not move on the map, nothing follows it, a service runs nowhere or follows another UE;
  422: invalid. Nothing changes on a refusal.
- `GET /v1/follow-me`, `GET /v1/follow-me/{ue}`: each followed UE: where its services run, the
  speculation moving each, the last actions (start, commit, cancel) with their results.
- `DELETE /v1/follow-me/{ue}`: stop following; what speculates is cancelled.

The handovers come from the location service (`POST /v1/ues/{name}/access-point`, or its
playback `POST /v1/mobility/playback`), and its clock gives the mobility's time.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from controller.api_models import Conflict
from controller.rest import API_PREFIX, ERRORS
from ground.defaults import DEFAULT_STRATEGY, DOWNTIME_BUDGET_MS
from orchestration.api_models import MAX_BUDGET_MS, Name, PatternName, StrategyName
from orchestration.follow_service import MAX_HISTORY, FollowConflict, FollowService, FollowState
from orchestration.service import UNAVAILABLE, api_error
from topology.scenario import MAX_FOLLOWED, NAME_PATTERN

UEName = Annotated[str, Path(min_length=1, max_length=9, pattern=NAME_PATTERN)]


class FollowRequest(BaseModel):
    """Follow `ue` with `services` (default: its `follow:` in the scenario)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        json_schema_extra={"examples": [{"ue": "car", "services": ["kv"]}]},
    )

    ue: Name
    services: list[Name] = Field(default=[], max_length=MAX_FOLLOWED)
    strategy: StrategyName = Field(default=StrategyName(DEFAULT_STRATEGY), strict=False)
    predictor: Literal["known-path", "straight-ahead"] = "known-path"
    pattern: PatternName = Field(
        default=PatternName("wait-for-me"), strict=False, description="how a chain moves"
    )
    budget_ms: float = Field(
        default=DOWNTIME_BUDGET_MS, gt=0, le=MAX_BUDGET_MS, allow_inf_nan=False
    )


class FollowedServiceView(BaseModel):
    name: str
    kind: str
    site: str = Field(description="where it runs")
    target: str | None = Field(description="where a speculation is taking it")
    speculation: str | None = Field(description="warming, ready, committing, ... (none: idle)")
    replicas: dict[str, str] | None = Field(
        default=None, description="a stateless service's warm replicas: site -> role"
    )


class FollowActionView(BaseModel):
    t_s: float = Field(description="the mobility's time (scenario seconds)")
    action: Literal["start", "commit", "cancel", "nothing"]
    service: str
    target: str
    result: str
    speculative: bool | None = None
    reason: str | None = None


class FollowView(BaseModel):
    ue: str
    predictor: str
    strategy: str
    services: list[FollowedServiceView]
    history: list[FollowActionView] = Field(description=f"the last {MAX_HISTORY} actions")
    moves_done: int
    moves_cancelled: int


def _view(state: FollowState) -> FollowView:
    return FollowView.model_validate(asdict(state))


def _call(fn: object) -> FollowView:
    try:
        state = fn()  # type: ignore[operator]
    except FollowConflict as exc:
        raise Conflict(str(exc)) from exc
    except Exception as exc:
        raise api_error(exc) from exc
    assert isinstance(state, FollowState)
    return _view(state)


def follow_router(service: FollowService) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]}, tags=["mobility"])
    refusals: dict[int | str, dict[str, Any]] = {
        **{code: ERRORS[code] for code in (400, 404, 409, 413, 422)},
        503: UNAVAILABLE,
    }

    @router.post("/follow-me", response_model=FollowView, status_code=201, responses=refusals)
    def follow(req: FollowRequest) -> FollowView:
        """Follow a UE: its services move ahead of its handovers (module docstring)."""
        return _call(
            lambda: service.start(
                req.ue,
                req.services,
                strategy=req.strategy.value,
                predictor=req.predictor,
                budget_ms=req.budget_ms,
                pattern=req.pattern.value,
            )
        )

    @router.get("/follow-me", response_model=list[FollowView])
    def followed() -> list[FollowView]:
        """Every followed UE."""
        return [_view(s) for s in service.states()]

    @router.get("/follow-me/{ue}", response_model=FollowView, responses={404: ERRORS[404]})
    def followed_ue(ue: UEName) -> FollowView:
        """One followed UE (404: not followed)."""
        return _call(lambda: service.state(ue))

    @router.delete("/follow-me/{ue}", response_model=FollowView, responses={404: ERRORS[404]})
    def unfollow(ue: UEName) -> FollowView:
        """Stop following a UE; what speculates is cancelled (404: not followed)."""
        return _call(lambda: service.stop(ue))

    return router
