"""OCI runtime bundles for service containers: pure builders of runc's config.json.

A service container sees the host's /usr, /lib, /bin, /sbin and /etc read-only (no image to
pull, the same files at every site), a tmpfs /tmp and /run for scratch (seed 004 saw restores
fail when the root filesystem changed under a checkpoint: scratch never touches it), a
per-instance writable /data that travels with the instance, and an optional volume. It runs in
its own PID, mount, IPC and UTS namespaces and in a network namespace we create, so its IP and
MAC stay when it moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CRIU_CONFIG_ANNOTATION = "org.criu.config"
HOST_DIRS_READ_ONLY = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")
SCRATCH_DIRS = ("/tmp", "/run")
DATA_DIR = "/data"
VOLUME_DIR = "/volume"


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
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    cwd: str = DATA_DIR
    memory_limit_bytes: int | None = None
    extra_mounts: Sequence[dict[str, Any]] = field(default_factory=tuple)


def _bind(src: str, dst: str, read_only: bool) -> dict[str, Any]:
    options = ["rbind", "nosuid", "nodev"]
    options.append("ro" if read_only else "rw")
    return {"destination": dst, "type": "bind", "source": src, "options": options}


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
    mounts += [_bind(d, d, True) for d in HOST_DIRS_READ_ONLY]
    mounts += [
        {"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
        for d in SCRATCH_DIRS
    ]
    mounts.append(_bind(spec.data_dir, DATA_DIR, False))
    if spec.volume_dir is not None:
        mounts.append(_bind(spec.volume_dir, VOLUME_DIR, False))
    mounts += list(spec.extra_mounts)
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.memory_limit_bytes is not None:
        resources["memory"] = {"limit": spec.memory_limit_bytes}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(spec.args),
            "env": list(spec.env),
            "cwd": spec.cwd,
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
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


def rootfs_mountpoints() -> list[str]:
    """Directories the (empty) rootfs must hold so the mounts above have somewhere to go."""
    points = [*HOST_DIRS_READ_ONLY, *SCRATCH_DIRS, DATA_DIR, VOLUME_DIR]
    return [*points, "/proc", "/dev", "/sys"]
