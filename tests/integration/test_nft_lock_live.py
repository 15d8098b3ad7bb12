"""The network lock with the real nft, over a real veth between two namespaces: the lock drops
what is not CRIU's, and a lock opened as our patched CRIU's restore opens it (a rule that
accepts everything first in both chains, patch 0011) lets everything through again and reads
as open (`agent.netns.lock_tables_in`), so the agent deletes it after the restore instead of
reporting a lock left behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from agent.netns import lock_script, lock_tables_in

TABLE = "CRIU-0b5e7a2c-5d1f-4c59-9a8e-1f2a3b4c5d6e"  # a dump's run id: 36 characters
# what CRIU's nftables_network_unlock runs at a restore with patch 0011
OPEN = f"insert rule inet {TABLE} input accept\ninsert rule inet {TABLE} output accept\n"


def _ns(ns: str, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], input=input, capture_output=True, text=True
    )


@pytest.fixture()
def pair() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth: (locked side, peer), 10.77.0.1 and 10.77.0.2."""
    tag = f"mecmig-nft{os.getpid()}"
    a, b = f"{tag}a", f"{tag}b"
    created: list[str] = []
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            created.append(ns)
        subprocess.run(
            ["ip", "link", "add", "nftla", "netns", a, "type", "veth", "peer", "nftlb", "netns", b],
            check=True,
        )
        for ns, dev, addr in ((a, "nftla", "10.77.0.1/24"), (b, "nftlb", "10.77.0.2/24")):
            assert _ns(ns, "ip", "addr", "add", addr, "dev", dev).returncode == 0
            assert _ns(ns, "ip", "link", "set", dev, "up").returncode == 0
        yield a, b
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _reaches(ns: str, addr: str) -> bool:
    return _ns(ns, "ping", "-c", "1", "-W", "1", addr).returncode == 0


def _tables(ns: str) -> dict[str, bool]:
    listing = _ns(ns, "nft", "-j", "list", "ruleset", "inet")
    assert listing.returncode == 0, listing.stderr
    return lock_tables_in(listing.stdout)


def test_an_opened_lock_passes_everything_and_reads_as_open(pair: tuple[str, str]) -> None:
    locked, peer = pair
    assert _reaches(peer, "10.77.0.1")
    done = _ns(locked, "nft", "-f", "-", input=lock_script(TABLE))
    assert done.returncode == 0, done.stderr
    assert _tables(locked) == {TABLE: True}
    assert not _reaches(peer, "10.77.0.1")  # dropped on the way in
    assert not _reaches(locked, "10.77.0.2")  # and on the way out
    done = _ns(locked, "nft", "-f", "-", input=OPEN)
    assert done.returncode == 0, done.stderr
    assert _tables(locked) == {TABLE: False}
    assert _reaches(peer, "10.77.0.1") and _reaches(locked, "10.77.0.2")
    # the agent deletes it then (NetnsError-free, as drop_released runs it)
    assert _ns(locked, "nft", "-f", "-", input=f"delete table inet {TABLE}\n").returncode == 0
    assert _tables(locked) == {}
