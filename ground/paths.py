"""Where mecmig keeps things on a machine, and which CRIU it uses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("MECMIG_RUN_DIR", "/run/mecmig"))
STATE_DIR = Path(os.environ.get("MECMIG_STATE_DIR", "/var/lib/mecmig"))


class CriuMissing(RuntimeError):
    """No CRIU 4.2.1 where we look for it."""


def criu_binary() -> Path:
    """MECMIG_CRIU, else the bootstrap's build in .deps, else `criu` on PATH."""
    candidates = [
        os.environ.get("MECMIG_CRIU"),
        str(PROJECT_ROOT / ".deps/criu/sbin/criu"),
        shutil.which("criu"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise CriuMissing("CRIU not found: run scripts/bootstrap (it builds CRIU 4.2.1 into .deps)")


def agent_socket(scenario: str, site: str) -> Path:
    """The Unix socket a site agent serves its API on."""
    return RUN_DIR / "agents" / f"{scenario}-{site}.sock"


def site_root(scenario: str, site: str) -> Path:
    """Where a site agent keeps its instances."""
    return STATE_DIR / "sites" / scenario / site
