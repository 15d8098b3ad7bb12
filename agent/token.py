"""Moved to `ground.token` (the controller's REST API uses the same rules); this name is kept
for the modules and tests that still import it from here."""

from ground.token import (
    MAKE_ONE,
    TOKEN_ENV,
    TOKEN_HEADER,
    TokenFileError,
    is_loopback,
    read_token_file,
    token_matches,
)

__all__ = [
    "MAKE_ONE",
    "TOKEN_ENV",
    "TOKEN_HEADER",
    "TokenFileError",
    "is_loopback",
    "read_token_file",
    "token_matches",
]
