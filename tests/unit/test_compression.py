"""The choice of compression for a copy (migration.compression, pure) and the sample it is made
from (agent.compression.measure, over real files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.compression import PAGE, measure, pieces, sampled_files
from migration.compression import MARGIN, PIPELINE, Sample, choose, estimate
from tests.unit.test_transfer_zstd import compressible

MiB = 1 << 20
MBIT = 1_000_000


def sample(ratio: float, rate_mb_s: float, level: int = 3) -> Sample:
    """A fake sample: 4 MiB compressing to `ratio` at `rate_mb_s` MB/s."""
    raw = 4 * MiB
    return Sample(raw, int(raw * ratio), raw / (rate_mb_s * 1e6), level)


def test_a_slow_link_and_compressible_memory_choose_zstd() -> None:
    choice = choose(100 * MBIT, sample(0.33, 280), total_bytes=64 * MiB)
    assert choice.compress == "zstd" and choice.level == 3
    # 64 MiB at 12.5 MB/s: 5.4 s plain; a third of it on the wire, the copy (140 MB/s) faster
    assert choice.plain_s == pytest.approx(64 * MiB / 12.5e6)
    assert choice.zstd_s == pytest.approx(64 * MiB * 0.33 / 12.5e6)
    assert PIPELINE == 0.5
    assert "zstd" in choice.why


def test_incompressible_memory_never_compresses_whatever_the_link() -> None:
    for link in (1 * MBIT, 10 * MBIT, 100 * MBIT, 1000 * MBIT, 10_000 * MBIT):
        choice = choose(link, sample(1.0003, 900))  # zstd's framing makes random data grow
        assert choice.compress == "none", link
        assert "does not compress" in choice.why


def test_a_link_faster_than_the_compressor_stays_plain() -> None:
    choice = choose(10_000 * MBIT, sample(0.33, 280))  # 1.25 GB/s link, 280 MB/s compressor
    assert choice.compress == "none"
    # what bench compression measured unshaped (1473 Mbit/s): the copy of 220 MB/s of
    # compressor went at 120 MB/s, slower than plain; the pipeline's factor keeps it plain
    measured = choose(1473 * MBIT, sample(0.375, 220), total_bytes=64 * MiB)
    assert measured.compress == "none" and measured.zstd_s > measured.plain_s
    assert "faster than the compressor" in choice.why
    assert choice.zstd_s > choice.plain_s


def test_the_margin_keeps_a_small_gain_plain() -> None:
    # ratio 0.95 saves 5 %: below the 10 % margin
    assert choose(100 * MBIT, sample(0.95, 500)).compress == "none"
    assert choose(100 * MBIT, sample(0.85, 500)).compress == "zstd"
    # the copy just keeps up with the link: 1 Gbit/s = 125 MB/s vs 0.5 x 260 MB/s
    near = choose(1000 * MBIT, sample(0.3, 260))
    assert near.compress == "none" and "less than 10%" in near.why
    assert choose(1000 * MBIT, sample(0.3, 260), margin=0.0).compress == "zstd"


def test_no_sample_means_none_and_bad_inputs_are_refused() -> None:
    assert choose(100 * MBIT, None).compress == "none"
    assert choose(100 * MBIT, Sample(0, 0, 0.0, 3)).compress == "none"
    with pytest.raises(ValueError, match="positive"):
        choose(0, sample(0.3, 300))
    with pytest.raises(ValueError, match="margin"):
        choose(100 * MBIT, sample(0.3, 300), margin=1.0)


@given(
    link_mbit=st.floats(0.1, 100_000),
    ratio=st.floats(0.001, 2.0),
    rate_mb_s=st.floats(0.1, 10_000),
    margin=st.floats(0.0, 0.5),
)
def test_the_choice_is_never_estimated_slower(
    link_mbit: float, ratio: float, rate_mb_s: float, margin: float
) -> None:
    s = sample(ratio, rate_mb_s)
    choice = choose(link_mbit * MBIT, s, total_bytes=64 * MiB, margin=margin)
    plain, zstd = estimate(link_mbit * MBIT, s, 64 * MiB)
    chosen = zstd if choice.compress == "zstd" else plain
    assert chosen <= plain * (1 - margin) + 1e-12 or choice.compress == "none"
    assert chosen <= plain
    if s.ratio > 1 - margin:
        assert choice.compress == "none"


def test_measure_reads_the_pages_images_spread_out(tmp_path: Path) -> None:
    (tmp_path / "pages-1.img").write_bytes(compressible(24 * MiB))
    (tmp_path / "pages-2.img").write_bytes(os.urandom(8 * MiB))
    (tmp_path / "core-1.img").write_bytes(os.urandom(MiB))  # not memory: left out
    files = sampled_files(tmp_path)
    assert [p.name for p, _ in files] == ["pages-1.img", "pages-2.img"]
    spots = pieces([size for _, size in files], 4 * MiB, 16)
    assert len(spots) == 16 and all(off % PAGE == 0 and n == 256 << 10 for _, off, n in spots)
    assert [i for i, _, _ in spots].count(1) == 4  # a quarter of the bytes, a quarter of pieces
    s = measure(tmp_path)
    assert s is not None and s.raw_bytes == 4 * MiB and s.level == 3
    # three quarters compress well, the random quarter not at all
    assert 0.25 < s.ratio < 0.6
    assert s.rate_bytes_s > 10e6 and s.seconds > 0


def test_measure_of_random_memory_says_incompressible(tmp_path: Path) -> None:
    (tmp_path / "pages-1.img").write_bytes(os.urandom(6 * MiB))
    s = measure(tmp_path)
    assert s is not None and s.ratio > 0.99
    assert choose(100 * MBIT, s).compress == "none"


def test_measure_of_a_small_tree_without_pages_takes_it_all(tmp_path: Path) -> None:
    assert measure(tmp_path) is None
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "log.txt").write_bytes(b"line\n" * 10_000)
    (tmp_path / "empty").write_bytes(b"")
    s = measure(tmp_path)
    assert s is not None and s.raw_bytes == 50_000 and s.ratio < 0.05


def test_a_measured_compressible_image_chooses_zstd_at_100_mbit(tmp_path: Path) -> None:
    (tmp_path / "pages-1.img").write_bytes(compressible(16 * MiB))
    s = measure(tmp_path)
    assert s is not None
    assert choose(100 * MBIT, s, total_bytes=16 * MiB).compress == "zstd"
    assert MARGIN == 0.10
