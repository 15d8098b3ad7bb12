"""Which host files an instance's spec may copy into its /data, and under which names.

A spec's `files` maps a name in the instance's /data to a file on the agent's host. Unchecked,
that copies any host file (`/etc/shadow`, another instance's images) to where the service,
and the next site it migrates to, can read it. So a name must be a plain file name (no `/`, not
`.` or `..`), and a source must be a regular file inside an allowed directory once every
symlink in its path is resolved: the project's `workloads/` (the programs the orchestrator
copies, e.g. memhog.py), plus the directories the agent's operator names (`mecmig agent
--files-from DIR`, repeatable, or MECMIG_AGENT_FILES_FROM, directories separated by `:`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import workloads

FILES_FROM_ENV = "MECMIG_AGENT_FILES_FROM"
WORKLOADS_DIR = Path(workloads.__file__).resolve().parent
# a name in /data: a plain file name (the directory it lands in is the instance's own)
FILE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_FILE_NAME = re.compile(FILE_NAME_PATTERN)


class FileNotAllowed(ValueError):
    """A `files` entry the agent refuses: which one, and what is allowed."""


def allowed_dirs(
    extra: Iterable[Path | str] = (), env: Mapping[str, str] = os.environ
) -> tuple[Path, ...]:
    """The directories sources may come from: workloads/, `extra`, then MECMIG_AGENT_FILES_FROM's
    (each resolved; an empty entry is skipped)."""
    named = [*extra, *env.get(FILES_FROM_ENV, "").split(os.pathsep)]
    dirs = [WORKLOADS_DIR, *(Path(d).resolve() for d in named if str(d))]
    return tuple(dict.fromkeys(dirs))


def checked_files(files: Mapping[str, str], dirs: Iterable[Path] | None) -> dict[str, str]:
    """`files` with each source resolved (what is checked is what gets copied); FileNotAllowed
    for a name that is not a plain file name, or a source that is not a regular file inside
    one of `dirs`. `dirs` None: the names only (a migration's target copies nothing: its /data
    arrives from the source, and the sources need not exist on its host)."""
    roots = tuple(dirs) if dirs is not None else None
    out: dict[str, str] = {}
    for name, source in files.items():
        if not _FILE_NAME.fullmatch(name):
            raise FileNotAllowed(
                f"files: {name[:80]!r} is not a plain file name for /data (letters, digits, "
                "'_', '.', '-'; at most 128 characters; no '/')"
            )
        out[name] = source if roots is None else str(_allowed_source(name, source, roots))
    return out


def _allowed_source(name: str, source: str, roots: tuple[Path, ...]) -> Path:
    where = ", ".join(str(r) for r in roots)
    if "\0" in source or not os.path.isabs(source):
        raise FileNotAllowed(f"files.{name}: the source must be an absolute path")
    try:
        real = Path(source).resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is None or not any(real.is_relative_to(root) for root in roots):
        raise FileNotAllowed(
            f"files.{name}: {source[:200]!r} is not a file in the directories this agent copies "
            f"from ({where}; more with --files-from DIR or {FILES_FROM_ENV})"
        )
    if not real.is_file():
        raise FileNotAllowed(f"files.{name}: {source[:200]!r} is not a regular file")
    return real
