"""Talking to a site agent: the `Site` protocol over HTTP (a Unix socket or TCP)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import httpx

from migration.site import DumpInfo, InstanceSpec, SendInfo, SiteError, SiteUnreachable


class AgentClient:
    """A remote site: `AgentClient("mec1", "10.0.0.1", uds="/run/mecmig/agent-mec1.sock")`."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        uds: str | None = None,
        url: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.name = name
        self.address = address
        transport = httpx.HTTPTransport(uds=uds) if uds else None
        base = url or ("http://agent" if uds else f"http://{address}:7070")
        self._http = httpx.Client(base_url=base, transport=transport, timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise SiteUnreachable(f"agent {self.name} unreachable: {exc}") from exc
        except httpx.HTTPError as exc:
            raise SiteError(f"agent {self.name}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error") or resp.json().get("detail") or resp.text
            except ValueError:
                message = resp.text
            raise SiteError(f"agent {self.name}: {method} {path}: {message}")
        return resp.json() if resp.content else None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/health")
        return result

    def spec(self, instance: str) -> InstanceSpec:
        data = self._call("GET", f"/v1/instances/{instance}")["spec"]
        data["args"] = tuple(data["args"])
        return InstanceSpec(**data)

    def status(self, instance: str) -> str:
        try:
            return str(self._call("GET", f"/v1/instances/{instance}")["status"])
        except SiteUnreachable:
            raise
        except SiteError:
            return "absent"

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
    ) -> DumpInfo:
        body = {"leave_running": leave_running, "on_predumps": on_predumps, "hold_url": hold_url}
        return _dump(self._call("POST", f"/v1/instances/{instance}/checkpoint", body))

    def pre_dump(self, instance: str, round_: int) -> DumpInfo:
        return _dump(self._call("POST", f"/v1/instances/{instance}/pre-dump", {"round": round_}))

    def start_receive(self, instance: str) -> int:
        return int(self._call("POST", f"/v1/instances/{instance}/receive")["port"])

    def send(self, instance: str, peer: str, port: int, *, delta: bool) -> SendInfo:
        data = self._call(
            "POST", f"/v1/instances/{instance}/send", {"peer": peer, "port": port, "delta": delta}
        )
        return SendInfo(**data)

    def finish_receive(self, instance: str) -> SendInfo:
        return SendInfo(**self._call("POST", f"/v1/instances/{instance}/receive/finish"))

    def set_link(self, instance: str, up: bool) -> None:
        self._call("POST", f"/v1/instances/{instance}/link", {"up": up})

    def restore(self, instance: str, lazy_from: str | None = None) -> None:
        self._call("POST", f"/v1/instances/{instance}/restore", {"lazy_from": lazy_from})

    def lazy_checkpoint(
        self,
        instance: str,
        page_server: str,
        *,
        on_predumps: bool = False,
        hold_url: str | None = None,
    ) -> DumpInfo:
        body = {"page_server": page_server, "on_predumps": on_predumps, "hold_url": hold_url}
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

    def cpu_jiffies(self) -> tuple[int, int]:
        data = self._call("GET", "/v1/cpu")
        return int(data["busy"]), int(data["total"])

    def close(self) -> None:
        self._http.close()


def _dump(data: dict[str, Any]) -> DumpInfo:
    return DumpInfo(
        data["image_bytes"], data["seconds"], data["leave_running"], bool(data.get("held"))
    )


def _spec(spec: InstanceSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["args"] = list(spec.args)
    return data
