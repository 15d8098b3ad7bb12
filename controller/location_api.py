"""The location service's REST API: ETSI MEC013 v2's resources under `/location/v2` (queries of
zones, access points and users; zonal-traffic and user-tracking subscriptions), and mecmig's own
`/v1` routes that feed it (`/v1/ues/{name}/access-point`, `/v1/mobility/playback`).

MEC013's paths and bodies, mecmig's errors: every error is an `ErrorBody` (not MEC's
ProblemDetails), 404 for an unknown zone, access point, user or subscription, 409 when the
service holds its most subscriptions or a playback runs, 422 for what the document calls invalid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from controller.api_models import Conflict, Invalid, NotFound
from controller.limits import MAX_NAME_LENGTH, NAME_PATTERN
from controller.location import (
    MAX_SUBSCRIPTIONS,
    LocationState,
    TooManySubscriptions,
    UnknownLocation,
    User,
)
from controller.location_events import Kind, Subscription, UserEvent, timestamp
from controller.location_models import (
    ADDRESS_MAX,
    ADDRESS_PATTERN,
    CONNECTION_TYPE,
    AccessPointAnnouncement,
    AccessPointInfo,
    AccessPointList,
    CallbackReference,
    InlineAccessPointInfo,
    InlineAccessPointList,
    InlineNotificationSubscriptionList,
    InlineUserList,
    InlineUserTrackingSubscription,
    InlineZonalTrafficSubscription,
    InlineZoneInfo,
    InlineZoneList,
    NotificationSubscriptionList,
    PlaybackRequest,
    PlaybackView,
    TimeStamp,
    UELocationView,
    UserEventType,
    UserInfo,
    UserList,
    UserTrackingSubscription,
    ZonalTrafficSubscription,
    ZoneInfo,
    ZoneList,
)
from controller.location_service import LocationService, PlaybackConflict, PlaybackStatus
from controller.rest import API_PREFIX, ERRORS
from ground.webapi import ErrorBody, Responses
from topology.mobility_map import Cell
from topology.mobility_spec import MAP_NAME_PATTERN

LOCATION_PREFIX = "/location/v2"
MAX_FILTER_VALUES = 16

_404 = {"model": ErrorBody, "description": "no such zone, access point, user or subscription"}
_409 = {
    "model": ErrorBody,
    "description": f"the service holds {MAX_SUBSCRIPTIONS} subscriptions (its most), or a "
    "mobility playback runs already, or there is nothing to play",
}
READ_ONE: Responses = {404: _404, 422: ERRORS[422]}
SUBSCRIBE: Responses = {**{k: ERRORS[k] for k in (400, 413, 422)}, 404: _404, 409: _409}
WITH_BODY: Responses = {**{k: ERRORS[k] for k in (400, 413, 422)}, 404: _404}
PLAYBACK: Responses = {**{k: ERRORS[k] for k in (400, 413, 422)}, 409: _409}

MapId = Annotated[str, Path(min_length=1, max_length=32, pattern=MAP_NAME_PATTERN)]
SubscriptionId = Annotated[str, Path(pattern=r"^[0-9]{1,10}$", description="subscription id")]
UEName = Annotated[
    str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN, description="UE")
]
_MapFilter = Annotated[str, Query(max_length=32, pattern=MAP_NAME_PATTERN)]
_AddressFilter = Annotated[str, Query(max_length=ADDRESS_MAX, pattern=ADDRESS_PATTERN)]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except UnknownLocation as exc:
        raise NotFound(str(exc.args[0])) from exc
    except (TooManySubscriptions, PlaybackConflict) as exc:
        raise Conflict(str(exc)) from exc
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + LOCATION_PREFIX


def _zone_info(st: LocationState, zone_id: str, base: str) -> ZoneInfo:
    return ZoneInfo(
        zoneId=zone_id,
        numberOfAccessPoints=len(st.zones[zone_id].access_points),
        numberOfUnserviceableAccessPoints=0,
        numberOfUsers=st.users_in(zone_id=zone_id),
        resourceURL=f"{base}/queries/zones/{zone_id}",
    )


def _ap_info(st: LocationState, cell: Cell, base: str) -> AccessPointInfo:
    return AccessPointInfo(
        accessPointId=cell.name,
        connectionType=CONNECTION_TYPE.get(cell.kind, "Unknown"),
        operationStatus="Serviceable",
        numberOfUsers=st.users_in(ap=cell.name),
        interestRealm=cell.site,
        resourceURL=f"{base}/queries/zones/{cell.zone}/accessPoints/{cell.name}",
    )


def _user_info(u: User, base: str) -> UserInfo:
    assert u.access_point is not None and u.zone is not None  # only located users are listed
    where = None if u.position is None else f"x={u.position[0]:.1f} y={u.position[1]:.1f}"
    return UserInfo(
        address=u.address,
        accessPointId=u.access_point,
        zoneId=u.zone,
        resourceURL=f"{base}/queries/users?address={u.address}",
        timestamp=TimeStamp.model_validate(timestamp(u.timestamp)),
        contextLocationInfo=where,
    )


def _criteria(values: list[UserEventType] | None) -> list[UserEvent]:
    return [UserEvent(v) for v in values or ()]


def _callback(sub: Subscription) -> CallbackReference:
    return CallbackReference(notifyURL=sub.notify_url, callbackData=sub.callback_data)


def _events(sub: Subscription) -> list[UserEventType] | None:
    return [e.value for e in sub.criteria] or None


def _zonal(sub: Subscription) -> ZonalTrafficSubscription:
    return ZonalTrafficSubscription(
        callbackReference=_callback(sub),
        clientCorrelator=sub.client_correlator,
        zoneId=sub.target,
        userEventCriteria=_events(sub),
        resourceURL=sub.resource_url,
    )


def _tracking(sub: Subscription) -> UserTrackingSubscription:
    return UserTrackingSubscription(
        callbackReference=_callback(sub),
        clientCorrelator=sub.client_correlator,
        address=sub.target,
        userEventCriteria=_events(sub),
        resourceURL=sub.resource_url,
    )


def _queries(router: APIRouter, service: LocationService) -> None:
    @router.get("/queries/zones", response_model=InlineZoneList)
    def zones(request: Request) -> InlineZoneList:
        """Every zone of the scenario's map (none without a map)."""
        base = _base(request)
        found = service.read(lambda st: [_zone_info(st, z, base) for z in st.zones])
        return InlineZoneList(zoneList=ZoneList(zone=found, resourceURL=f"{base}/queries/zones"))

    @router.get("/queries/zones/{zoneId}", response_model=InlineZoneInfo, responses=READ_ONE)
    def zone(zoneId: MapId, request: Request) -> InlineZoneInfo:
        """One zone: its access points and users."""
        with _errors():
            info = service.read(lambda st: _zone_info(st, st.zone(zoneId).id, _base(request)))
        return InlineZoneInfo(zoneInfo=info)

    @router.get(
        "/queries/zones/{zoneId}/accessPoints",
        response_model=InlineAccessPointList,
        responses=READ_ONE,
    )
    def access_points(zoneId: MapId, request: Request) -> InlineAccessPointList:
        """The access points (the map's cells) of a zone."""
        base = _base(request)

        def query(st: LocationState) -> list[AccessPointInfo]:
            return [_ap_info(st, st.cells[ap], base) for ap in st.zone(zoneId).access_points]

        with _errors():
            found = service.read(query)
        url = f"{base}/queries/zones/{zoneId}/accessPoints"
        return InlineAccessPointList(
            accessPointList=AccessPointList(zoneId=zoneId, accessPoint=found, resourceURL=url)
        )

    @router.get(
        "/queries/zones/{zoneId}/accessPoints/{accessPointId}",
        response_model=InlineAccessPointInfo,
        responses=READ_ONE,
    )
    def access_point(
        zoneId: MapId,
        accessPointId: MapId,
        request: Request,
    ) -> InlineAccessPointInfo:
        """One access point of a zone."""
        base = _base(request)
        with _errors():
            info = service.read(
                lambda st: _ap_info(st, st.access_point(zoneId, accessPointId), base)
            )
        return InlineAccessPointInfo(accessPointInfo=info)

    @router.get(
        "/queries/users",
        response_model=InlineUserList,
        response_model_exclude_none=True,
        responses={422: ERRORS[422]},
    )
    def users(
        request: Request,
        zoneId: Annotated[list[_MapFilter] | None, Query(max_length=MAX_FILTER_VALUES)] = None,
        accessPointId: Annotated[
            list[_MapFilter] | None, Query(max_length=MAX_FILTER_VALUES)
        ] = None,
        address: Annotated[list[_AddressFilter] | None, Query(max_length=MAX_FILTER_VALUES)] = None,
    ) -> InlineUserList:
        """The users on an access point: all, or those in any of the zones given, on any of the
        access points given and with any of the addresses given (each filter repeatable)."""
        base = _base(request)
        found = service.read(
            lambda st: st.find_users(zoneId or (), accessPointId or (), address or ())
        )
        return InlineUserList(
            userList=UserList(
                user=[_user_info(u, base) for u in found], resourceURL=f"{base}/queries/users"
            )
        )


