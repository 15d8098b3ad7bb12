"""What we read from CRIU's images without CRIU: the dump's run id in `inventory.img`.

CRIU names its nftables network lock after the run id of the dump (`inet CRIU-<id>`), and its
restore removes exactly that table. The inventory image is a 4-byte magic, then one entry: a
4-byte little-endian length and a protobuf `inventory_entry`, whose field 13 is
`dump_criu_run_id` (string). Pure: bytes in, value out.
"""

from __future__ import annotations

import struct
from pathlib import Path

INVENTORY_MAGIC = 0x58313116
RUN_ID_FIELD = 13


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
