"""Reading the dump's run id from CRIU's inventory image, its stats images, and the nftables
lock scripts."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from agent.criu_images import (
    INVENTORY_MAGIC,
    SERVICE_MAGIC,
    STATS_MAGIC,
    ImageError,
    dump_run_id,
    dump_stats,
    dump_stats_in,
    lazy_dump_stats,
    restore_stats,
    restore_stats_in,
)
from agent.netns import LOCK_TABLE, lock_script, lock_tables_in
from migration.site import CriuDumpStats, CriuRestoreStats


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def inventory(run_id: str | None, *, extra: bytes = b"") -> bytes:
    """An inventory image as CRIU 4 writes it: img_version, root_ids, ..., dump_criu_run_id."""
    entry = b"\x08\x02" + b"\x10\x01" + b"\x1a\x04\x08\x01\x10\x02"  # 1, 2, 3 (a message)
    entry += b"\x40" + _varint(123456789) + b"\x58\x02" + extra  # dump_uptime, lock method
    if run_id is not None:
        raw = run_id.encode()
        entry += b"\x6a" + _varint(len(raw)) + raw
    return struct.pack("<II", INVENTORY_MAGIC, len(entry)) + entry


def test_run_id_is_read() -> None:
    run_id = "48e4dff4-8bb6-45d3-b609-3636d6ad1d35"
    assert dump_run_id(inventory(run_id)) == run_id


def test_fixed_width_fields_are_skipped() -> None:
    fixed = b"\x79" + b"\0" * 8 + b"\x7d" + b"\0" * 4  # field 15 fixed64, field 15 fixed32
    assert dump_run_id(inventory("x", extra=fixed)) == "x"


def test_older_images_have_no_run_id() -> None:
    assert dump_run_id(inventory(None)) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"inv", "too short"),
        (struct.pack("<II", 0x12345678, 0), "not an inventory"),
        (inventory("abc")[:-2], "truncated"),
        (struct.pack("<II", INVENTORY_MAGIC, 2) + b"\x6a\x05", "truncated field"),
        (struct.pack("<II", INVENTORY_MAGIC, 1) + b"\x6b", "wire type"),
    ],
)
def test_bad_images_are_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        dump_run_id(data)


def test_lock_script_drops_all_but_criu_marked_packets() -> None:
    script = lock_script("CRIU-abc")
    assert script.splitlines() == [
        "add table inet CRIU-abc",
        "add chain inet CRIU-abc input { type filter hook input priority 0; policy drop; }",
        "add rule inet CRIU-abc input meta mark 0xc114 accept",
        "add chain inet CRIU-abc output { type filter hook output priority 0; policy drop; }",
        "add rule inet CRIU-abc output meta mark 0xc114 accept",
    ]


def test_lock_tables_are_ours_and_criu_s_only_and_lock_while_a_chain_drops() -> None:
    """`nft -j list ruleset inet` as nft 1.0.6 prints it: a table locks while one of its base
    chains drops by policy without accepting everything first; one CRIU's restore opened (an
    `accept` rule first in each chain, patch 0011) waits to be deleted."""
    accept = {"accept": None}
    marked = {"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 49428}}

    def chain(table: str, hook: str) -> dict[str, object]:
        return {
            "chain": {
                "family": "inet",
                "table": table,
                "name": hook,
                "handle": 1,
                "type": "filter",
                "hook": hook,
                "prio": 0,
                "policy": "drop",
            }
        }

    def rule(table: str, hook: str, *expr: Any) -> dict[str, object]:
        return {"rule": {"family": "inet", "table": table, "chain": hook, "expr": list(expr)}}

    listing = json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
                {"table": {"family": "inet", "name": "filter"}},  # not ours
                chain("filter", "input"),
                {"table": {"family": "inet", "name": LOCK_TABLE}},
                chain(LOCK_TABLE, "input"),
                chain(LOCK_TABLE, "output"),
                rule(LOCK_TABLE, "input", marked, accept),
                rule(LOCK_TABLE, "output", marked, accept),
                {"table": {"family": "inet", "name": "CRIU-1-2"}},  # opened by CRIU's restore
                chain("CRIU-1-2", "input"),
                chain("CRIU-1-2", "output"),
                rule("CRIU-1-2", "input", accept),
                rule("CRIU-1-2", "input", marked, accept),
                rule("CRIU-1-2", "output", accept),
                rule("CRIU-1-2", "output", marked, accept),
                {"table": {"family": "inet", "name": "CRIU-3"}},  # only its input is open
                chain("CRIU-3", "input"),
                chain("CRIU-3", "output"),
                rule("CRIU-3", "input", accept),
                rule("CRIU-3", "output", marked, accept),
                {"table": {"family": "inet", "name": "CRIU-4"}},  # an empty table locks nothing
            ]
        }
    )
    assert lock_tables_in(listing) == {
        LOCK_TABLE: True,
        "CRIU-1-2": False,
        "CRIU-3": True,
        "CRIU-4": False,
    }
    assert lock_tables_in("") == {}
    with pytest.raises(ValueError):
        lock_tables_in('{"nftables": ["table"]}')
    with pytest.raises(ValueError):
        lock_tables_in("table inet CRIU-1")


# ---------------------------------------------------------------------- stats images

# a stats-dump CRIU 4.2.1 wrote here (runc checkpoint of a small process): its bytes as they are
REAL_STATS_DUMP = bytes.fromhex(
    "4059105506330957230000000a21084c10e96c18cf3b20fb3528cd18300038c7174000480050085808600068007000"
)


def _msg(fields: dict[int, int | bytes]) -> bytes:
    out = b""
    for number, value in fields.items():
        if isinstance(value, bytes):
            out += _varint(number << 3 | 2) + _varint(len(value)) + value
        else:
            out += _varint(number << 3) + _varint(value)
    return out


def stats_image(which: int, fields: dict[int, int | bytes]) -> bytes:
    entry = _msg({which: _msg(fields)})
    return struct.pack("<III", SERVICE_MAGIC, STATS_MAGIC, len(entry)) + entry


def test_a_real_stats_dump_is_read() -> None:
    stats = dump_stats(REAL_STATS_DUMP)
    assert (stats.freezing_us, stats.frozen_us) == (76, 13929)
    assert (stats.memdump_us, stats.memwrite_us) == (7631, 6907)
    assert (stats.pages_scanned, stats.pages_written, stats.pages_lazy) == (3149, 3015, 0)


def test_restore_stats_are_read() -> None:
    image = stats_image(2, {1: 0, 2: 0, 3: 1500, 4: 48000, 5: 16384})
    assert restore_stats(image) == CriuRestoreStats(1500, 48000, 16384)
    without = stats_image(2, {1: 0, 2: 0, 3: 1500, 4: 48000})
    assert restore_stats(without).pages_restored is None


def test_large_counters_and_unknown_fields() -> None:
    image = stats_image(1, {1: 2**32 - 1, 2: 5, 3: 4, 4: 3, 9: 2**40, 15: 7})
    stats = dump_stats(image)
    assert stats.freezing_us == 2**32 - 1 and stats.pages_lazy == 2**40


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x40\x59", "too short"),
        (struct.pack("<III", INVENTORY_MAGIC, STATS_MAGIC, 0), "not a stats image"),
        (REAL_STATS_DUMP[:-3], "truncated"),
        (stats_image(2, {3: 1, 4: 2}), "without its dump entry"),
        (stats_image(1, {1: 1, 3: 1, 4: 1}), "without field 2"),
        (stats_image(1, {1: 2**32, 2: 1, 3: 1, 4: 1}), "field 1"),
    ],
)
def test_bad_stats_images_are_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        dump_stats(data)


def test_stats_in_a_work_directory(tmp_path: Path) -> None:
    assert dump_stats_in(tmp_path) is None and restore_stats_in(tmp_path) is None
    (tmp_path / "stats-dump").write_bytes(REAL_STATS_DUMP)
    (tmp_path / "stats-restore").write_bytes(stats_image(2, {1: 0, 2: 0, 3: 9, 4: 99}))
    assert dump_stats_in(tmp_path) == dump_stats(REAL_STATS_DUMP)
    assert restore_stats_in(tmp_path) == CriuRestoreStats(9, 99)


LAZY_LOG = """\
(00.000000) Version: 4.2.1 (gitid 0)
(00.004100) Dumping processes (pid: 4242 comm: memhog)
(00.010000) freezing cgroup /sys/fs/cgroup/freezer/counter: 1000 x 1ms attempts, timeout: 10s
(00.011500) freezing processes: 2 attempts done
(00.011600) Seized task 4242, state 0
(00.030000) Dumping pages (type: 29 pid: 4242)
(00.071500) Starting lazy pages server
(00.071600) Seized task 9999, state 0
(01.500000) Lazy pages transfer finished successfully
"""


def test_a_lazy_dump_s_times_come_from_its_log() -> None:
    assert lazy_dump_stats(LAZY_LOG) == CriuDumpStats(1_500, 60_000, 0, 0)
    assert lazy_dump_stats(LAZY_LOG.replace("Starting lazy", "Starting")) is None
    assert lazy_dump_stats("Error (criu/cr-dump.c:1): no stamps\n") is None
