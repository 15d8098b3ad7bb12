"""`mecmig bench links --quick` end to end (issue 11, part 1): real controller, OVS (userspace
datapath), Mininet, tc and iperf3.

What the issue asks of shaped links: a shaped link delivers its capacity (iperf3 TCP goodput
within ±10 %, 10, 100 and 500 Mbit/s, both directions; where this host's userspace datapath
itself carries less than 500 Mbit/s, measured on the same path shape, no less than 25 % under
that: the datapath's own rate moves between runs),
and a reservation holds its rate (40 Mbit/s within ±10 %, its sender pacing itself at the
reserved rate, as mecmig's migration copies do; unpaced TCP gets about 0.7 of it: see the
README) while four parallel TCP streams from another host saturate the 100 Mbit/s link. The
shaped end's class counters show that the datapath's bytes went through the qdisc, the
reserved ones through the reserved class.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mecmig.cli import EXIT_OK, main

MBIT = 1_000_000


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("links")
    assert main(["bench", "links", "--quick", "--out", str(out)]) == EXIT_OK
    assert (out / "links.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mecmig bench links --quick" in (out / "report.md").read_text()
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert doc["complete"] is True and doc["summary"]["failures"] == []
    return doc


def _rows(doc: dict[str, Any], part: str) -> list[dict[str, Any]]:
    return [r for r in doc["rows"] if r["part"] == part]


def test_a_shaped_link_delivers_its_capacity_within_10_percent(summary: dict[str, Any]) -> None:
    rows = _rows(summary, "capacity")
    assert {(r["capacity_bps"], r["direction"]) for r in rows} == {
        (c * MBIT, d) for c in (10, 100, 500) for d in ("up", "down")
    }
    for row in rows:
        assert row.keys() >= {"capacity_bps", "direction", "goodput_bps", "ratio", "within_10pct"}
        # held to the capacity, or where this host's datapath carries less (measured right
        # after, unshaped on the same path shape) to what it carries: never at 10 or 100 Mbit/s,
        # which the shaper must deliver itself
        expected = row["expected_bps"]
        if row["datapath_bound"]:
            assert row["capacity_bps"] > 100 * MBIT, row
            assert row["ratio"] < 0.9 and expected == row["datapath_bps"] < row["capacity_bps"]
        else:
            assert expected == row["capacity_bps"], row
        under = 0.75 if row["datapath_bound"] else 0.9  # the datapath's rate moves (links.py)
        assert under * expected <= row["goodput_bps"] <= 1.1 * row["capacity_bps"], row
        assert row["within_10pct"] is True
        # the bytes went through the shaped end's qdisc: best effort, at least what arrived
        sent = row["shaper"]["1:20"]["bytes"]
        assert sent * 8 >= row["goodput_bps"] * row["seconds"] * 0.9, row
    assert summary["summary"]["capacity"]["met"] is True


def test_a_reservation_holds_its_rate_while_a_flood_saturates_the_link(
    summary: dict[str, Any],
) -> None:
    rows = _rows(summary, "reservation")
    assert {r["flood_kind"] for r in rows} == {"tcp"}  # --quick: 4 parallel TCP streams
    [reserved] = [r for r in rows if r["case"] == "reserved_paced"]
    [unreserved] = [r for r in rows if r["case"] == "unreserved"]
    assert reserved["capacity_bps"] == 100 * MBIT and reserved["reserved_bps"] == 40 * MBIT
    # the flood really saturated the link beside it (it got what the reservation left)
    assert reserved["flood_goodput_bps"] >= 45 * MBIT, reserved
    assert abs(reserved["goodput_bps"] / (40 * MBIT) - 1) <= 0.10, reserved
    assert reserved["within_10pct"] is True
    # it was marked and went first: through the reserved class of the shaped end
    marked = reserved["shaper"]["1:10"]["bytes"] * 8
    assert marked >= reserved["goodput_bps"] * reserved["seconds"] * 0.9, reserved
    assert summary["summary"]["reservation"]["met"] is True
    # without the reservation the same transfer loses to the flood
    assert unreserved["goodput_bps"] < reserved["goodput_bps"], (unreserved, reserved)
