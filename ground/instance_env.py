"""An instance's environment: the variables a scenario gives it, over a default PATH."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ENV = 64
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 1024
ENV_NAME_PATTERN = rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_ENV_NAME - 1}}}$"
# one variable as the process gets it, NAME=value (execve takes no NUL)
ENV_ITEM_PATTERN = rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_ENV_NAME - 1}}}=[^\x00]{{0,{MAX_ENV_VALUE}}}$"
_NAME = re.compile(ENV_NAME_PATTERN)


def env_items(variables: Mapping[str, object]) -> tuple[str, ...]:
    """`variables` as NAME=value items, in their order; ValueError naming what is wrong. A
    value may be a string or a number (YAML reads `PGPORT: 5432` as one); not a flag or null."""
    if len(variables) > MAX_ENV:
        raise ValueError(f"at most {MAX_ENV} variables")
    items = []
    for name, value in variables.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"{str(name)[:40]!r} is not a variable name (letters, digits and '_', not "
                f"starting with a digit, at most {MAX_ENV_NAME} characters)"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{name}: the value must be a string or a number")
        text = str(value)
        if "\0" in text or len(text) > MAX_ENV_VALUE:
            raise ValueError(f"{name}: a value has at most {MAX_ENV_VALUE} characters, no NUL")
        items.append(f"{name}={text}")
    return tuple(items)


def env_names(items: Iterable[str]) -> list[str]:
    """The names of NAME=value items, in order."""
    return [item.partition("=")[0] for item in items]


def process_env(items: Iterable[str]) -> tuple[str, ...]:
    """The process's environment: DEFAULT_PATH unless `items` give PATH, then `items`."""
    items = tuple(items)
    has_path = "PATH" in env_names(items)
    return items if has_path else (DEFAULT_PATH, *items)
