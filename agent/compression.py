"""A `migration.compression.Sample` of an image tree: how well its memory compresses and how
fast this machine's compressor goes, with the settings the copy would use
(`agent.transfer.send_dir(compress="zstd")`: one zstd stream at `transfer_wire.ZSTD_LEVEL`).

A few MiB are read in pieces spread evenly across the CRIU pages images (`pages-*.img`, the
memory: the rest of a dump is small) and compressed through one stream, as the copy does; only
the compressor's time is counted (the median of `SAMPLE_PASSES` passes). A tree without pages
images (a volume) is sampled across all its regular files.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import zstandard

from agent import transfer_wire as wire
from migration.compression import Sample

SAMPLE_BYTES = 4 << 20  # 4 MiB: about 15 ms of level 3 here
SAMPLE_PIECES = 16
SAMPLE_PASSES = 3
PAGE = 4096
PAGES_GLOB = "pages-*.img"


def sampled_files(root: Path) -> list[tuple[Path, int]]:
    """(path, size) of the files a sample reads from: the pages images under `root`, or
    every regular file if it has none."""
    files = sorted(p for p in root.rglob(PAGES_GLOB) if p.is_file() and not p.is_symlink())
    if not files:
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return [(p, size) for p in files if (size := p.stat().st_size) > 0]


def pieces(sizes: list[int], sample_bytes: int, count: int) -> list[tuple[int, int, int]]:
    """(file index, offset, length) of `count` page-aligned pieces of about `sample_bytes` in
    all, evenly spread over the files laid end to end; everything when it is smaller."""
    total = sum(sizes)
    if total <= sample_bytes:
        return [(i, 0, size) for i, size in enumerate(sizes)]
    length = max(PAGE, sample_bytes // count // PAGE * PAGE)
    out, starts = [], []
    pos = 0
    for size in sizes:
        starts.append(pos)
        pos += size
    for k in range(count):
        at = k * total // count  # where piece k starts in the concatenation
        i = max(j for j, s in enumerate(starts) if s <= at)
        off = (at - starts[i]) // PAGE * PAGE
        out.append((i, off, min(length, sizes[i] - off)))
    return out


def measure(
    root: Path,
    *,
    sample_bytes: int = SAMPLE_BYTES,
    count: int = SAMPLE_PIECES,
    level: int = wire.ZSTD_LEVEL,
    passes: int = SAMPLE_PASSES,
) -> Sample | None:
    """A sample of the tree under `root`; None if it holds no data."""
    files = sampled_files(Path(root))
    if not files:
        return None
    chunks: list[bytes] = []
    for i, off, length in pieces([size for _, size in files], sample_bytes, count):
        fd = os.open(files[i][0], os.O_RDONLY)
        try:
            chunks.append(os.pread(fd, length, off))
        finally:
            os.close(fd)
    cctx = zstandard.ZstdCompressor(level=level)
    raw, compressed, times = sum(len(c) for c in chunks), 0, []
    for _ in range(passes):  # the median pass: one is a few ms, at the scheduler's mercy
        cobj = cctx.compressobj()
        cobj.compress(b"")  # the context is allocated before the clock starts
        started = time.perf_counter()
        compressed = sum(len(cobj.compress(data)) for data in chunks)
        compressed += len(cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
        times.append(time.perf_counter() - started)
    return Sample(raw, compressed, statistics.median(times), level)
