"""Extensions: what the process that runs the controller adds to its REST API.

The controller's code imports nothing above it. The orchestration layer (`/v1/migrations`) is
injected: `mecmig controller` names it in the settings (`MECMIG_EXTENSIONS`, a comma-separated list
of `module:function`), and the app calls each function with the northbound facade, the scenario
and the controller's own REST URL; it returns a FastAPI router mounted next to ours.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from fastapi import APIRouter

from controller.facade import Northbound
from topology.scenario import Scenario


class Extension(Protocol):
    def __call__(self, northbound: Northbound, scenario: Scenario, rest_url: str) -> APIRouter: ...


class ExtensionError(ValueError):
    """An extension that cannot be loaded (named in the message)."""


def load_extension(spec: str) -> Extension:
    """`"package.module:function"` -> that function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ExtensionError(f"extension {spec!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExtensionError(f"extension {spec!r}: cannot import {module_name}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ExtensionError(f"extension {spec!r}: {module_name} has no function {attr}")
    return fn  # type: ignore[no-any-return]
