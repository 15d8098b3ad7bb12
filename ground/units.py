"""Bit rates and byte sizes: parsing scenario values ("100Mbit/s", "64MiB") and formatting rates."""

from __future__ import annotations

import math
import re

_PREFIXES = ("k", "M", "G", "T")


def fmt_bps(bps: float) -> str:
    """Format a rate in bit/s, e.g. ``40.0 Mbit/s``, ``1.5 Gbit/s``, ``800.0 kbit/s``.

    Rates below 1 kbit/s are printed as a whole number of ``bit/s``.
    """
    if abs(bps) < 1000:
        return f"{bps:.0f} bit/s"
    value = float(bps)
    unit = ""
    for prefix in _PREFIXES:
        value /= 1000
        unit = prefix
        # Decide on the rounded value so 999_960_000 reads "1.0 Gbit/s", not "1000.0 Mbit/s".
        if abs(round(value, 1)) < 1000:
            break
    return f"{value:.1f} {unit}bit/s"


def fmt_bytes(size: float) -> str:
    """A byte size for people: 67108864 -> '64.0 MiB'."""
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(size) >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size:.0f} B"


_RATE_UNITS = {
    "": 1,
    "bit": 1,
    "bps": 1,
    "kbit": 10**3,
    "kbps": 10**3,
    "mbit": 10**6,
    "mbps": 10**6,
    "gbit": 10**9,
    "gbps": 10**9,
}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)(?:/s)?\s*$")


def _shown(value: object, limit: int = 40) -> str:
    """`value` as an error message quotes it: what a caller sent can be long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _parse(
    value: object, units: dict[str, int], what: str, example: str, maximum: int | None = None
) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a {what}, got a boolean")
    if isinstance(value, int) and maximum is not None and value > maximum:
        # before float(): an int of 400 digits is too large for a float (OverflowError)
        raise ValueError(f"a {what} must be at most {maximum}, got {_shown(value)}")
    if isinstance(value, int | float):
        try:
            number, factor = float(value), 1
        except OverflowError:
            raise ValueError(f"a {what} must be a finite number, got {_shown(value)}") from None
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in units:
            known = ", ".join(u for u in units if u)
            raise ValueError(
                f"cannot read {_shown(value)} as a {what} (e.g. {example}; units: {known})"
            )
        number, factor = float(match.group(1)), units[unit]
    else:
        raise ValueError(f"expected a {what} (e.g. {example}), got {type(value).__name__}")
    scaled = number * factor
    # inf and nan (JSON's Infinity/NaN, YAML's .inf, a string of 400 digits) are no amount
    if not math.isfinite(scaled):
        raise ValueError(f"a {what} must be a finite number, got {_shown(value)}")
    if maximum is not None and scaled > maximum:
        raise ValueError(f"a {what} must be at most {maximum}, got {_shown(value)}")
    result = int(round(scaled))
    if result <= 0:
        raise ValueError(f"a {what} must be positive, got {_shown(value)}")
    return result


def parse_rate(value: object, *, max_bps: int | None = None) -> int:
    """A bit rate in bit/s from an int (bit/s) or a string: '100Mbit', '1.5 Gbit/s', '500kbps'.

    ValueError for anything else, for a rate that is not positive or not finite, and for one
    above `max_bps` if given.
    """
    return _parse(value, _RATE_UNITS, "bit rate", "'100Mbit'", max_bps)


def parse_size(value: object) -> int:
    """A size in bytes from an int (bytes) or a string like '64MiB', '1GiB', '512MB'."""
    return _parse(value, _SIZE_UNITS, "size", "'64MiB'")
