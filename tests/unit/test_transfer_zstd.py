"""agent.transfer with compress="zstd", over real loopback sockets: the same tree, the same
digests and the same commit as uncompressed; fewer bytes on the wire where the data compresses,
a corrupt stream failing cleanly, a receiver of version 1 still served uncompressed."""

from __future__ import annotations

import hashlib
import os
import random
import socket
from pathlib import Path
from typing import Any

import pytest
import zstandard

from agent import transfer_wire
from agent.transfer import Manifest, Receiver, TransferError, TransferStats, send_dir
from agent.transfer_wire import encode_frame, file_digest, recv_frame
from tests.unit.test_transfer import flip_byte, make_tree, no_partials, patch_bytes, run, snapshot

MiB = 1 << 20


def compressible(size: int, seed: int = 1) -> bytes:
    """Memory-like bytes: a quarter zero pages, the rest records of words and counters."""
    rng, words = random.Random(seed), [f"w{i:04d}".encode() for i in range(300)]
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.25:
            out += bytes(4096)
            continue
        page = bytearray()
        while len(page) < 4096:
            page += rng.choice(words) + rng.randrange(1 << 16).to_bytes(4, "little") + b"\0\0"
        out += page[:4096]
    return bytes(out[:size])


def zstd_tree(root: Path, size: int = 12 * MiB) -> None:
    """make_tree's tree (random pages) with a compressible memory image beside it."""
    make_tree(root, big_size=4 * MiB)
    (root / "pages-2.img").write_bytes(compressible(size))


