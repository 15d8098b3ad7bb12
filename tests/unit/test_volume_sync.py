"""agent.volume_sync (issue 12, seed 002): a running primary's volume to a replica's, over the
agents' real transfer on localhost. The replica's directory stays the same directory (its
container has it bind-mounted) while its files become the primary's; the second sync to a
peer moves only what changed; each peer has its own manifest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import Conflict, NotPending
from agent.transfer import TransferError
from agent.volume_sync import VolumeSync


def sync(src: VolumeSync, dst: VolumeSync, a: Path, b: Path, *, full: bool = False) -> int:
    port = dst.start("web", b, 0)
    src.send("web", a, "127.0.0.1", port, full=full)
    return dst.finish("web").bytes_on_wire


def test_a_replica_gets_the_primarys_files_in_its_own_directory(tmp_path: Path) -> None:
    a, b = tmp_path / "primary", tmp_path / "replica"
    a.mkdir()
    b.mkdir()
    (a / "log").write_bytes(os.urandom(256 * 1024))
    (a / "sub").mkdir()
    (a / "sub" / "state.json").write_text('{"n": 1}')
    (b / "old").write_text("the replica's own, not the primary's")
    inode = b.stat().st_ino
    src, dst = VolumeSync("127.0.0.1"), VolumeSync("127.0.0.1")
    first = sync(src, dst, a, b)
    assert b.stat().st_ino == inode  # the same directory: a bind mount of it still sees it
    assert (b / "log").read_bytes() == (a / "log").read_bytes()
    assert (b / "sub" / "state.json").read_text() == '{"n": 1}'
    assert not (b / "old").exists()
    assert first >= 256 * 1024

    with open(a / "log", "r+b") as f:  # one block changes
        f.seek(4096)
        f.write(b"x" * 100)
    (a / "sub" / "state.json").write_text('{"n": 2}')
    second = sync(src, dst, a, b)
    assert (b / "log").read_bytes() == (a / "log").read_bytes()
    assert (b / "sub" / "state.json").read_text() == '{"n": 2}'
    assert second < first / 4, (first, second)  # what changed, not all of it
    again = sync(src, dst, a, b, full=True)
    assert again >= 256 * 1024  # asked for in full: all of it


def test_each_peer_has_its_own_manifest_and_a_failed_send_forgets_it(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("primary", "two", "three"))
    for d in (a, b, c):
        d.mkdir()
    (a / "data").write_bytes(os.urandom(128 * 1024))
    src, two, three = VolumeSync("127.0.0.1"), VolumeSync("127.0.0.1"), VolumeSync("127.0.0.2")
    sync(src, two, a, b)
    port = three.start("web", c, 0)
    src.send("web", a, "127.0.0.2", port)  # another peer: its own manifest, so in full
    assert three.finish("web").bytes_on_wire >= 128 * 1024
    assert (c / "data").read_bytes() == (a / "data").read_bytes()
    assert set(src.manifests) == {("web", "127.0.0.1"), ("web", "127.0.0.2")}
    with pytest.raises(TransferError):  # nobody listens there
        src.send("web", a, "127.0.0.2", port)
    assert set(src.manifests) == {("web", "127.0.0.1")}  # the next one to it goes in full
    src.forget("web")
    assert src.manifests == {}


def test_refusals(tmp_path: Path) -> None:
    vs = VolumeSync("127.0.0.1")
    with pytest.raises(Conflict, match="no volume"):
        vs.start("web", tmp_path / "absent", 0)
    with pytest.raises(Conflict, match="no volume"):
        vs.send("web", tmp_path / "absent", "127.0.0.1", 9)
    with pytest.raises(NotPending):
        vs.finish("web")
    port = vs.start("web", tmp_path, 0)
    assert port > 0
    vs.forget("web")  # closes the receiver
    with pytest.raises(NotPending):
        vs.finish("web")
