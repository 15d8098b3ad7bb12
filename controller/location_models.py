"""The location API's data in the shape of ETSI MEC013 v2 (camelCase, each list and object
wrapped as MEC013 wraps it: `{"zoneList": {"zone": [...], "resourceURL"}}`), and mecmig's own
`/v1` requests that feed it (a UE's access point, the playback). Every request field is bounded;
requests are strict and take nothing they do not name.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from controller.location import MAX_CALLBACK_DATA, MAX_CORRELATOR, MAX_URL_LENGTH
from controller.location_service import MAX_TIME_SCALE, MIN_TIME_SCALE
from topology.mobility_spec import MAP_NAME_PATTERN, MAX_TIME_S

_OCTET = r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
ADDRESS_PATTERN = rf"^acr:{_OCTET}(\.{_OCTET}){{3}}$"
ADDRESS_MAX = 19
URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s]*)?$"
MapId = Annotated[str, Field(min_length=1, max_length=32, pattern=MAP_NAME_PATTERN)]
Address = Annotated[
    str,
    Field(max_length=ADDRESS_MAX, pattern=ADDRESS_PATTERN, description="acr:<IPv4 of the UE>"),
]


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("notifyURL must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("notifyURL has a port out of range") from None
    return value


NotifyURL = Annotated[
    str, Field(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN), AfterValidator(_url)
]


UserEventType = Literal["ENTERING_EVENT", "LEAVING_EVENT", "TRANSFERRING_EVENT"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ------------------------------------------------------------------------------ queries


class TimeStamp(_Model):
    seconds: int
    nanoSeconds: int


class ZoneInfo(_Model):
    zoneId: str
    numberOfAccessPoints: int
    numberOfUnserviceableAccessPoints: int
    numberOfUsers: int
    resourceURL: str


class ZoneList(_Model):
    zone: list[ZoneInfo]
    resourceURL: str


class InlineZoneList(_Model):
    zoneList: ZoneList


class InlineZoneInfo(_Model):
    zoneInfo: ZoneInfo


ConnectionType = Literal["Smallcell", "Macro", "Wifi", "Unknown"]
CONNECTION_TYPE: dict[str, ConnectionType] = {
    "5g": "Smallcell",
    "4g": "Macro",
    "wifi": "Wifi",
    "other": "Unknown",
}


class AccessPointInfo(_Model):
    accessPointId: str
    connectionType: ConnectionType
    operationStatus: Literal["Serviceable", "Unserviceable", "Unknown"]
    numberOfUsers: int
    interestRealm: str = Field(description="the MEC site serving the access point")
    resourceURL: str


class AccessPointList(_Model):
    zoneId: str
    accessPoint: list[AccessPointInfo]
    resourceURL: str


class InlineAccessPointList(_Model):
    accessPointList: AccessPointList


class InlineAccessPointInfo(_Model):
    accessPointInfo: AccessPointInfo


class UserInfo(_Model):
    address: str
    accessPointId: str
    zoneId: str
    resourceURL: str
    timestamp: TimeStamp
    contextLocationInfo: str | None = Field(
        default=None, description="its position on the scenario's map, in metres: 'x=.. y=..'"
    )


class UserList(_Model):
    user: list[UserInfo]
    resourceURL: str


class InlineUserList(_Model):
    userList: UserList


# ------------------------------------------------------------------------------ subscriptions


class CallbackReference(_Request):
    notifyURL: NotifyURL
    callbackData: str | None = Field(default=None, max_length=MAX_CALLBACK_DATA)


class _Subscription(_Request):
    callbackReference: CallbackReference
    clientCorrelator: str | None = Field(default=None, max_length=MAX_CORRELATOR)
    userEventCriteria: list[UserEventType] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description="the events to notify (default: all three)",
    )
    resourceURL: str | None = Field(
        default=None, max_length=MAX_URL_LENGTH, description="set by the service; ignored"
    )


class ZonalTrafficSubscription(_Subscription):
    zoneId: MapId


class UserTrackingSubscription(_Subscription):
    address: Address


class InlineZonalTrafficSubscription(_Request):
    zonalTrafficSubscription: ZonalTrafficSubscription


class InlineUserTrackingSubscription(_Request):
    userTrackingSubscription: UserTrackingSubscription


class NotificationSubscriptionList(_Model):
    zonalTrafficSubscription: list[ZonalTrafficSubscription] | None = None
    userTrackingSubscription: list[UserTrackingSubscription] | None = None
    resourceURL: str


class InlineNotificationSubscriptionList(_Model):
    notificationSubscriptionList: NotificationSubscriptionList


class Link(_Model):
    rel: str
    href: str


class ZonalPresenceNotification(_Model):
    """What a subscriber receives, for either kind of subscription."""

    zoneId: str
    address: str
    callbackData: str | None = None
    userEventType: UserEventType
    currentAccessPointId: str
    previousAccessPointId: str | None = None
    timestamp: TimeStamp
    link: list[Link]


class InlineZonalPresenceNotification(_Model):
    zonalPresenceNotification: ZonalPresenceNotification


# ------------------------------------------------------------------------------ /v1: feeding it


class AccessPointAnnouncement(_Request):
    """A UE's new point of access (null: out of every range), e.g. from the emulation; with
    `t_s`, the mobility's time of the change (and `time_scale`), which sets the controller's
    mobility clock (what follow-me predicts with)."""

    accessPointId: MapId | None
    t_s: float | None = Field(default=None, ge=0, le=MAX_TIME_S)
    time_scale: float | None = Field(default=None, ge=MIN_TIME_SCALE, le=MAX_TIME_SCALE)


class UELocationView(_Model):
    ue: str
    address: str
    accessPointId: str | None
    zoneId: str | None
    previousAccessPointId: str | None
    previousZoneId: str | None
    notifications: int = Field(description="notifications queued for the subscribers")


class PlaybackRequest(_Request):
    time_scale: float = Field(
        ge=MIN_TIME_SCALE,
        le=MAX_TIME_SCALE,
        allow_inf_nan=False,
        description="scenario seconds per second (1: real time)",
    )


class PlaybackView(_Model):
    running: bool
    time_scale: float
    events: int = Field(description="handovers to play")
    played: int
    duration_s: float = Field(description="scenario seconds from the start to the last one")
