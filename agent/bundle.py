"""OCI runtime bundles for service containers: pure builders of runc's config.json.

A service container sees the host's /usr, /lib, /bin, /sbin and /etc read-only (no image to
pull, the same files at every site), or, when it runs an image, that image's unpacked root
(shared read-only by the instances of the site that run it: agent.image_store), a tmpfs /tmp
and /run for scratch (seed 004 saw restores fail when the root filesystem changed under a
checkpoint: scratch never touches it), a
per-instance writable /data that travels with the instance, an optional volume, and its declared
state directories (`/var/lib/postgresql`), each a writable bind of a directory of the instance's
that travels like /data (ground.instance_fs says which paths may be one). Its root is an empty
read-only directory of ours, holding the mount points (`rootfs_mountpoints`). It runs in its own
PID, mount, IPC and UTS namespaces and in a network namespace we create, so its IP and MAC stay
when it moves.

Its process runs as the spec's uid, gid and supplementary gids, in its working directory, with
its environment over a default PATH, and with the spec's capabilities as Docker and Podman give
them: bounding, permitted and effective; inheritable and ambient empty. So a root service holds
them, and a service started as another user holds none (the kernel clears them at execve), nor
can it gain any: `noNewPrivileges` stays on (no setuid binaries, no file capabilities). A server
that binds a port below 1024 or changes user starts as root and drops to its own user itself
(nginx: `user www-data;`); one that needs neither may start as its user (PostgreSQL: `user:
postgres`, port 5432).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ground.capabilities import DEFAULT_CAPABILITIES
from ground.instance_env import process_env
from ground.instance_fs import (
    DATA_DIR,
    HOST_DIRS_READ_ONLY,
    KERNEL_DIRS,
    SCRATCH_DIRS,
    VOLUME_DIR,
    under,
)

__all__ = [
    "CRIU_CONFIG_ANNOTATION",
    "DATA_DIR",
    "HOST_DIRS_READ_ONLY",
    "SCRATCH_DIRS",
    "VOLUME_DIR",
    "BundleSpec",
    "config_json",
    "rootfs_mountpoints",
]

CRIU_CONFIG_ANNOTATION = "org.criu.config"


@dataclass(frozen=True)
class BundleSpec:
    """What a container needs to run somewhere: the per-site parts are the paths."""

    name: str
    args: Sequence[str]
    netns_path: str
    data_dir: str
    criu_config_path: str
    cgroups_path: str
    volume_dir: str | None = None
    env: Sequence[str] = ()  # NAME=value, over the default PATH (ground.instance_env)
    cwd: str = DATA_DIR
    memory_limit_bytes: int | None = None
    extra_mounts: Sequence[dict[str, Any]] = field(default_factory=tuple)
    uid: int = 0
    gid: int = 0
    groups: Sequence[int] = ()
    capabilities: Sequence[str] = DEFAULT_CAPABILITIES
    # (host directory, path in the container) of each state directory, writable
    state_mounts: Sequence[tuple[str, str]] = ()
    # an image's unpacked root, shared read-only (None: our empty root and the host's dirs)
    rootfs: str | None = None


def _bind(src: str, dst: str, read_only: bool) -> dict[str, Any]:
    options = ["rbind", "nosuid", "nodev"]
    options.append("ro" if read_only else "rw")
    return {"destination": dst, "type": "bind", "source": src, "options": options}


def _user(spec: BundleSpec) -> dict[str, Any]:
    user: dict[str, Any] = {"uid": spec.uid, "gid": spec.gid}
    if spec.groups:  # runc sets exactly these (it reads no /etc/group for numeric users)
        user["additionalGids"] = list(spec.groups)
    return user


def _capabilities(caps: Sequence[str]) -> dict[str, list[str]]:
    """Docker's and Podman's sets: inheritable empty (since CVE-2022-24769: it let a program
    with inheritable file capabilities gain them at execve), ambient empty (a non-root process
    gets nothing it did not have under Docker)."""
    held = list(caps)
    return {
        "bounding": held,
        "effective": list(held),
        "permitted": list(held),
        "inheritable": [],
        "ambient": [],
    }


def config_json(spec: BundleSpec) -> dict[str, Any]:
    """The OCI config for `spec` (runc 1.1, OCI runtime spec 1.0.2)."""
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
    ]
    if spec.rootfs is None:
        mounts += [_bind(d, d, True) for d in HOST_DIRS_READ_ONLY]
    mounts += [
        {"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
        for d in SCRATCH_DIRS
    ]
    mounts.append(_bind(spec.data_dir, DATA_DIR, False))
    if spec.volume_dir is not None:
        mounts.append(_bind(spec.volume_dir, VOLUME_DIR, False))
    mounts += [_bind(src, dst, False) for src, dst in spec.state_mounts]
    mounts += list(spec.extra_mounts)
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.memory_limit_bytes is not None:
        resources["memory"] = {"limit": spec.memory_limit_bytes}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": _user(spec),
            "args": list(spec.args),
            "env": list(process_env(spec.env)),
            "cwd": spec.cwd,
            "capabilities": _capabilities(spec.capabilities),
            "noNewPrivileges": True,
        },
        "root": {"path": spec.rootfs or "rootfs", "readonly": True},
        "hostname": spec.name,
        "mounts": mounts,
        "annotations": {CRIU_CONFIG_ANNOTATION: spec.criu_config_path},
        "linux": {
            "cgroupsPath": spec.cgroups_path,
            "resources": resources,
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": spec.netns_path},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


def rootfs_mountpoints(
    state: Sequence[str] = (), workdir: str = DATA_DIR, image: bool = False
) -> list[str]:
    """Directories the (empty, read-only) rootfs must hold: every mount's mount point (runc
    could not make one in a read-only root at a restore; ours are made beforehand, the same at
    every site), and the working directory when no mount holds it (runc would try to make it).
    An image's root has its own /usr, /etc...: no host directory is mounted on it."""
    host = () if image else HOST_DIRS_READ_ONLY
    points = [*host, *SCRATCH_DIRS, DATA_DIR, VOLUME_DIR, *KERNEL_DIRS, *state]
    if workdir != "/" and not any(under(workdir, p) for p in points):
        points.append(workdir)
    return points
