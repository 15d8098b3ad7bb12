"""How the controller app is configured: environment variables, so that the app can be loaded
into any os-ken process (ours, `mecmig controller`, or an existing deployment's)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ground.defaults import REST_HOST as DEFAULT_REST_HOST
from ground.defaults import REST_PORT as DEFAULT_REST_PORT


class SettingsError(ValueError):
    """A missing or malformed controller setting."""


@dataclass(frozen=True)
class Settings:
    """MECMIG_SCENARIO (required), MECMIG_REST_HOST, MECMIG_REST_PORT, MECMIG_STATE_FILE,
    MECMIG_EXTENSIONS (comma-separated `module:function`, see controller.extensions)."""

    scenario: Path
    rest_host: str = DEFAULT_REST_HOST
    rest_port: int = DEFAULT_REST_PORT
    state_file: Path | None = None
    extensions: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        scenario = os.environ.get("MECMIG_SCENARIO")
        if not scenario:
            raise SettingsError("MECMIG_SCENARIO must name the scenario file")
        port = os.environ.get("MECMIG_REST_PORT", str(DEFAULT_REST_PORT))
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise SettingsError(f"MECMIG_REST_PORT={port!r} is not a port number")
        state = os.environ.get("MECMIG_STATE_FILE")
        return cls(
            scenario=Path(scenario),
            rest_host=os.environ.get("MECMIG_REST_HOST", DEFAULT_REST_HOST),
            rest_port=int(port),
            state_file=Path(state) if state else None,
            extensions=tuple(
                x.strip() for x in os.environ.get("MECMIG_EXTENSIONS", "").split(",") if x.strip()
            ),
        )

    def to_env(self) -> dict[str, str]:
        env = {
            "MECMIG_SCENARIO": str(self.scenario),
            "MECMIG_REST_HOST": self.rest_host,
            "MECMIG_REST_PORT": str(self.rest_port),
        }
        if self.state_file is not None:
            env["MECMIG_STATE_FILE"] = str(self.state_file)
        if self.extensions:
            env["MECMIG_EXTENSIONS"] = ",".join(self.extensions)
        return env
