"""Migration ids: unique across processes and restarts, sortable by start time, short to read."""

from __future__ import annotations

import secrets
import time


def new_migration_id(now: float | None = None) -> str:
    """`mig-20261130-213455-3fa2c1b80e`: the UTC start second and 40 random bits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"mig-{stamp}-{secrets.token_hex(5)}"
