"""Reading the dump's run id from CRIU's inventory image, and the nftables lock scripts."""

from __future__ import annotations

import struct

import pytest

from agent.criu_images import INVENTORY_MAGIC, ImageError, dump_run_id
from agent.netns import LOCK_TABLE, lock_script, lock_tables_in


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


def test_lock_tables_are_ours_and_criu_s_only() -> None:
    listing = f"table inet filter\ntable inet {LOCK_TABLE}\ntable inet CRIU-1-2\ntable ip nat\n"
    assert lock_tables_in(listing) == [LOCK_TABLE, "CRIU-1-2"]
    assert lock_tables_in("") == []
