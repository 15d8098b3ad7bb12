"""The site agent's HTTP API (FastAPI): a thin router over `agent.service.SiteService`.

Each call is one step of a migration at this site; the orchestrator strings them together. Each
endpoint parses its body, calls the service and serialises what it returns; the service's
errors carry their HTTP status (`agent.errors`: 404 for an instance this site does not hold).
The agent serves this API on a Unix socket (the orchestrator on the same machine) and/or TCP,
where a non-loopback address requires the shared token (`ground.token`), and moves migration
traffic to and from other agents on MIGRATION_PORT, over the (emulated) network, where the
controller's reservation meters it.

Input is never trusted: every field and path parameter is bounded (`agent.api_models`), a body
over 64 KiB gets 413 before anything reads it, and a request that cannot be taken as sent gets
422 (or 400 for malformed JSON) listing its problems; each such answer is in the OpenAPI
document (/v1/openapi.json), and changes nothing: no directory, no runc or CRIU call.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.types import Scope

from agent.api_models import (
    INSTANCE_NAME_PATTERN,
    MAX_BODY_BYTES,
    MAX_INSTANCE_NAME,
    CheckpointBody,
    CriuDumpStatsOut,
    LazyBody,
    LinkBody,
    MigrationNote,
    PreDumpBody,
    ReceiveBody,
    RestoreBody,
    RestoreOut,
    SampleOut,
    SendBody,
    SpecBody,
    VolumeSendBody,
)
from agent.errors import SiteRequestError
from agent.image_api import image_router
from agent.service import SiteService
from agent.service_logs import DEFAULT_TAIL_LINES, MAX_TAIL_LINES
from ground.token import TOKEN_HEADER, needs_token
from ground.webapi import (
    ErrorBody,
    Responses,
    documented,
    error_response,
    guard_api,
    request_errors,
)
from migration.site import CriuDumpStats, DumpInfo, Handoff, RestoreInfo, SendInfo, SiteError

log = logging.getLogger("mecmig.agent")

ERRORS: Responses = {
    400: {
        "model": ErrorBody,
        "description": "malformed JSON body, or a request this agent refuses as asked: a file "
        "to copy from outside the directories it copies from",
    },
    401: {
        "model": ErrorBody,
        "description": f"the agent has a token and the request did not carry it in the "
        f"{TOKEN_HEADER} header (required over non-loopback TCP), or carried a wrong one",
    },
    404: {"model": ErrorBody, "description": "this site holds no instance of that name"},
    409: {
        "model": ErrorBody,
        "description": "the site's present state forbids the step: nothing of that kind in "
        "progress, the instance not running, another migration's target in the way",
    },
    **request_errors(MAX_BODY_BYTES),
    500: {
        "model": ErrorBody,
        "description": "runc, CRIU, the network plumbing or a transfer failed (their message is "
        "in it), or an internal error",
    },
}


def _documented(*statuses: int) -> Responses:
    return documented(ERRORS, *statuses)


# What each kind of operation can answer besides its success (every one may answer 500).
ON_INSTANCE = _documented(404, 422)  # a step on an instance this site holds
FINISHING = _documented(404, 409, 422)  # a step that finishes or needs another
WITH_SPEC = _documented(400, 409, 413, 422)  # a spec to create from
WITH_BODY = _documented(400, 404, 409, 413, 422)  # a step with a body

InstanceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_INSTANCE_NAME,
        pattern=INSTANCE_NAME_PATTERN,
        description="instance",
        examples=["counter"],
    ),
]


def _dump(info: DumpInfo) -> dict[str, Any]:
    data = asdict(info)
    data["criu"] = _criu_dump(info.criu)
    data["sample"] = None if info.sample is None else SampleOut(**asdict(info.sample)).model_dump()
    return data


def _criu_dump(stats: CriuDumpStats | None) -> dict[str, Any] | None:
    """CRIU's dump stats within their bounds (the model says them)."""
    return None if stats is None else CriuDumpStatsOut(**asdict(stats)).model_dump()


def _restored(status: str, info: RestoreInfo) -> dict[str, Any]:
    return RestoreOut(**(asdict(info) | {"status": status})).model_dump()


def _sent(info: SendInfo) -> dict[str, Any]:
    return asdict(info)


def _image_upload(scope: Scope) -> bool:
    """An image's bytes: the endpoint bounds them (MAX_IMAGE_BYTES), not the body limit."""
    return scope.get("method") == "PUT" and str(scope.get("path", "")).startswith("/v1/images/")


def _token_required(scope: Scope) -> bool:
    return needs_token(scope.get("server"))


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
    guarded = _documented(401) if token is not None else {}
    app.include_router(_router(service), responses=guarded)
    app.add_exception_handler(SiteError, _refused)

    def refusal(why: str) -> str:
        return (
            f"site {service.name}: this agent requires its token in the {TOKEN_HEADER} "
            f"header; the request had {why} token (orchestrator: --agent-token-file, or "
            "MECMIG_AGENT_TOKEN_FILE for the controller)"
        )

    guard_api(
        app,
        streamed=_image_upload,
        body_limit=MAX_BODY_BYTES,
        logger=log,
        token=token,
        refusal=refusal,
        who=f"site {service.name}",
        required=_token_required,
    )
    return app