def _subscriptions(router: APIRouter, service: LocationService, kind: Kind) -> None:
    inline = (
        InlineZonalTrafficSubscription if kind == "zonalTraffic" else InlineUserTrackingSubscription
    )
    view = _zonal if kind == "zonalTraffic" else _tracking
    field = "zonalTrafficSubscription" if kind == "zonalTraffic" else "userTrackingSubscription"
    path = f"/subscriptions/{kind}"
    what = "a zone's users" if kind == "zonalTraffic" else "a user"

    def wrap(sub: Subscription) -> InlineZonalTrafficSubscription | InlineUserTrackingSubscription:
        return inline.model_validate({field: view(sub)})

    def create(
        body: InlineZonalTrafficSubscription | InlineUserTrackingSubscription,
        request: Request,
        response: Response,
    ) -> InlineZonalTrafficSubscription | InlineUserTrackingSubscription:
        req: ZonalTrafficSubscription | UserTrackingSubscription = getattr(body, field)
        target = req.zoneId if isinstance(req, ZonalTrafficSubscription) else req.address
        base = _base(request)
        with _errors():
            sub = service.subscribe(
                kind,
                target,
                req.callbackReference.notifyURL,
                lambda sid: f"{base}{path}/{sid}",
                req.callbackReference.callbackData,
                req.clientCorrelator,
                _criteria(req.userEventCriteria),
            )
        response.headers["Location"] = sub.resource_url
        return wrap(sub)

    create.__doc__ = f"Subscribe to the events of {what}: each is POSTed to `notifyURL`."
    create.__annotations__["body"] = inline  # FastAPI reads the body's model from here
    router.add_api_route(
        path,
        create,
        methods=["POST"],
        response_model=inline,
        response_model_exclude_none=True,
        status_code=201,
        responses=SUBSCRIBE,
        name=f"create_{kind}",
    )

    @router.get(
        path, response_model=InlineNotificationSubscriptionList, response_model_exclude_none=True
    )
    def listed(request: Request) -> InlineNotificationSubscriptionList:
        subs = [view(s) for s in service.read(lambda st: st.of_kind(kind))]
        found = NotificationSubscriptionList.model_validate(
            {field: subs, "resourceURL": f"{_base(request)}{path}"}
        )
        return InlineNotificationSubscriptionList(notificationSubscriptionList=found)

    listed.__doc__ = f"Every {kind} subscription."

    @router.get(
        f"{path}/{{subscriptionId}}",
        response_model=inline,
        response_model_exclude_none=True,
        responses=READ_ONE,
    )
    def one(
        subscriptionId: SubscriptionId,
    ) -> InlineZonalTrafficSubscription | InlineUserTrackingSubscription:
        with _errors():
            return wrap(service.read(lambda st: st.subscription(kind, subscriptionId)))

    one.__doc__ = f"One {kind} subscription."

    @router.delete(
        f"{path}/{{subscriptionId}}", status_code=204, response_class=Response, responses=READ_ONE
    )
    def delete(subscriptionId: SubscriptionId) -> Response:
        with _errors():
            service.unsubscribe(kind, subscriptionId)
        return Response(status_code=204)

    delete.__doc__ = f"Delete a {kind} subscription: nothing more is sent for it."


