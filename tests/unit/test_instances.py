"""The orchestrator's status, deploy and stop of the scenario's instances (scenarios/edge.yaml,
in-memory sites): what every site holds, a second copy refused before any site acts, a stop that
removes what each site holds and names the sites it could not ask, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.site import SiteError
from orchestration.api_models import MigrationView
from orchestration.orchestrator import (
    AlreadyDeployed,
    Orchestrator,
    SitesUnreachable,
    UnknownName,
)
from orchestration.placement import LastMigration, Placement, last_migrations
from tests.unit.migration_fakes import FakeClock, FakeNetwork, FakeSite, connect
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
FOREVER = 10**9  # calls an unreachable fake stays unreachable for


@pytest.fixture(scope="module")
def edge() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "edge.yaml")


@pytest.fixture
def sites() -> dict[str, FakeSite]:
    clock = FakeClock()
    s = {n: FakeSite(n, f"192.168.0.{i}", clock) for i, n in enumerate(["mec1", "mec2"], 1)}
    connect(*s.values())
    return s


@pytest.fixture
def net() -> FakeNetwork:
    return FakeNetwork()


@pytest.fixture
def orch(edge: Scenario, sites: dict[str, FakeSite], net: FakeNetwork) -> Orchestrator:
    return Orchestrator(edge, sites, net)


def down(site: FakeSite) -> None:
    """Its agent stops answering (every call of every operation)."""
    site.unreachable_at = {"status", "create", "destroy"}
    site.unreachable_calls = FOREVER


# ---------------------------------------------------------------------------------- status


def test_status_says_where_each_instance_is_at_every_site(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    orch.deploy("counter")
    orch.deploy("web", "mec2")
    sites["mec2"].create(orch.spec_at("cache", "mec2"))
    sites["mec2"].instances["cache"].status = "stopped"  # a failed start's leftover
    rows = {r.name: r for r in orch.status()}
    assert list(rows) == ["counter", "web", "cache"]
    assert (rows["counter"].site, rows["counter"].status, rows["counter"].home) == (
        "mec1",
        "running",
        "mec1",
    )
    assert rows["counter"].placement.at == {"mec1": "running", "mec2": "absent"}
    assert (rows["web"].site, rows["web"].home) == ("mec2", "mec1")
    assert (rows["cache"].site, rows["cache"].status) == (None, "stopped")
    assert rows["cache"].placement.present == {"mec2": "stopped"}
    assert all(r.last_migration is None and not r.placement.errors for r in rows.values())


def test_status_names_an_unreachable_agent_and_asks_it_once(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    orch.deploy("counter")
    down(sites["mec2"])
    rows = {r.name: r for r in orch.status()}
    # counter runs where an agent answered: running; the others could be at mec2: unknown
    assert (rows["counter"].site, rows["counter"].status) == ("mec1", "running")
    assert (rows["web"].site, rows["web"].status) == (None, "unknown")
    for row in rows.values():
        assert set(row.placement.errors) == {"mec2"}
        assert (
            "mec2" in row.placement.errors["mec2"] and "unreachable" in row.placement.errors["mec2"]
        )
    assert sites["mec2"].unreachable_calls == FOREVER - 1, "a dead agent is asked once"


def test_an_agent_that_refuses_the_question_is_named_too(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    sites["mec1"].fail_at = {"status"}
    sites["mec1"].fail_on = None
    row = orch.status()[0]
    assert row.status == "unknown" and "injected failure" in row.placement.errors["mec1"]
    assert row.placement.at == {"mec2": "absent"}


def test_status_carries_the_last_migration_it_is_given(orch: Orchestrator) -> None:
    last = {"web": LastMigration("mig-1", "done", "cold", "mec1", "mec2", 12.5, 300.0)}
    rows = {r.name: r for r in orch.status(last)}
    assert rows["web"].last_migration == last["web"] and rows["counter"].last_migration is None


def record(
    mid: str, instance: str, outcome: str, frozen_ms: float | None, strategy: str = "precopy"
) -> MigrationView:
    """A migration's record as /v1/migrations gives it."""
    return MigrationView(
        id=mid,
        instance=instance,
        source="mec1",
        destination="mec2",
        strategy=strategy,
        mode="-",
        outcome=outcome,
        total_ms=900.0,
        phases=[],
        metrics={} if frozen_ms is None else {"frozen_ms": frozen_ms},
    )


def test_the_last_migration_is_the_last_record_of_each_instance() -> None:
    last = last_migrations(
        [record("a", "counter", "done", 40.0), record("b", "web", "failed", None)]
        + [record("c", "counter", "rolled_back", 7.0)]
    )
    assert (last["counter"].id, last["counter"].outcome, last["counter"].frozen_ms) == (
        "c",
        "rolled_back",
        7.0,
    )
    assert last["web"].frozen_ms is None and set(last) == {"counter", "web"}


