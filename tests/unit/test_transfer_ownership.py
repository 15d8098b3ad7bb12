"""State directories travel with their owners, modes and bytes: an instance's xfer/ tree (its
/data and its state directories, as agent.container lays them out) sent by agent.transfer over
loopback, in full and as a delta, reproduces every entry's kind, uid, gid, permission bits
(setgid and sticky included), content and file mtime. Owners need root (an agent always is)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.instance_dirs import make_own_dir, state_host_dir
from tests.unit.test_transfer import run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files owners needs root")
PG, WWW = (105, 111), (33, 33)


def entries(root: Path) -> dict[str, tuple[Any, ...]]:
    """Each path under `root`: kind, uid, gid, mode bits, content digest or target, mtime."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        meta = (st.st_uid, st.st_gid)
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", *meta, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", *meta, stat.S_IMODE(st.st_mode))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", *meta, stat.S_IMODE(st.st_mode), digest, st.st_mtime_ns)
    return out


def _file(path: Path, data: bytes, owner: tuple[int, int], mode: int) -> None:
    path.write_bytes(data)
    os.chown(path, *owner)
    path.chmod(mode)  # after chown, which clears setuid and setgid bits


def make_xfer(xfer: Path) -> None:
    """/data (root's), PostgreSQL's state (postgres', 0700 cluster), nginx's logs (www-data's,
    setgid), a sticky scratch dir, a symlink owned by its user."""
    make_own_dir(xfer / "data", 0, 0)
    (xfer / "data" / "counter").write_bytes(b"41")
    pg = state_host_dir(xfer, "/var/lib/postgresql")
    make_own_dir(pg, *PG)
    cluster = pg / "15" / "main"
    cluster.mkdir(parents=True)
    for d in (pg / "15", cluster):
        os.chown(d, *PG)
    cluster.chmod(0o700)
    _file(cluster / "PG_VERSION", b"15\n", PG, 0o600)
    _file(cluster / "base.dat", os.urandom(3 << 20), PG, 0o600)
    (cluster / "current").symlink_to("base.dat")
    os.chown(cluster / "current", *PG, follow_symlinks=False)
    logs = state_host_dir(xfer, "/var/log/nginx")
    make_own_dir(logs, *WWW, mode=0o2750)
    _file(logs / "access.log", b"GET / 200\n" * 100, WWW, 0o640)
    sticky = state_host_dir(xfer, "/var/tmp")
    make_own_dir(sticky, 0, 0, mode=0o1777)


def test_a_full_send_keeps_owners_modes_and_bytes(tmp_path: Path) -> None:
    src, dest = tmp_path / "a" / "xfer", tmp_path / "b" / "xfer"
    make_xfer(src)
    # the destination's own empty layout (prepare-target) is replaced by the source's
    make_own_dir(state_host_dir(dest, "/var/lib/postgresql"), 0, 0)
    run(src, dest)
    assert entries(dest) == entries(src)
    cluster = entries(dest)["state/var/lib/postgresql/15/main"]
    assert cluster == ("dir", *PG, 0o700)
    assert entries(dest)["state/var/log/nginx"] == ("dir", *WWW, 0o2750)
    assert entries(dest)["state/var/tmp"][-1] == 0o1777


def test_a_delta_carries_changed_owners_and_modes_of_unchanged_files(tmp_path: Path) -> None:
    src, dest = tmp_path / "a" / "xfer", tmp_path / "b" / "xfer"
    make_xfer(src)
    _, manifest, _ = run(src, dest)
    main = state_host_dir(src, "/var/lib/postgresql") / "15" / "main"
    os.chown(main / "PG_VERSION", *WWW)  # only its owner and mode change
    (main / "PG_VERSION").chmod(0o640)
    with open(main / "base.dat", "r+b") as f:  # one block changes
        f.seek(1 << 20)
        f.write(b"x" * 100)
    _file(main / "new.dat", b"new", PG, 0o600)
    stats, _, _ = run(src, dest, previous=manifest)
    assert stats.mode == "delta"
    assert entries(dest) == entries(src)
