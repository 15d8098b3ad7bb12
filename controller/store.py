"""Where the controller keeps its state between runs: one JSON file, replaced atomically."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateStore:
    """A JSON document on disk; `save` writes a temporary file and renames it over the old one."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The saved document, or None when there is none (or no path was configured)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.error("cannot read saved state %s (%s); starting from the scenario", self.path, exc)
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        """Write `data`; a crash mid-write leaves the previous document intact."""
        # compact: json's C encoder (an indent takes its Python one, ten times slower, and the
        # state is saved on every change)
        self.save_text(json.dumps(data, sort_keys=True, separators=(",", ":")))

    def save_text(self, text: str) -> None:
        """Write a document already encoded; a crash mid-write leaves the previous one intact."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
