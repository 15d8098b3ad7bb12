"""A running instance's volume, synced to its replicas while both run (issue 12, seed 002).

A storage-dependent stateless service (`volume: true`) serves from its primary; its replicas
at other sites get the primary's /volume every sync period, so that a handover finds the data
at most a period old. The sync is the migration copy (`agent.transfer`) of the volume's
directory alone, never of /data or of checkpoint images:

- the replica's agent listens (`start`) with the replica's own volume directory as the
  destination: a transfer writes each changed file beside it and renames it into place
  (`transfer_wire.mirror_commit`), so the running replica sees whole files, old or new; files
  the primary no longer has go;
- the primary's agent sends (`send`): in full the first time to that peer (or when asked:
  a replica made anew there), then only the blocks that changed since its last sync there (a
  manifest per peer: each replica holds what it was last sent, not what another replica was);
- `finish` waits for the transfer on the replica's side.
"""

from __future__ import annotations

import threading
from pathlib import Path

from agent.errors import Conflict, NotPending
from agent.transfer import Manifest, Receiver, TransferStats, send_dir

WAIT_S = 600.0


class VolumeSync:
    """One site's volume syncs: what it receives (one per instance at a time) and, per
    instance and peer, the manifest of what it last sent there."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.receivers: dict[str, Receiver] = {}
        self.manifests: dict[tuple[str, str], Manifest] = {}
        self._lock = threading.Lock()

    def start(self, instance: str, volume: Path, port: int) -> int:
        """Receive `instance`'s volume into `volume` on `port` (0: any); the port."""
        if not volume.is_dir():
            raise Conflict(f"{instance} has no volume here")
        rx = Receiver(volume, host=self.host, port=port)
        with self._lock:
            old = self.receivers.pop(instance, None)
            if old is not None:
                old.close()
            bound = rx.start()
            self.receivers[instance] = rx
        return bound

    def finish(self, instance: str, timeout: float = WAIT_S) -> TransferStats:
        with self._lock:
            rx = self.receivers.pop(instance, None)
        if rx is None:
            raise NotPending(f"no volume of {instance} is being received")
        try:
            return rx.wait(timeout=timeout)
        finally:
            rx.close()

    def send(
        self, instance: str, volume: Path, peer: str, port: int, *, full: bool = False
    ) -> TransferStats:
        """Send `volume` to the sync receiving it at `peer`:`port`: what changed since the
        last sync there, or all of it the first time (or with `full`: a new replica there).
        A failed send forgets that peer's manifest: the next one goes in full."""
        if not volume.is_dir():
            raise Conflict(f"{instance} has no volume here")
        key = (instance, peer)
        with self._lock:
            previous = None if full else self.manifests.get(key)
            self.manifests.pop(key, None)
        stats, manifest = send_dir(volume, peer, port, previous=previous)
        with self._lock:
            self.manifests[key] = manifest
        return stats

    def forget(self, instance: str) -> None:
        """The instance is gone from this site: its receiver closed, its manifests dropped."""
        with self._lock:
            rx = self.receivers.pop(instance, None)
            for key in [k for k in self.manifests if k[0] == instance]:
                del self.manifests[key]
        if rx is not None:
            rx.close()
