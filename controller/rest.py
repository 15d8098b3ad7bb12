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
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from typing import Annotated

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
        responses={**ADMITTED, **OWNED},
    )
    def resize(rid: ReservationId, body: ResizeRequest, owner: Owner = None) -> ReservationView:
        """Change a reservation's rate in place (409 if a larger rate won't fit; 403 if it has
        an owner and `owner` is not it)."""
        return api.resize(rid, body.rate, owner=owner)

    @router.delete(
        "/reservations/{rid}",
        status_code=204,
        response_class=Response,
        tags=["reservations"],
        responses={**CHANGE, **OWNED},
    )
    def release(rid: ReservationId, owner: Owner = None) -> Response:
        """Release a reservation: its meter and flows are removed (403 if it has an owner and
        `owner` is not it)."""
        api.release(rid, owner=owner)
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
        "/relocations/batch",
        response_model=RelocationBatchView,
        tags=["relocations"],
        responses=WITH_BODY,
    )
    def relocate_batch(body: RelocationBatchRequest) -> RelocationBatchView:
        """Re-point several instances' traffic in one change (a chain's functions): all moves
        are checked first (none is made if one cannot be), and one plan carries them all."""
        return api.relocate_batch(body)

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

    @router.get(
        "/instances/{name}/standbys",
        response_model=list[StandbyView],
        tags=["standbys"],
        responses=READ_ONE,
    )
    def standbys(name: InstanceName) -> list[StandbyView]:
        """The instance's standbys: ports of its warm replicas (same IP and MAC), which nothing
        is steered to and whose frames are dropped there (never learned)."""
        return api.standbys(name)

    @router.post(
        "/instances/{name}/standbys",
        response_model=StandbyView,
        status_code=201,
        tags=["standbys"],
        responses=ADMITTED,
    )
    def add_standby(name: InstanceName, body: StandbyRequest) -> StandbyView:
        """Make a port at a site or switch a standby of the instance, before its replica starts
        there (the same standby again changes nothing; 409 if the port is another host's or
        standby's, or the instance is at that switch or has a standby there at another port)."""
        return api.add_standby(name, body)

    @router.delete(
        "/instances/{name}/standbys/{place}",
        status_code=204,
        response_class=Response,
        tags=["standbys"],
        responses=CHANGE,
    )
    def remove_standby(name: InstanceName, place: PlaceName) -> Response:
        """Forget the instance's standby at a site or switch (after its replica is removed:
        frames from that port are learned again)."""
        api.remove_standby(name, place)
        return Response(status_code=204)

    @router.post(
        "/instances/{name}/promote",
        response_model=PromotionView,
        tags=["standbys"],
        responses=ADMITTED,
    )
    def promote(name: InstanceName, body: PromotionRequest) -> PromotionView:
        """Move the instance's traffic to its standby at `to` in one make-before-break change
        (a flow switch: nothing starts); the old place becomes a standby unless `keep_old` is
        false. 409 if the instance has no standby there."""
        return api.promote(name, body)

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
