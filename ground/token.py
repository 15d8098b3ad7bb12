"""The shared secrets of mecmig's HTTP APIs: read from a file only its owner can read, sent as a
header (`X-Mecmig-Token`). The site agents and the controller's REST API use the same rules.

An API that listens on a non-loopback TCP address can be reached from other machines, so it
refuses to start without a token, and then refuses requests that do not carry it (401, nothing
changes). What each API exempts differs: an agent's Unix socket (mode 0600) and loopback
addresses need none, though a request that presents one must present the right one
(`needs_token`); the controller, given a token, wants it on every request. A token
authenticates the caller; it encrypts nothing (plain HTTP): keep this traffic on a management
network.

Where the token files are named: `MECMIG_AGENT_TOKEN_FILE` (the agents' token, which the
controller's `/v1/migrations` sends to them) and `MECMIG_CONTROLLER_TOKEN_FILE` (the
controller's own, which its clients send). Two secrets, so that an agent's host, which holds
the agents' token, cannot change reservations; name one file in both to use one secret.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from pathlib import Path

TOKEN_HEADER = "X-Mecmig-Token"
AGENT_TOKEN_ENV = "MECMIG_AGENT_TOKEN_FILE"  # the controller's /v1/migrations reads it here
CONTROLLER_TOKEN_ENV = "MECMIG_CONTROLLER_TOKEN_FILE"  # the controller and its clients
TOKEN_ENV = AGENT_TOKEN_ENV  # its older name
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096
MAKE_ONE = "e.g. `head -c 32 /dev/urandom | base64 > FILE` after `install -m 600 /dev/null FILE`"


class TokenFileError(ValueError):
    """A token file that cannot be used (which file, and what to do about it)."""


def read_token_file(path: str | Path) -> str:
    """The token in `path`: one line of 16 to 4096 visible ASCII characters, in a file that is
    neither group- nor world-accessible (mode 0600 or stricter)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise TokenFileError(f"token file {p}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise TokenFileError(f"token file {p}: not a regular file")
    if st.st_mode & 0o077:
        raise TokenFileError(
            f"token file {p} is accessible to group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): run `chmod 600 {p}`"
        )
    if st.st_size > MAX_TOKEN_CHARS + 2:
        raise TokenFileError(f"token file {p}: longer than {MAX_TOKEN_CHARS} characters")
    try:
        token = p.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"token file {p}: cannot read it as ASCII text ({exc})") from exc
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        raise TokenFileError(
            f"token file {p}: the token must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} "
            f"characters long (it has {len(token)}); {MAKE_ONE}"
        )
    if not all("!" <= ch <= "~" for ch in token):
        raise TokenFileError(
            f"token file {p}: the token must be one line of visible ASCII characters, no spaces"
        )
    return token


def token_from_env(variable: str) -> str | None:
    """The token in the file the environment variable `variable` names; None if it is unset
    or empty; TokenFileError if that file cannot be used."""
    path = os.environ.get(variable)
    return read_token_file(path) if path else None


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or `localhost`) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_token(server: tuple[str, int | None] | None) -> bool:
    """The agents' rule: whether a request that came in on `server` (ASGI's local address of
    the connection) must carry the token: TCP on a non-loopback address. A Unix socket has no
    port."""
    if server is None or server[1] is None:
        return False
    return not is_loopback(server[0])


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of what a request presented with the expected token."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))
