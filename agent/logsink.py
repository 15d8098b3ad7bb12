"""A service's log writer: copies what the service writes on its stdout and stderr (pipes whose
read ends it was given) into one log file, rotated at a size, until both pipes end.

    python -m agent.logsink FILE --fd 3 --fd 4 [--max-bytes N]

A service container's stdio cannot be a host file (CRIU looks the file up in the container's
mounts and fails), but it can be a pipe: runc records each pipe of a checkpointed container, and
`runc restore` hands the restored process its own stdio in their place. So each site runs one
of these per instance, next to `runc run` and `runc restore`; it is a process of its own, so a
restarted agent does not break the service's pipes (a service writing to a pipe nobody reads
would get SIGPIPE), and it ends by itself when the service's process ends or is dumped.

The file lives in the instance's directory that travels with it (agent.service_logs), so the
log follows the service from site to site. Writes are unbuffered: when the service is frozen,
everything it wrote is in the file, or in the pipe, which CRIU carries in the image.
"""

from __future__ import annotations

import argparse
import os
import selectors
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MAX_BYTES = 1 << 20  # then FILE becomes FILE.1 (one generation kept)
CHUNK = 65536


class Sink:
    """Appends to `path`; when it would pass `max_bytes`, it becomes `path.1` first."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        if self.size and self.size + len(data) > self.max_bytes:
            os.close(self.fd)
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self.size = 0
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n

    def close(self) -> None:
        os.close(self.fd)


def copy(fds: Sequence[int], sink: Sink) -> None:
    """Copy from every fd into `sink` until all of them are at their end."""
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    while sel.get_map():
        for key, _ in sel.select():
            fd = int(key.fd)
            data = os.read(fd, CHUNK)
            if data:
                sink.write(data)
            else:
                sel.unregister(fd)
                os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.logsink", description=__doc__)
    parser.add_argument("file", type=Path, help="the log file (appended to)")
    parser.add_argument("--fd", type=int, action="append", required=True, help="a pipe to read")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    args = parser.parse_args(argv)
    sink = Sink(args.file, max(4096, args.max_bytes))
    try:
        copy(args.fd, sink)
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
