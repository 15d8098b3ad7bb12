"""`mecmig bench compression --quick` over a real veth pair and tc TBF (issue 13, item 5): a
compressible and a random 16 MiB memory image copied by the agents' transfer, plain, zstd and
as `migration.compression.choose` picks from a sample and the path's measured rate, 3 times
each (the tests compare median runs, or unshaped, where a copy takes ~50-70 ms, the fastest
copy of each mode that ran). At 100 Mbit/s the choice compresses the compressible image (and
so copies it far faster) and keeps the random one plain; unshaped (about 1.8 Gbit/s here,
faster than the compressed copy) the mode it runs is never much slower than the other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mecmig.cli import EXIT_OK, main

pytestmark = pytest.mark.timeout(600)
RUNS = 3  # of each path, image and mode with --quick: the tests read each one's median run

FIELDS = {
    "path", "image", "mode", "seconds", "bytes_on_wire", "bytes_total", "ratio", "link_bps",
    "chosen",
}  # fmt: skip


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("compression")
    assert main(["bench", "compression", "--quick", "--out", str(out)]) == EXIT_OK
    for name in ("compression.png", "report.md", "compression.csv"):
        assert (out / name).stat().st_size > 0, name
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


def rows(doc: dict[str, Any], path: str, image: str, mode: str) -> list[dict[str, Any]]:
    found = [r for r in doc["rows"] if (r["path"], r["image"], r["mode"]) == (path, image, mode)]
    assert len(found) == RUNS, (path, image, mode, found)
    return found


def one(doc: dict[str, Any], path: str, image: str, mode: str) -> dict[str, Any]:
    """The run of `mode` with the median time (`--quick` runs each 3 times)."""
    found = sorted(rows(doc, path, image, mode), key=lambda r: float(r["seconds"]))
    return found[len(found) // 2]


def test_every_row_has_its_fields(doc: dict[str, Any]) -> None:
    assert doc["complete"] is True
    assert len(doc["rows"]) == 2 * 2 * 3 * RUNS
    for r in doc["rows"]:
        assert set(r) >= FIELDS, r
        assert r["path"] in ("100mbit", "unshaped") and r["image"] in ("compressible", "random")
        assert r["mode"] in ("none", "zstd", "chosen") and r["chosen"] in ("none", "zstd")
        assert r["bytes_total"] >= 16 << 20 and r["seconds"] > 0 and r["link_bps"] > 0
        assert r["ratio"] == pytest.approx(r["bytes_on_wire"] / r["bytes_total"], abs=1e-3)
        if r["mode"] == "none":
            assert r["bytes_total"] <= r["bytes_on_wire"] <= r["bytes_total"] + 4096
    for r in (one(doc, "100mbit", "random", "none"), one(doc, "unshaped", "random", "none")):
        print(f"\n  {r['path']}: {r['link_bps'] / 1e6:.0f} Mbit/s")
    assert 80e6 <= one(doc, "100mbit", "random", "none")["link_bps"] <= 110e6


def test_at_100_mbits_compressible_memory_goes_zstd_and_copies_faster(
    doc: dict[str, Any],
) -> None:
    plain = one(doc, "100mbit", "compressible", "none")
    chosen = one(doc, "100mbit", "compressible", "chosen")
    print(f"\n  plain {plain['seconds']:.2f} s, chosen {chosen['seconds']:.2f} s ({chosen['why']})")
    assert all(
        r["chosen"] == "zstd" == r["compress"]
        for r in rows(doc, "100mbit", "compressible", "chosen")
    ), chosen["why"]
    assert chosen["seconds"] <= 0.6 * plain["seconds"]
    assert chosen["bytes_on_wire"] < 0.6 * chosen["bytes_total"]


def test_random_memory_stays_plain_and_is_no_slower(doc: dict[str, Any]) -> None:
    plain = one(doc, "100mbit", "random", "none")
    chosen = one(doc, "100mbit", "random", "chosen")
    print(f"\n  plain {plain['seconds']:.2f} s, chosen {chosen['seconds']:.2f} s ({chosen['why']})")
    assert all(
        r["chosen"] == "none" == r["compress"] for r in rows(doc, "100mbit", "random", "chosen")
    ), chosen["why"]
    assert chosen["seconds"] <= 1.1 * plain["seconds"]


def fastest_ran(doc: dict[str, Any], path: str, image: str, compress: str) -> float:
    """The fastest copy that ran `compress` ("none" or "zstd") in every run: its own mode's
    copies and the chosen mode's where the choice ran it (each row lists its copies' times in
    copies_s)."""
    return min(
        float(t)
        for mode in (compress, "chosen")
        for r in rows(doc, path, image, mode)
        if r["compress"] == compress
        for t in r["copies_s"]
    )


def test_unshaped_the_choice_is_never_more_than_10_percent_slower(doc: dict[str, Any]) -> None:
    """Unshaped, a 16 MiB copy takes ~50-70 ms and the choice is the plain copy (the link is
    faster than the compressor). Comparing the chosen copies' times with the plain ones compared
    the very same copy with itself: the fastest of 15 differed by 10 % (CI: 0.0498 vs 0.0452 s).
    What the choice can cost is the mode it ran against the one it did not: the fastest copy
    that ran each mode, over every run (a chosen copy counts for the mode it ran)."""
    for image in ("compressible", "random"):
        ran = {r["compress"] for r in rows(doc, "unshaped", image, "chosen")}
        why = one(doc, "unshaped", image, "chosen")["why"]
        times = {c: fastest_ran(doc, "unshaped", image, c) for c in ("none", "zstd")}
        print(f"\n  {image}: ran {sorted(ran)}, fastest plain {times['none']:.4f} s, "
              f"zstd {times['zstd']:.4f} s ({why})")  # fmt: skip
        for c in ran:
            other = "zstd" if c == "none" else "none"
            assert times[c] <= 1.1 * times[other], (c, times, why)


def test_the_report_judges_each_path_and_image(doc: dict[str, Any]) -> None:
    cells = {(c["path"], c["image"]): c for c in doc["summary"]["cells"]}
    assert set(cells) == {
        (p, i) for p in ("100mbit", "unshaped") for i in ("compressible", "random")
    }
    assert all(c["slower"] in (True, False) for c in cells.values())
    assert cells[("100mbit", "compressible")]["slower"] is False
