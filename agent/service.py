"""One MEC site's side of migrations, in-process: the `migration.site.Site` protocol over the
site's containers, transfers and lazy-pages processes.

`agent.api` serves it over HTTP (the router parses, calls, serialises); an orchestrator on the
same machine, or a test, may call it directly. Every refusal or failure is a `SiteError` from
`agent.errors` that names the site, the step and the instance (`UnknownInstance` for an instance
this site does not hold, `StepFailed` when runc, CRIU, the plumbing or a transfer failed).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from agent.compression import measure
from agent.container import PREDUMPS, ContainerError, SiteContainers
from agent.cpu import cgroup_cpu_s, tree_cpu_s
from agent.criu_images import ImageError, dump_stats_in, lazy_dump_stats_in, restore_stats_in
from agent.errors import BadRequest, Conflict, NotPending, StepFailed, UnknownInstance
from agent.files import FileNotAllowed, allowed_dirs, checked_files
from agent.health import Check, Unhealthy, wait_healthy
from agent.lazy import (
    LazyDump,
    abort_lazy_dump,
    start_lazy_daemon,
    start_lazy_dump,
    start_lazy_restore,
)
from agent.netns import NetnsError
from agent.orphans import (
    PROC,
    Adopted,
    is_criu_dump_of,
    is_lazy_daemon,
    is_lazy_dump,
    processes,
)
from agent.page_relay import (
    PageRelay,
    PageServerError,
    finish_page_server,
    replay_pages,
    start_page_server,
)
from agent.runc import CheckpointOptions, RuncError
from agent.service_logs import DEFAULT_TAIL_LINES, tail
from agent.transfer import Manifest, Receiver, TransferError, TransferStats, send_dir
from agent.transfer_wire import Compress, describe
from agent.volume_sync import VolumeSync
from ground.runner import Spawned, SubprocessRunner
from migration.site import (
    CriuDumpStats,
    CriuRestoreStats,
    DumpInfo,
    Handoff,
    InstanceSpec,
    RestoreInfo,
    SendInfo,
    SiteError,
)

log = logging.getLogger("mecmig.agent")
INVENTORY = "inventory.img"  # CRIU's, in every dump's images: it names the dump's run id
LAST_MIGRATION = "last-migration.json"  # in the instance's directory, outside what moves
# a stop-and-copy dump's pages (agent.page_relay), outside what moves: as they came from the
# source's page server here; as its CRIU sent them at the source (to restore it after a failure)
PAGES_IN = "pages-in"
PAGES_SENT = "pages.stream"
# an instance name becomes a directory and a runc container name: nothing that walks elsewhere
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FAILURES = (
    ContainerError,
    RuncError,
    NetnsError,
    TransferError,
    ImageError,
    PageServerError,
    OSError,
)
WAIT_S = 600.0  # a transfer, a page server or a lazy-pages daemon must be done by then
T = TypeVar("T")
P = ParamSpec("P")


def _finished_round(rel: str) -> bool:
    """A pre-dump round's images never change once CRIU wrote them (the transfer skips them)."""
    return rel.startswith(f"{PREDUMPS}/")


def _written_before_send(rel: str) -> bool:
    """CRIU's images (of the final dump and of the rounds) are complete before a send starts,
    and nothing writes them while it runs; the service's own files may change meanwhile."""
    return rel.startswith((f"{PREDUMPS}/", "images/"))


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _criu_dump(work: Path, *, lazy: bool = False) -> CriuDumpStats | None:
    """CRIU's account of the dump that ran in `work` (a lazy one's from its log: see
    agent.criu_images); None (logged) if it left none readable: a profile's detail never
    fails a step."""
    try:
        return lazy_dump_stats_in(work) if lazy else dump_stats_in(work)
    except ImageError as exc:
        log.warning("no CRIU dump stats in %s: %s", work, exc)
        return None


def _criu_restore(work: Path) -> CriuRestoreStats | None:
    try:
        return restore_stats_in(work)
    except ImageError as exc:
        log.warning("no CRIU restore stats in %s: %s", work, exc)
        return None


