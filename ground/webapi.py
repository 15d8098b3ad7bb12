"""What mecmig's two HTTP APIs (the controller's REST API, the site agents' API) share: the
error bodies, 422/400 answers that list every problem of a request, the 413 body limit and the
401 token guard. Plain ASGI and pydantic: each API mounts them on its own FastAPI app.

Every error leaves as JSON in the shape the OpenAPI documents give for its status:
`{"error": ..., "context": {...}}`, or `{"error": ..., "problems": [{"path", "message"}]}` for a
request that cannot be taken as sent (every 422, and malformed JSON's 400).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ground.token import TOKEN_HEADER, token_matches

log = logging.getLogger(__name__)

_REQUEST_PARTS = ("body", "path", "query", "header", "cookie")
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


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


Responses = dict[int | str, dict[str, Any]]


def request_errors(limit: int) -> Responses:
    """What any API of ours answers a request it cannot take (its OpenAPI `responses`)."""
    return {
        413: {"model": ErrorBody, "description": f"request body over {limit} bytes"},
        422: {"model": ValidationErrorBody, "description": "invalid request: its problems"},
    }


def documented(errors: Responses, *statuses: int) -> Responses:
    """The entries of `errors` for `statuses`: what an operation answers besides success."""
    return {status: errors[status] for status in statuses}


def error_response(status: int, message: str, **extra: object) -> JSONResponse:
    """`{"error": message, **extra}` with `status`."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def loc_path(loc: Sequence[int | str]) -> str:
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


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's RequestValidationError as 400 (malformed JSON) or 422, with every problem."""
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = list(exc.errors())
    err = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if err is not None:
        detail = str(err.get("ctx", {}).get("error", "cannot parse"))
        position = err["loc"][-1] if len(err.get("loc", ())) > 1 else "?"
        message = f"malformed JSON body: {detail} (at character {position})"
        return error_response(400, message, problems=[{"path": "(body)", "message": message}])
    problems = [
        {"path": loc_path(err.get("loc", ())), "message": _problem_message(err)} for err in errors
    ]
    summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
    return error_response(422, f"invalid request: {summary}", problems=problems)


def _allowed_methods(app: Any, path: str) -> list[str]:
    """The methods the OpenAPI document gives the path `path` (Starlette's own 405 names only
    the first route's, and each of our methods is a route of its own)."""
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return sorted(m.upper() for m in operations if m in _HTTP_METHODS)
    return []


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's HTTP errors (404 no such path, 405, a body it cannot read) as JSON; a 405
    names in `Allow` every method the path has."""
    assert isinstance(exc, StarletteHTTPException)
    message = f"{exc.detail}: {request.method} {request.url.path}"
    if exc.status_code == 400:  # a body FastAPI could not read (not UTF-8, ...): its problem
        response = error_response(400, message, problems=[{"path": "(body)", "message": message}])
    else:
        response = error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        allowed = _allowed_methods(request.app, request.url.path)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413, before the app reads any of it.

    A declared Content-Length over the limit is refused at once; otherwise the body is read
    here (chunked ones too) up to the limit and handed on whole.
    """

    def __init__(
        self, app: ASGIApp, limit: int, streamed: Callable[[Scope], bool] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.streamed = streamed  # requests whose endpoint reads and bounds its body itself

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {self.limit} bytes"
        log.info("%s %s -> 413: %s", scope.get("method"), scope.get("path"), message)
        response = error_response(413, message, context={"limit_bytes": self.limit})
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.streamed is not None and self.streamed(scope)):
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


class InternalErrors:
    """Turns any exception that escaped the app into a 500 JSON body and a traceback logged
    to `logger` (the API's own).

    Done as plain ASGI middleware rather than an `Exception` handler: Starlette re-raises after
    calling such a handler, so uvicorn would log the same traceback a second time.
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger = log) -> None:
        self.app = app
        self.log = logger

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
            self.log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean 500: let the server drop the connection
                raise
            message = f"internal error: {type(exc).__name__}: {exc}"
            await error_response(500, message)(scope, receive, send)


def _always(_: Scope) -> bool:
    return True


def _refusal(why: str) -> str:
    return f"this API requires its token in the {TOKEN_HEADER} header; the request had {why} token"


class TokenGuard:
    """401, before the app sees the request (or reads its body), for a request that does not
    carry `token` in the X-Mecmig-Token header where `required(scope)` says it must, and for
    one that carries a wrong token anywhere. `refusal(why)` words the error (`why` is "no" or
    "a wrong"); `who` names the API in the log."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        *,
        refusal: Callable[[str], str],
        who: str,
        required: Callable[[Scope], bool] = _always,
    ) -> None:
        self.app = app
        self.token = token
        self.refusal = refusal
        self.who = who
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = TOKEN_HEADER.lower().encode()
        given = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == wanted), None
        )
        if (given is not None or self.required(scope)) and not token_matches(self.token, given):
            why = "a wrong" if given is not None else "no"
            client = scope.get("client")
            log.warning(
                "%s: refused %s %s from %s: %s token",
                self.who,
                scope.get("method"),
                scope.get("path"),
                client[0] if client else "a local socket",
                why,
            )
            await error_response(401, self.refusal(why))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def token_security(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (an OpenAPI document) saying that every operation wants the token header."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["token"] = {
        "type": "apiKey",
        "in": "header",
        "name": TOKEN_HEADER,
        "description": "the shared secret of this API (a file of mode 600, see --token-file)",
    }
    schema["security"] = [{"token": []}]
    return schema


def guard_api(
    app: FastAPI,
    *,
    body_limit: int,
    logger: logging.Logger,
    token: str | None = None,
    refusal: Callable[[str], str] = _refusal,
    who: str = "this API",
    required: Callable[[Scope], bool] = _always,
    streamed: Callable[[Scope], bool] | None = None,
) -> None:
    """Mount on `app` what both of our APIs do alike: 400/422 listing every problem, JSON for
    Starlette's errors (405 with `Allow`), 413 over `body_limit` (but for `streamed` requests,
    whose endpoint bounds what it reads), with `token` a TokenGuard
    (and the OpenAPI document saying so), and a 500 body for anything that escaped, logged to
    `logger`. Outermost first: internal errors, token, body limit, the app."""
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_middleware(BodyLimit, limit=body_limit, streamed=streamed)
    if token is not None:
        app.add_middleware(TokenGuard, token=token, refusal=refusal, who=who, required=required)
        document = app.openapi
        app.openapi = lambda: token_security(document())  # type: ignore[method-assign]
    app.add_middleware(InternalErrors, logger=logger)