def test_round_trip_reproduces_the_tree_with_the_same_digests(tmp_path: Path) -> None:
    src, plain, packed = tmp_path / "src", tmp_path / "plain", tmp_path / "packed"
    zstd_tree(src)
    seen: list[tuple[int, int]] = []
    stats_p, manifest_p, _ = run(src, plain)
    stats, manifest, rx = run(
        src, packed, compress="zstd", progress=lambda d, t: seen.append((d, t))
    )
    assert snapshot(packed) == snapshot(src) == snapshot(plain)
    assert no_partials(packed)
    assert manifest == manifest_p  # digests over the uncompressed bytes, as without zstd
    assert stats.compress == rx.compress == "zstd" and stats_p.compress == "none"
    assert stats.bytes_total == stats_p.bytes_total == rx.bytes_total
    assert stats.bytes_on_wire == rx.bytes_on_wire
    # 12 MiB compress to a fraction; the 4 MiB of random pages and 70 kB do not
    assert stats.bytes_on_wire < 5 * MiB + 6 * MiB * 0.6
    assert stats.bytes_on_wire < stats_p.bytes_on_wire * 0.6
    assert stats.bytes_skipped == 0
    assert seen[-1] == (stats.bytes_total, stats.bytes_total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    pages = (src / "pages-2.img").read_bytes()
    assert (
        manifest.files["pages-2.img"].blocks[5]
        == hashlib.blake2b(pages[5 * MiB : 6 * MiB], digest_size=16).digest()
    )


def test_incompressible_data_costs_no_more_than_framing(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "pages-1.img").write_bytes(os.urandom(16 * MiB))
    plain, _, _ = run(src, tmp_path / "plain")
    stats, _, _ = run(src, dest, compress="zstd")
    assert snapshot(dest) == snapshot(src)
    # zstd stores incompressible blocks raw: a few bytes per 128 KiB block
    assert plain.bytes_on_wire <= stats.bytes_on_wire < plain.bytes_on_wire * 1.001 + 4096


def test_delta_mode_compresses_the_blocks_sent(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    zstd_tree(src)
    _, manifest, _ = run(src, dest, compress="zstd", block_size=4096)
    pages, old = compressible(12 * MiB, seed=2), (src / "pages-2.img").read_bytes()
    patched = 0
    for block in range(0, 3072, 10):  # every 10th page of pages-2.img: about 1.2 MiB
        page = pages[block * 4096 : (block + 1) * 4096]
        patched += page != old[block * 4096 : (block + 1) * 4096]  # two zero pages are alike
        patch_bytes(src / "pages-2.img", block * 4096, page)
    flip_byte(src / "pages-1.img", 3 * MiB + 5)  # one random page
    (src / "data" / "gone.bin").unlink()
    previous = Manifest.from_json(manifest.to_json())
    plain, _, _ = run(src, tmp_path / "plain-copy", block_size=4096)  # a full copy, to compare
    stats, manifest2, rx = run(src, dest, previous=previous, compress="zstd", block_size=4096)
    assert snapshot(dest) == snapshot(src)
    assert stats.mode == rx.mode == "delta" and stats.compress == "zstd"
    assert stats.bytes_on_wire == rx.bytes_on_wire
    changed = (patched + 1) * 4096  # the pages patched, and one random one
    assert patched > 250
    assert stats.bytes_skipped == rx.bytes_skipped == stats.bytes_total - changed
    assert stats.bytes_on_wire < changed * 0.6  # frames and blocks, compressed together
    assert "data/gone.bin" not in manifest2.files
    assert (
        manifest2.files["pages-2.img"]
        == Manifest.from_json(manifest2.to_json()).files["pages-2.img"]
    )
    assert plain.bytes_total == stats.bytes_total
    # nothing changed since: headers only, compressed
    stats3, manifest3, _ = run(src, dest, previous=manifest2, compress="zstd", block_size=4096)
    assert stats3.bytes_skipped == stats3.bytes_total and stats3.bytes_on_wire < 2048
    assert manifest3 == manifest2 and snapshot(dest) == snapshot(src)


def test_a_corrupted_stream_fails_cleanly_on_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    zstd_tree(src, size=4 * MiB)
    run(src, dest)
    before = snapshot(dest)
    (src / "pages-2.img").write_bytes(compressible(4 * MiB, seed=3))
    real_job = transfer_wire.ZstdOut._job
    calls = 0

    def corrupt(self: transfer_wire.ZstdOut, data: bytearray) -> bytes:
        nonlocal calls
        out = bytearray(real_job(self, data))
        calls += 1
        if calls == 3 and out:  # a bit flipped on the wire, mid-stream
            out[len(out) // 2] ^= 0x10
        return bytes(out)

    monkeypatch.setattr(transfer_wire.ZstdOut, "_job", corrupt)
    rx = Receiver(dest, host="127.0.0.1")
    port = rx.start()
    try:
        with pytest.raises(TransferError) as sent:
            send_dir(src, "127.0.0.1", port, block_size=MiB, compress="zstd")
        with pytest.raises(TransferError) as got:
            rx.wait(10)
    finally:
        rx.close()
    assert sent.value.phase == "remote"
    # zstd notices, or the digests do, or the frames come out garbled: never a commit
    assert any(
        why in got.value.message for why in ("corrupt compressed", "checksum", "protocol", "header")
    ), got.value.message
    assert snapshot(dest) == before and no_partials(dest)


ZSTD_HELLO = {"t": "hello", "v": 2, "compress": "zstd", "mode": "full", "total": 6}


def send_raw(dest: Path, data: bytes) -> tuple[dict[str, Any], TransferStats | TransferError]:
    """`data` sent by hand to a Receiver into `dest`: its reply, and its stats or error."""
    with (
        Receiver(dest, host="127.0.0.1") as rx,
        socket.create_connection(("127.0.0.1", rx.port)) as s,
    ):
        s.sendall(data)
        reply, _ = recv_frame(s)
        try:
            return reply, rx.wait(10)
        except TransferError as e:
            return reply, e


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        ((4092).to_bytes(4, "big") + os.urandom(4092), "corrupt compressed stream"),
        ((1 << 30).to_bytes(4, "big") + os.urandom(4092), "too large"),
    ],
)
def test_garbage_after_a_zstd_hello_is_refused(tmp_path: Path, garbage: bytes, why: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_bytes(b"old")
    reply, got = send_raw(dest, encode_frame({**ZSTD_HELLO, "block_size": 4096}) + garbage)
    assert isinstance(got, TransferError) and why in got.message
    assert reply["t"] == "result" and not reply["ok"]
    assert (dest / "keep").read_bytes() == b"old" and no_partials(dest)


def test_a_hand_made_zstd_stream_is_verified_over_the_raw_bytes(tmp_path: Path) -> None:
    """The wire format as documented: hello v2 in the clear, then the stream of frames cut
    anywhere (here inside the first header) into zstd frames, each behind its length."""
    dest = tmp_path / "dest"
    meta = {"mode": 0o644, "mtime_ns": 0, "uid": 0, "gid": 0}
    blocks = [hashlib.blake2b(b, digest_size=16).digest() for b in (b"hell", b"o!")]
    body = (
        encode_frame({"t": "file", "path": "f", "size": 6, **meta})
        + b"hello!"
        + encode_frame({"t": "sum", "digest": file_digest(6, blocks).hex()})
        + encode_frame({"t": "done"})
    )
    frames = [zstandard.ZstdCompressor().compress(part) for part in (body[:30], body[30:])]
    stream = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    hello = encode_frame({**ZSTD_HELLO, "block_size": 4})
    reply, stats = send_raw(dest, hello + stream)
    assert reply == {"t": "result", "ok": True}
    assert (dest / "f").read_bytes() == b"hello!"
    assert isinstance(stats, TransferStats)
    assert stats.compress == "zstd" and stats.bytes_total == 6
    assert stats.bytes_on_wire == len(hello) + len(stream)


@pytest.mark.parametrize(
    "hello",
    [
        {"v": 1, "compress": "zstd"},  # compression needs version 2
        {"v": 2, "compress": "lz4"},
        {"v": 3},
    ],
)
def test_unknown_hellos_are_refused(tmp_path: Path, hello: dict[str, Any]) -> None:
    base = {"t": "hello", "mode": "full", "block_size": 4096, "total": 0}
    reply, got = send_raw(tmp_path / "dest", encode_frame({**base, **hello}))
    assert isinstance(got, TransferError) and "unsupported hello" in got.message
    assert not reply["ok"]


def test_an_uncompressed_send_still_says_version_1(tmp_path: Path) -> None:
    """What a receiver that knows only version 1 reads: the hello it always got."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"abc")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(TransferError):
            send_dir(src, "127.0.0.1", port, timeout=0.5)
        conn, _ = server.accept()
        with conn:
            hello, _ = recv_frame(conn)
    assert hello == {"t": "hello", "v": 1, "mode": "full", "block_size": 4096, "total": 3}


def test_bad_compress_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compress"):
        send_dir(tmp_path, "127.0.0.1", 1, compress="gzip")  # type: ignore[arg-type]