def _send_info(stats: TransferStats) -> SendInfo:
    return SendInfo(
        stats.bytes_on_wire, stats.bytes_total, stats.seconds, stats.mode, compress=stats.compress
    )


def _sampled(info: DumpInfo, image: Path, sample: bool) -> DumpInfo:
    """`info` with a sample of `image`'s memory (`agent.compression.measure`) when asked."""
    return replace(info, sample=measure(image)) if sample else info


def _step(
    op: str,
) -> Callable[[Callable[Concatenate[SiteService, P], T]], Callable[Concatenate[SiteService, P], T]]:
    """Run a step with the site, the step and the instance in any error it raises."""

    def wrap(
        fn: Callable[Concatenate[SiteService, P], T],
    ) -> Callable[Concatenate[SiteService, P], T]:
        @functools.wraps(fn)
        def run(self: SiteService, /, *args: P.args, **kw: P.kwargs) -> T:
            with self.failures(op, _instance_of(args, kw)):
                return fn(self, *args, **kw)

        return run

    return wrap


def _instance_of(args: tuple[Any, ...], kw: dict[str, Any]) -> str:
    first = args[0] if args else kw.get("instance", kw.get("spec"))
    return first.name if isinstance(first, InstanceSpec) else str(first or "")


class SiteService:
    """A site's agent in-process: its containers, what it is receiving, what it sent, its
    post-copy processes, and one lock so that steps that change containers run one at a time."""

    def __init__(
        self,
        containers: SiteContainers,
        listen_ip: str,
        migration_port: int,
        *,
        spawner: SubprocessRunner | None = None,
        mem_dirty_track: bool = False,
        files_from: Iterable[Path] | None = None,
    ) -> None:
        self.containers = containers
        self.name = containers.site
        self.address = listen_ip  # where peers send migration traffic
        self.migration_port = migration_port
        self.receivers: dict[str, Receiver] = {}
        self.manifests: dict[str, Manifest] = {}
        self.volume_sync = VolumeSync(listen_ip)  # a running instance's volume to its replicas
        self.lazy_dumps: dict[str, LazyDump] = {}  # source side of post-copy
        self.lazy_daemons: dict[str, Spawned | Adopted] = {}  # destination side of post-copy
        self.page_servers: dict[str, Spawned] = {}  # destination of a stop-and-copy's pages
        # destination of a post-copy: its lazy-pages daemon started with the receive, before
        # the freeze, and the page server it is for ("ADDR:PORT"); the restore takes it
        self.lazy_ahead: dict[str, tuple[str, Spawned]] = {}
        self.spawner = spawner or SubprocessRunner()
        # one step at a time per instance (a chain's functions dump together); steps that
        # plumb or unplumb a container also take the site's lock (namespaces, bridge, images)
        self.lock = threading.Lock()
        self._instance_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.mem_dirty_track = mem_dirty_track  # `criu check --feature mem_dirty_track`
        # where a spec's files may be copied from (agent.files)
        self.files_from = tuple(files_from) if files_from is not None else allowed_dirs()

    @contextlib.contextmanager
    def locked(self, instance: str, *, site: bool = False) -> Iterator[None]:
        """Hold `instance`'s lock (and the site's, after it, with `site`)."""
        with self._locks_guard:
            lock = self._instance_locks.setdefault(instance, threading.Lock())
        with lock:
            if site:
                with self.lock:
                    yield
            else:
                yield

    def adopt_orphans(self, proc: Path = PROC) -> list[str]:
        """Take over the post-copy processes a previous agent of this site left running (see
        agent.orphans); what was adopted, for the log. Of several left for one instance, the
        newest is adopted and the others are ended."""
        c = self.containers
        found: list[str] = []
        everything = list(processes(proc))
        for name in c.instances():
            if name in self.lazy_dumps or name in self.lazy_daemons:
                continue
            state = c.runc.state(name) or {}
            task = int(state.get("pid") or 0)
            criu_log = c.dir(name) / "work" / "lazy" / "dump.log"
            runcs = [
                Adopted(i, c.dir(name) / "lazy-dump.log", criu_log, proc)
                for i in everything
                if is_lazy_dump(i.argv, c.runc.root, name)
            ]
            # a CRIU whose runc has ended (one per process group: runc's CRIU is in its group)
            criu_only = [
                Adopted(i, c.dir(name) / "lazy-dump.log", criu_log, proc)
                for i in everything
                if task and is_criu_dump_of(i.argv, task)
            ]
            groups = {a.pgid for a in runcs}
            old = runcs + [a for a in criu_only if a.pgid not in groups]
            old.sort(key=lambda a: a.start)
            for stale in old[:-1]:
                stale.kill(group=True)
            if old:
                served = _page_server_of(old[-1].argv)
                self.lazy_dumps[name] = LazyDump(old[-1], 0.0, c.runc.log_mark(name), served)
                found.append(f"lazy dump of {name} (pid {old[-1].pid})")
            images = c.images_dir(name).resolve()
            for info in everything:
                if is_lazy_daemon(info.argv, c.runc.criu, images):
                    restore_log = c.dir(name) / "work" / "restore" / "lazy-pages.log"
                    adopted = Adopted(info, c.dir(name) / "lazy-pages.out", restore_log, proc)
                    self.lazy_daemons[name] = adopted
                    found.append(f"lazy-pages daemon of {name} (pid {info.pid})")
        for what in found:
            log.warning("site %s: adopted the %s a previous agent left running", self.name, what)
        return found

    # ------------------------------------------------------------------ errors

    @contextmanager
    def failures(self, op: str, instance: str) -> Iterator[None]:
        """Turn what runc, CRIU, the plumbing or a transfer raised into a StepFailed that says
        which site, which step and which instance."""
        try:
            yield
        except SiteError:
            raise
        except FAILURES as exc:
            text = str(exc)
            prefix = f"site {self.name}: "
            text = text[len(prefix) :] if text.startswith(prefix) else text
            log.error("site %s: %s %s: %s", self.name, op, instance, text)
            raise StepFailed(f"{prefix}{op} {instance}: {text}") from exc

    def _known(self, instance: str) -> None:
        """UnknownInstance unless this site holds `instance` (its spec is here)."""
        self._valid(instance)
        if not (self.containers.dir(instance) / "instance.json").is_file():
            held = ", ".join(self.containers.instances()) or "none"
            raise UnknownInstance(
                f"site {self.name}: no instance {instance!r} here (it holds: {held})"
            )

    def _running(self, instance: str) -> None:
        """Conflict unless `instance` runs here: a dump of anything else would fail half-way
        (or dump what another migration already froze); refusing first changes nothing.
        runc's state file and /proc say so without starting runc (5 ms of a dump's frozen
        window); runc is asked when they do not."""
        if self.containers.runc.running_now(instance):
            return
        status = self.containers.status(instance)
        if status != "running":
            raise Conflict(f"site {self.name}: {instance} is {status} here, not running")

    def _valid(self, instance: str) -> None:
        if not INSTANCE_NAME.match(instance):
            raise BadRequest(
                f"site {self.name}: {instance!r} is not an instance name (letters, digits, "
                "'_', '.', '-'; at most 63 characters, starting with a letter or digit)"
            )

    def _checked(self, spec: InstanceSpec, *, copies: bool) -> InstanceSpec:
        """`spec` with its files' sources resolved where this site `copies` them; BadRequest for
        a name that is no instance name or a file this agent does not copy (agent.files),
        before anything changes."""
        self._valid(spec.name)
        try:
            dirs = self.files_from if copies else None
            return replace(spec, files=checked_files(spec.files, dirs))
        except FileNotAllowed as exc:
            raise BadRequest(f"site {self.name}: {spec.name}: {exc}") from None

    # ------------------------------------------------------------------ the site

    def health(self) -> dict[str, Any]:
        """The site, the instances it holds, whether its kernel tracks dirty memory."""
        return {
            "site": self.name,
            "instances": self.containers.instances(),
            "mem_dirty_track": self.mem_dirty_track,
        }

    def cpu_jiffies(self) -> tuple[int, int]:
        """(busy, total) CPU time of this machine so far, in jiffies (/proc/stat)."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def site_cpu(self) -> dict[str, float]:
        """CPU seconds this site spent so far: its agent's process tree and its containers'
        cgroups (agent.cpu), with the agent's monotonic clock to difference them by."""
        agent = tree_cpu_s(os.getpid())
        containers = cgroup_cpu_s(f"/mecmig/{self.name}")
        return {
            "monotonic_s": time.monotonic(),
            "agent_s": agent,
            "containers_s": containers,
            "site_s": agent + containers,
        }

    def tx_bytes(self) -> int:
        """Bytes this agent's network namespace has sent (post-copy pages are counted so)."""
        tx = 0
        for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
            name, _, counters = line.partition(":")
            if name.strip() != "lo":
                tx += int(counters.split()[8])
        return tx

    @_step("note the migration of")
    def note_migration(self, instance: str, note: dict[str, Any]) -> None:
        """Keep `note` (its last migration) beside the instance this site holds."""
        self._known(instance)
        path = self.containers.dir(instance) / LAST_MIGRATION
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(note))
        tmp.replace(path)

    def last_migration(self, instance: str) -> dict[str, Any] | None:
        """The note of its last migration kept here, if any."""
        try:
            found: dict[str, Any] = json.loads(
                (self.containers.dir(instance) / LAST_MIGRATION).read_text()
            )
        except (OSError, ValueError):
            return None
        return found

    def image_users(self, digest: str) -> list[str]:
        """The instances of this site whose spec runs image `digest`."""
        users = []
        for name in self.containers.instances():
            with contextlib.suppress(ContainerError, OSError, ValueError):
                if self.containers.spec(name).image == digest:
                    users.append(name)
        return users

    # ------------------------------------------------------------------ instances

    @_step("spec of")
    def spec(self, instance: str) -> InstanceSpec:
        self._known(instance)
        return self.containers.spec(instance)

    @_step("status of")
    def status(self, instance: str) -> str:
        """runc's status ('running', 'stopped', ...), 'absent' where it holds none."""
        self._valid(instance)
        return self.containers.status(instance)

    def describe(self, instance: str) -> tuple[InstanceSpec, str]:
        """Its spec and status (UnknownInstance if this site holds no such instance)."""
        spec = self.spec(instance)
        return spec, self.status(instance)

    @_step("create")
    def create(self, spec: InstanceSpec) -> None:
        """Start `spec` and wait until it is healthy (agent.health); if it is not, remove it
        and say why, with the last lines it wrote."""
        spec = self._checked(spec, copies=True)
        with self.locked(spec.name, site=True):
            self.containers.create(spec)
        check = Check(spec.name, spec.ports, spec.health, spec.start_timeout_s)
        try:
            took = wait_healthy(self.containers.runc, check)
        except Unhealthy as exc:
            with self.locked(spec.name, site=True):
                lines = self.containers.remove_failed_start(spec.name)
            said = "\n".join(f"  | {line}" for line in lines) or "  (it wrote nothing)"
            raise StepFailed(
                f"site {self.name}: {spec.name} did not start: {exc}; removed. Its last "
                f"lines:\n{said}"
            ) from exc
        log.info("site %s: %s healthy after %.2f s", self.name, spec.name, took)

    def logs(self, instance: str, lines: int = DEFAULT_TAIL_LINES) -> list[str]:
        """The last `lines` lines `instance` wrote on stdout and stderr."""
        self._known(instance)
        return tail(self.containers.xfer_dir(instance), lines)

    @_step("prepare the target of")
    def prepare_target(self, spec: InstanceSpec) -> None:
        spec = self._checked(spec, copies=False)
        with self.locked(spec.name, site=True):
            self.containers.prepare_target(spec)

    @_step("checkpoint")
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
        """Dump it; `page_server` ("ADDR:PORT", a final dump only): its pages go to the
        destination's page server while CRIU dumps (through a relay that keeps a copy here:
        agent.page_relay), paced at `pace_bps` if given."""
        self._known(instance)
        if page_server is not None and (leave_running or on_predumps):
            raise BadRequest(f"site {self.name}: only a whole final dump sends pages ahead")
        with self.locked(instance):
            self._running(instance)
            t0 = time.monotonic()
            opts = CheckpointOptions(leave_running=leave_running)
            relay = None
            if page_server is not None:
                relay = PageRelay(page_server, self.containers.dir(instance) / PAGES_SENT, pace_bps)
                opts = replace(opts, page_server=relay.start())
            try:
                image = self.containers.checkpoint(
                    instance, opts, on_predumps=on_predumps, hold_url=hold_url
                )
            except BaseException:
                if relay is not None:  # the dump's own error says more than the relay's
                    with contextlib.suppress(PageServerError):
                        relay.close()
                raise
            if relay is not None:
                sent = relay.close()
            seconds = time.monotonic() - t0
        if relay is not None:
            log.info(
                "site %s: %s: %d bytes of pages to %s in %.3f s",
                self.name, instance, sent.bytes, page_server, sent.seconds,
            )  # fmt: skip
        c = self.containers
        info = DumpInfo(
            _du(image),
            seconds,
            leave_running,
            c.held(instance),
            c.frozen_at(instance),
            runc_s=c.runc.took("checkpoint", instance),
            criu=_criu_dump(self._work(instance, "dump")),
        )
        return _sampled(info, image, sample)

    @_step("pre-dump")
    def pre_dump(self, instance: str, round_: int, sample: bool = False) -> DumpInfo:
        """A pre-copy round with CRIU's dirty-memory tracking (the service runs on);
        `sample`: with a sample of its memory."""
        self._known(instance)
        if round_ < 1:
            raise BadRequest(f"site {self.name}: pre-dump round {round_} of {instance}")
        with self.locked(instance):
            self._running(instance)
            t0 = time.monotonic()
            try:
                image = self.containers.pre_dump(instance, round_)
            except RuncError as exc:
                has = "has" if self.mem_dirty_track else "does not have"
                raise StepFailed(
                    f"site {self.name}: pre-dump of {instance} failed ({exc}); this site's "
                    f"kernel {has} dirty memory tracking (criu check --feature mem_dirty_track)"
                ) from exc
            seconds = time.monotonic() - t0
        runc_s = self.containers.runc.took("checkpoint", instance)
        criu = _criu_dump(self._work(instance, "predump"))
        info = DumpInfo(_du(image), seconds, True, runc_s=runc_s, criu=criu)
        return _sampled(info, image, sample)

    @_step("receive")
    def start_receive(
        self,
        instance: str,
        port: int | None = None,
        pages_port: int | None = None,
        lazy_from: str | None = None,
    ) -> int:
        """Listen for `instance`'s migration traffic on `port` (default: the site's migration
        port); return the port. `pages_port`: a `criu page-server` there takes the pages of
        its final dump, ahead of the rest (`finish_receive` puts them with the images).
        `lazy_from` ("ADDR:PORT", a post-copy's page server): its lazy-pages daemon starts
        now, for the restore to take (its start then costs the frozen window nothing)."""
        self._known(instance)
        with self.locked(instance):
            old = self.receivers.pop(instance, None)
            if old is not None:
                old.close()
            server = self.page_servers.pop(instance, None)
            if server is not None:
                server.kill(group=True)
            self._drop_lazy_ahead(instance)
            if lazy_from is not None:
                daemon = start_lazy_daemon(
                    self.containers, instance, lazy_from, self.spawner, wait=True
                )
                self.lazy_ahead[instance] = (lazy_from, daemon)
            self.containers.touch_target(instance)  # its migration is alive
            if pages_port is not None:
                self.page_servers[instance] = start_page_server(
                    self.containers.runc.criu,
                    self.containers.dir(instance) / PAGES_IN,
                    self._work(instance, "page-server"),
                    self.address,
                    pages_port,
                    self.spawner,
                )
            self.containers.xfer_dir(instance).mkdir(parents=True, exist_ok=True)
            rx = Receiver(
                self.containers.xfer_dir(instance),
                host=self.address,
                port=self.migration_port if port is None else port,
                on_file=functools.partial(self._arrived, instance),
            )
            port = rx.start()
            self.receivers[instance] = rx
        return port

    def _arrived(self, instance: str, rel: str, path: Path) -> None:
        """A file of `instance`'s copy arrived whole (the receiver's thread): the images'
        inventory hands the lock over ahead of the restore (`SiteContainers.hand_over_soon`)
        while the rest, mostly the pages, is still on its way."""
        c = self.containers
        if Path(rel) != c.images_dir(instance).relative_to(c.xfer_dir(instance)) / INVENTORY:
            return
        try:
            c.hand_over_soon(instance, path)
        except (ContainerError, NetnsError) as exc:  # the restore hands it over then
            log.warning("site %s: %s: no hand-over ahead: %s", self.name, instance, exc)

    @_step("finish receiving")
    def finish_receive(self, instance: str) -> SendInfo:
        self._valid(instance)
        rx = self.receivers.pop(instance, None)
        if rx is None:
            raise NotPending(f"site {self.name}: nothing is being received for {instance}")
        server = self.page_servers.pop(instance, None)
        try:
            stats = rx.wait(timeout=WAIT_S)
            if server is not None:  # its client, the source's dump, ended before this copy
                finish_page_server(server, WAIT_S)
        finally:
            rx.close()
            if server is not None:
                server.kill(group=True)
        info = _send_info(stats)
        if server is None:
            return info
        pages = self.containers.dir(instance) / PAGES_IN
        moved = 0
        for img in [*pages.glob("pagemap-*.img"), *pages.glob("pages-*.img")]:
            moved += img.stat().st_size
            try:  # a rename, unless the images are on a file system of their own
                shutil.move(img, self.containers.images_dir(instance) / img.name)
            except OSError as exc:
                raise TransferError(f"the pages to the images: {describe(exc)}") from exc
        return replace(info, pages_bytes=moved)

    @_step("send")
    def send(
        self,
        instance: str,
        peer: str,
        port: int,
        *,
        delta: bool,
        pace_bps: int | None = None,
        compress: Compress = "none",
    ) -> SendInfo:
        self._known(instance)
        previous = self.manifests.get(instance) if delta else None
        stats, manifest = send_dir(
            self.containers.xfer_dir(instance),
            peer,
            port,
            previous=previous,
            immutable=_finished_round,
            settled=_written_before_send,
            pace_bps=pace_bps,
            compress=compress,
        )
        self.manifests[instance] = manifest
        return _send_info(stats)

    # ------------------------------------------------------------------ volume sync

    def _volume(self, instance: str) -> Path:
        self._known(instance)
        self._running(instance)
        return self.containers.xfer_dir(instance) / "volume"

    @_step("receive the volume of")
    def start_volume_receive(self, instance: str, port: int | None = None) -> int:
        """Take the primary's copy of running `instance`'s volume into its own (agent.
        volume_sync); the port it listens on (None: the site's migration port)."""
        volume = self._volume(instance)
        return self.volume_sync.start(
            instance, volume, self.migration_port if port is None else port
        )

    @_step("finish receiving the volume of")
    def finish_volume_receive(self, instance: str) -> SendInfo:
        self._valid(instance)
        return _send_info(self.volume_sync.finish(instance))

    @_step("send the volume of")
    def send_volume(self, instance: str, peer: str, port: int, *, full: bool = False) -> SendInfo:
        """Send running `instance`'s volume to a replica's agent at `peer`:`port` (what
        changed since the last sync there; all of it with `full` or the first time)."""
        volume = self._volume(instance)
        return _send_info(self.volume_sync.send(instance, volume, peer, port, full=full))

    @_step("set the link of")
    def set_link(self, instance: str, up: bool) -> None:
        self._known(instance)
        c = self.containers
        c.net.set_link(c.plug(c.spec(instance)), up)

    @_step("restore")
    def restore(self, instance: str, lazy_from: str | None = None) -> RestoreInfo:
        """Restore (`lazy_from`: post-copy); what it took: this step, runc's, CRIU's, and its
        status after. A receive still pending (the images came with a lazy dump's handoff)
        is finished first."""
        self._known(instance)
        if instance in self.receivers:
            self.finish_receive(instance)
        with self.locked(instance):
            t0 = time.monotonic()
            if lazy_from:
                served, ahead = self.lazy_ahead.pop(instance, (lazy_from, None))
                if served != lazy_from and ahead is not None:  # for another page server
                    ahead.kill(group=True)
                    ahead = None
                self.lazy_daemons[instance] = start_lazy_restore(
                    self.containers, instance, lazy_from, self.spawner, daemon=ahead
                )
            else:
                self.containers.restore(instance)
                # the pages a page server took (now in the process, as the images dropped)
                shutil.rmtree(self.containers.dir(instance) / PAGES_IN, ignore_errors=True)
            seconds = time.monotonic() - t0
        runc = self.containers.runc
        return RestoreInfo(
            seconds,
            runc_s=runc.took("restore", instance),
            criu=_criu_restore(self._work(instance, "restore")),
            status=self.containers.status(instance),
        )

    def _drop_lazy_ahead(self, instance: str) -> None:
        """End a lazy-pages daemon started ahead that no restore took."""
        ahead = self.lazy_ahead.pop(instance, None)
        if ahead is not None:
            ahead[1].kill(group=True)

    def _work(self, instance: str, step: str) -> Path:
        """CRIU's work directory of `step` (dump, predump, lazy, restore: agent.container and
        agent.lazy name them so), where it leaves its stats images."""
        return self.containers.dir(instance) / "work" / step

    @_step("lazy dump")
    def lazy_checkpoint(
        self,
        instance: str,
        page_server: str,
        *,
        on_predumps: bool = False,
        hold_url: str | None = None,
        handoff: Handoff | None = None,
    ) -> DumpInfo:
        self._known(instance)
        with self.locked(instance):
            self._running(instance)
            t0 = time.monotonic()
            dump = start_lazy_dump(
                self.containers,
                instance,
                page_server,
                self.spawner,
                on_predumps=on_predumps,
                hold_url=hold_url,
            )
            self.lazy_dumps[instance] = dump
        c = self.containers
        image_bytes = _du(c.images_dir(instance))
        sent = self._hand_off(instance, handoff) if handoff is not None else None
        return DumpInfo(
            image_bytes,
            time.monotonic() - t0,
            False,
            c.held(instance),
            c.frozen_at(instance),
            runc_s=dump.seconds,
            criu=_criu_dump(self._work(instance, "lazy"), lazy=True),
            sent=sent,
            link_down=handoff is not None,
        )

    def _hand_off(self, instance: str, handoff: Handoff) -> SendInfo:
        """A lazy dump's next steps without the engine's round trips: the link down at the
        source, the images and files to the destination's receiver. If either fails, the page
        server ends and the service runs on here (locked, as after a failed lazy transfer);
        the error says why."""
        c = self.containers
        try:
            plug = c.plug(c.spec(instance))
            with ThreadPoolExecutor(1, thread_name_prefix="handoff-link") as pool:
                down = pool.submit(c.net.set_link, plug, False)  # ~3 ms of `ip`, beside the copy
                sent = self.send(
                    instance, handoff.peer, handoff.port, delta=handoff.delta,
                    pace_bps=handoff.pace_bps, compress=handoff.compress,
                )  # fmt: skip
                down.result()
            return sent
        except BaseException:
            dump = self.lazy_dumps.pop(instance, None)
            if dump is not None:
                log.warning("site %s: %s: handoff failed: %s", self.name, instance,
                            abort_lazy_dump(dump))  # fmt: skip
            raise

    @_step("finish the lazy dump of")
    def finish_lazy_checkpoint(self, instance: str) -> None:
        """Source: wait until the destination has pulled every page (the page server ends)."""
        self._valid(instance)
        dump = self.lazy_dumps.pop(instance, None)
        if dump is None:
            raise NotPending(f"site {self.name}: no lazy dump of {instance} in progress")
        code = dump.process.wait(WAIT_S)
        if code is None:
            dump.process.kill(group=True)
            raise StepFailed(f"site {self.name}: page server of {instance} still running")
        if code != 0:
            detail = self.containers.runc.last_error(instance, dump.log_since)
            raise StepFailed(
                f"site {self.name}: page server of {instance} exited {code}: "
                f"{detail or dump.process.tail()}"
            )

    @_step("abort the lazy dump of")
    def abort_lazy_checkpoint(self, instance: str) -> None:
        """Source: stop serving pages; CRIU lets the frozen service run on (still locked)."""
        self._valid(instance)
        dump = self.lazy_dumps.pop(instance, None)
        if dump is not None:
            log.info("site %s: %s: %s", self.name, instance, abort_lazy_dump(dump))

    @_step("wait for the pages of")
    def finish_pages(self, instance: str) -> float:
        """Destination: wait until every page has arrived (the lazy-pages daemon ends)."""
        self._valid(instance)
        daemon = self.lazy_daemons.pop(instance, None)
        if daemon is None:
            # none started by this agent, nor adopted: it ended while no agent ran here (a
            # restarted agent) and the service runs: its pages are in it, the images are not
            # needed any more
            if self.containers.status(instance) == "running":
                self.containers.drop_predumps(instance)
                self.containers.drop_images(instance)
            return 0.0
        t0 = time.monotonic()
        code = daemon.wait(WAIT_S)
        if code != 0:
            daemon.kill(group=True)
            raise StepFailed(
                f"site {self.name}: lazy pages of {instance} failed ({code}): {daemon.tail()}"
            )
        self.containers.drop_predumps(instance)  # every page is in the process now
        self.containers.drop_images(instance)
        return time.monotonic() - t0

    @_step("resume")
    def resume(self, instance: str) -> str:
        """Source side of a rollback: the service runs here again; say how."""
        self._known(instance)
        with self.locked(instance):
            self.manifests.pop(instance, None)  # what was sent went to a wiped destination
            replayed = self._pages_back(instance)
            said = self.containers.resume_after_failed_migration(instance)
            (self.containers.dir(instance) / PAGES_SENT).unlink(missing_ok=True)
            return f"{said} (its pages from the copy kept here)" if replayed else said

    def _pages_back(self, instance: str) -> bool:
        """A service stopped by a dump whose pages went to a page server: its pages images
        again, from the stream its CRIU sent (agent.page_relay). True if that was needed."""
        c = self.containers
        record, images = c.dir(instance) / PAGES_SENT, c.images_dir(instance)
        if c.status(instance) == "running" or not record.is_file():
            return False
        if not (images / "inventory.img").is_file() or any(images.glob("pagemap-*.img")):
            return False
        sent = replay_pages(
            c.runc.criu, record, images, self._work(instance, "replay"), self.spawner
        )
        log.info("site %s: %s: its pages again from %d bytes kept", self.name, instance, sent)
        return True

    @_step("stop")
    def stop(self, instance: str) -> None:
        self._known(instance)
        with self.locked(instance):
            self.containers.stop(instance)

    @_step("start")
    def start(self, instance: str) -> None:
        self._known(instance)
        with self.locked(instance):
            self.containers.start(instance)

    @_step("destroy")
    def destroy(self, instance: str) -> None:
        """Remove everything of `instance` at this site; no error if it holds none."""
        self._valid(instance)
        with self.locked(instance, site=True):
            rx = self.receivers.pop(instance, None)
            if rx is not None:
                rx.close()
            self.manifests.pop(instance, None)
            self.volume_sync.forget(instance)
            self._drop_lazy_ahead(instance)
            daemon = self.lazy_daemons.pop(instance, None)
            dump = self.lazy_dumps.pop(instance, None)
            server = self.page_servers.pop(instance, None)
            for proc in (daemon, dump.process if dump is not None else None, server):
                if proc is not None:
                    proc.kill(group=True)
            self.containers.destroy(instance)


def _page_server_of(argv: tuple[str, ...]) -> str | None:
    """The `--page-server ADDR:PORT` of a lazy dump's runc command line."""
    try:
        return argv[argv.index("--page-server") + 1]
    except (ValueError, IndexError):
        return None
