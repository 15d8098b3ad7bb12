"""Whether a migration's copy goes zstd-compressed: pure, from the link's rate and a `Sample`
of the memory to send (measured at the source by `agent.compression.measure`).

The copy compresses on one thread while it sends (`agent.transfer_wire.ZstdOut`), so the two
overlap and a compressed copy takes about max(raw / (compressor rate x `PIPELINE`), raw x ratio
/ link), where an uncompressed one takes raw / link. Compression is chosen only when that
beats the plain copy by `MARGIN`: a link faster than the compressor (loopback, 10 Gbit/s) or
memory that does not compress (ratio near 1: random, encrypted, already compressed data) keeps
the copy plain, so that choosing it is never slower.

`PIPELINE`: the whole compressed copy (read, hash, compress, send; receive, decompress, hash,
write) goes slower than the compressor alone, more so where both agents and the switch share
the cores. Measured here (2 cores, both ends on this machine, `python -m
mecmig.bench.compression`): 64 MiB of code and data the sample put at 220 MB/s went over an
unshaped veth at 120 MB/s, 0.55 of it; without the factor the choice took zstd there and was
1.75x slower than plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MARGIN = 0.10  # zstd must save at least this share of the plain copy's time
PIPELINE = 0.5  # the compressed copy's rate / the sampled compressor's (measured 0.55)
GiB = 1 << 30


@dataclass(frozen=True)
class Sample:
    """`raw_bytes` of the image, spread across it, compressed to `compressed_bytes` in
    `seconds` of compressor time at zstd `level` on the source's CPU."""

    raw_bytes: int
    compressed_bytes: int
    seconds: float
    level: int

    @property
    def ratio(self) -> float:
        """Compressed / raw (1.0: nothing saved; an empty sample saves nothing)."""
        return self.compressed_bytes / self.raw_bytes if self.raw_bytes > 0 else 1.0

    @property
    def rate_bytes_s(self) -> float:
        """The compressor's throughput in raw bytes per second."""
        return self.raw_bytes / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class Choice:
    """`compress` for the copy of `total_bytes`, with both estimates (seconds) and why."""

    compress: Literal["none", "zstd"]
    level: int
    plain_s: float
    zstd_s: float
    why: str


def estimate(link_bps: float, sample: Sample, total_bytes: int) -> tuple[float, float]:
    """Seconds to copy `total_bytes` over a link of `link_bps` bit/s: plain, and compressed
    with the compressor (at `PIPELINE` of its sampled rate) pipelined against the link."""
    link_bytes_s, copy_rate = link_bps / 8, sample.rate_bytes_s * PIPELINE
    plain = total_bytes / link_bytes_s
    zstd = max(total_bytes / copy_rate, total_bytes * sample.ratio / link_bytes_s)
    return plain, zstd


def choose(
    link_bps: float,
    sample: Sample | None,
    *,
    total_bytes: int = GiB,
    margin: float = MARGIN,
) -> Choice:
    """zstd iff its estimated time beats the plain copy's by `margin`; else none.

    No sample (nothing to measure, or the source could not) means none."""
    if link_bps <= 0:
        raise ValueError(f"a link rate must be positive, got {link_bps} bit/s")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if sample is None or sample.raw_bytes <= 0:
        return Choice("none", 0, total_bytes / (link_bps / 8), 0.0, "no sample of the memory")
    plain, zstd = estimate(link_bps, sample, total_bytes)
    mbps, rate = link_bps / 1e6, sample.rate_bytes_s * PIPELINE * 8 / 1e6
    facts = f"ratio {sample.ratio:.2f}, compressed copy {rate:.0f} Mbit/s, link {mbps:.0f} Mbit/s"
    if zstd <= plain * (1 - margin):
        why = f"zstd {zstd:.2f} s < plain {plain:.2f} s ({facts})"
        return Choice("zstd", sample.level, plain, zstd, why)
    if sample.ratio > 1 - margin:
        reason = "the memory does not compress"
    elif sample.rate_bytes_s * PIPELINE * 8 < link_bps:
        reason = "the link is faster than the compressor"
    else:
        reason = f"zstd saves less than {margin:.0%}"
    why = f"{reason}: zstd {zstd:.2f} s vs plain {plain:.2f} s ({facts})"
    return Choice("none", sample.level, plain, zstd, why)
