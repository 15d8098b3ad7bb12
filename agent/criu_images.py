"""What we read from CRIU's images without CRIU: the dump's run id in `inventory.img`, and
CRIU's own times in its `stats-dump` and `stats-restore` images.

CRIU names its nftables network lock after the run id of the dump (`inet CRIU-<id>`), and its
restore removes exactly that table. The inventory image is a 4-byte magic, then one entry: a
4-byte little-endian length and a protobuf `inventory_entry`, whose field 13 is
`dump_criu_run_id` (string).

The stats images are "service" images, which CRIU writes into its work directory (it runs there:
runc's --work-path): two magics (IMG_SERVICE_MAGIC, then STATS_MAGIC), then one length-prefixed
`stats_entry { optional dump_stats_entry dump = 1; optional restore_stats_entry restore = 2 }`.
The field numbers below are CRIU 4.2.1's images/stats.proto; its criu/stats.c fills them (times
in microseconds). Pure: bytes in, values out.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from migration.site import MAX_CRIU_PAGES, MAX_CRIU_US, CriuDumpStats, CriuRestoreStats

INVENTORY_MAGIC = 0x58313116
RUN_ID_FIELD = 13
SERVICE_MAGIC = 0x55105940  # IMG_SERVICE_MAGIC: the head of stats and irmap-cache images
STATS_MAGIC = 0x57093306
STATS_DUMP, STATS_RESTORE = "stats-dump", "stats-restore"  # in CRIU's work directory
STATS_ENTRY_DUMP, STATS_ENTRY_RESTORE = 1, 2
# dump_stats_entry
FREEZING_TIME, FROZEN_TIME, MEMDUMP_TIME, MEMWRITE_TIME = 1, 2, 3, 4
PAGES_SCANNED, PAGES_WRITTEN, PAGES_LAZY = 5, 7, 9
# restore_stats_entry
FORKING_TIME, RESTORE_TIME, PAGES_RESTORED = 3, 4, 5


class ImageError(Exception):
    """An image that is not what CRIU writes."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ImageError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ImageError("varint too long")


