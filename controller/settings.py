"""How the controller app is configured: environment variables, so that the app can be loaded
into any os-ken process (ours, `mecmig controller`, or an existing deployment's)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ground.defaults import REST_HOST as DEFAULT_REST_HOST
from ground.defaults import REST_PORT as DEFAULT_REST_PORT
from ground.token import CONTROLLER_TOKEN_ENV, TokenFileError, is_loopback, read_token_file


class SettingsError(ValueError):
    """A missing or malformed controller setting."""


def check_rest_host(host: str, token_file: Path | None) -> None:
    """A REST address other machines can reach needs a token (ground.token): SettingsError
    saying what to pass instead."""
    if token_file is None and not is_loopback(host):
        raise SettingsError(
            f"the REST API on {host} would be reachable from other machines: pass --token-file "
            f"PATH ({CONTROLLER_TOKEN_ENV}; a shared secret its clients send too, in a file of "
            "mode 600: `install -m 600 /dev/null PATH && head -c 32 /dev/urandom | base64 > "
            "PATH`), or keep --rest-host 127.0.0.1"
        )


@dataclass(frozen=True)
class Settings:
    """MECMIG_SCENARIO (required), MECMIG_REST_HOST, MECMIG_REST_PORT, MECMIG_STATE_FILE,
    MECMIG_EXTENSIONS (comma-separated `module:function`, see controller.extensions),
    MECMIG_CONTROLLER_TOKEN_FILE (required for a non-loopback MECMIG_REST_HOST)."""

    scenario: Path
    rest_host: str = DEFAULT_REST_HOST
    rest_port: int = DEFAULT_REST_PORT
    state_file: Path | None = None
    extensions: tuple[str, ...] = ()
    token_file: Path | None = None

    def token(self) -> str | None:
        """The REST API's token (None: it listens on loopback without one); SettingsError for a
        token file that cannot be used, or a non-loopback address without one."""
        check_rest_host(self.rest_host, self.token_file)
        if self.token_file is None:
            return None
        try:
            return read_token_file(self.token_file)
        except TokenFileError as exc:
            raise SettingsError(str(exc)) from exc

    @staticmethod
    def token_file_from_env() -> Path | None:
        """The token file MECMIG_CONTROLLER_TOKEN_FILE names (None if unset)."""
        path = os.environ.get(CONTROLLER_TOKEN_ENV)
        return Path(path) if path else None

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
            token_file=cls.token_file_from_env(),
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
        if self.token_file is not None:
            env[CONTROLLER_TOKEN_ENV] = str(self.token_file)
        return env
