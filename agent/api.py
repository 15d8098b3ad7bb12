"""The site agent's HTTP API: what one MEC site does for migrations (FastAPI).

Each call is one step of a migration at this site; the orchestrator strings them together. The
agent serves its API on a Unix socket (the orchestrator on the same machine) and/or TCP, and moves
migration traffic to and from other agents on MIGRATION_PORT, over the (emulated) network, where
the controller's reservation meters it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.container import PREDUMPS, ContainerError, SiteContainers
from agent.criu_images import ImageError
from agent.lazy import LazyDump, start_lazy_dump, start_lazy_restore
from agent.netns import NetnsError
from agent.runc import CheckpointOptions, RuncError
from agent.transfer import Manifest, Receiver, TransferError, send_dir
from ground.runner import Spawned, SubprocessRunner
from migration.site import InstanceSpec

log = logging.getLogger("mecmig.agent")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpecBody(_Body):
    name: str
    args: list[str]
    ip: str
    prefix: int
    mac: str
    port: int
    memory_bytes: int | None = None
    files: dict[str, str] = {}
    volume: bool = False

    def spec(self) -> InstanceSpec:
        return InstanceSpec(**{**self.model_dump(), "args": tuple(self.args)})


class CheckpointBody(_Body):
    leave_running: bool = False
    on_predumps: bool = False  # only what changed since the last pre-dump round
    hold_url: str | None = None  # the controller's hold endpoint, called at CRIU's freeze


class PreDumpBody(_Body):
    round: int = Field(ge=1)  # 1 starts a new chain of pre-dumps


class SendBody(_Body):
    peer: str
    port: int
    delta: bool = False


class LinkBody(_Body):
    up: bool


class LazyBody(_Body):
    page_server: str  # "ADDR:PORT"
    on_predumps: bool = False
    hold_url: str | None = None


class RestoreBody(_Body):
    lazy_from: str | None = None  # the source's page server, for a post-copy restore


def _finished_round(rel: str) -> bool:
    """A pre-dump round's images never change once CRIU wrote them (the transfer skips them)."""
    return rel.startswith(f"{PREDUMPS}/")


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Agent:
    """The state an agent keeps between calls: receivers waiting, manifests of what it sent."""

    def __init__(self, containers: SiteContainers, listen_ip: str, migration_port: int) -> None:
        self.sites = containers
        self.listen_ip = listen_ip
        self.migration_port = migration_port
        self.receivers: dict[str, Receiver] = {}
        self.manifests: dict[str, Manifest] = {}
        self.lazy_dumps: dict[str, LazyDump] = {}  # source side of post-copy
        self.lazy_daemons: dict[str, Spawned] = {}  # destination side of post-copy
        self.spawner = SubprocessRunner()
        self.lock = threading.Lock()  # one step at a time per agent
        self.mem_dirty_track = False  # `criu check --feature mem_dirty_track`, set at start


