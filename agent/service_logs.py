"""What a service writes on stdout and stderr, kept where it can be read and moving with it.

Each `runc run` and `runc restore` of an instance gets two fresh pipes as its stdout and stderr,
read by an `agent.logsink` process that appends both to `xfer/logs/service.log` in the
instance's directory. `xfer/` is what every migration sends, so the log arrives at the
destination with the service, and the destination's sink goes on appending to it. Reading is
`tail` (the agent's `GET /v1/instances/NAME/logs`, `mecmig logs NAME`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from agent.logsink import DEFAULT_MAX_BYTES
from ground.runner import Spawned, SubprocessRunner

LOG_DIR = "logs"  # under the instance's xfer/
LOG_FILE = "service.log"
MAX_TAIL_LINES = 10_000
DEFAULT_TAIL_LINES = 100


def log_file(xfer: Path) -> Path:
    return xfer / LOG_DIR / LOG_FILE


def tail(xfer: Path, lines: int) -> list[str]:
    """The last `lines` lines the service wrote (its rotated file first, then the current)."""
    path = log_file(xfer)
    text = b""
    for part in (path.with_name(path.name + ".1"), path):
        with contextlib.suppress(FileNotFoundError):
            text += part.read_bytes()
    out = text.decode(errors="replace").splitlines()
    return out[-lines:] if lines > 0 else []


class ServiceLogs:
    """Starts the log sinks of one site's instances."""

    def __init__(self, spawner: SubprocessRunner, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.spawner = spawner
        self.max_bytes = max_bytes
        self.sinks: dict[str, Spawned] = {}

    @contextlib.contextmanager
    def output(self, name: str, instance_dir: Path, xfer: Path) -> Iterator[tuple[int, int]]:
        """Stdout and stderr for a `runc run`/`runc restore` of `name` about to run: the write
        ends of two pipes whose read ends a new sink holds; ours close once runc has handed
        them to the container (or failed)."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            sink = self.spawner.spawn(
                [sys.executable, "-m", "agent.logsink", str(log_file(xfer)),
                 "--fd", str(out_r), "--fd", str(err_r), "--max-bytes", str(self.max_bytes)],
                str(instance_dir / "logsink.out"),
                pass_fds=[out_r, err_r],
            )  # fmt: skip
        except BaseException:
            for fd in (out_w, err_w):
                os.close(fd)
            raise
        finally:
            os.close(out_r)
            os.close(err_r)
        self.reap()
        self.sinks[name] = sink
        try:
            yield out_w, err_w
        finally:
            os.close(out_w)
            os.close(err_w)

    def reap(self) -> None:
        """Forget (and reap) the sinks that have ended: their service was dumped or ended."""
        for name, sink in list(self.sinks.items()):
            if not sink.alive():
                del self.sinks[name]

    def stop(self, name: str) -> None:
        """After the instance's container is gone: its sink reads what is left, then ends."""
        sink = self.sinks.pop(name, None)
        if sink is not None and sink.wait(2.0) is None:
            sink.stop(timeout=2)
        self.reap()