def location_router(service: LocationService) -> APIRouter:
    """`/location/v2/...`: MEC013's queries and subscriptions."""
    router = APIRouter(
        prefix=LOCATION_PREFIX, tags=["location (ETSI MEC013)"], responses={500: ERRORS[500]}
    )
    _queries(router, service)
    _subscriptions(router, service, "zonalTraffic")
    _subscriptions(router, service, "userTracking")
    return router


def _playback_view(status: PlaybackStatus) -> PlaybackView:
    return PlaybackView(
        running=status.running,
        time_scale=status.time_scale,
        events=status.events,
        played=status.played,
        duration_s=round(status.duration_s, 3),
    )


def mobility_router(service: LocationService) -> APIRouter:
    """`/v1/ues/{name}/access-point` and `/v1/mobility/playback`: what moves the users."""
    router = APIRouter(prefix=API_PREFIX, tags=["mobility"], responses={500: ERRORS[500]})

    @router.post("/ues/{name}/access-point", response_model=UELocationView, responses=WITH_BODY)
    def announce(name: UEName, body: AccessPointAnnouncement) -> UELocationView:
        """A UE's point of access changed (what the emulation calls when it moves the UE's
        link; null: out of every range): the location service's subscribers are notified."""
        with _errors():
            move, count = service.announce(name, body.accessPointId, body.t_s, body.time_scale)
        return UELocationView(
            ue=move.ue,
            address=move.address,
            accessPointId=move.new_ap,
            zoneId=move.new_zone,
            previousAccessPointId=move.old_ap,
            previousZoneId=move.old_zone,
            notifications=count,
        )

    @router.post(
        "/mobility/playback", response_model=PlaybackView, status_code=202, responses=PLAYBACK
    )
    def start(body: PlaybackRequest) -> PlaybackView:
        """Play the scenario's paths and traces in the controller at `time_scale`: each UE that
        moves on the map is put where it starts, then each handover is applied when due."""
        with _errors():
            return _playback_view(service.start_playback(body.time_scale))

    @router.get("/mobility/playback", response_model=PlaybackView, responses={404: _404})
    def status() -> PlaybackView:
        """The last playback started: running or not, handovers played."""
        with _errors():
            return _playback_view(service.playback())

    @router.delete("/mobility/playback", response_model=PlaybackView, responses={404: _404})
    def stop() -> PlaybackView:
        """Stop the playback that runs (404 if none does)."""
        with _errors():
            return _playback_view(service.stop_playback())

    return router


def location_routers(service: LocationService) -> list[APIRouter]:
    return [location_router(service), mobility_router(service)]
