"""The directories an instance's bundle needs at a site: its own writable ones, and the mount
points in its empty root.

Its writable directories (/data, /volume, each state directory) live under `xfer/` in the
instance's directory, which a migration sends whole (agent.transfer keeps owners, modes and
bytes): a state directory `/var/lib/postgresql` is `xfer/state/var/lib/postgresql`. One is made
owned by the instance's uid:gid, mode 0755, when it does not exist; one that exists (a service
made it 0700, or a transfer brought it) is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ground.instance_fs import state_dir

STATE = "state"  # under xfer/: the state directories, by their path in the container
DIR_MODE = 0o755


class LayoutError(Exception):
    """A directory of an instance that cannot be made as asked (the path and why)."""


def state_host_dir(xfer: Path, path: str) -> Path:
    """Where state directory `path` lives at this site (checked: it stays under `xfer/state`)."""
    try:
        return xfer / STATE / state_dir(path).lstrip("/")
    except ValueError as exc:
        raise LayoutError(str(exc)) from None


def make_dirs(root: Path, rel: str, mode: int = DIR_MODE) -> list[Path]:
    """`root/rel` and the directories on the way, those that are new with `mode` whatever the
    umask (an instance's user must be able to pass through them); return the new ones."""
    made: list[Path] = []
    path = root
    for part in Path(rel.lstrip("/")).parts:
        path = path / part
        if not path.is_dir():
            path.mkdir(mode=mode)
            path.chmod(mode)  # mkdir's mode is cut by the umask
            made.append(path)
    return made


def make_own_dir(path: Path, uid: int, gid: int, mode: int = DIR_MODE) -> bool:
    """Make `path` (its parents as needed, root's) owned by uid:gid with `mode`, unless it
    exists; whether it made it. Ownership is given when this process may (as root: an agent
    always runs as root; a test may not)."""
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700)  # nobody else's until it is the instance's
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
    path.chmod(mode)  # after chown, which may clear setgid
    return True


def make_mountpoints(rootfs: Path, points: Iterable[str]) -> None:
    """The rootfs (readable by every user) with each of `points` in it, mode 0755."""
    rootfs.mkdir(parents=True, exist_ok=True)
    rootfs.chmod(DIR_MODE)
    for point in points:
        make_dirs(rootfs, point)
