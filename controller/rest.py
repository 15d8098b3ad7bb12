"""The northbound REST API: a FastAPI app over a `ControllerAPI` facade, and a threaded server.

`create_app(api)` builds the JSON API under `/v1` (OpenAPI at `/v1/openapi.json`, Swagger UI at
`/v1/docs`). Every error leaves as JSON, never as a traceback, in the shape the OpenAPI document
gives for its status (`ErrorBody`): `{"error": ..., "context": {...}}` for the facade's
`ApiError`s, and `{"error": ..., "problems": [{"path", "message"}]}` for requests that cannot be
taken as sent (every 422 and malformed JSON's 400 list their problems). A body over
`MAX_BODY_BYTES` gets 413 before anything reads it; a method a path does not have gets 405 with
every method it has in `Allow` (these pieces are shared with the agents' API: `ground.webapi`).
With a token (`mecmig controller --token-file`), every request must carry it, else 401 before
anything reads it. A reservation made with an owner is resized or released only by a request
that names it (`?owner=`), else 403. `controller.rest_server.RestServer` runs it with uvicorn in
a thread beside the os-ken app.

The endpoints are coroutines that hand the facade's (blocking) call to a thread of their own
pool (`_offload`). FastAPI's way with a plain function, anyio's worker threads, cost 0.3-1.7 ms
more a request (medians of 200 on a trivial endpoint, on this 2-core host).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, ParamSpec, TypeVar

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from controller.api_models import (
    ApiError,
    ChainView,
    ControllerAPI,
    Health,
    HoldReleaseView,
    HoldRequest,
    HoldView,
    InstanceView,
    PromotionRequest,
    PromotionView,
    RelocationBatchRequest,
    RelocationBatchView,
    RelocationRequest,
    RelocationView,
    ReservationRequest,
    ReservationView,
    ResizeRequest,
    StandbyRequest,
    StandbyView,
    TopologyView,
)
from controller.limits import (
    MAX_BODY_BYTES,
    MAX_NAME_LENGTH,
    MAX_OWNER_LENGTH,
    MAX_RESERVATION_ID,
    NAME_PATTERN,
    OWNER_PATTERN,
)
from ground.token import TOKEN_HEADER
from ground.webapi import (
    ErrorBody,
    Responses,
    ValidationErrorBody,
    documented,
    error_response,
    guard_api,
    request_errors,
)

log = logging.getLogger(__name__)

API_PREFIX = "/v1"


ERRORS: Responses = {
    400: {"model": ValidationErrorBody, "description": "malformed JSON body"},
    401: {
        "model": ErrorBody,
        "description": f"the controller has a token (--token-file) and the request did not "
        f"carry it in the {TOKEN_HEADER} header",
    },
    403: {
        "model": ErrorBody,
        "description": "the reservation has another owner: name its owner (`?owner=`) to "
        "change it (`context.owner`)",
    },
    404: {"model": ErrorBody, "description": "no such reservation, host, site or instance"},
    409: {"model": ErrorBody, "description": "refused, e.g. not enough bandwidth on the path"},
    **request_errors(MAX_BODY_BYTES),
    500: {"model": ErrorBody, "description": "internal error"},
    502: {
        "model": ErrorBody,
        "description": "a switch refused the change or did not confirm it: it was undone, on "
        "the switches and in the controller (`context.switches` names them)",
    },
}


def _documented(*statuses: int) -> Responses:
    return documented(ERRORS, *statuses)


# What each kind of operation can answer besides its success.
READ_ONE = _documented(404, 422)
ADMITTED = _documented(400, 404, 409, 413, 422, 502)  # admission control can refuse (409)
WITH_BODY = _documented(400, 404, 413, 422, 502)
CHANGE = _documented(404, 422, 502)
OWNED = _documented(403)  # a reservation's owner must be named to change it

ReservationId = Annotated[int, Path(ge=1, le=MAX_RESERVATION_ID, description="reservation id")]
Owner = Annotated[
    str | None,
    Query(
        max_length=MAX_OWNER_LENGTH,
        pattern=OWNER_PATTERN,
        description="the reservation's owner, as it was reserved (required where it has one)",
    ),
]

InstanceName = Annotated[
    str,
    Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN, description="instance"),
]
PlaceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=NAME_PATTERN,
        description="site or switch of the standby",
    ),
]


# ------------------------------------------------------------------------------ the app


def _jsonable(value: object) -> object:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return str(value)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    context = {key: _jsonable(value) for key, value in exc.context.items()}
    log.info("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
    if exc.status == 422:  # documented as ValidationErrorBody: a 422 always lists its problems
        where = str(exc.context.get("field", "(body)"))
        problems = [{"path": where, "message": exc.message}]
        return error_response(exc.status, exc.message, context=context, problems=problems)
    return error_response(exc.status, exc.message, context=context)


def _version() -> str:
    try:
        return importlib.metadata.version("mecmig")
    except importlib.metadata.PackageNotFoundError:
        return "0"


P = ParamSpec("P")
T = TypeVar("T")
# threads that wait for the facade (whose changes run one by one on the runtime's worker)
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mecmig-rest")


async def _offload(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in a thread of the pool, awaited on the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))


def _router(api: ControllerAPI) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, responses={500: ERRORS[500]})

    @router.get("/health", response_model=Health, tags=["controller"])
    async def health() -> Health:
        """Whether the controller runs and how many of the scenario's switches are connected."""
        return await _offload(api.health)

    @router.get("/topology", response_model=TopologyView, tags=["controller"])
    async def topology() -> TopologyView:
        """Sites, switches and links, with each link direction's reserved and residual rate."""
        return await _offload(api.topology_view)

    @router.get("/instances", response_model=list[InstanceView], tags=["controller"])
    async def instances() -> list[InstanceView]:
        """Hosts the controller knows: instances, UEs, agents and learned hosts."""
        return await _offload(api.instances)

    @router.get("/chains", response_model=list[ChainView], tags=["controller"])
    async def chains() -> list[ChainView]:
        """The service chains steered through instances."""
        return await _offload(api.chains)

    @router.get("/reservations", response_model=list[ReservationView], tags=["reservations"])
    async def reservations() -> list[ReservationView]:
        """All bandwidth reservations in force."""
        return await _offload(api.reservations)

    @router.post(
        "/reservations",
        response_model=ReservationView,
        status_code=201,
        tags=["reservations"],
        responses=ADMITTED,
    )
    async def reserve(
        body: ReservationRequest, request: Request, response: Response
    ) -> ReservationView:
        """Reserve a rate on a path from `src` to `dst` (admission control: 409 if it won't fit)."""
        view = await _offload(api.reserve, body)
        response.headers["Location"] = str(request.url_for("get_reservation", rid=view.id))
        return view

    @router.get(
        "/reservations/{rid}",
        response_model=ReservationView,
        name="get_reservation",
        tags=["reservations"],
        responses=READ_ONE,
    )
    async def reservation(rid: ReservationId) -> ReservationView:
        """One reservation."""
        return await _offload(api.reservation, rid)

    @router.patch(
        "/reservations/{rid}",
        response_model=ReservationView,
        tags=["reservations"],
        responses={**ADMITTED, **OWNED},
    )
    async def resize(
        rid: ReservationId, body: ResizeRequest, owner: Owner = None
    ) -> ReservationView:
        """Change a reservation's rate in place (409 if a larger rate won't fit; 403 if it has
        an owner and `owner` is not it)."""
        return await _offload(api.resize, rid, body.rate, owner=owner)

    @router.delete(
        "/reservations/{rid}",
        status_code=204,
        response_class=Response,
        tags=["reservations"],
        responses={**CHANGE, **OWNED},
    )
    async def release(rid: ReservationId, owner: Owner = None) -> Response:
        """Release a reservation: its meter and flows are removed (403 if it has an owner and
        `owner` is not it)."""
        await _offload(api.release, rid, owner=owner)
        return Response(status_code=204)

    @router.post(
        "/relocations",
        response_model=RelocationView,
        tags=["relocations"],
        responses=WITH_BODY,
    )
    async def relocate(body: RelocationRequest) -> RelocationView:
        """Re-point an instance's traffic to its new attachment point (same IP and MAC)."""
        return await _offload(api.relocate, body)

    @router.post(
        "/relocations/batch",
        response_model=RelocationBatchView,
        tags=["relocations"],
        responses=WITH_BODY,
    )
    async def relocate_batch(body: RelocationBatchRequest) -> RelocationBatchView:
        """Re-point several instances' traffic in one change (a chain's functions): all moves
        are checked first (none is made if one cannot be), and one plan carries them all."""
        return await _offload(api.relocate_batch, body)

    @router.post(
        "/instances/{name}/hold",
        response_model=HoldView,
        tags=["relocations"],
        responses=WITH_BODY,
    )
    async def hold(name: InstanceName, body: HoldRequest | None = None) -> HoldView:
        """Hold the instance's traffic at the controller (while it is frozen): packets are kept,
        not dropped, and delivered when the hold is released."""
        return await _offload(api.hold, name, body or HoldRequest())

    @router.delete(
        "/instances/{name}/hold",
        response_model=HoldReleaseView,
        tags=["relocations"],
        responses=CHANGE,
    )
    async def release_hold(name: InstanceName) -> HoldReleaseView:
        """Release the hold: the held packets go out of the instance's port, where it is now."""
        return await _offload(api.release_hold, name)

    @router.get(
        "/instances/{name}/standbys",
        response_model=list[StandbyView],
        tags=["standbys"],
        responses=READ_ONE,
    )
    async def standbys(name: InstanceName) -> list[StandbyView]:
        """The instance's standbys: ports of its warm replicas (same IP and MAC), which nothing
        is steered to and whose frames are dropped there (never learned)."""
        return await _offload(api.standbys, name)

    @router.post(
        "/instances/{name}/standbys",
        response_model=StandbyView,
        status_code=201,
        tags=["standbys"],
        responses=ADMITTED,
    )
    async def add_standby(name: InstanceName, body: StandbyRequest) -> StandbyView:
        """Make a port at a site or switch a standby of the instance, before its replica starts
        there (the same standby again changes nothing; 409 if the port is another host's or
        standby's, or the instance is at that switch or has a standby there at another port)."""
        return await _offload(api.add_standby, name, body)

    @router.delete(
        "/instances/{name}/standbys/{place}",
        status_code=204,
        response_class=Response,
        tags=["standbys"],
        responses=CHANGE,
    )
    async def remove_standby(name: InstanceName, place: PlaceName) -> Response:
        """Forget the instance's standby at a site or switch (after its replica is removed:
        frames from that port are learned again)."""
        await _offload(api.remove_standby, name, place)
        return Response(status_code=204)

    @router.post(
        "/instances/{name}/promote",
        response_model=PromotionView,
        tags=["standbys"],
        responses=ADMITTED,
    )
    async def promote(name: InstanceName, body: PromotionRequest) -> PromotionView:
        """Move the instance's traffic to its standby at `to` in one make-before-break change
        (a flow switch: nothing starts); the old place becomes a standby unless `keep_old` is
        false. 409 if the instance has no standby there."""
        return await _offload(api.promote, name, body)

    return router