async def _refused(_: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, SiteRequestError) else 500
    return error_response(status, str(exc))


def _router(s: SiteService) -> APIRouter:
    router = APIRouter(prefix="/v1", responses={500: ERRORS[500]})
    router.include_router(image_router(s))

    @router.get("/health")
    def health() -> dict[str, Any]:
        """The site, the instances it holds, whether its kernel tracks dirty memory."""
        return s.health()

    @router.get("/cpu")
    def cpu() -> dict[str, int]:
        """(busy, total) CPU time of this machine so far, in jiffies."""
        busy, total = s.cpu_jiffies()
        return {"busy": busy, "total": total}

    @router.get("/cpu/site")
    def site_cpu() -> dict[str, float]:
        """CPU seconds this site spent so far: its agent's process tree (`agent_s`) and its
        containers' cgroups (`containers_s`), their sum (`site_s`), and the agent's monotonic
        clock (`monotonic_s`): two readings give the site's load between them."""
        return s.site_cpu()

    @router.get("/netstat")
    def netstat() -> dict[str, int]:
        """Bytes this agent's network namespace has sent (post-copy pages are counted so)."""
        return {"tx_bytes": s.tx_bytes()}

    @router.get("/instances/{name}", responses=ON_INSTANCE)
    def describe(name: InstanceName) -> dict[str, Any]:
        """Its spec and status; 404 if this site holds no instance of that name."""
        spec, status = s.describe(name)
        return {"spec": asdict(spec), "status": status, "last_migration": s.last_migration(name)}

    @router.put("/instances/{name}/last-migration", responses=WITH_BODY)
    def note_migration(name: InstanceName, body: MigrationNote) -> dict[str, str]:
        """Keep how the instance came here (its last migration), for `mecmig status`."""
        s.note_migration(name, body.model_dump())
        return {"status": "noted"}

    @router.get("/instances/{name}/logs", responses=ON_INSTANCE)
    def logs(
        name: InstanceName,
        lines: Annotated[
            int, Query(ge=1, le=MAX_TAIL_LINES, description="how many of its last lines")
        ] = DEFAULT_TAIL_LINES,
    ) -> dict[str, list[str]]:
        """The last lines it wrote on stdout and stderr (here, where it runs now: its log
        moves with it); 404 if this site holds no instance of that name."""
        return {"lines": s.logs(name, lines)}

    @router.post("/instances", status_code=201, responses=WITH_SPEC)
    def create(body: SpecBody) -> dict[str, str]:
        """Plug the instance into the bridge and start it (its files copied into /data)."""
        s.create(body.spec())
        return {"status": s.status(body.name)}

    @router.post("/instances/{name}/prepare-target", responses=WITH_SPEC)
    def prepare_target(name: InstanceName, body: SpecBody) -> Any:
        """Destination side, before the dump: a locked namespace plugged in but down, the
        bundle. The body's name must be the path's (else 422)."""
        if body.name != name:
            message = f"the spec's name {body.name!r} is not the path's {name!r}"
            return error_response(
                422,
                f"invalid request: name: {message}",
                problems=[{"path": "name", "message": message}],
            )
        s.prepare_target(body.spec())
        return {"status": "prepared"}

    @router.post("/instances/{name}/checkpoint", responses=WITH_BODY)
    def checkpoint(name: InstanceName, body: CheckpointBody) -> dict[str, Any]:
        """Dump it (`leave_running`: a pre-copy round)."""
        return _dump(
            s.checkpoint(
                name,
                leave_running=body.leave_running,
                on_predumps=body.on_predumps,
                hold_url=body.hold_url,
                page_server=body.page_server,
                pace_bps=body.pace_bps,
                sample=body.sample,
            )
        )

    @router.post("/instances/{name}/pre-dump", responses=WITH_BODY)
    def pre_dump(name: InstanceName, body: PreDumpBody) -> dict[str, Any]:
        """A pre-copy round with CRIU's dirty-memory tracking (the service runs on)."""
        return _dump(s.pre_dump(name, body.round, sample=body.sample))

    @router.post("/instances/{name}/receive", responses=WITH_BODY)
    def receive(name: InstanceName, body: ReceiveBody | None = None) -> dict[str, int]:
        """Listen for its migration traffic (`pages_port`: and for its final dump's pages, by
        a CRIU page server); the port."""
        if body is None:
            return {"port": s.start_receive(name)}
        return {"port": s.start_receive(name, body.port, body.pages_port, body.lazy_from)}

    @router.post("/instances/{name}/receive/finish", responses=FINISHING)
    def finish_receive(name: InstanceName) -> dict[str, Any]:
        """Wait until what is being received for it has arrived (409 if nothing is)."""
        return _sent(s.finish_receive(name))

    @router.post("/instances/{name}/send", responses=WITH_BODY)
    def send(name: InstanceName, body: SendBody) -> dict[str, Any]:
        """Send its images and files to the agent at `peer`:`port` (`delta`: what changed;
        `pace_bps`: paced at that rate, its reservation's; `compress`: zstd on the stream)."""
        return _sent(
            s.send(
                name, body.peer, body.port, delta=body.delta, pace_bps=body.pace_bps,
                compress=body.compress,
            )
        )  # fmt: skip

    @router.post("/instances/{name}/volume/receive", responses=WITH_BODY)
    def volume_receive(name: InstanceName, body: ReceiveBody | None = None) -> dict[str, int]:
        """Listen for the primary's copy of this running replica's volume (seed 002's sync);
        the port. 409: it is not running here, or has no volume."""
        port = body.port if body is not None else None
        return {"port": s.start_volume_receive(name, port)}

    @router.post("/instances/{name}/volume/receive/finish", responses=FINISHING)
    def volume_receive_finish(name: InstanceName) -> dict[str, Any]:
        """Wait until the volume being received has arrived (409 if none is)."""
        return _sent(s.finish_volume_receive(name))

    @router.post("/instances/{name}/volume/send", responses=WITH_BODY)
    def volume_send(name: InstanceName, body: VolumeSendBody) -> dict[str, Any]:
        """Send this running primary's volume to a replica's agent at `peer`:`port` (what
        changed since the last sync there; `full`: all of it)."""
        return _sent(s.send_volume(name, body.peer, body.port, full=body.full))

    @router.post("/instances/{name}/link", responses=WITH_BODY)
    def link(name: InstanceName, body: LinkBody) -> dict[str, bool]:
        """Bring the bridge side of its interface up or down."""
        s.set_link(name, body.up)
        return {"up": body.up}

    @router.post("/instances/{name}/restore", responses=WITH_BODY)
    def restore(name: InstanceName, body: RestoreBody | None = None) -> dict[str, Any]:
        """Restore it here (`lazy_from`: post-copy, its pages from that page server)."""
        info = s.restore(name, body.lazy_from if body is not None else None)
        return _restored(info.status or s.status(name), info)

    @router.post("/instances/{name}/lazy-dump", responses=WITH_BODY)
    def lazy_dump(name: InstanceName, body: LazyBody) -> dict[str, Any]:
        """Source of post-copy: dump all but the memory, then serve the pages (`send_to`:
        and at once the link down and the images to the destination's receiver there)."""
        handoff = None
        if body.send_to is not None:
            peer, _, port = body.send_to.rpartition(":")
            handoff = Handoff(
                peer, int(port), delta=body.delta, pace_bps=body.pace_bps, compress=body.compress
            )
        return _dump(
            s.lazy_checkpoint(
                name,
                body.page_server,
                on_predumps=body.on_predumps,
                hold_url=body.hold_url,
                handoff=handoff,
            )
        )

    @router.post("/instances/{name}/lazy-dump/finish", responses=FINISHING)
    def finish_lazy_dump(name: InstanceName) -> dict[str, Any]:
        """Source: wait until the destination has pulled every page (the page server ends)."""
        s.finish_lazy_checkpoint(name)
        return {"exit": 0}

    @router.post("/instances/{name}/lazy-dump/abort", responses=ON_INSTANCE)
    def abort_lazy_dump(name: InstanceName) -> dict[str, str]:
        """Source: stop serving pages; CRIU lets the frozen service run on (still locked)."""
        s.abort_lazy_checkpoint(name)
        return {"status": s.status(name)}

    @router.post("/instances/{name}/restore/pages", responses=ON_INSTANCE)
    def finish_pages(name: InstanceName) -> dict[str, Any]:
        """Destination: wait until every page has arrived (the lazy-pages daemon ends)."""
        return {"exit": 0, "seconds": s.finish_pages(name)}

    @router.post("/instances/{name}/stop", responses=ON_INSTANCE)
    def stop(name: InstanceName) -> dict[str, str]:
        """End its process, keep its files (restart strategy)."""
        s.stop(name)
        return {"status": s.status(name)}

    @router.post("/instances/{name}/start", responses=ON_INSTANCE)
    def start(name: InstanceName) -> dict[str, str]:
        """Start it afresh from its bundle and /data (restart strategy)."""
        s.start(name)
        return {"status": s.status(name)}

    @router.post("/instances/{name}/resume", responses=ON_INSTANCE)
    def resume(name: InstanceName) -> dict[str, str]:
        """Source side of a rollback: the service runs here again; how."""
        how = s.resume(name)
        return {"how": how, "status": s.status(name)}

    @router.delete("/instances/{name}", responses=_documented(422))
    def destroy(name: InstanceName) -> dict[str, str]:
        """Remove everything of it at this site; no error if it holds none."""
        s.destroy(name)
        return {"status": "absent"}

    return router
