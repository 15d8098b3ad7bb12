"""The file system an instance sees, and which of its directories a scenario may declare state.

An instance's root is an empty, read-only directory of its own. Mounted on it: the host's /usr,
/lib, /lib64, /bin, /sbin and /etc read-only (the same files at every site, no image), tmpfs
scratch at /tmp and /run (kept across a live migration in CRIU's images, lost on a restart),
the kernel's /proc, /sys and /dev, and the instance's own writable directories, which travel with
it: /data, /volume (if asked for) and each declared state directory (`/var/lib/postgresql`).

A state directory is an absolute, normalised path: not `/`, not at or under a host directory
(read-only; a mount point there cannot be made), the scratch, the kernel's or /data and /volume
(writable already), and not inside another state directory. Its mount point is made in the
instance's own root, so any other place works: /var/..., /srv, /opt, /home, /root, /mnt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HOST_DIRS_READ_ONLY = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")
SCRATCH_DIRS = ("/tmp", "/run")
KERNEL_DIRS = ("/proc", "/sys", "/dev")
DATA_DIR = "/data"
VOLUME_DIR = "/volume"
DEFAULT_WORKDIR = DATA_DIR

MAX_STATE_DIRS = 16
MAX_PATH_CHARS = 1024
# a path of plain components: letters, digits and . _ - + @ (no space, quote, comma or colon:
# they are a host directory's name and a mount's destination)
COMPONENT = r"[A-Za-z0-9._@+-]{1,255}"
PATH_PATTERN = rf"^(/{COMPONENT})+$"
WORKDIR_PATTERN = rf"^/$|{PATH_PATTERN}"
_PATH = re.compile(PATH_PATTERN)

_WHY_NOT: tuple[tuple[tuple[str, ...], str], ...] = (
    (HOST_DIRS_READ_ONLY, "the host's, mounted read-only in every instance"),
    (SCRATCH_DIRS, "tmpfs scratch (lost on a restart): declare e.g. /var/run/<name> instead"),
    (KERNEL_DIRS, "the kernel's"),
    ((DATA_DIR, VOLUME_DIR), "the instance's own and writable already"),
)


def under(path: str, top: str) -> bool:
    """Whether `path` is `top` or inside it (both normalised absolute paths)."""
    return top == "/" or path == top or path.startswith(top + "/")


def normal_path(value: str, what: str = "a path") -> str:
    """`value` if it is a normalised absolute path of plain components, else ValueError."""
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"{what} has at most {MAX_PATH_CHARS} characters")
    if value == "/":
        return value
    if not _PATH.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r}: {what} must be an absolute path of plain names (letters, digits, "
            "'.', '_', '-', '+', '@'), without '//' or a trailing '/'"
        )
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value[:80]!r}: {what} must not hold '.' or '..'")
    return value


def state_dir(value: str) -> str:
    """`value` as a state directory (see the module docstring), else ValueError saying why."""
    path = normal_path(value, "a state directory")
    if path == "/":
        raise ValueError("'/' cannot be a state directory: name the directories that change")
    for tops, why in _WHY_NOT:
        for top in tops:
            if under(path, top):
                raise ValueError(f"{path!r} cannot be a state directory: {top} is {why}")
    return path


def state_dirs(values: Iterable[str]) -> tuple[str, ...]:
    """Each of `values` a state directory, at most MAX_STATE_DIRS, none inside another."""
    paths = tuple(state_dir(v) for v in values)
    if len(paths) > MAX_STATE_DIRS:
        raise ValueError(f"at most {MAX_STATE_DIRS} state directories")
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            if a == b:
                raise ValueError(f"state directory {a!r} is given twice")
            if under(a, b) or under(b, a):
                inner, outer = (a, b) if under(a, b) else (b, a)
                raise ValueError(
                    f"state directory {inner!r} is inside {outer!r}: declare only {outer!r}"
                )
    return paths


def workdir(value: str) -> str:
    """`value` as a working directory: a normalised absolute path, else ValueError."""
    return normal_path(value, "a working directory")
