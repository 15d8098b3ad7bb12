"""The northbound REST API: a FastAPI app over a `ControllerAPI` facade, and a threaded server.

`create_app(api)` builds the JSON API under `/v1` (OpenAPI at `/v1/openapi.json`, Swagger UI at
`/v1/docs`). Every error leaves as JSON, never as a traceback, in the shape the OpenAPI document
gives for its status (`ErrorBody`): `{"error": ..., "context": {...}}` for the facade's
`ApiError`s, and `{"error": ..., "problems": [{"path", "message"}]}` for requests that cannot be
taken as sent (every 422 and malformed JSON's 400 list their problems). A body over
`MAX_BODY_BYTES` gets 413 before anything reads it; a method a path does not have gets 405 with
every method it has in `Allow`. `controller.rest_server.RestServer` runs it with uvicorn in a thread
beside the os-ken app.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request, Response
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
from controller.limits import (
    MAX_BODY_BYTES,
    MAX_NAME_LENGTH,
    MAX_RESERVATION_ID,
    NAME_PATTERN,
)

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
_REQUEST_PARTS = ("body", "path", "query", "header", "cookie")


# ------------------------------------------------------------------------------ error bodies


class Problem(BaseModel):
    """One thing wrong with a request: where (`match.dst_port`) and what."""

    path: str
    message: str


class ErrorBody(BaseModel):
    """What every failed request returns: a message, and what it concerns (`context`) or, for a
    request that cannot be taken as sent, every problem with it (`problems`)."""

    error: str
    context: dict[str, Any] = {}
    problems: list[Problem] = []


class ValidationErrorBody(BaseModel):
    """A request the API cannot take as sent (422), or malformed JSON (400): its problems."""

    error: str
    problems: list[Problem]
    context: dict[str, Any] = {}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ValidationErrorBody, "description": "malformed JSON body"},
    404: {"model": ErrorBody, "description": "no such reservation, host, site or instance"},
    409: {"model": ErrorBody, "description": "refused, e.g. not enough bandwidth on the path"},
    413: {"model": ErrorBody, "description": f"request body over {MAX_BODY_BYTES} bytes"},
    422: {"model": ValidationErrorBody, "description": "invalid request: its problems"},
    500: {"model": ErrorBody, "description": "internal error"},
    502: {
        "model": ErrorBody,
        "description": "a switch refused the change or did not confirm it: it was undone, on "
        "the switches and in the controller (`context.switches` names them)",
    },
}


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: ERRORS[status] for status in statuses}


# What each kind of operation can answer besides its success.
READ_ONE = _documented(404, 422)
ADMITTED = _documented(400, 404, 409, 413, 422, 502)  # admission control can refuse (409)
WITH_BODY = _documented(400, 404, 413, 422, 502)
CHANGE = _documented(404, 422, 502)

ReservationId = Annotated[int, Path(ge=1, le=MAX_RESERVATION_ID, description="reservation id")]
InstanceName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN, description="instance"),
]


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
    if exc.status == 422:  # documented as ValidationErrorBody: a 422 always lists its problems
        where = str(exc.context.get("field", "(body)"))
        problems = [{"path": where, "message": exc.message}]
        return _error_response(exc.status, exc.message, context=context, problems=problems)
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


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _allowed_methods(app: Any, path: str) -> list[str]:
    """The methods the OpenAPI document gives the path `path` (Starlette's own 405 names only
    the first route's, and each of our methods is a route of its own)."""
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return sorted(m.upper() for m in operations if m in _HTTP_METHODS)
    return []


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    if exc.status_code == 400:  # a body FastAPI could not read (not UTF-8, ...): its problem
        response = _error_response(400, message, problems=[{"path": "(body)", "message": message}])
    else:
        response = _error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        allowed = _allowed_methods(request.app, request.url.path)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


class _BodyLimitMiddleware:
    """Refuses a request body over `limit` bytes with 413, before the app reads any of it.

    A declared Content-Length over the limit is refused at once; otherwise the body is read
    here (chunked ones too) up to the limit and handed on whole.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {self.limit} bytes"
        log.info("%s %s -> 413: %s", scope.get("method"), scope.get("path"), message)
        response = _error_response(413, message, context={"limit_bytes": self.limit})
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server refuses a bad Content-Length itself
                if declared > self.limit:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives `messages` first, then whatever the server sends."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


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
        responses=ADMITTED,
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
        responses=READ_ONE,
    )
    def reservation(rid: ReservationId) -> ReservationView:
        """One reservation."""
        return api.reservation(rid)

    @router.patch(
        "/reservations/{rid}",
        response_model=ReservationView,
        tags=["reservations"],
        responses=ADMITTED,
    )
    def resize(rid: ReservationId, body: ResizeRequest) -> ReservationView:
        """Change a reservation's rate in place (409 if a larger rate won't fit)."""
        return api.resize(rid, body.rate)

    @router.delete(
        "/reservations/{rid}",
        status_code=204,
        response_class=Response,
        tags=["reservations"],
        responses=CHANGE,
    )
    def release(rid: ReservationId) -> Response:
        """Release a reservation: its meter and flows are removed."""
        api.release(rid)
        return Response(status_code=204)

    @router.post(
        "/relocations",
        response_model=RelocationView,
        tags=["relocations"],
        responses=WITH_BODY,
    )
    def relocate(body: RelocationRequest) -> RelocationView:
        """Re-point an instance's traffic to its new attachment point (same IP and MAC)."""
        return api.relocate(body)

    @router.post(
        "/instances/{name}/hold",
        response_model=HoldView,
        tags=["relocations"],
        responses=WITH_BODY,
    )
    def hold(name: InstanceName, body: HoldRequest | None = None) -> HoldView:
        """Hold the instance's traffic at the controller (while it is frozen): packets are kept,
        not dropped, and delivered when the hold is released."""
        return api.hold(name, body or HoldRequest())

    @router.delete(
        "/instances/{name}/hold",
        response_model=HoldReleaseView,
        tags=["relocations"],
        responses=CHANGE,
    )
    def release_hold(name: InstanceName) -> HoldReleaseView:
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
    app.add_middleware(_BodyLimitMiddleware)
    app.add_middleware(_InternalErrorMiddleware)
    return app
