"""The engine's controller links (orchestration.links): a reservation the path cannot carry in
full takes what the path has left, and says so once, as information (issue 9: it was a WARNING
carrying the 409), over the REST client and in-process alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.client import ConflictError
from controller.facade import Northbound
from controller.runtime import Runtime
from controller.state import FabricState
from controller.store import StateStore
from migration.network import Grant
from orchestration.links import FacadeLink, RestControllerLink
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
GBIT = 1_000_000_000


class Records(logging.Handler):
    """What the links log, caught at their own logger (whatever other tests did to the root)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()


@pytest.fixture
def link_log() -> Iterator[Records]:
    logger = logging.getLogger("orchestration.links")
    handler = Records()
    saved = (logger.level, logger.disabled)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    yield handler
    logger.removeHandler(handler)
    logger.level, logger.disabled = saved


def _only_info(link_log: Records) -> list[str]:
    ours = link_log.records
    assert all(r.levelno == logging.INFO for r in ours), [r.getMessage() for r in ours]
    return [r.getMessage() for r in ours]


def test_facade_link_takes_the_residual_and_says_so_once(link_log: Records) -> None:
    runtime = Runtime(
        FabricState(load_scenario(ROOT / "scenarios" / "edge.yaml")), StateStore(None)
    )
    try:
        link = FacadeLink(Northbound(runtime))
        grant = link.reserve("mec1", "mec2", 3 * GBIT, 7100, "mig-a")
        assert grant is not None and grant.rate_bps == GBIT  # the links are 1 Gbit/s
        messages = _only_info(link_log)
        assert len(messages) == 1 and "mig-a" in messages[0] and "left" in messages[0]
        link_log.clear()
        assert link.reserve("mec1", "mec2", GBIT, 7100, "mig-b") is None  # nothing left
        assert len(_only_info(link_log)) == 1
        link_log.clear()
        assert link.resize(grant, 2 * GBIT) == grant  # cannot grow: kept, said once
        assert len(_only_info(link_log)) == 1
    finally:
        runtime.shutdown()


class RefusingClient:
    """A ControllerClient stand-in whose first reservation is refused with a residual."""

    base_url = "http://ctl"

    def __init__(self, residual_bps: int) -> None:
        self.residual_bps = residual_bps
        self.asked: list[int] = []

    def reserve(self, src: str, dst: str, rate: int, **_: Any) -> Any:
        self.asked.append(rate)
        if rate > self.residual_bps:
            body = {"error": "no room", "context": {"residual_bps": self.residual_bps}}
            raise ConflictError(409, "no room on core-mec2", body)
        return SimpleNamespace(id=7, rate_bps=rate)


def test_rest_link_takes_the_residual_and_says_so_once(link_log: Records) -> None:
    client = RefusingClient(residual_bps=60_000_000)
    link = RestControllerLink(client)  # type: ignore[arg-type]
    assert link.reserve("mec1", "mec2", 200_000_000, None, "mig-c") == Grant(7, 60_000_000)
    assert client.asked == [200_000_000, 60_000_000]
    messages = _only_info(link_log)
    assert len(messages) == 1 and "60.0 Mbit/s left" in messages[0]


def test_a_rate_above_any_link_is_asked_as_the_bound_then_cut_to_the_path() -> None:
    from controller.limits import MAX_RATE_BPS

    runtime = Runtime(
        FabricState(load_scenario(ROOT / "scenarios" / "edge.yaml")), StateStore(None)
    )
    try:
        link = FacadeLink(Northbound(runtime))
        # a tiny budget makes the engine ask for ~450 Gbit/s: the controller refuses such a
        # request outright (422), so the link asks for the bound and takes what the path has
        grant = link.reserve("mec1", "mec2", 450 * GBIT, 7100, "mig-big")
        assert grant is not None and grant.rate_bps == GBIT
        assert link.resize(grant, 10 * MAX_RATE_BPS) == grant
    finally:
        runtime.shutdown()
    client = RefusingClient(residual_bps=GBIT)
    assert RestControllerLink(client).reserve("a", "b", 450 * GBIT, None, "m") == Grant(7, GBIT)  # type: ignore[arg-type]
    assert client.asked == [MAX_RATE_BPS, GBIT]


def test_a_relocation_with_switches_not_connected_is_incomplete() -> None:
    from types import SimpleNamespace

    import pytest

    from migration.network import RelocationIncomplete
    from orchestration.links import _moved

    assert _moved("web", SimpleNamespace(switchover_ms=2.5, switches_pending=[])) == 2.5
    assert _moved("web", SimpleNamespace(switchover_ms=2.5)) == 2.5  # an older controller
    with pytest.raises(RelocationIncomplete, match="switches s2 are not connected") as err:
        _moved("web", SimpleNamespace(switchover_ms=2.5, switches_pending=["s2"]))
    assert err.value.switches == ["s2"]
