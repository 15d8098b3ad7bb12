"""`mecmig bench levels`'s pure part: seed 003's Table IV, a run's row, the viability matrix.

A cell (app x level) is viable when the app runs at the destination and its state is what it
was at the source's stop (R3-8): the stateless app answers; the per-user counter continues from
its value at the stop, never from 0 (every answer the client got is larger than the one before:
the first after the move is larger than the last before it); memcached still holds every key
written before the move. Pure: rows in, matrix out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

APPS = ("stateless", "counter", "memcached")
LEVEL_NAMES = ("sfp", "fccp", "fullsp")
# seed 003's Table IV: "yes", "no", or "manual" (yes, with a manual command)
TABLE_IV: dict[str, dict[str, str]] = {
    "stateless": {"sfp": "manual", "fccp": "yes", "fullsp": "yes"},
    "counter": {"sfp": "no", "fccp": "yes", "fullsp": "yes"},
    "memcached": {"sfp": "no", "fccp": "no", "fullsp": "yes"},
}
FREEZE_PHASES = ("freeze_stop", "freeze_dump")
SERVING_PHASES = ("start", "restore")


def _phase(record: dict[str, Any], names: Sequence[str]) -> dict[str, Any] | None:
    return next((p for p in record.get("phases", []) if p["name"] in names), None)


def t_pre_ms(record: dict[str, Any]) -> float | None:
    """From the migration's start to its freeze: preparation and the bulk copy while serving."""
    freeze = _phase(record, FREEZE_PHASES)
    return None if freeze is None else round(float(freeze["start_ms"]), 1)


def engine_down_ms(record: dict[str, Any]) -> float | None:
    """From the freeze (the source's stop or final dump) to the destination serving."""
    freeze, served = _phase(record, FREEZE_PHASES), _phase(record, SERVING_PHASES)
    if freeze is None or served is None or served.get("end_ms") is None:
        return None
    return round(float(served["end_ms"]) - float(freeze["start_ms"]), 1)


def longest_gap(samples: Sequence[Sequence[Any]]) -> tuple[int, float] | None:
    """The index of the answer before the longest silence between two answers, and that
    silence (s); None with fewer than two answers."""
    if len(samples) < 2:
        return None
    gaps = [(float(samples[i + 1][0]) - float(samples[i][0]), i) for i in range(len(samples) - 1)]
    gap, i = max(gaps)
    return i, gap


