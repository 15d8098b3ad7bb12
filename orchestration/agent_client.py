"""Talking to a site agent: the `Site` protocol over HTTP (a Unix socket or TCP).

Errors are those the in-process `agent.service.SiteService` raises (`agent.errors`), rebuilt from
the agent's HTTP status: 404 `UnknownInstance`, 401 `Unauthorized`, 409 `Conflict`, 400
`BadRequest`, else `StepFailed`. An agent that does not answer raises `SiteUnreachable` naming
the site and the endpoint (`site mec1: agent at http://10.0.0.1:7070 unreachable: connection
refused`).
"""

from __future__ import annotations

import functools
import json
import re
import ssl
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from agent.errors import StepFailed, Unauthorized, UnknownInstance, error_for_status
from agent.token import TOKEN_HEADER
from ground.defaults import AGENT_PORT
from migration.compression import Sample
from migration.site import (
    CriuDumpStats,
    CriuRestoreStats,
    DumpInfo,
    Handoff,
    InstanceSpec,
    RestoreInfo,
    SendInfo,
    SiteError,
    SiteUnreachable,
)

_ERRNO = re.compile(r"^\[Errno -?\d+\] ")
DEFAULT_TIMEOUT_S = 600.0  # a step may take that long (a dump, a transfer, a start)
IMAGE_TIMEOUT_S = 3600.0  # an image's upload and unpack (gigabytes over a slow link)


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, made once: every client makes its own otherwise, reading the
    CA bundle (~43-72 ms each here), and the controller makes one per site (1,000 sites: ~50 s
    to start)."""
    return httpx.create_ssl_context()


class AgentClient:
    """A remote site: `AgentClient("mec1", "10.0.0.1", uds="/run/mecmig/agent-mec1.sock")` or
    `AgentClient.at("mec1", "10.0.0.1", "http://10.0.0.1:7070", token=...)`."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        uds: str | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        http: httpx.Client | None = None,
    ) -> None:
        self.name = name
        self.address = address
        base = url or ("http://agent" if uds else f"http://{address}:{AGENT_PORT}")
        self.endpoint = f"unix:{uds}" if uds else base  # as the user wrote it, for messages
        self._headers = {TOKEN_HEADER: token} if token else {}
        if http is not None:  # tests: an ASGI test client
            self._http = http
        else:
            transport = httpx.HTTPTransport(uds=uds, verify=_tls()) if uds else None
            self._http = httpx.Client(
                base_url=base, transport=transport, timeout=timeout, verify=_tls()
            )

    @classmethod
    def at(
        cls,
        name: str,
        address: str,
        endpoint: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> AgentClient:
        """The agent at `endpoint`: `unix:/path/to.sock` or `http://HOST:PORT` (checked by
        topology.scenario.SiteSpec.agent_endpoint)."""
        if endpoint.startswith("unix:"):
            return cls(name, address, uds=endpoint[len("unix:") :], token=token, timeout=timeout)
        return cls(name, address, url=endpoint, token=token, timeout=timeout)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        content: Iterator[bytes] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            resp = self._http.request(
                method,
                path,
                json=body,
                content=content,
                params=params,
                headers=self._headers,
                **extra,
            )
        except httpx.TransportError as exc:
            raise SiteUnreachable(
                f"site {self.name}: agent at {self.endpoint} unreachable: {_reason(exc)}",
                delivered=not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout),
            ) from exc
        except httpx.HTTPError as exc:
            raise SiteError(f"site {self.name}: agent at {self.endpoint}: {exc}") from exc
        if resp.status_code >= 400:
            raise self._refusal(method, path, resp)
        return resp.json() if resp.content else None

    def _refusal(self, method: str, path: str, resp: httpx.Response) -> SiteError:
        """The agent's error as the exception its status stands for. Only an answer in the
        agent's own format counts: a 404 from something else at that address is no `absent`."""
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("error"), str)):
            detail = data.get("detail") if isinstance(data, dict) else None
            return StepFailed(
                f"site {self.name}: agent at {self.endpoint}: {method} {path}: HTTP "
                f"{resp.status_code} {detail or resp.text[:200]!r} (is it a mecmig agent?)"
            )
        message = data["error"]
        if not message.startswith(f"site {self.name}"):
            message = f"site {self.name}: {method} {path}: {message}"
        error = error_for_status(resp.status_code, message)
        if isinstance(error, Unauthorized):
            return Unauthorized(f"{message} (agent at {self.endpoint})")
        return error

    def note_migration(self, instance: str, note: dict[str, Any]) -> None:
        """Leave `note` (how the instance came there) with the site that holds it."""
        self._call("PUT", f"/v1/instances/{instance}/last-migration", note)

    def last_migration(self, instance: str) -> dict[str, Any] | None:
        """The note of the instance's last migration its site keeps (None: none)."""
        found = self._call("GET", f"/v1/instances/{instance}").get("last_migration")
        return found if isinstance(found, dict) else None

    def image(self, digest: str) -> dict[str, Any] | None:
        """What the site has of image `digest` ({digest, kind, bytes}), None if nothing."""
        try:
            found: dict[str, Any] = self._call("GET", f"/v1/images/{digest}")
        except UnknownInstance:  # the agent's 404
            return None
        return found

    def put_image(self, digest: str, kind: str, chunks: Iterator[bytes]) -> dict[str, Any]:
        """Send image `digest` (ground.rootfs_image.upload_chunks); the site checks and
        unpacks it before it answers, so this waits as long as that takes."""
        sent: dict[str, Any] = self._call(
            "PUT",
            f"/v1/images/{digest}",
            content=chunks,
            params={"kind": kind},
            timeout=IMAGE_TIMEOUT_S,
        )
        return sent

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/health")
        return result

    def spec(self, instance: str) -> InstanceSpec:
        data = self._call("GET", f"/v1/instances/{instance}")["spec"]
        return InstanceSpec.from_dict(data)

    def status(self, instance: str) -> str:
        """Its status at this site; 'absent' only when the agent says it holds no such
        instance (404). Any other error, and an agent that does not answer, raise."""
        try:
            return str(self._call("GET", f"/v1/instances/{instance}")["status"])
        except UnknownInstance:
            return "absent"

    def logs(self, instance: str, lines: int = 100) -> list[str]:
        """The last `lines` lines `instance` wrote (UnknownInstance if it is not here)."""
        data = self._call("GET", f"/v1/instances/{instance}/logs?lines={int(lines)}")
        return [str(line) for line in data["lines"]]

    def create(self, spec: InstanceSpec) -> None:
        self._call("POST", "/v1/instances", _spec(spec))

    def prepare_target(self, spec: InstanceSpec) -> None:
        self._call("POST", f"/v1/instances/{spec.name}/prepare-target", _spec(spec))

    def checkpoint(
        self,
        instance: str,
        *,
        leave_running: bool,
        on_predumps: bool = False,
        hold_url: str | None = None,
        page_server: str | None = None,
        pace_bps: int | None = None,
        sample: bool = False,
    ) -> DumpInfo:
        body: dict[str, Any] = {
            "leave_running": leave_running, "on_predumps": on_predumps, "hold_url": hold_url,
        }  # fmt: skip
        if page_server is not None:
            body |= {"page_server": page_server, "pace_bps": pace_bps}
        if sample:
            body["sample"] = True
        return _dump(self._call("POST", f"/v1/instances/{instance}/checkpoint", body))

    def pre_dump(self, instance: str, round_: int, sample: bool = False) -> DumpInfo:
        body: dict[str, Any] = {"round": round_, **({"sample": True} if sample else {})}
        return _dump(self._call("POST", f"/v1/instances/{instance}/pre-dump", body))

    def start_receive(
        self,
        instance: str,
        port: int | None = None,
        pages_port: int | None = None,
        lazy_from: str | None = None,
    ) -> int:
        body: dict[str, Any] | None = {"port": port} if port is not None else None
        if pages_port is not None:
            body = {**(body or {}), "pages_port": pages_port}
        if lazy_from is not None:
            body = {**(body or {}), "lazy_from": lazy_from}
        return int(self._call("POST", f"/v1/instances/{instance}/receive", body)["port"])

    def send(
        self,
        instance: str,
        peer: str,
        port: int,
        *,
        delta: bool,
        pace_bps: int | None = None,
        compress: Literal["none", "zstd"] = "none",
    ) -> SendInfo:
        body: dict[str, Any] = {"peer": peer, "port": port, "delta": delta}
        if pace_bps is not None:
            body["pace_bps"] = pace_bps
        if compress != "none":
            body["compress"] = compress
        return SendInfo(**self._call("POST", f"/v1/instances/{instance}/send", body))

    def finish_receive(self, instance: str) -> SendInfo:
        return SendInfo(**self._call("POST", f"/v1/instances/{instance}/receive/finish"))

    def start_volume_receive(self, instance: str, port: int | None = None) -> int:
        body = {"port": port} if port is not None else None
        return int(self._call("POST", f"/v1/instances/{instance}/volume/receive", body)["port"])

    def finish_volume_receive(self, instance: str) -> SendInfo:
        return SendInfo(**self._call("POST", f"/v1/instances/{instance}/volume/receive/finish"))

    def send_volume(self, instance: str, peer: str, port: int, *, full: bool = False) -> SendInfo:
        body = {"peer": peer, "port": port, "full": full}
        return SendInfo(**self._call("POST", f"/v1/instances/{instance}/volume/send", body))

    def set_link(self, instance: str, up: bool) -> None:
        self._call("POST", f"/v1/instances/{instance}/link", {"up": up})

    def restore(self, instance: str, lazy_from: str | None = None) -> RestoreInfo | None:
        data = self._call("POST", f"/v1/instances/{instance}/restore", {"lazy_from": lazy_from})
        seconds = data.get("seconds")
        if not isinstance(seconds, int | float):
            return None  # an agent from before restores reported what they took
        criu = data.get("criu")
        status = data.get("status")
        return RestoreInfo(
            float(seconds),
            _seconds(data.get("runc_s")),
            CriuRestoreStats.from_dict(criu) if isinstance(criu, dict) else None,
            status=status if isinstance(status, str) else None,
        )

    def lazy_checkpoint(
        self,
        instance: str,
        page_server: str,
        *,
        on_predumps: bool = False,
        hold_url: str | None = None,
        handoff: Handoff | None = None,
    ) -> DumpInfo:
        body: dict[str, Any] = {
            "page_server": page_server, "on_predumps": on_predumps, "hold_url": hold_url,
        }  # fmt: skip
        if handoff is not None:
            body |= {"send_to": f"{handoff.peer}:{handoff.port}", "delta": handoff.delta}
            if handoff.pace_bps is not None:
                body["pace_bps"] = handoff.pace_bps
            if handoff.compress != "none":
                body["compress"] = handoff.compress
        return _dump(self._call("POST", f"/v1/instances/{instance}/lazy-dump", body))

    def finish_lazy_checkpoint(self, instance: str) -> None:
        self._call("POST", f"/v1/instances/{instance}/lazy-dump/finish")

    def abort_lazy_checkpoint(self, instance: str) -> None:
        self._call("POST", f"/v1/instances/{instance}/lazy-dump/abort")

    def finish_pages(self, instance: str) -> float:
        return float(self._call("POST", f"/v1/instances/{instance}/restore/pages")["seconds"])

    def stop(self, instance: str) -> None:
        self._call("POST", f"/v1/instances/{instance}/stop")

    def start(self, instance: str) -> None:
        self._call("POST", f"/v1/instances/{instance}/start")

    def resume(self, instance: str) -> str:
        return str(self._call("POST", f"/v1/instances/{instance}/resume")["how"])

    def destroy(self, instance: str) -> None:
        self._call("DELETE", f"/v1/instances/{instance}")

    def tx_bytes(self) -> int:
        return int(self._call("GET", "/v1/netstat")["tx_bytes"])

    def site_cpu(self) -> dict[str, float]:
        """The site's CPU seconds so far (agent tree, containers) and the agent's clock."""
        data = self._call("GET", "/v1/cpu/site")
        return {k: float(v) for k, v in data.items()}

    def cpu_jiffies(self) -> tuple[int, int]:
        data = self._call("GET", "/v1/cpu")
        return int(data["busy"]), int(data["total"])

    def close(self) -> None:
        self._http.close()


