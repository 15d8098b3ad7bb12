"""Podman, the peer `mecmig bench migration` measures mecmig against (rows `podman`, `podman-zstd`).

What a user without mecmig would do to move a container between two hosts, on the same emulated
network and workload as mecmig's rows:

    podman container checkpoint --export ARCHIVE --compress none|zstd --tcp-established NAME
    copy ARCHIVE from the source MEC host to the destination's (mecmig.bench.podman_copy, one TCP
        connection between the two hosts' namespaces: the emulated links mecmig's copies cross)
    podman container restore --import ARCHIVE --tcp-established

The container gets its network as mecmig's instances do (agent.netns): a namespace of its own
per site, with the instance's IP and MAC on a veth plugged into the site's OVS bridge at the
instance's port; the controller moves the traffic (`relocate`, as the benchmark's baseline
does). Podman joins that namespace (`--network ns:PATH`, no netavark or CNI network). A restore
recreates the container from the archive's configuration, which names that PATH: PATH is a
symlink of ours (`LINK_DIR/<name>.netns`) pointed at the destination's namespace before the
restore. The destination's namespace is prepared before the freeze, locked with CRIU's own
iptables lock (the one Podman's dump takes: no CRIU configuration of ours is involved) before its
link comes up, so that its kernel never answers the client's packets with a RST before the
connection is restored; CRIU's restore lifts that lock, as it would its own.

Both emulated sites are on one machine and share one Podman store, where two hosts would have
one each: the source's stopped container must be removed before the destination can restore it
under the same name (Podman refuses `--name` with `--tcp-established`). That `podman rm` runs
beside the copy, so it adds to the frozen window only when it outlasts the copy (it took
~55 ms; the copy of 64 MiB ~0.6 s). The image is built here (`podman import` of a rootfs tarball:
the workload's files under /data; /usr from the host, read-only, as mecmig's bundles have it) and
is in that one store for both sites, as a user would have pulled it at both hosts beforehand.

Every program starts through `Podman.run`/`Podman.spawn_in` on the injected `Runner`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.netns import ContainerNetwork, NetnsError, Plug
from ground.paths import STATE_DIR, CriuMissing, criu_binary
from ground.runner import CommandError, Result, Runner, Spawned
from migration.site import InstanceSpec
from migration.timeline import Listener, MigrationRecord, Outcome, Timeline

log = logging.getLogger(__name__)

# strategy row -> Podman's --compress (zstd is its default)
PODMAN_STRATEGIES: dict[str, str] = {"podman": "none", "podman-zstd": "zstd"}
PODMAN_MODE = "podman-checkpoint-export-copy-restore-import"
IMAGE_REPO = "localhost/mecmig-bench-workload"
CONTAINER_PREFIX = "mecmig-bench-"
# podman's default limits exceed root's hard limits here (no CAP_SYS_RESOURCE: PLATFORM.md)
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
COPY_PORT = 7190  # the archive's copy between the MEC hosts (not the agents' 7100)
COPY_SCRIPT = Path(__file__).with_name("podman_copy.py")
LINK_DIR = Path("/run/mecmig-bench-podman")  # the stable netns paths the containers name
WORK_DIR = STATE_DIR / "bench-podman"  # per site: its archives (the same disk as the agents')
HOST_DIRS = ("usr", "bin", "sbin", "lib", "lib64")  # taken from the host, read-only
READY_TIMEOUT_S = 10.0
# CRIU's own iptables network lock (criu/net.c), which its restore removes at its unlock step
CRIU_LOCK = (
    "*filter\n:CRIU - [0:0]\n-I INPUT -j CRIU\n-I OUTPUT -j CRIU\n"
    "-A CRIU -m mark --mark 0xc114 -j ACCEPT\n-A CRIU -j DROP\nCOMMIT\n"
)
CRIU_UNLOCK = "*filter\n:CRIU - [0:0]\n-D INPUT -j CRIU\n-D OUTPUT -j CRIU\n-X CRIU\nCOMMIT\n"


class PodmanError(Exception):
    """A step of the Podman peer failed: which, and the command's error."""


