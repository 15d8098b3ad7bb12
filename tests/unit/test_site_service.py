"""The site side in-process: `SiteService` is a `Site` (as `AgentClient` is), its refusals are
`SiteError`s that name the site, the step and the instance; runc and CRIU are faked."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.container import SiteContainers
from agent.errors import BadRequest, NotPending, StepFailed, UnknownInstance
from agent.netns import ContainerNetwork
from agent.runc import Runc
from agent.service import SiteService
from ground.runner import CommandError, Result
from migration.site import Site, SiteError
from orchestration.agent_client import AgentClient
from tests.unit.migration_fakes import make_spec
from tests.unit.test_predump_chain import FakeRuncRunner


def _protocol_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(value)
        for name, value in vars(Site).items()
        if callable(value) and not name.startswith("_")
    }


def _params(sig: inspect.Signature) -> list[tuple[str, Any, bool]]:
    """(name, kind, has a default) of every parameter but self."""
    return [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in sig.parameters.values()
        if p.name != "self"
    ]


def test_the_protocol_is_what_this_test_reads() -> None:
    methods = _protocol_methods()
    assert {"spec", "status", "checkpoint", "lazy_checkpoint", "tx_bytes"} <= set(methods)
    assert len(methods) >= 20
    assert {"name", "address"} <= set(Site.__annotations__)


@pytest.mark.parametrize("impl", [SiteService, AgentClient], ids=lambda c: c.__name__)
@pytest.mark.parametrize("method", sorted(_protocol_methods()))
def test_implements_every_method_of_the_site_protocol(impl: type, method: str) -> None:
    expected = _protocol_methods()[method]
    assert hasattr(impl, method), f"{impl.__name__} has no {method}()"
    actual = inspect.signature(getattr(impl, method))
    assert _params(actual) == _params(expected), f"{impl.__name__}.{method}{actual}"


@pytest.mark.parametrize("impl", [SiteService, AgentClient], ids=lambda c: c.__name__)
def test_both_also_answer_health(impl: type) -> None:
    """The orchestrator asks the source's health for dirty-memory tracking."""
    assert list(inspect.signature(impl.health).parameters) == ["self"]


class FailingRunner(FakeRuncRunner):
    """runc checkpoint fails, as it does when CRIU refuses."""

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 60.0,
        input: str | None = None,
        netns_pid: int | None = None,
        env: Mapping[str, str] | None = None,
        detached_stdio: bool = False,
    ) -> Result:
        if argv[0] == "runc" and "checkpoint" in argv:
            raise CommandError(argv, 1, "criu failed: type NOTIFY errno 0")
        return super().run(argv, check=check, input=input, netns_pid=netns_pid)


def _service(tmp_path: Path, runner: FakeRuncRunner | None = None) -> SiteService:
    runner = runner or FakeRuncRunner()
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    c = SiteContainers(
        "mec1", tmp_path / "sites", "s1", runc, ContainerNetwork(runner, site="mec1")
    )
    return SiteService(c, "10.0.0.1", 7100)


@pytest.fixture()
def service(tmp_path: Path) -> SiteService:
    return _service(tmp_path)


def test_is_a_site(service: SiteService) -> None:
    site: Site = service  # mypy checks this line too
    assert site.name == "mec1" and site.address == "10.0.0.1"


def test_create_describe_health_destroy(service: SiteService) -> None:
    spec = make_spec("svc")
    service.create(spec)
    assert service.status("svc") == "running"
    assert service.describe("svc") == (spec, "running")
    assert service.spec("svc") == spec
    assert service.health() == {"site": "mec1", "instances": ["svc"], "mem_dirty_track": False}
    service.destroy("svc")
    assert service.health()["instances"] == []
    service.destroy("svc")  # no error: nothing to remove


def test_an_instance_it_does_not_hold_is_unknown_and_named(service: SiteService) -> None:
    service.create(make_spec("svc"))
    with pytest.raises(UnknownInstance) as info:
        service.describe("counter")
    assert str(info.value) == "site mec1: no instance 'counter' here (it holds: svc)"
    assert isinstance(info.value, SiteError) and info.value.status == 404
    for step in (
        lambda: service.checkpoint("counter", leave_running=False),
        lambda: service.restore("counter"),
        lambda: service.set_link("counter", True),
        lambda: service.start_receive("counter"),
        lambda: service.resume("counter"),
    ):
        with pytest.raises(UnknownInstance):
            step()


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "", "-x", "x" * 64])
def test_names_that_walk_out_of_the_site_are_refused(service: SiteService, name: str) -> None:
    service.create(make_spec("svc"))
    with pytest.raises(BadRequest, match="not an instance name"):
        service.destroy(name)
    assert service.health()["instances"] == ["svc"]


def test_finishing_what_was_not_started_is_a_conflict(service: SiteService) -> None:
    with pytest.raises(NotPending, match="site mec1: nothing is being received for svc"):
        service.finish_receive("svc")
    with pytest.raises(NotPending, match="no lazy dump of svc in progress"):
        service.finish_lazy_checkpoint("svc")
    assert service.finish_pages("svc") == 0.0  # nothing lazy: nothing to wait for


def test_a_failing_step_says_site_step_instance_and_why(tmp_path: Path) -> None:
    service = _service(tmp_path, FailingRunner())
    service.create(make_spec("svc"))
    with pytest.raises(StepFailed) as info:
        service.checkpoint("svc", leave_running=True)
    text = str(info.value)
    assert text.startswith("site mec1: checkpoint svc: runc checkpoint svc failed")
    assert "criu failed" in text and info.value.status == 500
    with pytest.raises(StepFailed, match="does not have dirty memory tracking"):
        service.pre_dump("svc", 1)
    with pytest.raises(BadRequest):
        service.pre_dump("svc", 0)


def test_a_step_that_fails_inside_the_containers_keeps_its_message(service: SiteService) -> None:
    service.create(make_spec("svc"))
    with pytest.raises(StepFailed) as info:
        service.create(make_spec("svc"))
    # ContainerError's own "site mec1: " is not repeated
    assert str(info.value) == "site mec1: create svc: instance svc already exists"


def test_cpu_and_tx_counters(service: SiteService) -> None:
    busy, total = service.cpu_jiffies()
    assert 0 <= busy <= total and total > 0
    assert service.tx_bytes() >= 0
