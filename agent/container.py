"""Service containers at one site: create, status, checkpoint, restore, destroy.

Layout under the site's directory, one folder per instance:
    <name>/instance.json   what it is (InstanceSpec), so any later step knows it
    <name>/bundle/         runc bundle (config.json, empty rootfs with mount points)
    <name>/xfer/data/      its writable /data           } what a migration moves: one directory,
    <name>/xfer/volume/    its data volume, if it has one } sent whole or as a delta
    <name>/xfer/state/P    its state directory P (/var/lib/postgresql: xfer/state/var/lib/
                           postgresql), owned by its user (agent.instance_dirs)
    <name>/xfer/images/    the last checkpoint's images }
    <name>/xfer/predump/N/ pre-dump round N's images (kernels with soft-dirty tracking), each
                           chained to round N-1 by CRIU's `parent` link; the final dump's
                           images link to the last round: the chain travels as one tree
    <name>/criu.conf       CRIU options runc reads (CRIU_RESTORE_OPTIONS)
    <name>/work/           CRIU's work files and logs
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from agent.bundle import BundleSpec, config_json, rootfs_mountpoints
from agent.criu_images import ImageError, dump_run_id, dump_run_id_of
from agent.errors import InUse
from agent.hold_script import hold_script
from agent.image_store import ImageStore
from agent.instance_dirs import (
    LayoutError,
    make_mountpoints,
    make_own_dir,
    state_host_dir,
)
from agent.netns import DUMP_LOCK_OPTION, ContainerNetwork, Plug
from agent.runc import CheckpointOptions, Runc
from agent.service_logs import ServiceLogs, tail
from ground.instance_fs import state_dirs, workdir
from migration.site import InstanceSpec

log = logging.getLogger(__name__)
# dump refuses mntns-compat-mode, restore needs it (PLATFORM.md): the annotation names this file,
# whose content we switch before each operation. Dumps take the nftables lock (see netns).
# CRIU leaves the cgroups to runc (`manage-cgroups=ignore`): runc makes the container's cgroups,
# sets their limits and puts CRIU in them before a restore, so the restored tasks are born there
# (checked live: /proc/<pid>/cgroup after post-copy, cold and pre-copy). CRIU's own dump of them
# mounted every v1 hierarchy and walked it: ~20 ms of each final dump's frozen window. The `=`
# matters: the option's argument is optional, and CRIU's config parser hands a line's second
# word over as a separate argument, which getopt does not take for an optional one; written
# `manage-cgroups ignore` it meant CRIU's default (soft), and CRIU walked the cgroups anyway.
# CRIU stops a task it has infected (the dump's parasite, a restored task at its end) on its
# way out by stepping its syscalls, not with a hardware breakpoint (`no-breakpoints`, CRIU patch
# 0013): in this VM a breakpoint took 2-16 ms to fire where stepping takes microseconds, the
# parasite's exit inside every dump's frozen window (post-copy's frozen window 172 -> 160 ms).
NO_BREAKPOINTS = "no-breakpoints\n"
CRIU_RESTORE_OPTIONS = "mntns-compat-mode\nmanage-cgroups=ignore\n" + NO_BREAKPOINTS
# A final dump leaves out a connection its listener half-accepted (`skip-in-flight`): without
# it CRIU refuses the whole dump ("In-flight connection"), and a service whose clients open a
# new connection per request (an HTTP client every 10 ms, mecmig bench levels) failed 3 of 3
# pre-copy migrations at the freeze and rolled back. The skipped client's request is answered
# by a RST from the destination (no such socket there) and it connects again.
CRIU_DUMP_OPTIONS = DUMP_LOCK_OPTION + "skip-in-flight\nmanage-cgroups=ignore\n" + NO_BREAKPOINTS
# A dump that leaves the service running is a pre-copy round: its images carry memory and files
# ahead of the final dump, and only the final dump's sockets are ever restored. So a round takes
# no network lock and leaves the TCP sockets out of repair mode (`tcp-close`: established
# connections are recorded without their state; `skip-in-flight`: a connection the unlocked
# listener half-accepted meanwhile is left out). The client's packets then reach the frozen
# service, which answers them as it thaws; under the lock they were dropped and came back only
# at the client's retransmission timeout (200 ms or more), a stall longer than the round's
# freeze that ran on into the final dump's frozen window (measured: +60..150 ms over it in 5 of
# 10 memcached pre-copy hops). Images dumped so are refused by a restore (CRIU wants
# --tcp-close there), never restored half-right.
CRIU_ROUND_OPTIONS = (
    "network-lock skip\ntcp-close\nskip-in-flight\nmanage-cgroups=ignore\n" + NO_BREAKPOINTS
)
FAILED_START_LINES = 20  # of its log, in the error of a service that did not start
PENDING_TARGET = "target.pending"  # a prepared destination that has not restored yet
# a pending target untouched this long is abandoned (its migration's engine is gone): a new
# target may replace it; a younger one belongs to a migration in flight (touch_target)
TARGET_LEASE_S = 300.0
PREDUMPS = "predump"  # under xfer/: one directory of images per pre-dump round
HOLD_SCRIPT = "criu-hold.sh"  # CRIU action script that holds the traffic (agent.hold_script)
HOLD_MARKER = "held"  # left by that script when the controller answered
FROZEN_MARKER = "frozen-at"  # ... and the wall clock when CRIU froze the tree


def catches_signal(pid: int, signum: int, proc: Path = Path("/proc")) -> bool:
    """Whether process `pid` has a handler for `signum` (its SigCgt mask); True if unknown."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return True
    for line in text.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return True