@dataclass(frozen=True)
class PeerSite:
    """Where the peer's container can run: a MEC site's host and bridge."""

    name: str
    host_pid: int  # a process in the MEC host's network namespace (the copy runs there)
    address: str  # the MEC host's address (the copy's receiver listens there)
    bridge: str
    port: int  # the instance's switch port at this site


def container_name(w: InstanceSpec) -> str:
    return CONTAINER_PREFIX + w.name


def podman_problem(runner: Runner) -> str | None:
    """Why the peer cannot run here (None when it can): no podman, or no CRIU for it."""
    if shutil.which("podman") is None:
        return "podman is not installed: `scripts/bootstrap --podman` installs it"
    try:
        criu_binary()
    except CriuMissing as exc:
        return str(exc)
    try:
        runner.run(["podman", "--version"], timeout=30)
    except CommandError as exc:
        return f"podman does not run: {exc}"
    return None


def rootfs_tar(files: Mapping[str, str], host: Path = Path("/")) -> bytes:
    """A rootfs tarball: mount points, the host's usr-merge symlinks, the files under /data.

    Deterministic (no times, root-owned), so the image's name, from its hash, is stable."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, *, target: str = "", data: bytes = b"") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, 0o755, 0
            if kind == tarfile.SYMTYPE:
                info.linkname = target
            elif kind == tarfile.REGTYPE:
                info.mode, info.size = 0o644, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for name in ("data", "dev", "etc", "proc", "run", "sys", "tmp", *_bind_dirs(host)):
            add(name, tarfile.DIRTYPE)
        for name in HOST_DIRS:
            if (host / name).is_symlink():
                add(name, tarfile.SYMTYPE, target=os.readlink(host / name))
        for name, source in sorted(files.items()):
            add(f"data/{name}", tarfile.REGTYPE, data=Path(source).read_bytes())
    return buf.getvalue()


def _bind_dirs(host: Path) -> list[str]:
    """The host directories bound into the container (those not symlinks into /usr)."""
    return [d for d in HOST_DIRS if (host / d).is_dir() and not (host / d).is_symlink()]


def run_args(w: InstanceSpec, image: str, netns_link: Path, host: Path = Path("/")) -> list[str]:
    """`podman run` for the workload: joined to the site's namespace through the stable link."""
    volumes = [a for d in _bind_dirs(host) for a in ("-v", f"/{d}:/{d}:ro")]
    return [
        "run", "-d", "--name", container_name(w), "--network", f"ns:{netns_link}",
        *ULIMITS, *volumes, "--workdir", "/data", image, *w.args,
    ]  # fmt: skip


def checkpoint_args(name: str, archive: Path, compress: str) -> list[str]:
    return [
        "container", "checkpoint", "--export", str(archive), "--compress", compress,
        "--tcp-established", name,
    ]  # fmt: skip


def restore_args(archive: Path) -> list[str]:
    return ["container", "restore", "--import", str(archive), "--tcp-established"]