def _fields(msg: bytes) -> dict[int, bytes | int]:
    """Top-level fields of a protobuf message (last one wins, as protobuf says)."""
    out: dict[int, bytes | int] = {}
    pos = 0
    while pos < len(msg):
        key, pos = _varint(msg, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], pos = _varint(msg, pos)
        elif wire == 1:
            out[number], pos = msg[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(msg, pos)
            if pos + n > len(msg):
                raise ImageError("truncated field")
            out[number], pos = msg[pos : pos + n], pos + n
        elif wire == 5:
            out[number], pos = msg[pos : pos + 4], pos + 4
        else:
            raise ImageError(f"unsupported wire type {wire}")
    return out


def dump_run_id(inventory: bytes) -> str | None:
    """The run id of the dump that wrote this inventory (None: an older CRIU wrote none)."""
    if len(inventory) < 8:
        raise ImageError("inventory image too short")
    magic, size = struct.unpack_from("<II", inventory)
    if magic != INVENTORY_MAGIC:
        raise ImageError(f"not an inventory image (magic {magic:#x})")
    entry = inventory[8 : 8 + size]
    if len(entry) != size:
        raise ImageError("truncated inventory entry")
    value = _fields(entry).get(RUN_ID_FIELD)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise ImageError("dump_criu_run_id is not a string")
    return value.decode()


def dump_run_id_of(images: Path) -> str | None:
    """`dump_run_id` of the images in directory `images`."""
    try:
        return dump_run_id((images / "inventory.img").read_bytes())
    except OSError as exc:
        raise ImageError(f"cannot read {images}/inventory.img: {exc}") from exc


def _stats_entry(image: bytes, which: int) -> dict[int, bytes | int]:
    """The fields of a stats image's `dump` (1) or `restore` (2) entry."""
    if len(image) < 12:
        raise ImageError("stats image too short")
    head, magic, size = struct.unpack_from("<III", image)
    if head != SERVICE_MAGIC or magic != STATS_MAGIC:
        raise ImageError(f"not a stats image (magics {head:#x} {magic:#x})")
    entry = image[12 : 12 + size]
    if len(entry) != size:
        raise ImageError("truncated stats entry")
    sub = _fields(entry).get(which)
    if not isinstance(sub, bytes):
        raise ImageError(f"stats image without its {'dump' if which == 1 else 'restore'} entry")
    return _fields(sub)


def _int(
    fields: dict[int, bytes | int], number: int, bound: int, default: int | None = None
) -> int:
    value = fields.get(number, default)
    if value is None:
        raise ImageError(f"stats entry without field {number}")
    if not isinstance(value, int) or value > bound:
        raise ImageError(f"stats field {number} is {value!r}")
    return value


def dump_stats(image: bytes) -> CriuDumpStats:
    """CRIU's times and page counts of a dump, from its `stats-dump` image."""
    f = _stats_entry(image, STATS_ENTRY_DUMP)
    return CriuDumpStats(
        freezing_us=_int(f, FREEZING_TIME, MAX_CRIU_US),
        frozen_us=_int(f, FROZEN_TIME, MAX_CRIU_US),
        memdump_us=_int(f, MEMDUMP_TIME, MAX_CRIU_US),
        memwrite_us=_int(f, MEMWRITE_TIME, MAX_CRIU_US),
        pages_scanned=_int(f, PAGES_SCANNED, MAX_CRIU_PAGES, 0),
        pages_written=_int(f, PAGES_WRITTEN, MAX_CRIU_PAGES, 0),
        pages_lazy=_int(f, PAGES_LAZY, MAX_CRIU_PAGES, 0),
    )


def restore_stats(image: bytes) -> CriuRestoreStats:
    """CRIU's times of a restore, from its `stats-restore` image."""
    f = _stats_entry(image, STATS_ENTRY_RESTORE)
    restored = f.get(PAGES_RESTORED)
    return CriuRestoreStats(
        forking_us=_int(f, FORKING_TIME, MAX_CRIU_US),
        restore_us=_int(f, RESTORE_TIME, MAX_CRIU_US),
        pages_restored=None if restored is None else _int(f, PAGES_RESTORED, MAX_CRIU_PAGES),
    )


def _read(work: Path, name: str) -> bytes | None:
    try:
        return (work / name).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ImageError(f"cannot read {work}/{name}: {exc}") from exc


def dump_stats_in(work: Path) -> CriuDumpStats | None:
    """`dump_stats` of the `stats-dump` CRIU left in its work directory `work`; None if there
    is none (the dump failed, or has not ended: a lazy dump writes it when its pages are
    served)."""
    data = _read(work, STATS_DUMP)
    return None if data is None else dump_stats(data)


def restore_stats_in(work: Path) -> CriuRestoreStats | None:
    """`restore_stats` of the `stats-restore` in CRIU's work directory `work`; None if none."""
    data = _read(work, STATS_RESTORE)
    return None if data is None else restore_stats(data)


# A lazy dump's stats image says nothing of its freeze: CRIU's page server starts its counters
# afresh (cr_page_server calls init_stats), so what it writes at the end is zeros. Its log says
# it instead: runc has CRIU log at level 4, each line stamped "(SS.uuuuuu)" from CRIU's start.
DUMP_LOG = "dump.log"
_STAMP = re.compile(r"^\((\d+)\.(\d{6})\) (.*)$")
FREEZE_START = "freezing cgroup "  # seize.c: the cgroup freezer, as runc has CRIU use it
FROZEN = ("freezing processes: ", "Seized task ")  # the first of these: the tree is frozen
READY = "Starting lazy pages server"  # cr-dump.c: the dump is done, its pages are served


def lazy_dump_stats(log: str) -> CriuDumpStats | None:
    """A lazy dump's freezing time and its frozen time up to the page server's start, from
    CRIU's log; None where the log does not say (another log level, an older CRIU)."""
    start = frozen = ready = None
    for line in log.splitlines():
        m = _STAMP.match(line)
        if m is None:
            continue
        t = int(m.group(1)) * 1_000_000 + int(m.group(2))
        text = m.group(3)
        if start is None and text.startswith(FREEZE_START):
            start = t
        elif start is not None and frozen is None and text.startswith(FROZEN):
            frozen = t
        elif frozen is not None and text.startswith(READY):
            ready = t
            break
    if start is None or frozen is None or ready is None:
        return None
    return CriuDumpStats(
        freezing_us=min(frozen - start, MAX_CRIU_US),
        frozen_us=min(ready - frozen, MAX_CRIU_US),
        memdump_us=0,
        memwrite_us=0,
    )


def lazy_dump_stats_in(work: Path) -> CriuDumpStats | None:
    """`lazy_dump_stats` of the log in CRIU's work directory `work`."""
    data = _read(work, DUMP_LOG)
    return None if data is None else lazy_dump_stats(data.decode(errors="replace"))
