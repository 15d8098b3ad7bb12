"""In-memory fakes of what the migration engine talks to: sites, the controller link, a clock.

`FakeSite` implements `migration.site.Site`: it keeps each instance's status (running, stopped,
absent), its link, whether it was dumped and whether checkpoint images are there, and checks the
order of calls the way a real agent would (no send without images, no restore without a prepared
target and received images...). Sites reach each other through `connect(...)`: `send` hands its
bytes to the peer whose address it names, and that peer's `finish_receive` reports them.

Failure injection: `fail_at` names operations that raise `SiteError` (`fail_on` picks which call
of an operation fails, 1-based, default the first). Besides the method names there are
`checkpoint-leave-running`, `checkpoint-final` and `status-after-restore` (`fail_on=None`: every
call fails); and `after_restore_status` makes a restore "succeed" with the instance left in
another status. Give the fakes one `journal` list to see the order of calls across them.

Time is a `FakeClock` every fake advances by a set amount per operation, so timings are exact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from migration.compression import Sample
from migration.network import Grant
from migration.site import (
    DumpInfo,
    Handoff,
    InstanceSpec,
    SendInfo,
    SiteError,
    SiteRefused,
    SiteUnreachable,
)

MB = 1_000_000
# samples of a dump's memory (migration.compression): compressible (ratio 0.1, the compressor
# at 2 Gbit/s) and random (nothing saved)
SAMPLE_COMPRESSIBLE = Sample(4 << 20, 419_430, 0.0168, 3)
SAMPLE_RANDOM = Sample(4 << 20, 4 << 20, 0.004, 3)

# Seconds each fake operation takes on the fake clock (unlisted ones take no time).
SITE_DURATIONS = {
    "prepare_target": 0.010,
    "checkpoint": 0.050,
    "send": 0.100,
    "restore": 0.200,
    "destroy": 0.005,
}
RELOCATE_S = 0.020
HELD_PACKETS = 42  # what a release of held traffic reports


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def make_spec(name: str = "svc", port: int = 3, **kw: Any) -> InstanceSpec:
    base = InstanceSpec(
        name=name,
        args=("/usr/bin/python3", "/data/memhog.py", "--port", "7000"),
        ip="10.0.0.21",
        prefix=24,
        mac="02:00:0a:00:00:15",
        port=port,
    )
    return replace(base, **kw)


@dataclass
class FakeInstance:
    spec: InstanceSpec
    status: str = "running"  # running | stopped | absent (a prepared target is "absent")
    link: bool = True
    prepared: bool = False  # a restore target: locked namespace, bundle, no process
    dumped: bool = False
    images: bool = False
    restored: bool = False
    predumps: int = 0  # the last pre-dump round of the current chain


@dataclass
class _Incoming:
    port: int
    sent: SendInfo | None = None


def _names(fail_at: str | Iterable[str] | None) -> set[str]:
    if fail_at is None:
        return set()
    if isinstance(fail_at, str):
        return {fail_at}
    return set(fail_at)


class FakeSite:
    """One MEC site's agent, in memory (see the module docstring)."""

    def __init__(
        self,
        name: str,
        address: str,
        clock: FakeClock,
        *,
        send_bytes: Sequence[int] = (64 * MB,),
        dump_s: float = SITE_DURATIONS["checkpoint"],
        fail_at: str | Iterable[str] | None = None,
        fail_on: int | None = 1,
        refuse_at: str | Iterable[str] | None = None,
        unreachable_at: str | Iterable[str] | None = None,
        unreachable_calls: int = 1,
        unreachable_delivered: bool = True,
        after_restore_status: str = "running",
        durations: dict[str, float] | None = None,
        journal: list[tuple[str, str]] | None = None,
        dirty_tracking: bool = False,
    ) -> None:
        self.name = name
        self.dirty_tracking = dirty_tracking  # pre_dump works (soft-dirty), else it fails
        self.address = address
        self.clock = clock
        self.send_bytes = list(send_bytes)  # per send call; the last one repeats
        self.dump_s = dump_s
        self.fail_at = _names(fail_at)
        self.fail_on = fail_on
        self.refuse_at = _names(refuse_at)  # raise SiteRefused: the site's state forbids it
        # raise SiteUnreachable on the first `unreachable_calls` calls (its agent is away)
        self.unreachable_at = _names(unreachable_at)
        self.unreachable_calls = unreachable_calls
        self.unreachable_delivered = unreachable_delivered
        self.after_restore_status = after_restore_status
        self.durations = {
            **SITE_DURATIONS,
            "checkpoint": dump_s,
            "pre_dump": dump_s,
            **(durations or {}),
        }
        self.instances: dict[str, FakeInstance] = {}
        self.incoming: dict[str, _Incoming] = {}
        self.peers: dict[str, FakeSite] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.counts: dict[str, int] = {}
        self.resumed: list[str] = []  # what each resume answered
        self.journal = journal if journal is not None else []
        self._jiffies = 0
        self.hold_network: FakeNetwork | None = None  # what a hold script would call
        self.hold_urls: list[str | None] = []  # per dump, the hold URL it was given
        self.paces: list[int | None] = []  # per send, the rate it was paced at (None: unpaced)
        self.compresses: list[str] = []  # per send, its compression
        self.sampled: list[bool] = []  # per dump and pre-dump, whether it was asked to sample
        self.memory: Sample | None = SAMPLE_COMPRESSIBLE  # what a dump asked to sample answers
        self.pages_port: int | None = None  # the last receive's page-server port
        self.lazy_ahead: str | None = None  # the last receive's lazy-pages daemon's source

    # ------------------------------------------------------------------ helpers

    def _op(self, op: str, *args: Any, alias: str | None = None) -> None:
        """Log a call, advance the clock, and fail it if told to."""
        if op in self.unreachable_at and self.unreachable_calls > 0:
            self.unreachable_calls -= 1
            raise SiteUnreachable(
                f"site {self.name}: agent unreachable ({op})", delivered=self.unreachable_delivered
            )
        if op in self.refuse_at or alias in self.refuse_at:
            raise SiteRefused(f"site {self.name}: refused {alias or op}")
        self.calls.append((op, *args))
        self.journal.append((self.name, op if alias is None else alias))
        self.clock.advance(self.durations.get(op, 0.0))
        for key in (op, alias):
            if key is None:
                continue
            self.counts[key] = self.counts.get(key, 0) + 1
            if key in self.fail_at and self.fail_on in (None, self.counts[key]):
                raise SiteError(f"site {self.name}: injected failure in {key}")

    def _get(self, instance: str) -> FakeInstance:
        inst = self.instances.get(instance)
        if inst is None:
            raise SiteError(f"site {self.name}: no instance {instance!r}")
        return inst

    def ops(self, name: str) -> list[tuple[Any, ...]]:
        """The logged calls of operation `name`."""
        return [c for c in self.calls if c[0] == name]

    # ------------------------------------------------------------------ the Site protocol

    def spec(self, instance: str) -> InstanceSpec:
        self._op("spec", instance)
        return self._get(instance).spec

    def status(self, instance: str) -> str:
        inst = self.instances.get(instance)
        alias = "status-after-restore" if inst is not None and inst.restored else None
        self._op("status", instance, alias=alias)
        return "absent" if inst is None else inst.status

    def create(self, spec: InstanceSpec) -> None:
        self._op("create", spec.name)
        if spec.name in self.instances:
            raise SiteError(f"site {self.name}: instance {spec.name} already exists")
        self.instances[spec.name] = FakeInstance(spec)

    def prepare_target(self, spec: InstanceSpec) -> None:
        self._op("prepare_target", spec)
        self.instances[spec.name] = FakeInstance(spec, status="absent", link=False, prepared=True)

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
        alias = "checkpoint-leave-running" if leave_running else "checkpoint-final"
        self._op("checkpoint", instance, leave_running, on_predumps, alias=alias)
        self.pages_to: tuple[str, int | None] | None = (
            None if page_server is None else (page_server, pace_bps)
        )
        held = self._hold_script(instance, hold_url)
        inst = self._get(instance)
        if inst.status != "running":
            raise SiteError(f"site {self.name}: {instance} is {inst.status}")
        if on_predumps and not inst.predumps:
            raise SiteError(f"site {self.name}: {instance} has no pre-dump to chain onto")
        if not on_predumps:
            inst.predumps = 0  # a whole dump replaces the chain
        inst.dumped = inst.images = True
        if not leave_running:
            inst.status = "stopped"
        self.sampled.append(sample)
        return DumpInfo(64 * MB, self.dump_s, leave_running, held, sample=self._sample(sample))

    def _sample(self, asked: bool) -> Sample | None:
        return self.memory if asked else None

    def _hold_script(self, instance: str, hold_url: str | None) -> bool:
        """What the agent's CRIU hold script does: ask the controller, once frozen."""
        self.hold_urls.append(hold_url)
        if hold_url is None or self.hold_network is None:
            return False
        return self.hold_network.hold(instance, 120.0)

    def pre_dump(self, instance: str, round_: int, sample: bool = False) -> DumpInfo:
        self._op("pre_dump", instance, round_)
        inst = self._get(instance)
        if not self.dirty_tracking:
            raise SiteError(f"site {self.name}: runc checkpoint: memory tracking not supported")
        if inst.status != "running":
            raise SiteError(f"site {self.name}: {instance} is {inst.status}")
        if round_ != inst.predumps + 1 and round_ != 1:
            raise SiteError(f"site {self.name}: pre-dump round {round_} out of order")
        inst.predumps = round_
        inst.dumped = inst.images = True
        self.sampled.append(sample)
        return DumpInfo(
            image_bytes=64 * MB, seconds=self.dump_s, leave_running=True,
            sample=self._sample(sample),
        )  # fmt: skip

    def start_receive(
        self,
        instance: str,
        port: int | None = None,
        pages_port: int | None = None,
        lazy_from: str | None = None,
    ) -> int:
        self._op("start_receive", instance)
        self.pages_port = pages_port
        self.lazy_ahead = lazy_from
        self._get(instance)
        self.incoming[instance] = _Incoming(port=port or 7100)
        return port or 7100

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
        n = len(self.ops("send"))
        self._op("send", instance, peer, port, delta)
        self.paces.append(pace_bps)
        self.compresses.append(compress)
        inst = self._get(instance)
        if not inst.images and inst.status not in ("running", "stopped"):  # /data alone
            raise SiteError(f"site {self.name}: {instance} has no images to send")
        target = self.peers.get(peer)
        if target is None or instance not in target.incoming:
            raise SiteError(f"site {self.name}: nobody receives {instance} at {peer}:{port}")
        wire = self.send_bytes[min(n, len(self.send_bytes) - 1)]
        info = SendInfo(
            bytes_on_wire=wire,
            bytes_total=max(wire, 64 * MB),
            seconds=self.durations["send"],
            mode="delta" if delta else "full",
            compress=compress,
        )
        target.incoming[instance].sent = info
        return info

    # ------------------------------------------------------------------ volume sync (replicas)

    def start_volume_receive(self, instance: str, port: int | None = None) -> int:
        self._op("start_volume_receive", instance)
        if self._get(instance).status != "running":
            raise SiteError(f"site {self.name}: {instance} does not run here")
        self.incoming[instance] = _Incoming(port=port or 7100)
        return port or 7100

    def send_volume(self, instance: str, peer: str, port: int, *, full: bool = False) -> SendInfo:
        self._op("send_volume", instance, peer, port, full)
        if self._get(instance).status != "running":
            raise SiteError(f"site {self.name}: {instance} does not run here")
        target = self.peers.get(peer)
        if target is None or instance not in target.incoming:
            raise SiteError(f"site {self.name}: nobody receives {instance} at {peer}:{port}")
        info = SendInfo(bytes_on_wire=4096 if full else 512, bytes_total=4096, seconds=0.0,
                        mode="full" if full else "delta")  # fmt: skip
        target.incoming[instance].sent = info
        return info

    def finish_volume_receive(self, instance: str) -> SendInfo:
        self._op("finish_volume_receive", instance)
        rx = self.incoming.pop(instance, None)
        if rx is None or rx.sent is None:
            raise SiteError(f"site {self.name}: no volume of {instance} is being received")
        return rx.sent

    def finish_receive(self, instance: str) -> SendInfo:
        self._op("finish_receive", instance)
        rx = self.incoming.pop(instance, None)
        if rx is None or rx.sent is None:
            raise SiteError(f"site {self.name}: nothing is being received for {instance}")
        self._get(instance).images = True
        return rx.sent

    def set_link(self, instance: str, up: bool) -> None:
        self._op("set_link", instance, up)
        self._get(instance).link = up

    def restore(self, instance: str, lazy_from: str | None = None) -> None:
        if instance in self.incoming:  # a lazy dump's handoff sent the images
            self.finish_receive(instance)
        self._op("restore", instance)
        self.lazy_from: str | None = lazy_from
        inst = self._get(instance)
        if not (inst.prepared and inst.images):
            raise SiteError(f"site {self.name}: {instance} is not ready to be restored")
        inst.status = self.after_restore_status
        inst.link = True
        inst.restored = True

    def lazy_checkpoint(
        self,
        instance: str,
        page_server: str,
        *,
        on_predumps: bool = False,
        hold_url: str | None = None,
        handoff: Handoff | None = None,
    ) -> DumpInfo:
        self._op("lazy_checkpoint", instance, page_server, on_predumps)
        held = self._hold_script(instance, hold_url)
        inst = self._get(instance)
        if on_predumps and not inst.predumps:
            raise SiteError(f"site {self.name}: {instance} has no pre-dump to chain onto")
        inst.status = "stopped"  # frozen, serving its pages
        inst.images = True
        if handoff is None:
            return DumpInfo(1_500_000, 0.25, False, held)
        try:  # as the agent: link down, images to the destination, or the page server ends
            self.set_link(instance, False)
            sent = self.send(
                instance, handoff.peer, handoff.port, delta=handoff.delta, pace_bps=handoff.pace_bps
            )
        except BaseException:
            inst.status = "running"
            raise
        return DumpInfo(1_500_000, 0.25, False, held, sent=sent, link_down=True)

    def finish_lazy_checkpoint(self, instance: str) -> None:
        self._op("finish_lazy_checkpoint", instance)

    def abort_lazy_checkpoint(self, instance: str) -> None:
        self._op("abort_lazy_checkpoint", instance)
        self._get(instance).status = "running"  # CRIU lets the frozen task run on

    def stop(self, instance: str) -> None:
        self._op("stop", instance)
        self._get(instance).status = "stopped"

    def start(self, instance: str) -> None:
        self._op("start", instance)
        inst = self._get(instance)
        inst.status = "running"
        inst.link = True

    def finish_pages(self, instance: str) -> float:
        self._op("finish_pages", instance)
        return 0.5

    def resume(self, instance: str) -> str:
        self._op("resume", instance)
        inst = self._get(instance)
        if inst.status == "running":
            how = "still running"
        elif inst.images:
            inst.status = "running"
            how = "restored from its final dump"
        else:
            raise SiteError(f"site {self.name}: {instance} is {inst.status} and has no image")
        inst.link = True
        self.resumed.append(how)
        return how

    def logs(self, instance: str, lines: int = 100) -> list[str]:
        self._get(instance)
        return [f"{instance} at {self.name}: line {i}" for i in range(lines)][-lines:]

    def destroy(self, instance: str) -> None:
        self._op("destroy", instance)
        self.instances.pop(instance, None)
        self.incoming.pop(instance, None)

    def tx_bytes(self) -> int:
        return 64 * MB * len(self.ops("finish_lazy_checkpoint"))

    def cpu_jiffies(self) -> tuple[int, int]:
        self._op("cpu_jiffies")
        self._jiffies += 100
        return (self._jiffies // 4, self._jiffies)


def connect(*sites: FakeSite) -> None:
    """Let the sites send to each other (by address)."""
    for site in sites:
        site.peers = {s.address: s for s in sites if s is not site}


@dataclass
class FakeNetwork:
    """A `ControllerLink` that records every call.

    `refuse`: reserve returns None. `max_bps`: grants (and resizes) are capped at it.
    `fail_at`: operations (reserve, resize, release, relocate, hold, release_hold) that raise,
    on call `fail_on` (None: on every call). `holds`: the network can hold traffic.
    """

    clock: FakeClock | None = None
    refuse: bool = False
    max_bps: int | None = None
    fail_at: set[str] = field(default_factory=set)
    fail_on: int | None = 1
    journal: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    grants: dict[int, Grant] = field(default_factory=dict)  # in force
    next_id: int = 1
    holds: bool = False  # hold() works (a controller that can keep packets), else returns False
    hold_urls: bool = False  # agents can hold from CRIU's freeze (hold_url), else the engine
    held: set[str] = field(default_factory=set)  # holds in force

    def _op(self, op: str, *args: Any) -> None:
        self.calls.append((op, *args))
        self.journal.append(("network", op))
        if op in ("relocate", "relocate_many") and self.clock is not None:
            self.clock.advance(RELOCATE_S)
        if op in self.fail_at and self.fail_on in (None, len(self.ops(op))):
            raise RuntimeError(f"controller: injected failure in {op}")

    def ops(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]

    def _cap(self, rate_bps: int) -> int:
        return rate_bps if self.max_bps is None else min(rate_bps, self.max_bps)

    def reserve(
        self, src: str, dst: str, rate_bps: int, dst_port: int | None, owner: str
    ) -> Grant | None:
        self._op("reserve", src, dst, rate_bps, dst_port, owner)
        if self.refuse:
            return None
        grant = Grant(self.next_id, self._cap(rate_bps))
        self.next_id += 1
        self.grants[grant.id] = grant
        return grant

    def resize(self, grant: Grant, rate_bps: int) -> Grant:
        self._op("resize", grant, rate_bps)
        assert grant.id in self.grants, "resize of a reservation not in force"
        new = Grant(grant.id, self._cap(rate_bps))
        self.grants[grant.id] = new
        return new

    def release(self, grant: Grant) -> None:
        self._op("release", grant)
        assert grant.id in self.grants, "release of a reservation not in force"
        del self.grants[grant.id]

    def relocate(self, instance: str, site: str, port: int) -> float:
        self._op("relocate", instance, site, port)
        return RELOCATE_S * 1000.0

    def relocate_many(self, moves: Sequence[tuple[str, str, int]]) -> float:
        self._op("relocate_many", tuple(moves))
        return RELOCATE_S * 1000.0

    def hold(self, instance: str, timeout_s: float) -> bool:
        if not self.holds:
            return False
        self._op("hold", instance, timeout_s)
        assert instance not in self.held, "hold of an instance already held"
        self.held.add(instance)
        return True

    def release_hold(self, instance: str) -> int:
        self._op("release_hold", instance)
        if instance not in self.held:
            assert self.hold_urls, "release of a hold not in force"
            return 0  # the controller's release is idempotent
        self.held.discard(instance)
        return HELD_PACKETS

    def hold_url(self, instance: str) -> str | None:
        if not (self.holds and self.hold_urls):
            return None
        return f"http://controller/v1/instances/{instance}/hold"


def join_migration_threads(timeout: float = 10.0) -> None:
    """Wait for the migrations a test started and did not wait for (threads `migrate-*`,
    `chain-*`): they must end before the runtime they use, and log while pytest still
    listens (after it closed its stream a late log line is a "Logging error")."""
    for t in threading.enumerate():
        if t.name.startswith(("migrate-", "chain-")):
            t.join(timeout)