def counter_continues(samples: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Whether the per-user counter's answers went on from the value at the stop: the value
    before the longest silence (`at_stop`), the first after it (`after`), and whether every
    answer is larger than the one before (a counter started afresh answers 1 again)."""
    values = [int(a) for _, a in samples if str(a).isdigit()]
    found = longest_gap(samples)
    if found is None or len(values) != len(samples):
        return {"intact": False, "at_stop": None, "after": None, "went_back": None}
    i, _ = found
    went_back = any(b <= a for a, b in zip(values, values[1:], strict=False))
    at_stop, after = values[i], values[i + 1]
    intact = not went_back and after > at_stop > 0
    return {"intact": intact, "at_stop": at_stop, "after": after, "went_back": went_back}


def row_of(
    *,
    app: str,
    level: str,
    strategy: str,
    record: dict[str, Any],
    poll: dict[str, Any],
    interval_ms: float,
    ended_s: float,
    at: str | None,
    keys: tuple[int, int] | None = None,
    refused_without_command: bool | None = None,
    manual_command: bool = False,
    error: str | None = None,
) -> dict[str, Any]:
    """One run's row. `poll`: workloads.levels_poll's JSON; `ended_s`: when the migration
    returned (monotonic, the poll's clock); `at`: where the app runs after it; `keys`:
    memcached's keys (present, written)."""
    samples = poll.get("samples", [])
    answers = at == "mec2" and any(float(t) > ended_s for t, _ in samples)
    state: dict[str, Any] = {}
    if app == "counter":
        state = counter_continues(samples)
        intact = bool(state["intact"])
    elif app == "memcached":
        present, written = keys or (0, 1)
        state = {"keys_present": present, "keys_written": written}
        intact = written > 0 and present == written
    else:
        intact = True  # nothing to keep: it answers or not
    gap = longest_gap(samples)
    row: dict[str, Any] = {
        "app": app,
        "level": level,
        "strategy": strategy,
        "viable": bool(answers and intact and record.get("outcome") == "done"),
        "state_intact": bool(intact and answers),
        "answers": bool(answers),
        "t_pre_ms": t_pre_ms(record),
        "t_down_ms": None if gap is None else round(gap[1] * 1000 - interval_ms, 1),
        "engine_down_ms": engine_down_ms(record),
        "bytes": int(record.get("bytes_transferred", 0)),
        "bytes_at_freeze": int((_phase(record, ("transfer",)) or {}).get("bytes") or 0),
        "total_ms": None if record.get("total_ms") is None else round(record["total_ms"], 1),
        "outcome": record.get("outcome"),
        "mode": record.get("mode"),
        "manual_command": manual_command,
        "refused_without_command": refused_without_command,
        "state": state,
        "client": {k: poll.get(k) for k in ("requests", "ok", "failures")},
        "at": at,
    }
    if error:
        row["error"] = error
    return row


def cell_of(rows: Sequence[dict[str, Any]]) -> str:
    """One cell of the measured matrix: "yes" when every run was viable ("manual" if it took a
    manual command), "no" when none was, "mixed" otherwise, "-" without runs. A run whose
    migration failed (rolled back: the app stayed at the source) says nothing of the level:
    it is left out, and named in the summary's `failed_runs`."""
    rows = [r for r in rows if "error" not in r]
    if not rows:
        return "-"
    viable = [bool(r["viable"]) for r in rows]
    if all(viable):
        return "manual" if any(r.get("manual_command") for r in rows) else "yes"
    return "no" if not any(viable) else "mixed"


def matrix(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The measured Table IV: app -> level -> cell (see cell_of)."""
    return {
        app: {
            level: cell_of([r for r in rows if r["app"] == app and r["level"] == level])
            for level in LEVEL_NAMES
        }
        for app in APPS
    }


def differences(measured: dict[str, dict[str, str]]) -> list[str]:
    """Where the measured matrix differs from seed 003's Table IV (cells measured only)."""
    return [
        f"{app} x {level}: measured {measured[app][level]}, Table IV {want}"
        for app, wants in TABLE_IV.items()
        for level, want in wants.items()
        if measured.get(app, {}).get(level, "-") not in ("-", want)
    ]


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The matrix, whether it is Table IV's, and per cell the medians of the times and bytes."""
    measured = matrix(rows)
    cells: dict[str, dict[str, Any]] = {}
    for app in APPS:
        for level in LEVEL_NAMES:
            mine = [r for r in rows if r["app"] == app and r["level"] == level]
            if mine:
                cells[f"{app}/{level}"] = {
                    "runs": len(mine),
                    "viable": sum(bool(r["viable"]) for r in mine),
                    **{k: _median([r[k] for r in mine]) for k in
                       ("t_pre_ms", "t_down_ms", "engine_down_ms", "bytes")},
                }  # fmt: skip
    refused = [r.get("refused_without_command") for r in rows if r["level"] == "sfp"]
    diff = differences(measured)
    complete = all(c != "-" for m in measured.values() for c in m.values())
    return {
        "matrix": measured,
        "table_iv": TABLE_IV,
        "matches_table_iv": not diff and complete,
        "differences": diff,
        "sfp_refused_without_command": bool(refused) and all(r is True for r in refused),
        "failed_runs": [
            f"{r['app']} {r['level']} #{r.get('repetition')}: {r['error']}"
            for r in rows
            if "error" in r
        ],  # fmt: skip
        "cells": cells,
    }


def _median(values: Sequence[float | None]) -> float | None:
    got = sorted(float(v) for v in values if v is not None)
    if not got:
        return None
    mid = len(got) // 2
    return got[mid] if len(got) % 2 else (got[mid - 1] + got[mid]) / 2
