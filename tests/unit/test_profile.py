"""The frozen window's profile (migration.profile): parts from a record's phases, summing to the
window exactly; and the rate the memory moved at."""

from __future__ import annotations

import pytest

from migration.profile import (
    dump_detail,
    frozen_profile,
    largest_parts,
    pages_mbps,
    restore_detail,
)
from migration.site import CriuDumpStats, CriuRestoreStats, DumpInfo, RestoreInfo
from migration.timeline import MigrationRecord, PhaseRecord

CRIU_DUMP = CriuDumpStats(
    freezing_us=100_000, frozen_us=200_000, memdump_us=150_000, memwrite_us=90_000
)


def record(*phases: PhaseRecord) -> MigrationRecord:
    rec = MigrationRecord("m1", "counter", "mec1", "mec2", "cold")
    rec.phases.extend(phases)
    return rec


def cold() -> MigrationRecord:
    """freeze 0-400 (agent 350, runc 330, CRIU 300), transfer 405-905, switch 905-925, restore
    925-1125 (agent 180, runc 150, CRIU 100 of which forking 10)."""
    dump = DumpInfo(1 << 20, 0.35, False, runc_s=0.33, criu=CRIU_DUMP)
    freeze = PhaseRecord("freeze_dump", 0.0, 400.0, detail={"hold_ms": 2.0, **dump_detail(dump)})
    restore = RestoreInfo(0.18, 0.15, CriuRestoreStats(forking_us=10_000, restore_us=100_000))
    return record(
        PhaseRecord("prepare", -50.0, -10.0),
        freeze,
        PhaseRecord("transfer", 405.0, 905.0, bytes=50_000_000, detail={"send_s": 0.45}),
        PhaseRecord("switch", 905.0, 925.0, detail={"steer_ms": 15.0}),
        PhaseRecord("restore", 925.0, 1125.0, detail=restore_detail(restore)),
        PhaseRecord("deliver", 1125.0, 1130.0),
    )


def test_a_cold_migration_splits_along_every_layer() -> None:
    prof = frozen_profile(cold())
    assert prof is not None
    assert prof == {
        "hold": 2.0,
        "dump_rpc": 48.0,
        "dump_agent": 20.0,
        "runc_dump_overhead": 30.0,
        "criu_freezing": 100.0,
        "criu_memdump": 60.0,
        "criu_memwrite": 90.0,
        "criu_dump_other": 50.0,
        "transfer": 500.0,
        "source_link_down": 5.0,
        "switch": 15.0,
        "restore_rpc": 20.0,
        "restore_agent": 30.0,
        "runc_restore_overhead": 50.0,
        "criu_forking": 10.0,
        "criu_restore": 90.0,
        "between": 5.0,
        "unaccounted": 0.0,
    }
    assert sum(prof.values()) == pytest.approx(1125.0)


def test_a_lazy_dump_counts_its_freeze_up_to_the_page_server() -> None:
    """Its times come from CRIU's log (agent.criu_images): freezing, then frozen until the
    page server started."""
    lazy = CriuDumpStats(freezing_us=1_000, frozen_us=60_000, memdump_us=0, memwrite_us=0)
    dump = DumpInfo(1 << 20, 0.1, False, runc_s=0.08, criu=lazy)
    rec = record(
        PhaseRecord("freeze_dump", 0.0, 120.0, detail={"lazy": True, **dump_detail(dump)}),
        PhaseRecord("restore", 120.0, 300.0),
    )
    prof = frozen_profile(rec)
    assert prof is not None
    assert prof["criu_freezing"] == 1.0 and prof["criu_dump_other"] == 60.0
    assert prof["runc_dump_overhead"] == 19.0
    assert prof["dump_rpc"] == 20.0 and prof["dump_agent"] == 20.0
    assert prof["restore"] == 180.0 and "criu_memwrite" not in prof
    assert sum(prof.values()) == pytest.approx(300.0)