def point_link(link: Path, target: str) -> None:
    """Point symlink `link` at `target`, atomically (a rename over the old link)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


class Podman:
    """Runs podman (and the peer's other programs) through one injected runner; podman gets
    the project's CRIU first on PATH (runc and podman look it up there)."""

    def __init__(self, runner: Runner, env: Mapping[str, str] | None = None) -> None:
        self.runner = runner
        if env is None:
            criu_dir = str(criu_binary().parent)
            env = {**os.environ, "PATH": f"{criu_dir}:{os.environ.get('PATH', '')}"}
        self.env = dict(env)

    def podman(self, args: Sequence[str], *, timeout: float = 300.0, check: bool = True) -> Result:
        try:
            return self.runner.run(["podman", *args], env=self.env, timeout=timeout, check=check)
        except CommandError as exc:
            raise PodmanError(str(exc)) from exc

    def run(self, argv: Sequence[str], *, input: str | None = None, netns_pid: int | None = None,
            timeout: float = 300.0) -> Result:  # fmt: skip
        try:
            return self.runner.run(argv, input=input, netns_pid=netns_pid, timeout=timeout)
        except CommandError as exc:
            raise PodmanError(str(exc)) from exc

    def spawn_in(self, netns_pid: int, argv: Sequence[str], log_path: Path, out: Path) -> Spawned:
        return self.runner.spawn(argv, str(log_path), netns_pid=netns_pid, stdout_path=str(out))

    def copy_argv(self, *args: str) -> list[str]:
        """The copy script: stdlib only, no site packages (it starts in ~20 ms)."""
        return [sys.executable, "-I", "-S", str(COPY_SCRIPT), *args]


@dataclass
class Receiving:
    """A copy's receiving end, started before the freeze."""

    proc: Spawned
    archive: Path
    out: Path


class PodmanPeer:
    """Deploys a workload under Podman at a site and migrates it with Podman's checkpoint.

    One peer serves a whole run: `use(workload)` between cases (each case sizes the workload
    anew); the images it imported are removed by `close`."""

    def __init__(self, podman: Podman, workload: InstanceSpec, work_dir: Path = WORK_DIR,
                 link_dir: Path = LINK_DIR) -> None:  # fmt: skip
        self.p = podman
        self.w = workload
        self.work_dir = work_dir
        self.link_dir = link_dir
        self._images: dict[str, str] = {}  # tarball hash -> image name
        self._made: list[str] = []  # images this peer imported
        self._plugged: dict[str, PeerSite] = {}

    @property
    def link(self) -> Path:
        return self.link_dir / f"{self.w.name}.netns"

    def use(self, workload: InstanceSpec) -> None:
        """The next case's workload (after `teardown` of the last one's)."""
        self.w = workload

    # ------------------------------------------------------------------ image, network

    def ensure_image(self) -> str:
        """Import the workload's image unless there (its name carries its tarball's hash)."""
        data = rootfs_tar(self.w.files)
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._images:
            return self._images[digest]
        image = f"{IMAGE_REPO}:{digest[:12]}"
        if self.p.podman(["image", "exists", image], check=False).returncode != 0:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            tarball = self.work_dir / "rootfs.tar"
            tarball.write_bytes(data)
            try:
                self.p.podman(["import", str(tarball), image], timeout=120)
            finally:
                tarball.unlink(missing_ok=True)
            self._made.append(image)
        self._images[digest] = image
        return image

    def net(self, site: PeerSite) -> ContainerNetwork:
        # its namespaces are named apart from the agents' (mecmig-<instance>-podman-<site>)
        return ContainerNetwork(self.p.runner, site=f"podman-{site.name}")

    def plug(self, site: PeerSite) -> Plug:
        w = self.w
        return Plug(w.name, w.ip, w.prefix, w.mac, site.bridge, site.port)

    def netns_path(self, site: PeerSite) -> str:
        return f"/var/run/netns/{self.net(site).netns_name(self.plug(site))}"

    def _plug_in(self, site: PeerSite, *, target: bool) -> None:
        """The site's namespace; a target's is locked and its link down until the restore."""
        self._plugged[site.name] = site
        try:
            net = self.net(site)
            net.delete(self.plug(site))  # a crashed run's
            net.create(self.plug(site), link_up=not target)
            if target:
                self._iptables(site, CRIU_LOCK)
        except NetnsError as exc:
            raise PodmanError(str(exc)) from exc

    def _iptables(self, site: PeerSite, script: str) -> None:
        ns = self.net(site).netns_name(self.plug(site))
        for tool in ("iptables-restore", "ip6tables-restore"):
            self.p.run(["ip", "netns", "exec", ns, tool, "-w", "--noflush"], input=script)

    def locked(self, site: PeerSite) -> bool:
        ns = self.net(site).netns_name(self.plug(site))
        argv = ["ip", "netns", "exec", ns, "iptables", "-w", "-S", "CRIU"]
        return self.p.runner.run(argv, check=False, timeout=30).returncode == 0

    # ------------------------------------------------------------------ lifecycle

    def deploy(self, site: PeerSite) -> None:
        """Start the workload under Podman at `site` (its namespace, link up)."""
        image = self.ensure_image()
        self.remove_container()
        self._plug_in(site, target=False)
        point_link(self.link, self.netns_path(site))
        self.p.podman(run_args(self.w, image, self.link), timeout=120)

    def remove_container(self) -> None:
        self.p.podman(["rm", "-f", "-t", "0", "--ignore", container_name(self.w)], timeout=60)

    def teardown(self) -> None:
        """Remove the container, the namespaces and archives of this peer (no error if gone)."""
        errors: list[str] = []
        try:
            self.remove_container()
        except PodmanError as exc:
            errors.append(str(exc))
        for site in list(self._plugged.values()):
            try:
                self.net(site).delete(self.plug(site))
            except NetnsError as exc:
                errors.append(str(exc))
            shutil.rmtree(self.work_dir / site.name, ignore_errors=True)
            self._plugged.pop(site.name, None)
        self.link.unlink(missing_ok=True)
        if errors:
            raise PodmanError("; ".join(errors))

    def close(self) -> None:
        """Teardown, and the images this peer imported."""
        try:
            self.teardown()
        finally:
            for image in self._made:
                self.p.podman(["rmi", "-f", image], check=False, timeout=60)
            self._made.clear()
            self._images.clear()

    def status(self) -> str:
        fmt = "{{.State.Status}}"
        res = self.p.podman(["inspect", "--format", fmt, container_name(self.w)], check=False)
        return res.stdout.strip() if res.returncode == 0 else "absent"

    # ------------------------------------------------------------------ the migration's steps

    def prepare(self, dst: PeerSite) -> Receiving:
        """Before the freeze: the destination's locked namespace, the copy's receiver."""
        self._plug_in(dst, target=True)
        d = self.work_dir / dst.name
        d.mkdir(parents=True, exist_ok=True)
        archive, out = d / f"{self.w.name}.tar", d / "recv.json"
        archive.unlink(missing_ok=True)
        argv = self.p.copy_argv("recv", str(COPY_PORT), str(archive))
        proc = self.p.spawn_in(dst.host_pid, argv, d / "recv.log", out)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "ready" not in proc.stdout():
            if not proc.alive() or time.monotonic() > deadline:
                proc.kill()
                raise PodmanError(f"the copy's receiver at {dst.name} did not start: {proc.tail()}")
            time.sleep(0.005)
        return Receiving(proc, archive, out)

    def checkpoint(self, src: PeerSite, compress: str) -> Path:
        """Stops the container: its checkpoint, exported to one archive at the source."""
        d = self.work_dir / src.name
        d.mkdir(parents=True, exist_ok=True)
        archive = d / f"{self.w.name}.tar"
        archive.unlink(missing_ok=True)
        self.p.podman(checkpoint_args(container_name(self.w), archive, compress))
        return archive

    def copy(self, archive: Path, src: PeerSite, dst: PeerSite, recv: Receiving) -> dict[str, Any]:
        """The archive over the emulated network; beside it, the source's container record goes
        (the one store both sites share; see the module docstring). Returns the copy's figures."""
        removed: list[BaseException] = []

        def remove() -> None:
            try:
                self.remove_container()
            except PodmanError as exc:
                removed.append(exc)

        t0 = time.monotonic()
        remover = threading.Thread(target=remove, name="podman-rm")
        remover.start()
        try:
            argv = self.p.copy_argv("send", dst.address, str(COPY_PORT), str(archive))
            sent = json.loads(self.p.run(argv, netns_pid=src.host_pid).stdout)
            if recv.proc.wait(timeout=60) != 0:
                raise PodmanError(f"the copy's receiver failed: {recv.proc.tail()}")
        finally:
            remover.join()
        rm_ms = (time.monotonic() - t0) * 1000.0
        if removed:
            raise PodmanError(f"removing the source's container: {removed[0]}")
        return {"bytes": int(sent["bytes"]), "send_s": sent["seconds"], "rm_until_ms": rm_ms}

    def restore(self, dst: PeerSite, archive: Path) -> None:
        """The namespace link re-pointed and brought up, then Podman's restore (CRIU lifts the
        destination's lock before the restored process runs)."""
        point_link(self.link, self.netns_path(dst))
        try:
            self.net(dst).set_link(self.plug(dst), True)
        except NetnsError as exc:
            raise PodmanError(str(exc)) from exc
        self.p.podman(restore_args(archive))

    def after_restore(self, src: PeerSite, dst: PeerSite) -> bool:
        """Outside the frozen window: a lock CRIU left goes (True if one did); the source's
        namespace and archive go."""
        left = self.locked(dst)
        if left:
            log.warning("podman: CRIU left its lock in %s's namespace; removing it", dst.name)
            self._iptables(dst, CRIU_UNLOCK)
        with contextlib.suppress(NetnsError):
            self.net(src).delete(self.plug(src))
        self._plugged.pop(src.name, None)
        shutil.rmtree(self.work_dir / src.name, ignore_errors=True)
        return left

    def migrate(
        self,
        src: PeerSite,
        dst: PeerSite,
        strategy: str,
        switch: Callable[[], float | None],
        listener: Listener | None = None,
    ) -> MigrationRecord:
        """Podman's stop-and-copy, as a migration record with the engine's phase names:
        prepare, freeze_dump (checkpoint --export), transfer, switch (`switch()`: the
        controller re-points the traffic, returns its switchover in ms), restore (--import),
        cleanup. No rollback: a failure leaves it dead (PodmanError carries the record)."""
        compress = PODMAN_STRATEGIES[strategy]
        record = MigrationRecord(
            id=f"{strategy}-{time.monotonic_ns()}",
            instance=self.w.name,
            source=src.name,
            destination=dst.name,
            strategy=strategy,
            mode=PODMAN_MODE,
        )
        timeline = Timeline(record, listener=listener)
        try:
            with timeline.phase("prepare"):
                recv = self.prepare(dst)
            with timeline.phase("freeze_dump", compress=compress) as ph:
                archive = self.checkpoint(src, compress)
                ph.detail["image_bytes"] = archive.stat().st_size
            with timeline.phase("transfer") as ph:
                sent = self.copy(archive, src, dst, recv)
                ph.bytes = sent["bytes"]
                ph.detail.update(sent)
            with timeline.phase("switch") as ph:
                ph.detail["switchover_ms"] = switch()
            with timeline.phase("restore"):
                self.restore(dst, recv.archive)
            timeline.mark_point_of_no_return()
            with timeline.phase("cleanup") as ph:
                status = self.status()
                if status != "running":
                    raise PodmanError(f"restored container is {status}")
                ph.detail["lock_left"] = self.after_restore(src, dst)
        except (PodmanError, OSError, ValueError, KeyError) as exc:
            timeline.finish(Outcome.FAILED, str(exc))
            raise PeerMigrationError(f"{strategy} migration failed: {exc}", record) from exc
        record.metrics.update(frozen_metrics(record))
        record.metrics["rounds"] = 0
        timeline.finish(Outcome.DONE)
        return record


class PeerMigrationError(PodmanError):
    """A Podman migration that failed; its record says how far it got."""

    def __init__(self, message: str, record: MigrationRecord) -> None:
        super().__init__(message)
        self.record = record


FROZEN_PARTS = {
    "freeze_dump": "podman_checkpoint",
    "transfer": "copy",
    "switch": "switch",
    "restore": "podman_restore",
}


def frozen_metrics(record: MigrationRecord) -> dict[str, Any]:
    """Its frozen window (checkpoint start to restore end: Podman's stop-to-running) and that
    window's parts, which add up to it (`between`: what lies between the phases)."""
    freeze, restore = record.phase("freeze_dump"), record.phase("restore")
    if freeze is None or restore is None or restore.end_ms is None:
        return {}
    frozen = restore.end_ms - freeze.start_ms
    parts = {
        FROZEN_PARTS[p.name]: round(p.duration_ms, 1)
        for p in record.phases
        if p.name in FROZEN_PARTS and p.duration_ms is not None
    }
    parts["between"] = round(max(0.0, frozen - sum(parts.values())), 1)
    return {"frozen_ms": frozen, "frozen_profile_ms": parts}
