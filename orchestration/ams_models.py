"""The application-mobility API's data in the shape of ETSI MEC021 v2.1.1 (camelCase, integer
codes): `RegistrationInfo`, `MobilityProcedureSubscription`, `SubscriptionLinkList` and the
`MobilityProcedureNotification` a subscriber receives. Every request field is bounded; requests
are strict and take nothing they do not name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from controller.location_models import NotifyURL, TimeStamp
from orchestration.ams import MAX_DEVICES, MAX_EXPIRY_S, MAX_FILTER_IDS
from orchestration.api_models import Name

_OCTET = r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
IPV4_PATTERN = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
ID_PATTERN = r"^[0-9]{1,10}$"
MOBILITY_PROCEDURE = 1  # SubscriptionLinkList's subscriptionType for it
EXAMPLE_UE = "10.0.0.100"

MobilityStatusCode = Annotated[
    Literal[1, 2, 3],
    Field(description="1 INTERHOST_MOVEOUT_TRIGGERED, 2 ..._COMPLETED, 3 ..._FAILED"),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Request(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


def _example(example: JsonDict) -> ConfigDict:
    """A request's configuration with `example` for the OpenAPI document."""
    return ConfigDict(**_Request.model_config, json_schema_extra={"examples": [example]})


class AssociateId(_Request):
    type: Literal[1] = Field(description="1 = UE_IPv4_ADDRESS (the one type served)")
    value: str = Field(max_length=15, pattern=IPV4_PATTERN, description="the UE's IPv4 address")


class ServiceConsumerId(_Request):
    appInstanceId: Name = Field(description="a scenario instance or chain")


class DeviceInformation(_Request):
    associateId: AssociateId
    appMobilityServiceLevel: Literal[1, 2, 3] | None = Field(
        default=None,
        description="1 APP_MOBILITY_NOT_ALLOWED, 2 ..._WITH_CONFIRMATION, "
        "3 ..._WITHOUT_CONFIRMATION (kept and echoed)",
    )
    contextTransferState: Literal[0, 1] | None = Field(
        default=None,
        description="0 NOT_TRANSFERRED, 1 USER_CONTEXT_TRANSFER_COMPLETED (kept and echoed)",
    )


class RegistrationInfo(_Request):
    """An application instance's registration (POST: without `appMobilityServiceId`; PUT: the
    path's, or none)."""

    model_config = _example(
        {
            "serviceConsumerId": {"appInstanceId": "video"},
            "deviceInformation": [{"associateId": {"type": 1, "value": EXAMPLE_UE}}],
        }
    )

    appMobilityServiceId: str | None = Field(
        default=None, pattern=ID_PATTERN, description="set by the service"
    )
    serviceConsumerId: ServiceConsumerId
    deviceInformation: list[DeviceInformation] | None = Field(
        default=None, max_length=MAX_DEVICES, description="the UEs the application serves"
    )
    expiryTime: int | None = Field(
        default=None, ge=0, le=MAX_EXPIRY_S, description="seconds (kept and echoed; not enforced)"
    )


class FilterCriteria(_Request):
    appInstanceId: Name | None = Field(default=None, description="one application, or any")
    associateId: list[AssociateId] | None = Field(
        default=None, max_length=MAX_FILTER_IDS, description="any of these UEs, or any"
    )
    mobilityStatus: list[MobilityStatusCode] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description="the statuses to notify (MEC021's default: [1], TRIGGERED only)",
    )


class LinkType(_Model):
    href: str


class SelfLink(_Model):
    self: LinkType


class MobilityProcedureSubscription(_Request):
    """A subscription to mobility-procedure notifications, POSTed to `callbackReference`."""

    model_config = _example(
        {
            "subscriptionType": "MobilityProcedureSubscription",
            "callbackReference": "http://127.0.0.1:9/notify",
            "filterCriteria": {"appInstanceId": "video", "mobilityStatus": [1, 2, 3]},
        }
    )

    subscriptionType: Literal["MobilityProcedureSubscription"]
    callbackReference: NotifyURL
    filterCriteria: FilterCriteria
    links: SelfLink | None = Field(
        default=None, alias="_links", description="set by the service; ignored"
    )


class SubscriptionLink(_Model):
    href: str
    subscriptionType: int = Field(description="1 = MOBILITY_PROCEDURE")


class SubscriptionLinkList(_Model):
    links: SelfLink = Field(alias="_links")
    subscription: list[SubscriptionLink]


class IpAddress(_Model):
    host: str
    port: int = Field(description="0: the scenario declares no port")


class CommunicationInterface(_Model):
    ipAddresses: list[IpAddress]


class MecHostInformation(_Model):
    hostName: str = Field(description="the MEC site")
    hostId: dict[str, str]


class TargetAppInfo(_Model):
    appInstanceId: str
    commInterface: CommunicationInterface
    mecHostInformation: MecHostInformation = Field(
        description="mecmig's addition: the site it moves to (or, FAILED, where it serves)"
    )


class SubscriptionLinkRef(_Model):
    subscription: LinkType


class MobilityProcedureNotification(_Model):
    """What a subscriber receives."""

    notificationType: Literal["MobilityProcedureNotification"]
    timeStamp: TimeStamp
    associateId: list[AssociateId] | None = None
    mobilityStatus: MobilityStatusCode
    targetAppInfo: TargetAppInfo
    links: SubscriptionLinkRef = Field(alias="_links")
