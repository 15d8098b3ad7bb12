"""Extensions: what the process that runs the controller adds to its REST API.

The controller's code imports nothing above it. The orchestration layer (`/v1/migrations`) is
injected: `mecmig controller` names it in the settings (`MECMIG_EXTENSIONS`, a comma-separated list
of `module:function`), and the app calls each function with the northbound facade, the scenario
and the controller's own REST URL (and, by keyword, the location service: follow-me listens to
its handovers); it returns a FastAPI router mounted next to ours.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Protocol

from fastapi import APIRouter

from controller.facade import Northbound
from controller.location_service import LocationService
from topology.scenario import Scenario


class Extension(Protocol):
    def __call__(
        self,
        northbound: Northbound,
        scenario: Scenario,
        rest_url: str,
        *,
        location: LocationService | None = None,
    ) -> APIRouter: ...


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


def mount_extension(
    extension: Extension,
    northbound: Northbound,
    scenario: Scenario,
    rest_url: str,
    location: LocationService | None,
) -> APIRouter:
    """Call `extension`, handing it the location service if it takes one (`location=`): an
    extension written before there was one still loads."""
    params = inspect.signature(extension).parameters.values()
    if any(p.name == "location" or p.kind is p.VAR_KEYWORD for p in params):
        return extension(northbound, scenario, rest_url, location=location)
    plain: Callable[[Northbound, Scenario, str], APIRouter] = extension
    return plain(northbound, scenario, rest_url)
