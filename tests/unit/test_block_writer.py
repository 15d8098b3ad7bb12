"""The receiver's block writer: large writes go to its thread, a small one with nothing queued
before it is done at once (a small file's: the hand-off cost more than the write); whichever
way, a file's bytes land in the order they were queued. `hash_file` reads whole blocks in large
reads and gives the digests block by block."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agent import transfer_wire as wire


def test_writes_land_in_order_when_a_small_one_follows_large_ones(tmp_path: Path) -> None:
    chunk = 256 << 10
    w = wire.BlockWriter(chunk)
    data = os.urandom(3 * chunk + 100)  # three thread writes, then a small tail
    path = tmp_path / "f"
    with open(path, "wb", buffering=0) as f:
        for off in range(0, len(data), chunk):
            piece = data[off : off + chunk]
            w.buffer()[: len(piece)] = piece
            w.write(f, len(piece))
        w.flush()
    w.close()
    assert path.read_bytes() == data


def test_a_small_file_is_written_at_once(tmp_path: Path) -> None:
    w = wire.BlockWriter(64 << 10)
    path = tmp_path / "small"
    with open(path, "wb", buffering=0) as f:
        w.buffer()[:5] = b"hello"
        w.write(f, 5)
        assert path.read_bytes() == b"hello"  # before any flush: not on the thread
        w.flush()
    w.close()


def test_hash_file_matches_block_by_block_digests(tmp_path: Path) -> None:
    bs = 4096
    data = os.urandom(wire.HASH_READ_BYTES * 2 + 3 * bs + 17)  # reads across the read size
    path = tmp_path / "img"
    path.write_bytes(data)
    blocks, digest = wire.hash_file(path, len(data), bs, threading.Event())
    want = [wire.block_digest(data[o : o + bs]) for o in range(0, len(data), bs)]
    assert list(blocks) == want and digest == wire.file_digest(len(data), want)
