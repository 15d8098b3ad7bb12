"""The site agent's HTTP API (FastAPI): a thin router over `agent.service.SiteService`.

Each call is one step of a migration at this site; the orchestrator strings them together. Each
endpoint parses its body, calls the service and serialises what it returns; the service's
errors carry their HTTP status (`agent.errors`: 404 for an instance this site does not hold).
The agent serves this API on a Unix socket (the orchestrator on the same machine) and/or TCP,
where a non-loopback address requires the shared token (`agent.token`), and moves migration
traffic to and from other agents on MIGRATION_PORT, over the (emulated) network, where the
controller's reservation meters it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.errors import SiteRequestError, Unauthorized
from agent.service import SiteService
from agent.token import TOKEN_HEADER, is_loopback, token_matches
from migration.site import DumpInfo, InstanceSpec, SendInfo, SiteError

log = logging.getLogger("mecmig.agent")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpecBody(_Body):
    name: str = Field(max_length=63)
    args: list[str] = Field(min_length=1, max_length=256)
    ip: str = Field(max_length=45)
    prefix: int = Field(ge=0, le=128)
    mac: str = Field(max_length=17)
    port: int = Field(ge=1, le=65279)  # OpenFlow port on the bridge
    memory_bytes: int | None = Field(default=None, ge=0)
    files: dict[str, str] = Field(default={}, max_length=64)
    volume: bool = False

    def spec(self) -> InstanceSpec:
        return InstanceSpec(**{**self.model_dump(), "args": tuple(self.args)})


class CheckpointBody(_Body):
    leave_running: bool = False
    on_predumps: bool = False  # only what changed since the last pre-dump round
    # the controller's hold endpoint, called at CRIU's freeze
    hold_url: str | None = Field(default=None, max_length=4096)


class PreDumpBody(_Body):
    round: int = Field(ge=1, le=10_000)  # 1 starts a new chain of pre-dumps


class SendBody(_Body):
    peer: str = Field(max_length=253)
    port: int = Field(ge=1, le=65535)
    delta: bool = False


class LinkBody(_Body):
    up: bool


class LazyBody(_Body):
    page_server: str = Field(max_length=260)  # "ADDR:PORT"
    on_predumps: bool = False
    hold_url: str | None = Field(default=None, max_length=4096)


class RestoreBody(_Body):
    lazy_from: str | None = Field(default=None, max_length=260)  # the source's page server


def _dump(info: DumpInfo) -> dict[str, Any]:
    return asdict(info)


def _sent(info: SendInfo) -> dict[str, Any]:
    return asdict(info)


def needs_token(server: tuple[str, int | None] | None) -> bool:
    """Whether a request that came in on `server` (ASGI's local address of the connection)
    must carry the token: TCP on a non-loopback address. A Unix socket has no port."""
    if server is None or server[1] is None:
        return False
    return not is_loopback(server[0])


def create_agent_app(service: SiteService, token: str | None = None) -> FastAPI:
    """The agent's API under /v1 (OpenAPI at /v1/openapi.json). With `token`, requests over
    non-loopback TCP must carry it in X-Mecmig-Token (else 401, and nothing changes); a request
    on the Unix socket or loopback may leave it out, but one it presents must be right."""
    app = FastAPI(
        title=f"mecmig agent {service.name}",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    s = service

    if token is not None:

        @app.middleware("http")
        async def _authenticate(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            given = request.headers.get(TOKEN_HEADER)
            required = needs_token(request.scope.get("server"))
            if (given is not None or required) and not token_matches(token, given):
                why = "a wrong" if given is not None else "no"
                log.warning(
                    "site %s: refused %s %s from %s: %s token",
                    s.name,
                    request.method,
                    request.url.path,
                    request.client.host if request.client else "a local socket",
                    why,
                )
                return _error(
                    Unauthorized(
                        f"site {s.name}: this agent requires its token in the {TOKEN_HEADER} "
                        f"header; the request had {why} token (orchestrator: "
                        "--agent-token-file, or MECMIG_AGENT_TOKEN_FILE for the controller)"
                    )
                )
            return await call_next(request)

    @app.exception_handler(SiteError)
    async def _refused(_: Request, exc: Exception) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("site %s: unexpected error", s.name, exc_info=exc)
        return JSONResponse(status_code=500, content={"error": f"{type(exc).__name__}: {exc}"})

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return s.health()

    @app.get("/v1/cpu")
    def cpu() -> dict[str, int]:
        busy, total = s.cpu_jiffies()
        return {"busy": busy, "total": total}

    @app.get("/v1/netstat")
    def netstat() -> dict[str, int]:
        """Bytes this agent's network namespace has sent (post-copy pages are counted so)."""
        return {"tx_bytes": s.tx_bytes()}

    @app.get("/v1/instances/{name}")
    def describe(name: str) -> dict[str, Any]:
        """Its spec and status; 404 if this site holds no instance of that name."""
        spec, status = s.describe(name)
        return {"spec": asdict(spec), "status": status}

    @app.post("/v1/instances", status_code=201)
    def create(body: SpecBody) -> dict[str, str]:
        s.create(body.spec())
        return {"status": s.status(body.name)}

    @app.post("/v1/instances/{name}/prepare-target")
    def prepare_target(name: str, body: SpecBody) -> dict[str, str]:
        s.prepare_target(body.spec())
        return {"status": "prepared"}

    @app.post("/v1/instances/{name}/checkpoint")
    def checkpoint(name: str, body: CheckpointBody) -> dict[str, Any]:
        return _dump(
            s.checkpoint(
                name,
                leave_running=body.leave_running,
                on_predumps=body.on_predumps,
                hold_url=body.hold_url,
            )
        )

    @app.post("/v1/instances/{name}/pre-dump")
    def pre_dump(name: str, body: PreDumpBody) -> dict[str, Any]:
        """A pre-copy round with CRIU's dirty-memory tracking (the service runs on)."""
        return _dump(s.pre_dump(name, body.round))

    @app.post("/v1/instances/{name}/receive")
    def receive(name: str) -> dict[str, int]:
        return {"port": s.start_receive(name)}

    @app.post("/v1/instances/{name}/receive/finish")
    def finish_receive(name: str) -> dict[str, Any]:
        return _sent(s.finish_receive(name))

    @app.post("/v1/instances/{name}/send")
    def send(name: str, body: SendBody) -> dict[str, Any]:
        return _sent(s.send(name, body.peer, body.port, delta=body.delta))

    @app.post("/v1/instances/{name}/link")
    def link(name: str, body: LinkBody) -> dict[str, bool]:
        s.set_link(name, body.up)
        return {"up": body.up}

    @app.post("/v1/instances/{name}/restore")
    def restore(name: str, body: RestoreBody | None = None) -> dict[str, Any]:
        s.restore(name, body.lazy_from if body is not None else None)
        return {"status": s.status(name)}

    @app.post("/v1/instances/{name}/lazy-dump")
    def lazy_dump(name: str, body: LazyBody) -> dict[str, Any]:
        return _dump(
            s.lazy_checkpoint(
                name, body.page_server, on_predumps=body.on_predumps, hold_url=body.hold_url
            )
        )

    @app.post("/v1/instances/{name}/lazy-dump/finish")
    def finish_lazy_dump(name: str) -> dict[str, Any]:
        """Source: wait until the destination has pulled every page (the page server ends)."""
        s.finish_lazy_checkpoint(name)
        return {"exit": 0}

    @app.post("/v1/instances/{name}/lazy-dump/abort")
    def abort_lazy_dump(name: str) -> dict[str, str]:
        """Source: stop serving pages; CRIU lets the frozen service run on (still locked)."""
        s.abort_lazy_checkpoint(name)
        return {"status": s.status(name)}

    @app.post("/v1/instances/{name}/restore/pages")
    def finish_pages(name: str) -> dict[str, Any]:
        """Destination: wait until every page has arrived (the lazy-pages daemon ends)."""
        return {"exit": 0, "seconds": s.finish_pages(name)}

    @app.post("/v1/instances/{name}/stop")
    def stop(name: str) -> dict[str, str]:
        s.stop(name)
        return {"status": s.status(name)}

    @app.post("/v1/instances/{name}/start")
    def start(name: str) -> dict[str, str]:
        s.start(name)
        return {"status": s.status(name)}

    @app.post("/v1/instances/{name}/resume")
    def resume(name: str) -> dict[str, str]:
        how = s.resume(name)
        return {"how": how, "status": s.status(name)}

    @app.delete("/v1/instances/{name}")
    def destroy(name: str) -> dict[str, str]:
        s.destroy(name)
        return {"status": "absent"}

    return app


def _error(exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, SiteRequestError) else 500
    return JSONResponse(status_code=status, content={"error": str(exc)})