def mounts_under(root: Path, mounts: str) -> list[str]:
    """The mount points at or under `root` in a /proc/mounts text, deepest first."""
    top = str(root)
    found = []
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        point = parts[1].replace("\\040", " ")
        if point == top or point.startswith(top + "/"):
            found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


class ContainerError(Exception):
    """A container operation that failed, with the instance and what went wrong."""


class SiteContainers:
    """The containers of one site (its runc root, its bridge, its directory)."""

    def __init__(
        self,
        site: str,
        root: Path,
        bridge: str,
        runc: Runc,
        net: ContainerNetwork,
        logs: ServiceLogs | None = None,
    ):
        self.site = site
        self.root = root
        self.bridge = bridge
        self.runc = runc
        self.net = net
        self.logs = logs  # None: the services' stdout and stderr go to /dev/null
        self.image_store = ImageStore(site, root, getattr(runc, "runner", None))

    @contextlib.contextmanager
    def output(self, name: str) -> Iterator[tuple[int, int] | None]:
        """The stdout and stderr a `runc run`/`runc restore` of `name` hands its process."""
        if self.logs is None:
            yield None
            return
        with self.logs.output(name, self.dir(name), self.xfer_dir(name)) as fds:
            yield fds

    # ------------------------------------------------------------------ paths

    def dir(self, name: str) -> Path:
        return self.root / name

    def xfer_dir(self, name: str) -> Path:
        """What moves with the instance: its /data and its last checkpoint images."""
        return self.dir(name) / "xfer"

    def data_dir(self, name: str) -> Path:
        return self.xfer_dir(name) / "data"

    def images_dir(self, name: str) -> Path:
        return self.xfer_dir(name) / "images"

    def predump_dir(self, name: str) -> Path:
        return self.xfer_dir(name) / PREDUMPS

    def last_predump(self, name: str) -> int:
        """The last pre-dump round this instance holds (0: none)."""
        base = self.predump_dir(name)
        rounds = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
        return max(rounds, default=0)

    def parent_of_final(self, name: str) -> str:
        """`--parent-path` of a dump chained onto the pre-dumps (relative to the images dir)."""
        last = self.last_predump(name)
        if last == 0:
            raise ContainerError(f"site {self.site}: {name} has no pre-dump to chain onto")
        return f"../{PREDUMPS}/{last}"

    def drop_images(self, name: str) -> None:
        """Forget the last checkpoint's images once the process they describe runs (they were
        the memory's size, kept at every site an instance had passed through)."""
        shutil.rmtree(self.images_dir(name), ignore_errors=True)

    def drop_predumps(self, name: str) -> None:
        """Forget the pre-dump chain (a restore no longer needs it; a full dump replaces it)."""
        shutil.rmtree(self.predump_dir(name), ignore_errors=True)

    def spec(self, name: str) -> InstanceSpec:
        path = self.dir(name) / "instance.json"
        try:
            return InstanceSpec.from_json(path.read_text())
        except OSError as exc:
            raise ContainerError(f"site {self.site}: no instance {name!r}") from exc

    def plug(self, spec: InstanceSpec) -> Plug:
        return Plug(spec.name, spec.ip, spec.prefix, spec.mac, self.bridge, spec.port)

    def instances(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/instance.json"))

    # ------------------------------------------------------------------ lifecycle

    def _places(self, spec: InstanceSpec) -> tuple[str, list[tuple[str, str]]]:
        """Its working directory and (host directory, container path) of each state directory,
        checked (ContainerError: a path that could leave the instance's directory, or that the
        bundle cannot mount; the API refuses these before, an in-process caller gets this)."""
        try:
            cwd = workdir(spec.workdir)
            state = state_dirs(spec.state)
            xfer = self.xfer_dir(spec.name)
            return cwd, [(str(state_host_dir(xfer, path)), path) for path in state]
        except (LayoutError, ValueError) as exc:
            raise ContainerError(f"site {self.site}: {spec.name}: {exc}") from None

    def _layout(self, spec: InstanceSpec, netns_path: str) -> Path:
        """The instance's directory: its bundle, with the mount points of every mount in the
        rootfs, and its writable directories (made owned by its user when new)."""
        d = self.dir(spec.name)
        bundle = d / "bundle"
        cwd, state_mounts = self._places(spec)
        points = rootfs_mountpoints(spec.state, cwd, image=spec.image is not None)
        rootfs = None
        if spec.image is None:
            make_mountpoints(bundle / "rootfs", points)
        else:
            bundle.mkdir(parents=True, exist_ok=True)
            rootfs = str(self.image_store.make_mountpoints(spec.image, points))
        own = [self.data_dir(spec.name)] + [Path(src) for src, _ in state_mounts]
        if spec.volume:
            own.append(self.xfer_dir(spec.name) / "volume")
        for path in own:
            make_own_dir(path, spec.uid, spec.gid)
        (d / "criu.conf").write_text("")
        bundle_spec = BundleSpec(
            name=spec.name,
            args=spec.args,
            netns_path=netns_path,
            data_dir=str(self.data_dir(spec.name)),
            criu_config_path=str(d / "criu.conf"),
            cgroups_path=f"/mecmig/{self.site}/{spec.name}",
            memory_limit_bytes=spec.memory_bytes,
            volume_dir=str(self.xfer_dir(spec.name) / "volume") if spec.volume else None,
            env=spec.env,
            cwd=cwd,
            uid=spec.uid,
            gid=spec.gid,
            groups=spec.groups,
            capabilities=spec.capabilities,
            state_mounts=state_mounts,
            rootfs=rootfs,
        )
        (bundle / "config.json").write_text(json.dumps(config_json(bundle_spec), indent=1))
        (d / "instance.json").write_text(spec.to_json())
        return bundle

    def create(self, spec: InstanceSpec) -> None:
        """Plug the instance into the bridge and start it."""
        if self.runc.status(spec.name) != "absent":
            raise ContainerError(f"site {self.site}: instance {spec.name} already exists")
        self._places(spec)  # refused before anything is made
        if spec.image is not None:
            self.image_store.rootfs(spec.image)  # Conflict: send the image first
        netns = self.net.create(self.plug(spec))
        bundle = self._layout(spec, netns)
        if spec.image is not None:  # new state directories start as the image has them
            for src, dst in self._places(spec)[1]:
                if self.image_store.seed(spec.image, dst, Path(src)):
                    log.info("site %s: %s: %s seeded from its image", self.site, spec.name, dst)
        for target, source in spec.files.items():
            shutil.copyfile(source, self.data_dir(spec.name) / target)
        with self.output(spec.name) as out:
            self.runc.run(spec.name, bundle, out)
        log.info(
            "site %s: started %s (%s on %s:%d)",
            self.site,
            spec.name,
            spec.ip,
            self.bridge,
            spec.port,
        )

    def status(self, name: str) -> str:
        """runc's status of `name`; "running" read from runc's state file and /proc without
        starting runc when it is plainly so (`Runc.running_now`): a replica set's failure
        detector asks every replica's agent this every 100 ms, and three `runc state` calls per
        probe round on 2 busy cores delayed a failover's detection past its bound (CI: 0.617 s
        against 0.6). Anything else (stopped, paused, absent, unclear) is runc's own answer."""
        if self.runc.running_now(name):
            return "running"
        return self.runc.status(name)

    def remove_failed_start(self, name: str, lines: int = FAILED_START_LINES) -> list[str]:
        """Remove an instance that did not start; the last lines it wrote (read once its
        process is gone and its log sink has written everything)."""
        self.runc.delete(name)
        if self.logs is not None:
            self.logs.stop(name)
        said = tail(self.xfer_dir(name), lines)
        self.destroy(name)
        return said

    def destroy(self, name: str) -> None:
        """Stop and remove everything of the instance at this site; no error if absent."""
        self.runc.delete(name)
        if self.logs is not None:
            self.logs.stop(name)
        try:
            spec = self.spec(name)
        except ContainerError:
            spec = None
        if spec is not None:
            self.net.delete(self.plug(spec))
        # a restore that was cut can leave mounts in its rootfs (runc's, for CRIU): rmtree
        # cannot remove a directory something is mounted on
        for mount in mounts_under(self.dir(name), Path("/proc/self/mounts").read_text()):
            self.runc.runner.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.dir(name), ignore_errors=True)
        # runc's log of it (every checkpoint and restore appends to it; the errors it held went
        # into the exceptions that reported them): it would outlive the instance and grow
        (self.runc.log_dir / f"runc-{name}.log").unlink(missing_ok=True)

    # ------------------------------------------------------------------ checkpoint / restore

    def dump_options(
        self, name: str, hold_url: str | None = None, *, leave_running: bool = False
    ) -> str:
        """criu.conf for a dump (a pre-copy round's when it `leave_running`: no lock, see
        CRIU_ROUND_OPTIONS); with `hold_url`, CRIU's network-lock step first asks the
        controller there to hold the service's traffic (`held` says whether it did)."""
        d = self.dir(name)
        (d / HOLD_MARKER).unlink(missing_ok=True)
        (d / FROZEN_MARKER).unlink(missing_ok=True)
        options = CRIU_ROUND_OPTIONS if leave_running else CRIU_DUMP_OPTIONS
        if hold_url is None:
            return options
        script = d / HOLD_SCRIPT
        script.write_text(
            hold_script(
                hold_url,
                (d / HOLD_MARKER).resolve(),
                self.net.root_pid,
                frozen=(d / FROZEN_MARKER).resolve(),
            )
        )
        script.chmod(0o755)
        return options + f"action-script {script.resolve()}\n"

    def held(self, name: str) -> bool:
        """Whether the last dump's hold script got the controller to hold the traffic."""
        return (self.dir(name) / HOLD_MARKER).exists()

    def frozen_at(self, name: str) -> float | None:
        """When CRIU froze the tree in the last dump with a hold script (seconds since the
        epoch), None if unknown."""
        try:
            return float((self.dir(name) / FROZEN_MARKER).read_text().strip())
        except (OSError, ValueError):
            return None

    def checkpoint(
        self,
        name: str,
        opts: CheckpointOptions,
        *,
        on_predumps: bool = False,
        hold_url: str | None = None,
    ) -> Path:
        """Dump the instance's process tree into its images directory; return the directory.

        `on_predumps`: only what changed since the last pre-dump round goes into the images
        (CRIU links them to that round); otherwise the dump is whole and old rounds are dropped.
        `opts.leave_running`: a pre-copy round, which neither locks the network nor records
        the TCP connections' state (CRIU_ROUND_OPTIONS).
        """
        image = self.images_dir(name)
        if on_predumps:
            opts = replace(opts, parent_path=self.parent_of_final(name))
        else:
            self.drop_predumps(name)
        if opts.leave_running:
            opts = replace(opts, tcp_established=False)
        shutil.rmtree(image, ignore_errors=True)
        conf = self.dump_options(name, hold_url, leave_running=opts.leave_running)
        (self.dir(name) / "criu.conf").write_text(conf)
        self.runc.checkpoint(name, image, self.dir(name) / "work" / "dump", opts)
        return image

    def pre_dump(self, name: str, round_: int) -> Path:
        """Pre-copy round `round_` on a kernel with soft-dirty tracking: CRIU copies the memory
        that changed since round `round_ - 1` (all of it in round 1, which starts a new chain)
        while the service runs on. Return the round's image directory."""
        if round_ < 1:
            raise ContainerError(f"site {self.site}: pre-dump round {round_} of {name}")
        base = self.predump_dir(name)
        if round_ == 1:  # a new chain: nothing of an earlier migration travels with it
            self.drop_predumps(name)
            shutil.rmtree(self.images_dir(name), ignore_errors=True)
        elif self.last_predump(name) != round_ - 1:
            raise ContainerError(
                f"site {self.site}: pre-dump round {round_} of {name} without round {round_ - 1}"
            )
        image = base / str(round_)
        shutil.rmtree(image, ignore_errors=True)
        opts = CheckpointOptions(
            pre_dump=True,
            tcp_established=False,  # a pre-dump takes memory only
            parent_path=f"../{round_ - 1}" if round_ > 1 else None,
        )
        (self.dir(name) / "criu.conf").write_text(CRIU_DUMP_OPTIONS)
        self.runc.checkpoint(name, image, self.dir(name) / "work" / "predump", opts)
        return image

    def prepare_target(self, spec: InstanceSpec) -> None:
        """Destination side, before the dump: a locked netns plugged in but down, the bundle."""
        self._places(spec)  # refused before anything is made or removed
        if spec.image is not None:
            self.image_store.rootfs(spec.image)  # Conflict: send the image first
        if self.dir(spec.name).exists():
            self._refuse_if_in_use(spec.name)
            self.destroy(spec.name)
        try:
            netns = self.net.create(self.plug(spec), locked=True, link_up=False)
            self._layout(spec, netns)
            (self.dir(spec.name) / PENDING_TARGET).write_text("")
        except BaseException:
            # half a target of ours (a full disk, a namespace that failed): the engine wipes
            # only targets it knows it holds, so nothing may stay behind from this one
            self.destroy(spec.name)
            raise

    def _refuse_if_in_use(self, name: str) -> None:
        """InUse where `name` runs here, or waits as another migration's target (one younger
        than TARGET_LEASE_S: that migration is in flight); what is left is an old target or a
        stopped instance, which a new target replaces."""
        status = self.runc.status(name)
        if status in ("running", "paused", "created"):
            raise InUse(f"site {self.site}: {name} is {status} here; no target replaces it")
        marker = self.dir(name) / PENDING_TARGET
        try:
            age = time.time() - marker.stat().st_mtime
        except FileNotFoundError:
            return
        if age < TARGET_LEASE_S:
            raise InUse(
                f"site {self.site}: {name} is another migration's target here "
                f"(prepared {age:.0f} s ago); wait for it to end"
            )

    def touch_target(self, name: str) -> None:
        """A migration works on this target: its lease starts again."""
        marker = self.dir(name) / PENDING_TARGET
        if marker.exists():
            marker.touch()

    def restore(self, name: str) -> None:
        """Bring the interface up and restore from the images; CRIU lifts the lock at its
        network-unlock step, before the restored tasks run (see `restored`)."""
        self.ready_to_restore(name)
        work = self.dir(name) / "work" / "restore"
        with self.output(name) as out:
            self.runc.restore(
                name, self.dir(name) / "bundle", self.images_dir(name), work, output=out
            )
        self.restored(name)
        # restored: the memory is in the process now (if the restore raised, the images are
        # still the only copy of the state, and stay)
        self.drop_predumps(name)
        self.drop_images(name)

    def ready_to_restore(self, name: str) -> None:
        """Restore options, the lock handed over to CRIU's restore, then the interface up."""
        plug = self.plug(self.spec(name))
        (self.dir(name) / "criu.conf").write_text(CRIU_RESTORE_OPTIONS)
        self.net.hand_over_lock(plug, dump_run_id_of(self.images_dir(name)))
        self.net.set_link(plug, True)

    def restored(self, name: str) -> None:
        """After a restore: no longer a pending target, and no lock left. CRIU opens the
        handed-over table at its network-unlock step, before the restored tasks run (patch
        0011); the open table is deleted in the background, and so is a table that still
        locks, loudly (`ContainerNetwork.release_restored`). (A lazy restore's pre-dump chain
        stays: its pages are read until all have arrived.)"""
        (self.dir(name) / PENDING_TARGET).unlink(missing_ok=True)
        self.net.release_restored(self.plug(self.spec(name)))

    def hand_over_soon(self, name: str, inventory: Path) -> None:
        """The images' inventory of a dump arrived at this restore target (the rest of the
        copy still on its way): its lock goes to the table that dump's restore opens, in the
        background (`ContainerNetwork.hand_over_soon`). Nothing if it names no run id."""
        try:
            run_id = dump_run_id(inventory.read_bytes())
        except (OSError, ImageError) as exc:  # the restore reads it again, and says why
            log.debug("site %s: %s: no hand-over ahead: %s", self.site, name, exc)
            return
        if run_id is not None:
            self.net.hand_over_soon(self.plug(self.spec(name)), run_id)

    def stop(self, name: str, grace_s: float = 5.0) -> None:
        """End the instance's process (SIGTERM, then SIGKILL), keeping all its files.

        A container's PID 1 without a SIGTERM handler never sees SIGTERM (the kernel drops
        default-action signals to a namespace's init, but SIGKILL): waiting the grace period
        for it would only add `grace_s` to the restart strategy's downtime, so it gets SIGKILL
        at once."""
        state = self.runc.state(name)
        if state is None or state.get("status") not in ("running", "paused"):
            return
        pid = state.get("pid")
        if isinstance(pid, int) and pid > 0 and not catches_signal(pid, signal.SIGTERM):
            log.info("site %s: %s's PID 1 ignores SIGTERM: SIGKILL", self.site, name)
            self.runc.kill(name, "KILL")
            return
        self.runc.kill(name, "TERM")
        deadline = time.monotonic() + grace_s
        while self.runc.status(name) == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.runc.status(name) == "running":
            self.runc.kill(name, "KILL")

    def start(self, name: str) -> None:
        """Start the instance afresh from its bundle and its /data (no memory state): the
        restart strategy's destination, or its source again after a rollback."""
        spec = self.spec(name)
        self.runc.delete(name)
        self.net.unlock(self.plug(spec))
        self.net.set_link(self.plug(spec), True)
        with self.output(name) as out:
            self.runc.run(name, self.dir(name) / "bundle", out)
        (self.dir(name) / PENDING_TARGET).unlink(missing_ok=True)

    def collect_abandoned_targets(self) -> list[str]:
        """Remove destinations prepared for migrations that never restored here (their
        orchestrator or this agent died mid-way). Instances that ran here are never touched."""
        abandoned = [n for n in self.instances() if (self.dir(n) / PENDING_TARGET).exists()]
        for name in abandoned:
            if self.runc.status(name) != "running":
                log.warning("site %s: removing abandoned migration target %s", self.site, name)
                self.destroy(name)
        return abandoned

    def resume_after_failed_migration(self, name: str) -> str:
        """Source side rollback: the service runs here again, with its state; say how.

        A running one only needs the lock a dump left in its namespace lifted. One the final
        dump stopped is restored from that dump's images, its namespace locked (as a restore
        target must be, so its clients' TCP connections survive); CRIU lifts the lock.
        """
        spec = self.spec(name)
        status = self.runc.status(name)
        if status == "running":
            self.net.unlock(self.plug(spec))
            self.net.set_link(self.plug(spec), True)
            self.drop_predumps(name)  # the rounds' images describe a past it has left
            self.drop_images(name)
            return "still running"
        if not (self.images_dir(name) / "inventory.img").exists():
            raise ContainerError(f"site {self.site}: {name} is {status} and there is no image")
        self.runc.delete(name)
        # Keep the lock the dump left: unlocking now, even briefly, would let the kernel answer
        # the clients' retransmissions with RSTs (the dumped sockets are gone until restored).
        if not self.net.is_locked(self.plug(spec)):
            self.net.lock(self.plug(spec))
        self.restore(name)
        return "restored from its final dump"
