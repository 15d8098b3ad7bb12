"""Integration tests run real OVS (userspace), Mininet, CRIU and runc: they need root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import require


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def prerequisites() -> Iterator[None]:
    """Root, a running OVS and Mininet; in CI a missing one fails the run."""
    require(os.geteuid() == 0, "integration tests need root")
    require(shutil.which("ovs-vsctl") is not None, "Open vSwitch is not installed (bootstrap)")
    ovs = subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True, check=False)
    require(ovs.returncode == 0, "ovs-vswitchd is not running (scripts/bootstrap starts it)")
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        require(False, "Mininet's Python API is not importable (venv without system packages?)")
    yield
