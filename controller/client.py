"""A Python client of the controller's northbound REST API (`controller.rest`).

    client = ControllerClient("http://127.0.0.1:8080")
    res = client.reserve("ue1", "edge2", "40Mbit", match={"proto": "udp", "dst_port": 5001})
    client.resize(res.id, "60Mbit")
    client.release(res.id)

Every method returns the pydantic models of `controller.api_models`. HTTP errors raise
`ClientError` (`NotFoundError` for 404, `ConflictError` for 409, `ForbiddenError` for 403: a
reservation with another owner) with the server's message; a controller that cannot be reached
raises `ControllerUnreachable`.

A controller with a token (`mecmig controller --token-file`) wants it on every request: the
client sends `token`, or, without one, the token in the file `MECMIG_CONTROLLER_TOKEN_FILE`
names (if set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import requests
from pydantic import TypeAdapter, ValidationError

from controller.api_models import (
    ChainView,
    Health,
    HoldReleaseView,
    HoldView,
    InstanceView,
    PromotionView,
    RelocationBatchView,
    RelocationView,
    ReservationView,
    StandbyView,
    TopologyView,
    TrafficMatch,
)
from controller.location_models import UELocationView
from ground.token import CONTROLLER_TOKEN_ENV, TOKEN_HEADER, token_from_env

T = TypeVar("T")
log = logging.getLogger(__name__)

API_PREFIX = "/v1"
LOCATION_PREFIX = "/location/v2"  # the location service, in ETSI MEC013's shape
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})  # asked twice, the same as once


class ControllerClientError(Exception):
    """Base of the errors `ControllerClient` raises."""


class ControllerUnreachable(ControllerClientError):
    """No answer from the controller: connection refused, DNS failure or timeout."""


class ClientError(ControllerClientError):
    """The controller answered with an HTTP error (4xx/5xx), or with something unreadable."""

    def __init__(self, status: int, message: str, body: object = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class NotFoundError(ClientError):
    """404: no such reservation, host, site or instance."""


class ConflictError(ClientError):
    """409: the controller refused, e.g. not enough bandwidth on the path."""


class ForbiddenError(ClientError):
    """403: the reservation has another owner than the one the request named."""


_BY_STATUS: dict[int, type[ClientError]] = {
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
}


class ControllerClient:
    """Talks to the controller's REST API at `base_url` (without the `/v1` prefix), sending
    `token` (default: the one MECMIG_CONTROLLER_TOKEN_FILE names, if set; TokenFileError if
    that file cannot be used)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        timeout: float = 10.0,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token if token is not None else token_from_env(CONTROLLER_TOKEN_ENV)
        self._session = requests.Session()
        if self.token is not None:
            self._session.headers[TOKEN_HEADER] = self.token

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._session.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------------------- plumbing

    def _request(
        self,
        method: str,
        path: str,
        json: object = None,
        params: dict[str, str] | None = None,
        prefix: str = API_PREFIX,
    ) -> requests.Response:
        url = f"{self.base_url}{prefix}{path}"
        try:
            try:
                response = self._session.request(
                    method, url, json=json, params=params, timeout=self.timeout
                )
            except requests.ConnectionError as exc:
                if method not in IDEMPOTENT or isinstance(exc, requests.Timeout):
                    raise
                # a kept-alive connection the server closed as it was reused: once more, anew
                log.debug("%s %s: %s; trying once more", method, url, exc)
                response = self._session.request(
                    method, url, json=json, params=params, timeout=self.timeout
                )
        except requests.Timeout as exc:
            raise ControllerUnreachable(
                f"controller at {url} did not answer within {self.timeout} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise ControllerUnreachable(f"cannot reach the controller at {url}: {exc}") from exc
        if response.status_code >= 400:
            raise _http_error(method, url, response)
        return response

    def _get(self, path: str, shape: type[T]) -> T:
        return parse_response(self._request("GET", path), shape)

    # -------------------------------------------------------------------------- the API

    def health(self) -> Health:
        """The controller's health: scenario and connected switches."""
        return self._get("/health", Health)

    def topology(self) -> TopologyView:
        """Sites, switches and links with reserved and residual rates."""
        return self._get("/topology", TopologyView)

    def instances(self) -> list[InstanceView]:
        """Hosts the controller knows (instances, UEs, agents, learned hosts)."""
        return self._get("/instances", list[InstanceView])

    def chains(self) -> list[ChainView]:
        """The service chains."""
        return self._get("/chains", list[ChainView])

    def reservations(self) -> list[ReservationView]:
        """All reservations in force."""
        return self._get("/reservations", list[ReservationView])

    def reservation(self, rid: int) -> ReservationView:
        """One reservation; `NotFoundError` if there is none with this id."""
        return self._get(f"/reservations/{rid}", ReservationView)

    def reserve(
        self,
        src: str,
        dst: str,
        rate: int | str,
        *,
        match: TrafficMatch | dict[str, Any] | None = None,
        burst_kb: int | None = None,
        owner: str | None = None,
    ) -> ReservationView:
        """Reserve `rate` (bit/s, or e.g. "40Mbit") from `src` to `dst` for matching traffic.

        Raises `ConflictError` when admission control refuses (not enough residual bandwidth),
        `NotFoundError` for an unknown host or site, `ClientError` (422) for invalid values.
        """
        body: dict[str, Any] = {"src": src, "dst": dst, "rate": rate}
        if isinstance(match, TrafficMatch):
            body["match"] = match.model_dump(mode="json", exclude_none=True)
        elif match is not None:
            body["match"] = match
        if burst_kb is not None:
            body["burst_kb"] = burst_kb
        if owner is not None:
            body["owner"] = owner
        return parse_response(self._request("POST", "/reservations", body), ReservationView)

    def resize(self, rid: int, rate: int | str, owner: str | None = None) -> ReservationView:
        """Change reservation `rid` to `rate` (bit/s or e.g. "60Mbit"); a reservation made with
        an owner wants it named (else `ForbiddenError`)."""
        response = self._request(
            "PATCH", f"/reservations/{rid}", {"rate": rate}, params=_owner(owner)
        )
        return parse_response(response, ReservationView)

    def release(self, rid: int, owner: str | None = None) -> None:
        """Release reservation `rid`; `NotFoundError` if there is none, `ForbiddenError` if it
        has an owner and `owner` is not it."""
        self._request("DELETE", f"/reservations/{rid}", params=_owner(owner))

    def relocate(self, instance: str, to: str, port: int | None = None) -> RelocationView:
        """Re-point `instance`'s traffic to site or switch `to` (and `port` on that switch)."""
        body: dict[str, Any] = {"instance": instance, "to": to}
        if port is not None:
            body["port"] = port
        return parse_response(self._request("POST", "/relocations", body), RelocationView)

    def relocate_batch(self, moves: Sequence[tuple[str, str, int | None]]) -> RelocationBatchView:
        """Re-point several instances' traffic in one change: (instance, site or switch, port
        or None) each; none moves if one cannot."""
        body = {
            "moves": [
                {"instance": i, "to": to, **({"port": port} if port is not None else {})}
                for i, to, port in moves
            ]
        }
        response = self._request("POST", "/relocations/batch", body)
        return parse_response(response, RelocationBatchView)

    def hold(self, instance: str, timeout_s: float = 60.0) -> HoldView:
        """Hold `instance`'s traffic at the controller until `release_hold` (or `timeout_s`)."""
        body = {"timeout_s": timeout_s}
        return parse_response(self._request("POST", f"/instances/{instance}/hold", body), HoldView)

    def announce_access_point(
        self,
        ue: str,
        access_point: str | None,
        t_s: float | None = None,
        time_scale: float | None = None,
    ) -> UELocationView:
        """The UE's point of access changed (None: out of every range): the location service
        updates it and notifies its subscribers (what the emulation calls at a handover).
        `t_s`, `time_scale`: the mobility's time of the change, and how fast it is played."""
        body: dict[str, object] = {"accessPointId": access_point}
        if t_s is not None:
            body["t_s"] = t_s
        if time_scale is not None:
            body["time_scale"] = time_scale
        resp = self._request("POST", f"/ues/{ue}/access-point", body)
        return parse_response(resp, UELocationView)

    def track_user(self, address: str, notify_url: str, events: Sequence[str] = ()) -> str:
        """Subscribe `notify_url` to a user's location events (MEC013 userTracking; `address`
        like `acr:10.0.0.100`; `events`: ENTERING_EVENT, LEAVING_EVENT, TRANSFERRING_EVENT,
        default all); the subscription's URL (for `untrack`)."""
        sub: dict[str, object] = {
            "callbackReference": {"notifyURL": notify_url},
            "address": address,
        }
        if events:
            sub["userEventCriteria"] = list(events)
        body = {"userTrackingSubscription": sub}
        resp = self._request("POST", "/subscriptions/userTracking", body, prefix=LOCATION_PREFIX)
        data = _body(resp)
        inner = data.get("userTrackingSubscription", {}) if isinstance(data, dict) else {}
        url = inner.get("resourceURL") if isinstance(inner, dict) else None
        if not isinstance(url, str):
            raise ClientError(resp.status_code, "no resourceURL in the subscription's answer", data)
        return url

    def untrack(self, resource_url: str) -> None:
        """End a subscription `track_user` made (its URL)."""
        path = resource_url.split(LOCATION_PREFIX, 1)[-1]
        self._request("DELETE", path, prefix=LOCATION_PREFIX)

    def release_hold(self, instance: str) -> HoldReleaseView:
        """Release the hold: held packets go to where `instance` is attached now."""
        resp = self._request("DELETE", f"/instances/{instance}/hold")
        return parse_response(resp, HoldReleaseView)

    def standbys(self, instance: str) -> list[StandbyView]:
        """`instance`'s standbys (its warm replicas' ports)."""
        return self._get(f"/instances/{instance}/standbys", list[StandbyView])

    def add_standby(self, instance: str, to: str, port: int | None = None) -> StandbyView:
        """A port at site or switch `to` becomes a standby of `instance` (before its replica
        starts there); `ConflictError` if the port is taken."""
        body: dict[str, Any] = {"to": to}
        if port is not None:
            body["port"] = port
        resp = self._request("POST", f"/instances/{instance}/standbys", body)
        return parse_response(resp, StandbyView)

    def remove_standby(self, instance: str, at: str) -> None:
        """Forget `instance`'s standby at site or switch `at`; `NotFoundError` if none."""
        self._request("DELETE", f"/instances/{instance}/standbys/{at}")

    def promote(
        self,
        instance: str,
        to: str,
        keep_old: bool = True,
        drain_ms: float = 0.0,
        deliver_old: bool = False,
    ) -> PromotionView:
        """Move `instance`'s traffic to its standby at `to`; `ConflictError` if it has none.
        `drain_ms`: the old place's frames dropped only that long after the switch;
        `deliver_old`: meanwhile what arrives there leaves by its port (one host, two links)."""
        body = {"to": to, "keep_old": keep_old, "drain_ms": drain_ms, "deliver_old": deliver_old}
        resp = self._request("POST", f"/instances/{instance}/promote", body)
        return parse_response(resp, PromotionView)


def _owner(owner: str | None) -> dict[str, str] | None:
    return {"owner": owner} if owner is not None else None


def _body(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text


def _http_error(method: str, url: str, response: requests.Response) -> ClientError:
    body = _body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    else:
        text = str(body).strip()[:200] or response.reason
        message = f"{method} {url}: {text}"
    error_type = _BY_STATUS.get(response.status_code, ClientError)
    return error_type(response.status_code, message, body)


def parse_response(response: requests.Response, shape: type[T]) -> T:
    body = _body(response)
    try:
        return TypeAdapter(shape).validate_python(body)
    except ValidationError as exc:
        raise ClientError(
            response.status_code, f"unexpected response from {response.url}: {exc}", body
        ) from exc