def _reason(exc: httpx.TransportError) -> str:
    """`[Errno 111] Connection refused` -> `connection refused`."""
    text = _ERRNO.sub("", str(exc)) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dump(data: dict[str, Any]) -> DumpInfo:
    frozen = data.get("frozen_at")
    criu = data.get("criu")
    return DumpInfo(
        data["image_bytes"],
        data["seconds"],
        data["leave_running"],
        bool(data.get("held")),
        float(frozen) if isinstance(frozen, int | float) else None,
        runc_s=_seconds(data.get("runc_s")),
        criu=CriuDumpStats.from_dict(criu) if isinstance(criu, dict) else None,
        sent=SendInfo(**sent) if isinstance(sent := data.get("sent"), dict) else None,
        link_down=bool(data.get("link_down")),
        sample=_sample(data.get("sample")),
    )


def _sample(value: Any) -> Sample | None:
    """A dump's sample of its memory, None where it has none (or an agent from before)."""
    if not isinstance(value, dict):
        return None
    raw, packed, seconds, level = (
        value.get(k) for k in ("raw_bytes", "compressed_bytes", "seconds", "level")
    )
    if not (isinstance(raw, int) and isinstance(packed, int) and isinstance(level, int)):
        return None
    if not isinstance(seconds, int | float) or raw < 0 or packed < 0 or seconds < 0:
        return None
    return Sample(raw, packed, float(seconds), level)


def _spec(spec: InstanceSpec) -> dict[str, Any]:
    """Its JSON body (lists for its tuples)."""
    data: dict[str, Any] = json.loads(spec.to_json())
    return data
