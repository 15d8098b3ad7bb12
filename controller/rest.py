"""The northbound REST API: a FastAPI app over a `ControllerAPI` facade, and a threaded server.

`create_app(api)` builds the JSON API under `/v1` (OpenAPI at `/v1/openapi.json`, Swagger UI at
`/v1/docs`). Every error leaves as JSON, never as a traceback: `{"error": ..., "context": {...}}`
for the facade's `ApiError`s, `{"error": ..., "problems": [{"path", "message"}]}` for bad requests.
`controller.rest_server.RestServer` runs it with uvicorn in a thread beside the os-ken app.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api_models import (
    ApiError,
    ChainView,
    ControllerAPI,
    Health,
    HoldReleaseView,
    HoldRequest,
    HoldView,
    InstanceView,
    RelocationRequest,
    RelocationView,
    ReservationRequest,
    ReservationView,
    ResizeRequest,
    TopologyView,
)

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
_REQUEST_PARTS = ("body", "path", "query", "header", "cookie")


# ------------------------------------------------------------------------------ error bodies


class ErrorBody(BaseModel):
    """What every failed request returns (documented in OpenAPI)."""

    error: str
    context: dict[str, Any] = {}


class Problem(BaseModel):
    """One thing wrong with a request: where (`match.dst_port`) and what."""

    path: str
    message: str


class ValidationErrorBody(BaseModel):
    """A request the API could not accept as sent (422), or malformed JSON (400)."""

    error: str
    problems: list[Problem]


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such reservation, host, site or instance"},
    409: {"model": ErrorBody, "description": "refused, e.g. not enough bandwidth on the path"},
    422: {"model": ValidationErrorBody, "description": "invalid request"},
    500: {"model": ErrorBody, "description": "internal error"},
}


def _loc_path(loc: Sequence[int | str]) -> str:
    """`("body", "match", "dst_port")` -> `match.dst_port`; list indices as `[i]`."""
    parts = list(loc)
    if parts and parts[0] in _REQUEST_PARTS:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


def _problem_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    # pydantic prefixes the text of a ValueError raised by a validator; the text says enough.
    return message.removeprefix("Value error, ")


def _jsonable(value: object) -> object:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return str(value)


def _error_response(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    context = {key: _jsonable(value) for key, value in exc.context.items()}
    log.info("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
    return _error_response(exc.status, exc.message, context=context)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = list(exc.errors())
    err = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if err is not None:
        detail = str(err.get("ctx", {}).get("error", "cannot parse"))
        position = err["loc"][-1] if len(err.get("loc", ())) > 1 else "?"
        message = f"malformed JSON body: {detail} (at character {position})"
        return _error_response(400, message, problems=[{"path": "(body)", "message": message}])
    problems = [
        {"path": _loc_path(err.get("loc", ())), "message": _problem_message(err)} for err in errors
    ]
    summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
    return _error_response(422, f"invalid request: {summary}", problems=problems)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    response = _error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


class _InternalErrorMiddleware:
    """Turns any exception that escaped the app into a 500 JSON body and a logged traceback.

    Done as plain ASGI middleware rather than an `Exception` handler: Starlette re-raises after
    calling such a handler, so uvicorn would log the same traceback a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean 500: let the server drop the connection
                raise
            message = f"internal error: {type(exc).__name__}: {exc}"
            await _error_response(500, message)(scope, receive, send)


# ------------------------------------------------------------------------------ the app


def _version() -> str:
    try:
        return importlib.metadata.version("mecmig")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _router(api: ControllerAPI) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]})

    @router.get("/health", response_model=Health, tags=["controller"])
    def health() -> Health:
        """Whether the controller runs and how many of the scenario's switches are connected."""
        return api.health()

    @router.get("/topology", response_model=TopologyView, tags=["controller"])
    def topology() -> TopologyView:
        """Sites, switches and links, with each link direction's reserved and residual rate."""
        return api.topology_view()

    @router.get("/instances", response_model=list[InstanceView], tags=["controller"])
    def instances() -> list[InstanceView]:
        """Hosts the controller knows: instances, UEs, agents and learned hosts."""
        return api.instances()

    @router.get("/chains", response_model=list[ChainView], tags=["controller"])
    def chains() -> list[ChainView]:
        """The service chains steered through instances."""
        return api.chains()

    @router.get("/reservations", response_model=list[ReservationView], tags=["reservations"])
    def reservations() -> list[ReservationView]:
        """All bandwidth reservations in force."""
        return api.reservations()

    @router.post(
        "/reservations",
        response_model=ReservationView,
        status_code=201,
        tags=["reservations"],
        responses={k: ERRORS[k] for k in (404, 409, 422)},
    )
    def reserve(body: ReservationRequest, request: Request, response: Response) -> ReservationView:
        """Reserve a rate on a path from `src` to `dst` (admission control: 409 if it won't fit)."""
        view = api.reserve(body)
        response.headers["Location"] = str(request.url_for("get_reservation", rid=view.id))
        return view

    @router.get(
        "/reservations/{rid}",
        response_model=ReservationView,
        name="get_reservation",
        tags=["reservations"],
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def reservation(rid: int) -> ReservationView:
        """One reservation."""
        return api.reservation(rid)

    @router.patch(
        "/reservations/{rid}",
        response_model=ReservationView,
        tags=["reservations"],
        responses={k: ERRORS[k] for k in (404, 409, 422)},
    )
    def resize(rid: int, body: ResizeRequest) -> ReservationView:
        """Change a reservation's rate in place (409 if a larger rate won't fit)."""
        return api.resize(rid, body.rate)

    @router.delete(
        "/reservations/{rid}",
        status_code=204,
        response_class=Response,
        tags=["reservations"],
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def release(rid: int) -> Response:
        """Release a reservation: its meter and flows are removed."""
        api.release(rid)
        return Response(status_code=204)

    @router.post(
        "/relocations",
        response_model=RelocationView,
        tags=["relocations"],
        responses={k: ERRORS[k] for k in (404, 409, 422)},
    )
    def relocate(body: RelocationRequest) -> RelocationView:
        """Re-point an instance's traffic to its new attachment point (same IP and MAC)."""
        return api.relocate(body)

    @router.post(
        "/instances/{name}/hold",
        response_model=HoldView,
        tags=["relocations"],
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def hold(name: str, body: HoldRequest | None = None) -> HoldView:
        """Hold the instance's traffic at the controller (while it is frozen): packets are kept,
        not dropped, and delivered when the hold is released."""
        return api.hold(name, body or HoldRequest())

    @router.delete(
        "/instances/{name}/hold",
        response_model=HoldReleaseView,
        tags=["relocations"],
        responses={k: ERRORS[k] for k in (404, 422)},
    )
    def release_hold(name: str) -> HoldReleaseView:
        """Release the hold: the held packets go out of the instance's port, where it is now."""
        return api.release_hold(name)

    return router


def create_app(api: ControllerAPI, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The northbound JSON API over `api`, versioned under `/v1`, with the `routers` of the
    extensions the controller process was given (e.g. `/v1/migrations`, see
    controller.extensions); their `ApiError`s answer like ours."""
    app = FastAPI(
        title="mecmig controller",
        version=_version(),
        description="Northbound API of the mecmig SDN controller: topology, bandwidth "
        "reservations and instance relocation for live migration at the edge.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.include_router(_router(api))
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(_InternalErrorMiddleware)
    return app
