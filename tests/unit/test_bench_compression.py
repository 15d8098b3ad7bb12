"""`mecmig bench compression`'s pure part: the plan, the command line, the summary's verdict."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mecmig.bench.compression import (
    DEFAULT_OUT,
    FULL,
    QUICK,
    TOLERANCE,
    experiment,
    plan_from,
    summarize,
)
from mecmig.cli import _parser


def row(
    path: str, image: str, mode: str, seconds: float, rep: int = 1, **kw: Any
) -> dict[str, Any]:
    compress = kw.pop("compress", "none" if mode == "none" else "zstd")
    return {
        "path": path, "image": image, "mode": mode, "seconds": seconds, "repetition": rep,
        "bytes_on_wire": 100, "bytes_total": 100, "link_bps": 1e8, "chosen": compress,
        "compress": compress, **kw,
    }  # fmt: skip


def test_plans() -> None:
    assert plan_from(argparse.Namespace(quick=True, repeat=None)) == QUICK
    assert plan_from(argparse.Namespace(quick=False, repeat=None)) == FULL
    assert plan_from(argparse.Namespace(quick=True, repeat=3)).repeat == 3
    runs = experiment(QUICK).runs()
    assert QUICK.repeat == 3 and len(runs) == 4 * 3
    assert [r.key for r in runs[::3]] == [
        'path="100mbit",image="compressible",repetition=1',
        'path="100mbit",image="random",repetition=1',
        'path="unshaped",image="compressible",repetition=1',
        'path="unshaped",image="random",repetition=1',
    ]


def test_the_command_line() -> None:
    args = _parser().parse_args(["bench", "compression", "--quick", "--repeat", "2"])
    assert (args.bench, args.quick, args.repeat, args.out, args.resume) == (
        "compression", True, 2, DEFAULT_OUT, False,
    )  # fmt: skip


def test_a_chosen_mode_slower_than_plain_beyond_the_tolerance_is_said() -> None:
    rows = [
        row("100mbit", "compressible", "none", 5.0),
        row("100mbit", "compressible", "zstd", 2.0),
        row("100mbit", "compressible", "chosen", 2.1),
        row("unshaped", "compressible", "none", 0.30, 1),
        row("unshaped", "compressible", "none", 0.34, 2),
        row("unshaped", "compressible", "chosen", 0.40, 1),
        row("unshaped", "compressible", "chosen", 0.30, 2),
    ]
    s = summarize(rows)
    cells = {(c["path"], c["image"]): c for c in s["cells"]}
    good, bad = cells[("100mbit", "compressible")], cells[("unshaped", "compressible")]
    assert good["slower"] is False and good["chosen_over_none"] == pytest.approx(0.42)
    assert good["zstd_over_none"] == pytest.approx(0.4)
    assert bad["chosen_over_none"] == pytest.approx(0.35 / 0.32, abs=1e-4)
    assert bad["chosen_over_none"] > 1 + TOLERANCE
    assert bad["slower"] is True and bad["worst_pair"] == pytest.approx(0.4 / 0.3, abs=1e-4)
    assert s["never_slower"] is False
    assert summarize([])["never_slower"] is None
