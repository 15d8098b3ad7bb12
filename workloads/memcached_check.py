"""The memcached workload (Debian's /usr/bin/memcached): its command line and a checking client.

:func:`fill` stores ``n_keys`` deterministic values (seeded PRNG) with the text protocol and
returns what it stored; after a migration :func:`verify` reads them back with multi-key ``get``
and counts what survived. Plain sockets, no third-party client.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import BinaryIO

MEMCACHED = "/usr/bin/memcached"
MAX_KEY_LEN = 250
MAX_VALUE_SIZE = 1024 * 1024 - 1024  # memcached's default item limit is 1 MiB, item header incl.
BATCH = 100
DEFAULT_TIMEOUT_S = 10.0


class MemcachedError(RuntimeError):
    """memcached answered something the text protocol does not allow here."""


def memcached_argv(port: int, memory_mb: int, threads: int = 4) -> list[str]:
    """The command that runs memcached in a service container (as root, TCP only, all IPs)."""
    if not 0 < port < 65536:
        raise ValueError(f"bad port {port}")
    if memory_mb <= 0:
        raise ValueError("memory_mb must be > 0")
    return [
        MEMCACHED,
        "-u",
        "root",
        "-l",
        "0.0.0.0",
        "-p",
        str(port),
        "-U",
        "0",
        "-m",
        str(memory_mb),
        "-t",
        str(threads),
    ]


def key_name(seed: int, i: int) -> str:
    return f"mecmig:{seed}:{i:08d}"


@contextmanager
def _connect(host: str, port: int, timeout: float) -> Iterator[tuple[socket.socket, BinaryIO]]:
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock.makefile("rb") as reader:
            yield sock, reader
    finally:
        sock.close()


def _readline(reader: BinaryIO) -> bytes:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise MemcachedError(f"connection closed or truncated reply: {line!r}")
    return line[:-2]


def fill(
    host: str,
    port: int,
    n_keys: int,
    value_size: int,
    seed: int,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> dict[str, bytes]:
    """Store `n_keys` values of `value_size` bytes (deterministic in `seed`); what was stored."""
    if not 0 <= value_size <= MAX_VALUE_SIZE:
        raise ValueError(f"value_size must be within 0..{MAX_VALUE_SIZE}")
    rng = random.Random(seed)
    stored: dict[str, bytes] = {}
    with _connect(host, port, timeout) as (sock, reader):
        for first in range(0, n_keys, BATCH):
            batch = [
                (key_name(seed, i), rng.randbytes(value_size))
                for i in range(first, min(n_keys, first + BATCH))
            ]
            request = b"".join(
                b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(v), v) for k, v in batch
            )
            sock.sendall(request)
            for k, v in batch:
                reply = _readline(reader)
                if reply != b"STORED":
                    raise MemcachedError(f"set {k}: {reply.decode(errors='replace')}")
                stored[k] = v
    return stored


def expected_values(n_keys: int, value_size: int, seed: int) -> dict[str, bytes]:
    """What `fill(..., n_keys, value_size, seed)` stores, recomputed (it is deterministic)."""
    rng = random.Random(seed)
    return {key_name(seed, i): rng.randbytes(value_size) for i in range(n_keys)}


def verify(
    host: str,
    port: int,
    expected: Mapping[str, bytes],
    timeout: float = DEFAULT_TIMEOUT_S,
) -> tuple[int, int]:
    """(present with the expected value, missing or different) for every key of `expected`."""
    keys = list(expected)
    present = 0
    with _connect(host, port, timeout) as (sock, reader):
        for first in range(0, len(keys), BATCH):
            batch = keys[first : first + BATCH]
            sock.sendall(b"get " + b" ".join(k.encode() for k in batch) + b"\r\n")
            got: dict[str, bytes] = {}
            while True:
                line = _readline(reader)
                if line == b"END":
                    break
                parts = line.split()
                if len(parts) < 4 or parts[0] != b"VALUE":
                    raise MemcachedError(f"unexpected reply: {line.decode(errors='replace')}")
                size = int(parts[3])
                data = reader.read(size + 2)
                if len(data) != size + 2 or not data.endswith(b"\r\n"):
                    raise MemcachedError("connection closed inside a value")
                got[parts[1].decode()] = data[:-2]
            present += sum(1 for k in batch if got.get(k) == expected[k])
    return present, len(keys) - present


def stats(host: str, port: int, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """memcached's ``stats`` (e.g. ``curr_items``, ``uptime``, ``pid``)."""
    out: dict[str, str] = {}
    with _connect(host, port, timeout) as (sock, reader):
        sock.sendall(b"stats\r\n")
        while True:
            line = _readline(reader)
            if line == b"END":
                return out
            parts = line.decode(errors="replace").split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]
