"""Workload programs that run inside service containers, and where to find them.

Each workload is ONE self-contained Python file using only the standard library of Debian's
python3: a container sees the host's /usr read-only but neither this project nor its venv, so
the migration code copies the file into the instance's /data and runs
``/usr/bin/python3 /data/<name>.py ...``.

- ``memhog``: anonymous memory of ``--size`` bytes dirtied at ``--dirty-rate`` bytes/s, a
  counter ticking every 10 ms, a fingerprint of a seeded 1 MiB region, and a line protocol
  (``GET``, ``PING``, ``STATS``) on ``--port`` (default 7000) over reusable TCP connections.
- ``httpstream``: an HTTP/1.1 server on ``--port`` (default 8080) with ``/stream?bytes=N&rate=R``
  (a deterministic body paced to R bytes/s), ``/counter``, ``/stats`` and ``/health``.

- ``sfcfwd``: a chain function forwarding in user space (a packet socket; CAP_NET_RAW), counting
  and filtering per flow, with ``--memory`` of seeded memory; ``STATS`` on UDP ``--control-port``.
- ``usercount``: a per-user counter on a volume (seed 003's user-state app): ``/hit/<user>``,
  ``/count/<user>``; its state file named by its environment (``USERCOUNT_FILE``).
- ``volcount``: a counter (and a log) on the volume, read and written at every request
  (``/hit``, ``/count``): a storage-dependent stateless service whose replicas are synced.
- ``pgserver``: Debian's PostgreSQL with its stock configuration, its cluster made on first
  start in the instance's state directory /var/lib/postgresql (run it as user postgres).

The first two accept ``--ready-file PATH`` (written as ``"<pid> <port>"`` once listening) and
``--port 0`` (a free port).
"""

from __future__ import annotations

from pathlib import Path

WORKLOADS = ("memhog", "httpstream", "pgserver", "sfcfwd", "usercount", "volcount")


def workload_path(name: str) -> Path:
    """The file to copy into a container's /data for workload `name`."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})")
    return Path(__file__).resolve().parent / f"{name}.py"