def test_a_placements_status_in_order_of_precedence() -> None:
    assert Placement("x", {"a": "stopped", "b": "running"}).status == "running"
    assert Placement("x", {"a": "absent", "b": "paused"}, {"c": "down"}).status == "paused"
    assert Placement("x", {"a": "absent"}, {"c": "down"}).status == "unknown"
    assert Placement("x", {"a": "absent", "b": "absent"}).status == "absent"
    assert Placement("x", {"a": "running", "b": "running"}).running == ("a", "b")


# ---------------------------------------------------------------------------------- deploy


def test_deploying_every_instance_starts_each_at_its_home(
    orch: Orchestrator, sites: dict[str, FakeSite], edge: Scenario
) -> None:
    for inst in edge.instances:
        assert orch.deploy(inst.name) == inst.site
    assert set(sites["mec1"].instances) == {"counter", "web", "cache"}
    assert all(r.status == "running" and r.site == "mec1" for r in orch.status())


@pytest.mark.parametrize("second_at", [None, "mec1", "mec2"])
def test_a_second_deploy_of_a_running_instance_is_refused_before_any_site_acts(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork, second_at: str | None
) -> None:
    orch.deploy("counter")
    calls = {n: len(s.ops("create")) for n, s in sites.items()}
    relocations = len(net.calls)
    with pytest.raises(AlreadyDeployed, match="counter already runs at mec1: stop it first"):
        orch.deploy("counter", second_at)
    assert {n: len(s.ops("create")) for n, s in sites.items()} == calls
    assert len(net.calls) == relocations
    assert orch.where("counter") == "mec1" and "counter" not in sites["mec2"].instances


def test_a_copy_left_at_a_site_refuses_a_deploy_too(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    sites["mec2"].create(orch.spec_at("counter", "mec2"))
    sites["mec2"].instances["counter"].status = "stopped"
    with pytest.raises(AlreadyDeployed, match="counter is stopped at mec2 .*stop it first"):
        orch.deploy("counter")
    assert "counter" not in sites["mec1"].instances


def test_deploy_is_refused_when_an_agent_cannot_say(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    down(sites["mec2"])
    with pytest.raises(SitesUnreachable, match="site mec2: agent unreachable") as info:
        orch.deploy("counter")
    assert not info.value.everywhere and "counter" not in sites["mec1"].instances
    down(sites["mec1"])
    with pytest.raises(SitesUnreachable) as info:
        orch.deploy("counter")
    assert info.value.everywhere


def test_deploy_of_unknown_names(orch: Orchestrator) -> None:
    with pytest.raises(UnknownName, match="no instance called 'nope' in scenario edge"):
        orch.deploy("nope")
    with pytest.raises(UnknownName, match="no agent for site 'mec9'"):
        orch.deploy("counter", "mec9")


def test_a_failed_start_reports_the_agents_message(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork
) -> None:
    sites["mec1"].fail_at = {"create"}
    with pytest.raises(SiteError, match="site mec1: injected failure in create"):
        orch.deploy("counter")
    assert net.calls == [], "no traffic pointed at a service that did not start"


# ---------------------------------------------------------------------------------- stop


def test_stop_removes_it_where_it_runs_and_its_leftovers(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    orch.deploy("counter")
    sites["mec2"].create(orch.spec_at("counter", "mec2"))
    sites["mec2"].instances["counter"].status = "stopped"
    report = orch.stop("counter")
    assert report.complete and report.removed == {"mec1": "running", "mec2": "stopped"}
    assert all("counter" not in s.instances for s in sites.values())
    assert orch.status()[0].status == "absent"
    again = orch.stop("counter")  # nothing left: nothing removed, nothing failed
    assert again.complete and again.removed == {}
    assert orch.deploy("counter") == "mec1", "stopped: it can be deployed again"


def test_stop_names_the_sites_it_could_not_ask_or_clean(
    orch: Orchestrator, sites: dict[str, FakeSite]
) -> None:
    orch.deploy("counter")
    down(sites["mec2"])
    report = orch.stop("counter")
    assert report.removed == {"mec1": "running"} and set(report.unreachable) == {"mec2"}
    assert not report.complete and report.failed == {}
    sites["mec2"].unreachable_calls = 0
    orch.deploy("counter")
    sites["mec1"].fail_at = {"destroy"}
    sites["mec1"].fail_on = None
    report = orch.stop("counter")
    assert report.removed == {} and "injected failure" in report.failed["mec1"]


def test_stop_of_an_unknown_name(orch: Orchestrator, sites: dict[str, FakeSite]) -> None:
    with pytest.raises(UnknownName, match="instances: counter, web, cache"):
        orch.stop("nope")
    assert all(not s.calls for s in sites.values())
