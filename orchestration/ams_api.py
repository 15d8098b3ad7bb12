"""The application-mobility service's REST API: ETSI MEC021's registrations
(`/amsi/v1/app_mobility_services`) and mobility-procedure subscriptions (`/amsi/v1/subscriptions`),
mounted next to `/v1/migrations` by orchestration.service.mount.

MEC021's paths and bodies, mecmig's errors: every error is an `ErrorBody` (not MEC's
ProblemDetails), 404 for an unknown application instance, UE, registration or subscription, 409
when the service holds its most registrations or subscriptions, 422 for what the document calls
invalid (and an `appMobilityServiceId` a POST sets, or a PUT sets to another id). A refusal
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from controller.api_models import Conflict, Invalid, NotFound
from controller.rest import ERRORS
from ground.webapi import ErrorBody, Responses
from orchestration import ams
from orchestration.ams_models import (
    ID_PATTERN,
    MOBILITY_PROCEDURE,
    AssociateId,
    DeviceInformation,
    FilterCriteria,
    LinkType,
    MobilityProcedureNotification,
    MobilityProcedureSubscription,
    RegistrationInfo,
    SelfLink,
    ServiceConsumerId,
    SubscriptionLink,
    SubscriptionLinkList,
)
from orchestration.ams_service import AmsService

AMS_PREFIX = "/amsi/v1"
REGISTRATIONS = "/app_mobility_services"
SUBSCRIPTIONS = "/subscriptions"

_404 = {
    "model": ErrorBody,
    "description": "no such application instance, UE, registration or subscription",
}
_409 = {
    "model": ErrorBody,
    "description": f"the service holds {ams.MAX_REGISTRATIONS} registrations or "
    f"{ams.MAX_SUBSCRIPTIONS} subscriptions (its most)",
}
READ_ONE: Responses = {404: _404, 422: ERRORS[422]}
CREATE: Responses = {**{k: ERRORS[k] for k in (400, 413, 422)}, 404: _404, 409: _409}
REPLACE: Responses = {**{k: ERRORS[k] for k in (400, 413, 422)}, 404: _404}

RegistrationId = Annotated[
    str, Path(pattern=ID_PATTERN, description="application mobility service id")
]
SubscriptionId = Annotated[str, Path(pattern=ID_PATTERN, description="subscription id")]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ams.UnknownAms as exc:
        raise NotFound(str(exc.args[0])) from exc
    except ams.AmsFull as exc:
        raise Conflict(str(exc)) from exc
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + AMS_PREFIX


def _aid(a: AssociateId) -> ams.AssociateId:
    return ams.AssociateId(a.type, a.value)


def _devices(info: RegistrationInfo) -> list[ams.Device]:
    return [
        ams.Device(_aid(d.associateId), d.appMobilityServiceLevel, d.contextTransferState)
        for d in info.deviceInformation or ()
    ]


def _registration(reg: ams.Registration) -> RegistrationInfo:
    return RegistrationInfo(
        appMobilityServiceId=reg.id,
        serviceConsumerId=ServiceConsumerId(appInstanceId=reg.app),
        deviceInformation=[
            DeviceInformation(
                associateId=AssociateId(type=1, value=d.associate_id.value),
                appMobilityServiceLevel=d.service_level,  # type: ignore[arg-type]
                contextTransferState=d.context_transfer_state,  # type: ignore[arg-type]
            )
            for d in reg.devices
        ]
        or None,
        expiryTime=reg.expiry_time,
    )


def _subscription(sub: ams.Subscription) -> MobilityProcedureSubscription:
    return MobilityProcedureSubscription(
        subscriptionType="MobilityProcedureSubscription",
        callbackReference=sub.notify_url,
        filterCriteria=FilterCriteria(
            appInstanceId=sub.app,
            associateId=[AssociateId(type=1, value=a.value) for a in sub.associate_ids] or None,
            mobilityStatus=[s.value for s in sub.statuses],
        ),
        links=SelfLink(self=LinkType(href=sub.resource_url)),
    )


def _registrations(router: APIRouter, service: AmsService) -> None:
    @router.post(
        REGISTRATIONS,
        response_model=RegistrationInfo,
        response_model_exclude_none=True,
        status_code=201,
        responses=CREATE,
    )
    def register(body: RegistrationInfo, request: Request, response: Response) -> RegistrationInfo:
        """Register an application instance (a scenario instance or chain) and the UEs it serves:
        its migrations notify the mobility-procedure subscribers."""
        if body.appMobilityServiceId is not None:
            raise Invalid("appMobilityServiceId is set by the service: leave it out of a POST")
        base = _base(request)
        with _errors():
            reg = service.register(
                body.serviceConsumerId.appInstanceId,
                _devices(body),
                lambda rid: f"{base}{REGISTRATIONS}/{rid}",
                body.expiryTime,
            )
        response.headers["Location"] = reg.resource_url
        return _registration(reg)

    @router.get(
        REGISTRATIONS, response_model=list[RegistrationInfo], response_model_exclude_none=True
    )
    def registrations() -> list[RegistrationInfo]:
        """Every registered application mobility service."""
        return [_registration(r) for r in service.read(lambda st: list(st.registrations.values()))]

    one = f"{REGISTRATIONS}/{{appMobilityServiceId}}"

    @router.get(
        one, response_model=RegistrationInfo, response_model_exclude_none=True, responses=READ_ONE
    )
    def registration(appMobilityServiceId: RegistrationId) -> RegistrationInfo:
        """One application mobility service."""
        with _errors():
            return _registration(service.read(lambda st: st.registration(appMobilityServiceId)))

    @router.put(
        one, response_model=RegistrationInfo, response_model_exclude_none=True, responses=REPLACE
    )
    def update(appMobilityServiceId: RegistrationId, body: RegistrationInfo) -> RegistrationInfo:
        """Replace a registration (its application instance, UEs, expiry)."""
        if body.appMobilityServiceId not in (None, appMobilityServiceId):
            raise Invalid(
                f"appMobilityServiceId {body.appMobilityServiceId!r} is not the path's "
                f"{appMobilityServiceId!r}"
            )
        with _errors():
            reg = service.update(
                appMobilityServiceId,
                body.serviceConsumerId.appInstanceId,
                _devices(body),
                body.expiryTime,
            )
        return _registration(reg)

    @router.delete(one, status_code=204, response_class=Response, responses=READ_ONE)
    def deregister(appMobilityServiceId: RegistrationId) -> Response:
        """Deregister: its migrations notify no one any more."""
        with _errors():
            service.deregister(appMobilityServiceId)
        return Response(status_code=204)


_notify = APIRouter()


@_notify.post("{$request.body#/callbackReference}", status_code=204)
def mobility_procedure_notification(body: MobilityProcedureNotification) -> None:
    """What the service POSTs to `callbackReference`: TRIGGERED when a migration of the
    application starts, COMPLETED when it is done, FAILED when it rolled back or failed."""


def _subscriptions(router: APIRouter, service: AmsService) -> None:
    @router.post(
        SUBSCRIPTIONS,
        response_model=MobilityProcedureSubscription,
        response_model_exclude_none=True,
        status_code=201,
        responses=CREATE,
        callbacks=_notify.routes,
    )
    def subscribe(
        body: MobilityProcedureSubscription, request: Request, response: Response
    ) -> MobilityProcedureSubscription:
        """Subscribe to mobility-procedure notifications: each is POSTed to
        `callbackReference`, in order."""
        base = _base(request)
        criteria = body.filterCriteria
        with _errors():
            sub = service.subscribe(
                body.callbackReference,
                lambda sid: f"{base}{SUBSCRIPTIONS}/{sid}",
                criteria.appInstanceId,
                [_aid(a) for a in criteria.associateId or ()],
                [ams.MobilityStatus(s) for s in criteria.mobilityStatus or ()],
            )
        response.headers["Location"] = sub.resource_url
        return _subscription(sub)

    @router.get(SUBSCRIPTIONS, response_model=SubscriptionLinkList)
    def subscriptions(request: Request) -> SubscriptionLinkList:
        """Links to every subscription."""
        subs = service.read(lambda st: list(st.subscriptions.values()))
        return SubscriptionLinkList(
            links=SelfLink(self=LinkType(href=f"{_base(request)}{SUBSCRIPTIONS}")),
            subscription=[
                SubscriptionLink(href=s.resource_url, subscriptionType=MOBILITY_PROCEDURE)
                for s in subs
            ],
        )

    one = f"{SUBSCRIPTIONS}/{{subscriptionId}}"

    @router.get(
        one,
        response_model=MobilityProcedureSubscription,
        response_model_exclude_none=True,
        responses=READ_ONE,
    )
    def subscription(subscriptionId: SubscriptionId) -> MobilityProcedureSubscription:
        """One subscription."""
        with _errors():
            return _subscription(service.read(lambda st: st.subscription(subscriptionId)))

    @router.delete(one, status_code=204, response_class=Response, responses=READ_ONE)
    def unsubscribe(subscriptionId: SubscriptionId) -> Response:
        """Delete a subscription: nothing more is sent for it."""
        with _errors():
            service.unsubscribe(subscriptionId)
        return Response(status_code=204)


def ams_router(service: AmsService) -> APIRouter:
    """`/amsi/v1/...`: MEC021's registrations and mobility-procedure subscriptions."""
    router = APIRouter(
        prefix=AMS_PREFIX,
        tags=["application mobility (ETSI MEC021)"],
        responses={500: ERRORS[500]},
    )
    _registrations(router, service)
    _subscriptions(router, service)
    return router