def create_agent_app(agent: Agent) -> FastAPI:
    """The agent's API under /v1 (OpenAPI at /v1/openapi.json)."""
    app = FastAPI(
        title=f"mecmig agent {agent.sites.site}",
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    c = agent.sites

    @app.exception_handler(ContainerError)
    @app.exception_handler(RuncError)
    @app.exception_handler(NetnsError)
    @app.exception_handler(TransferError)
    @app.exception_handler(ImageError)
    async def _failed(_: Request, exc: Exception) -> JSONResponse:
        log.error("site %s: %s", c.site, exc)
        return JSONResponse(status_code=500, content={"error": str(exc)})

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("site %s: unexpected error", c.site, exc_info=exc)
        return JSONResponse(status_code=500, content={"error": f"{type(exc).__name__}: {exc}"})

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {
            "site": c.site,
            "instances": c.instances(),
            "mem_dirty_track": agent.mem_dirty_track,
        }

    @app.get("/v1/cpu")
    def cpu() -> dict[str, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return {"busy": sum(fields) - idle, "total": sum(fields)}

    @app.get("/v1/netstat")
    def netstat() -> dict[str, int]:
        """Bytes this agent's network namespace has sent (post-copy pages are counted so)."""
        tx = 0
        for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
            name, _, counters = line.partition(":")
            if name.strip() != "lo":
                tx += int(counters.split()[8])
        return {"tx_bytes": tx}

    @app.get("/v1/instances/{name}")
    def spec(name: str) -> dict[str, Any]:
        return {"spec": asdict(c.spec(name)), "status": c.status(name)}

    @app.post("/v1/instances", status_code=201)
    def create(body: SpecBody) -> dict[str, str]:
        with agent.lock:
            c.create(body.spec())
        return {"status": c.status(body.name)}

    @app.post("/v1/instances/{name}/prepare-target")
    def prepare_target(name: str, body: SpecBody) -> dict[str, str]:
        with agent.lock:
            c.prepare_target(body.spec())
        return {"status": "prepared"}

    @app.post("/v1/instances/{name}/checkpoint")
    def checkpoint(name: str, body: CheckpointBody) -> dict[str, Any]:
        with agent.lock:
            t0 = time.monotonic()
            opts = CheckpointOptions(leave_running=body.leave_running)
            image = c.checkpoint(name, opts, on_predumps=body.on_predumps, hold_url=body.hold_url)
            seconds = time.monotonic() - t0
        return {
            "image_bytes": _du(image),
            "seconds": seconds,
            "leave_running": body.leave_running,
            "held": c.held(name),
        }

    @app.post("/v1/instances/{name}/pre-dump")
    def pre_dump(name: str, body: PreDumpBody) -> dict[str, Any]:
        """A pre-copy round with CRIU's dirty-memory tracking (the service runs on)."""
        with agent.lock:
            t0 = time.monotonic()
            try:
                image = c.pre_dump(name, body.round)
            except RuncError as exc:
                has = "has" if agent.mem_dirty_track else "does not have"
                raise ContainerError(
                    f"site {c.site}: pre-dump of {name} failed ({exc}); this site's kernel {has} "
                    "dirty memory tracking (criu check --feature mem_dirty_track)"
                ) from exc
            seconds = time.monotonic() - t0
        return {"image_bytes": _du(image), "seconds": seconds, "leave_running": True}

    @app.post("/v1/instances/{name}/receive")
    def receive(name: str) -> dict[str, int]:
        with agent.lock:
            old = agent.receivers.pop(name, None)
            if old is not None:
                old.close()
            c.xfer_dir(name).mkdir(parents=True, exist_ok=True)
            rx = Receiver(c.xfer_dir(name), host=agent.listen_ip, port=agent.migration_port)
            port = rx.start()
            agent.receivers[name] = rx
        return {"port": port}

    @app.post("/v1/instances/{name}/receive/finish")
    def finish_receive(name: str) -> dict[str, Any]:
        rx = agent.receivers.pop(name, None)
        if rx is None:
            raise ContainerError(f"site {c.site}: nothing is being received for {name}")
        try:
            stats = rx.wait(timeout=600)
        finally:
            rx.close()
        return _stats(stats)

    @app.post("/v1/instances/{name}/send")
    def send(name: str, body: SendBody) -> dict[str, Any]:
        previous = agent.manifests.get(name) if body.delta else None
        stats, manifest = send_dir(
            c.xfer_dir(name), body.peer, body.port, previous=previous, immutable=_finished_round
        )
        agent.manifests[name] = manifest
        return _stats(stats)

    @app.post("/v1/instances/{name}/link")
    def link(name: str, body: LinkBody) -> dict[str, bool]:
        c.net.set_link(c.plug(c.spec(name)), body.up)
        return {"up": body.up}

    @app.post("/v1/instances/{name}/restore")
    def restore(name: str, body: RestoreBody | None = None) -> dict[str, Any]:
        with agent.lock:
            t0 = time.monotonic()
            if body is not None and body.lazy_from:
                agent.lazy_daemons[name] = start_lazy_restore(
                    c, name, body.lazy_from, agent.spawner
                )
            else:
                c.restore(name)
        return {"status": c.status(name), "seconds": time.monotonic() - t0}

    @app.post("/v1/instances/{name}/lazy-dump")
    def lazy_dump(name: str, body: LazyBody) -> dict[str, Any]:
        with agent.lock:
            dump = start_lazy_dump(
                c,
                name,
                body.page_server,
                agent.spawner,
                on_predumps=body.on_predumps,
                hold_url=body.hold_url,
            )
            agent.lazy_dumps[name] = dump
        return {
            "image_bytes": _du(c.images_dir(name)),
            "seconds": dump.seconds,
            "leave_running": False,
            "held": c.held(name),
        }

    @app.post("/v1/instances/{name}/lazy-dump/finish")
    def finish_lazy_dump(name: str) -> dict[str, Any]:
        """Source: wait until the destination has pulled every page (the page server ends)."""
        dump = agent.lazy_dumps.pop(name, None)
        if dump is None:
            raise ContainerError(f"site {c.site}: no lazy dump of {name} in progress")
        code = dump.process.wait(600)
        if code is None:
            dump.process.kill()
            raise ContainerError(f"site {c.site}: page server of {name} still running")
        if code != 0:
            raise ContainerError(
                f"site {c.site}: page server of {name} exited {code}: "
                f"{c.runc.last_error(name, dump.log_since) or dump.process.tail()}"
            )
        return {"exit": code}

    @app.post("/v1/instances/{name}/lazy-dump/abort")
    def abort_lazy_dump(name: str) -> dict[str, str]:
        """Source: stop serving pages; CRIU lets the frozen service run on (still locked)."""
        dump = agent.lazy_dumps.pop(name, None)
        if dump is not None:
            dump.process.stop(timeout=5)
        return {"status": c.status(name)}

    @app.post("/v1/instances/{name}/restore/pages")
    def finish_pages(name: str) -> dict[str, Any]:
        """Destination: wait until every page has arrived (the lazy-pages daemon ends)."""
        daemon = agent.lazy_daemons.pop(name, None)
        if daemon is None:
            return {"exit": 0, "seconds": 0.0}
        t0 = time.monotonic()
        code = daemon.wait(600)
        if code != 0:
            daemon.kill()
            raise ContainerError(
                f"site {c.site}: lazy pages of {name} failed ({code}): {daemon.tail()}"
            )
        c.drop_predumps(name)  # every page is in the process now
        return {"exit": code, "seconds": time.monotonic() - t0}

    @app.post("/v1/instances/{name}/stop")
    def stop(name: str) -> dict[str, str]:
        with agent.lock:
            c.stop(name)
        return {"status": c.status(name)}

    @app.post("/v1/instances/{name}/start")
    def start(name: str) -> dict[str, str]:
        with agent.lock:
            c.start(name)
        return {"status": c.status(name)}

    @app.post("/v1/instances/{name}/resume")
    def resume(name: str) -> dict[str, str]:
        with agent.lock:
            how = c.resume_after_failed_migration(name)
        return {"how": how, "status": c.status(name)}

    @app.delete("/v1/instances/{name}")
    def destroy(name: str) -> dict[str, str]:
        with agent.lock:
            rx = agent.receivers.pop(name, None)
            if rx is not None:
                rx.close()
            agent.manifests.pop(name, None)
            for proc in (
                agent.lazy_daemons.pop(name, None),
                getattr(agent.lazy_dumps.pop(name, None), "process", None),
            ):
                if proc is not None:
                    proc.kill()
            c.destroy(name)
        return {"status": "absent"}

    return app


def _stats(stats: Any) -> dict[str, Any]:
    return {
        "bytes_on_wire": stats.bytes_on_wire,
        "bytes_total": stats.bytes_total,
        "seconds": stats.seconds,
        "mode": stats.mode,
    }
