"""Ask running memhog and sfcfwd instances for their state, all at once, and print it as JSON.

Run from a UE's namespace (a benchmark checks many instances before and after their migrations):
``python -m workloads.state_probe --memhog 10.0.0.61 --sfcfwd 10.0.0.71 ...``. memhogs are asked
first (a ``GET`` on TCP ``--memhog-port``, 7000), then the forwarders (``STATS`` on UDP 9999), so
a memhog behind a forwarder has sent its reply through it before the forwarder counts.

Output: one JSON object, keyed by address: a memhog's ``{"counter", "fingerprint",
"uptime_ms", "asked_at"}`` (``asked_at``: the wall clock when it was asked, so that two
snapshots tell whether its uptime, wall-clock time since its start, kept pace: a restarted
process's falls behind), a forwarder's STATS object, or ``{"error": "..."}`` for one that did
not answer.
Exit 0 when every instance answered, 1 otherwise. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Sequence

from workloads.sfcfwd import ask_stats

TIMEOUT_S = 3.0


def ask_memhog(host: str, port: int = 7000, timeout: float = TIMEOUT_S) -> dict[str, object]:
    """A memhog's ``GET``: its counter, fingerprint and uptime (OSError if it does not answer)."""
    asked_at = time.time()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise OSError(f"{host}:{port} closed the connection before answering")
            data += chunk
        s.sendall(b"QUIT\n")
    counter, fingerprint, uptime = data.decode().split()
    return {
        "counter": int(counter),
        "fingerprint": fingerprint,
        "uptime_ms": int(uptime),
        "asked_at": asked_at,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--memhog", action="append", default=[], metavar="HOST", help="a memhog")
    p.add_argument("--sfcfwd", action="append", default=[], metavar="HOST", help="a forwarder")
    p.add_argument("--memhog-port", type=int, default=7000)
    args = p.parse_args(argv)
    out: dict[str, dict[str, object]] = {}
    for host in args.memhog:
        try:
            out[host] = ask_memhog(host, args.memhog_port)
        except (OSError, ValueError) as exc:
            out[host] = {"error": f"{type(exc).__name__}: {exc}"}
    for host in args.sfcfwd:
        try:
            out[host] = ask_stats(host, timeout=TIMEOUT_S / 3)
        except (OSError, ValueError) as exc:
            out[host] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if all("error" not in v for v in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
