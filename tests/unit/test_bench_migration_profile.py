"""The benchmark's profile rows, plot and report section (mecmig.bench.migration_profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mecmig.bench.migration_cases import client_timing
from mecmig.bench.migration_profile import (
    PLOT,
    median_profiles,
    plot_profile,
    profile_fields,
    profile_section,
)
from migration.timeline import MigrationRecord, PhaseRecord

MIB = 2**20


def row(strategy: str, prof: dict[str, float], mbps: float = 50.0) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "memory_bytes": 64 * MIB,
        "dirty_rate_bps": 80_000_000,
        "outcome": "done",
        "frozen_profile_ms": prof,
        "pages_mbps": mbps,
    }


ROWS = [
    row("cold", {"criu_memwrite": 100.0, "transfer": 600.0, "unaccounted": 0.0}),
    row("cold", {"criu_memwrite": 120.0, "transfer": 640.0, "unaccounted": 1.0}),
    row("postcopy", {"criu_freezing": 100.0, "restore_rpc": 20.0}, mbps=40.0)
    | {"client_timing_ms": {"last_reply_to_freeze": -30.0, "restore_end_to_first_reply": 90.0}},
    row("postcopy", {"criu_freezing": 900.0}, mbps=40.0)  # rolled back: in no median
    | {"outcome": "rolled_back", "client_timing_ms": {"restore_end_to_first_reply": 900.0}},
]


def test_rows_get_their_profile_from_the_record() -> None:
    rec = MigrationRecord("m", "counter", "mec1", "mec2", "cold")
    rec.phases += [
        PhaseRecord("freeze_dump", 0.0, 10.0),
        PhaseRecord("transfer", 10.0, 20.0, bytes=1_000_000, detail={"send_s": 0.01}),
        PhaseRecord("restore", 20.0, 30.0),
    ]
    fields = profile_fields(rec)
    assert fields["frozen_profile_ms"]["transfer"] == 10.0
    assert fields["pages_mbps"] == 100.0
    assert profile_fields(None) == {"frozen_profile_ms": None, "pages_mbps": None}


def test_medians_plot_and_section(tmp_path: Path) -> None:
    medians = median_profiles(ROWS)
    assert medians[("cold", 64 * MIB, 80_000_000)]["transfer"] == 620.0
    assert plot_profile(ROWS, tmp_path, ["cold", "postcopy"]) == PLOT
    assert (tmp_path / PLOT).read_bytes()[:4] == b"\x89PNG"
    text = profile_section(ROWS, ["cold", "postcopy"])
    assert "| cold | 64MiB | 10 MB/s | 730 | transfer 620, criu_memwrite 110" in text
    assert text.index("| cold") < text.index("| postcopy") and "| 40.0 |" in text
    assert "| 120 | criu_freezing 100, restore_rpc 20 | 40.0 | -30 | 90 |" in text
    assert "| 730 | transfer 620, criu_memwrite 110, unaccounted 0 | 50.0 | - | - |" in text
    assert plot_profile([], tmp_path, []) is None and profile_section([], []) == ""


def test_the_clients_silence_is_placed_against_the_phases() -> None:
    """Probe gaps (ms since the probe's start_ns) against the listener's phase marks (ns)."""
    start_ns = 1_000_000_000
    probe = {"start_ns": start_ns, "gaps": [[100.0, 120.0], [500.0, 900.0]], "duration_ms": 3e3}
    ms = 1_000_000
    marks = {
        "freeze_dump:start": start_ns + 470 * ms,  # the last reply came 30 ms after it
        "restore:end": start_ns + 800 * ms,
        "deliver:end": start_ns + 810 * ms,
    }
    assert client_timing(probe, marks) == {
        "last_reply_to_freeze": -30.0,
        "restore_end_to_first_reply": 100.0,
        "deliver_end_to_first_reply": 90.0,
    }
    # a longer silence away from the migration is not it; one to the probe's end (no reply
    # came) is none
    probe["gaps"].append([1500.0, 2900.0])
    assert client_timing(probe, marks)["restore_end_to_first_reply"] == 100.0
    probe["gaps"] = [[500.0, 3000.0]]
    assert client_timing(probe, marks) == {}
    probe["gaps"] = [[100.0, 120.0], [500.0, 900.0]]
    # no deliver phase (nothing held): that field is left out; no silence or start: nothing
    del marks["deliver:end"]
    assert "deliver_end_to_first_reply" not in client_timing(probe, marks)
    assert client_timing({"start_ns": start_ns, "gaps": []}, marks) == {}
    assert client_timing({"gaps": [[1.0, 2.0]]}, marks) == {}
    del marks["freeze_dump:start"]  # the migration failed before its freeze
    assert client_timing(probe, marks) == {}