def test_without_the_sites_account_each_phase_is_one_part() -> None:
    """An agent that reports no times (or a fake): phases whole, still summing to the window."""
    rec = record(
        PhaseRecord("freeze_dump", 10.0, 110.0),
        PhaseRecord("transfer", 110.0, 200.0),
        PhaseRecord("switch", 200.0, 210.0, detail={"switchover_ms": 3.0}),
        PhaseRecord("restore", 215.0, 300.0, detail=restore_detail(None)),
    )
    assert frozen_profile(rec) == {
        "dump": 100.0,
        "transfer": 90.0,
        "switch": 10.0,
        "restore": 85.0,
        "between": 5.0,
        "unaccounted": 0.0,
    }


def test_a_restart_is_its_stop_and_its_start() -> None:
    rec = record(
        PhaseRecord("freeze_stop", 0.0, 30.0, detail={"hold_ms": 4.0}),
        PhaseRecord("transfer", 30.0, 60.0),
        PhaseRecord("start", 60.0, 160.0),
    )
    assert frozen_profile(rec) == {
        "hold": 4.0, "stop": 26.0, "transfer": 30.0, "start": 100.0,
        "between": 0.0, "unaccounted": 0.0,
    }  # fmt: skip


def test_negative_parts_count_as_zero_and_show_as_unaccounted() -> None:
    """A runc that took longer than its agent's step (clocks): the excess is unaccounted."""
    dump = DumpInfo(1, 0.05, False, runc_s=0.06, criu=None)
    rec = record(
        PhaseRecord("freeze_dump", 0.0, 100.0, detail=dump_detail(dump)),
        PhaseRecord("restore", 100.0, 200.0),
    )
    prof = frozen_profile(rec)
    assert prof is not None
    assert "dump_agent" not in prof  # parts of 0 are left out
    assert prof["unaccounted"] == -10.0
    assert sum(prof.values()) == pytest.approx(200.0)


def test_no_window_no_profile() -> None:
    assert frozen_profile(record(PhaseRecord("freeze_dump", 0.0, 10.0))) is None
    assert frozen_profile(record(PhaseRecord("restore", 0.0, 10.0))) is None


def test_pages_rate_of_post_copy_and_of_a_copy() -> None:
    post = record(
        PhaseRecord("freeze_dump", 0.0, 100.0),
        PhaseRecord("restore", 100.0, 300.0),
        PhaseRecord("pages", 310.0, 1100.0, bytes=100_000_000),
    )
    assert pages_mbps(post) == 100.0  # 100 MB from the restore's start, in 1 s
    assert pages_mbps(cold()) == pytest.approx(111.11)  # 50 MB sent in 0.45 s
    rounds = record(
        PhaseRecord("precopy-1", 0.0, 600.0, bytes=60_000_000, detail={"send_s": 0.5}),
        PhaseRecord("transfer", 700.0, 800.0, bytes=10_000_000),  # no send_s: its duration
    )
    assert pages_mbps(rounds) == pytest.approx(116.67)
    assert pages_mbps(record(PhaseRecord("transfer", 0.0, 10.0))) is None
    # cold, pages ahead: 70 MB went by the page server during the dump (runc 0.69 s), 1 MB after
    ahead = record(
        PhaseRecord("freeze_dump", 0.0, 800.0, detail={"runc_s": 0.69}),
        PhaseRecord(
            "transfer",
            800.0,
            820.0,
            bytes=71_000_000,
            detail={"send_s": 0.01, "pages_bytes": 70_000_000, "rest_bytes": 1_000_000},
        ),  # fmt: skip
    )
    assert pages_mbps(ahead) == pytest.approx(101.43)  # 71 MB in 0.7 s


def test_largest_parts_for_people() -> None:
    prof = {"transfer": 500.0, "criu_memwrite": 90.0, "between": 0.0, "switch": 1234.5}
    assert largest_parts(prof, top=2) == "switch 1,234 ms, transfer 500 ms"
    assert largest_parts(prof) == "switch 1,234 ms, transfer 500 ms, criu_memwrite 90 ms"
