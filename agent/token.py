"""The agents' shared secret: read from a file only its owner can read, sent as a header.

An agent whose API listens on a non-loopback TCP address can be reached from other machines,
so it refuses requests that do not carry the token (401, nothing changes). Its Unix socket
(mode 0600) and loopback addresses are reachable from this machine only and need none, but a
request that presents one must present the right one. The token authenticates the orchestrator;
it does not encrypt anything (plain HTTP): keep agents' API traffic on a management network.
"""

from __future__ import annotations

import hmac
import ipaddress
import stat
from pathlib import Path

TOKEN_HEADER = "X-Mecmig-Token"
TOKEN_ENV = "MECMIG_AGENT_TOKEN_FILE"  # the controller's /v1/migrations reads its token here
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


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or `localhost`) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of what a request presented with the agent's token."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))