def create_app(
    api: ControllerAPI, routers: Sequence[APIRouter] = (), token: str | None = None
) -> FastAPI:
    """The northbound JSON API over `api`, versioned under `/v1`, with the `routers` of the
    extensions the controller process was given (e.g. `/v1/migrations`, see
    controller.extensions); their `ApiError`s answer like ours. With `token`, every request
    must carry it in the X-Mecmig-Token header (else 401, before anything reads the request)."""
    app = FastAPI(
        title="mecmig controller",
        version=_version(),
        description="Northbound API of the mecmig SDN controller: topology, bandwidth "
        "reservations and instance relocation for live migration at the edge.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    guarded = _documented(401) if token is not None else {}
    app.include_router(_router(api), responses=guarded)
    for router in routers:
        app.include_router(router, responses=guarded)
    app.add_exception_handler(ApiError, _on_api_error)
    guard_api(
        app,
        body_limit=MAX_BODY_BYTES,
        logger=log,
        token=token,
        refusal=_token_refusal,
        who="controller REST API",
    )
    return app


def _token_refusal(why: str) -> str:
    return (
        f"this controller requires its token in the {TOKEN_HEADER} header; the request had "
        f"{why} token (clients: --controller-token-file, or MECMIG_CONTROLLER_TOKEN_FILE)"
    )
