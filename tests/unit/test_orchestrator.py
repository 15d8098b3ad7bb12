"""The orchestrator on scenarios/edge.yaml with in-memory sites: ports, specs, where an instance
runs, refused migrations, and a whole migration through the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.engine import DUMP_ESTIMATE_S, MIGRATION_PORT, RESTORE_ESTIMATE_S, MigrationError
from migration.network import Grant
from migration.site import SiteError
from migration.stoprule import final_rate_bps
from migration.timeline import Outcome
from orchestration.orchestrator import GUEST_PORT_BASE, Orchestrator, OrchestratorError
from tests.unit.migration_fakes import FakeClock, FakeNetwork, FakeSite, connect
from topology.scenario import Scenario, load_scenario
from workloads import workload_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def edge() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "edge.yaml")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sites(clock: FakeClock) -> dict[str, FakeSite]:
    s = {name: FakeSite(name, f"192.168.0.{i}", clock) for i, name in enumerate(["mec1", "mec2"])}
    connect(*s.values())
    return s


@pytest.fixture
def net(clock: FakeClock) -> FakeNetwork:
    return FakeNetwork(clock=clock)


@pytest.fixture
def orch(edge: Scenario, sites: dict[str, FakeSite], net: FakeNetwork) -> Orchestrator:
    return Orchestrator(edge, sites, net)


# ---------------------------------------------------------------------------------- ports, specs


def test_port_at_home_site_is_the_models_port(orch: Orchestrator) -> None:
    for name in ("counter", "web", "cache"):
        assert orch.port_at(name, "mec1") == orch.model.attachment(name).port
    ports = [orch.port_at(n, "mec1") for n in ("counter", "web", "cache")]
    assert len(set(ports)) == 3


def test_port_elsewhere_is_guest_base_plus_index(orch: Orchestrator) -> None:
    assert [orch.port_at(n, "mec2") for n in ("counter", "web", "cache")] == [
        GUEST_PORT_BASE,
        GUEST_PORT_BASE + 1,
        GUEST_PORT_BASE + 2,
    ]
    # a guest port collides with no port the model hands out at that switch
    used = {a.port for a in orch.model.attachments}
    assert GUEST_PORT_BASE not in used


def test_spec_at_counter(orch: Orchestrator, edge: Scenario) -> None:
    spec = orch.spec_at("counter", "mec2")
    assert spec.name == "counter"
    assert spec.args == edge.instance("counter").command
    assert spec.args[:2] == ("/usr/bin/python3", "/data/memhog.py")
    assert isinstance(spec.args, tuple)
    assert spec.files == {"memhog.py": str(workload_path("memhog"))}
    assert Path(spec.files["memhog.py"]).is_file()
    assert (spec.ip, spec.prefix) == ("10.0.0.21", 24)
    assert spec.mac == edge.mac_of("counter")
    assert spec.port == GUEST_PORT_BASE
    assert orch.spec_at("counter", "mec1").port == orch.model.attachment("counter").port


def test_spec_at_other_workloads(orch: Orchestrator) -> None:
    assert orch.spec_at("web", "mec1").files == {"httpstream.py": str(workload_path("httpstream"))}
    assert orch.spec_at("cache", "mec1").files == {}  # Debian's memcached: nothing to copy
    assert orch.spec_at("cache", "mec1").args[0] == "/usr/bin/memcached"


def test_spec_at_unknown_instance(orch: Orchestrator) -> None:
    with pytest.raises(OrchestratorError, match="nope"):
        orch.spec_at("nope", "mec1")


# ---------------------------------------------------------------------------------- where, deploy


def test_where(orch: Orchestrator, sites: dict[str, FakeSite]) -> None:
    assert orch.where("counter") is None
    orch.deploy("counter")
    assert orch.where("counter") == "mec1"
    sites["mec1"].instances["counter"].status = "stopped"
    assert orch.where("counter") is None
    sites["mec2"].create(orch.spec_at("counter", "mec2"))
    assert orch.where("counter") == "mec2"


def test_deploy_at_home_points_the_traffic_home(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork
) -> None:
    # the controller may still have the instance where it last ran: deploy always relocates
    assert orch.deploy("counter") == "mec1"
    assert sites["mec1"].instances["counter"].spec == orch.spec_at("counter", "mec1")
    assert net.calls == [("relocate", "counter", "mec1", orch.model.attachment("counter").port)]


def test_deploy_without_network(edge: Scenario, sites: dict[str, FakeSite]) -> None:
    orch = Orchestrator(edge, sites)
    assert orch.deploy("web") == "mec1"
    assert sites["mec1"].instances["web"].status == "running"


def test_deploy_elsewhere_relocates(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork
) -> None:
    assert orch.deploy("web", "mec2") == "mec2"
    assert sites["mec2"].instances["web"].spec.port == GUEST_PORT_BASE + 1
    assert net.calls == [("relocate", "web", "mec2", GUEST_PORT_BASE + 1)]


def test_unknown_site_agent(orch: Orchestrator) -> None:
    with pytest.raises(OrchestratorError, match="no agent for site 'mec9'"):
        orch.site("mec9")


def test_teardown_is_best_effort(orch: Orchestrator, sites: dict[str, FakeSite]) -> None:
    orch.deploy("counter")
    sites["mec2"].fail_at = {"destroy"}
    orch.teardown("counter")
    assert "counter" not in sites["mec1"].instances
    assert sites["mec2"].ops("destroy") == [("destroy", "counter")]


# ---------------------------------------------------------------------------------- migrate


def test_migrate_refuses_not_running(orch: Orchestrator) -> None:
    with pytest.raises(OrchestratorError, match="not running at any site"):
        orch.migrate("counter", "mec2")


def test_migrate_refuses_unknown_instance(orch: Orchestrator) -> None:
    with pytest.raises(OrchestratorError, match="no instance called 'nope'"):
        orch.migrate("nope", "mec2")


def test_migrate_refuses_same_site(orch: Orchestrator, net: FakeNetwork) -> None:
    orch.deploy("counter")
    net.calls.clear()
    with pytest.raises(OrchestratorError, match="already runs at mec1"):
        orch.migrate("counter", "mec1")
    assert net.calls == []


def test_migrate_refuses_unknown_site(orch: Orchestrator, sites: dict[str, FakeSite]) -> None:
    orch.deploy("counter")
    with pytest.raises(OrchestratorError, match="no site called 'mec9'"):
        orch.migrate("counter", "mec9")
    assert [c for c in sites["mec2"].calls if c[0] != "status"] == []  # nothing was started


def test_migrate_refuses_site_without_agent(edge: Scenario, clock: FakeClock) -> None:
    only = FakeSite("mec1", "192.168.0.1", clock)
    orch = Orchestrator(edge, {"mec1": only})
    orch.deploy("counter")
    with pytest.raises(OrchestratorError, match="no agent for site 'mec2'"):
        orch.migrate("counter", "mec2")


@pytest.mark.parametrize("strategy", ["cold", "precopy"])
def test_migrate_through_the_engine(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork, strategy: str
) -> None:
    orch.deploy("counter")
    net.calls.clear()
    sites["mec1"].send_bytes = [60_000_000, 8_000_000, 1_000_000]
    events: list[str] = []
    record = orch.migrate(
        "counter",
        "mec2",
        strategy=strategy,
        rate_bps=50_000_000,
        listener=lambda ev, rec, ph: events.append(ev),
    )
    assert record.outcome is Outcome.DONE
    assert (record.instance, record.source, record.destination, record.strategy) == (
        "counter",
        "mec1",
        "mec2",
        strategy,
    )
    assert orch.where("counter") == "mec2"
    assert "counter" not in sites["mec1"].instances
    moved = sites["mec2"].instances["counter"]
    assert moved.spec == orch.spec_at("counter", "mec2")
    # a cold migration's one copy is sized from the service's memory to fit the budget
    want = (
        50_000_000
        if strategy == "precopy"
        else int(
            final_rate_bps(
                orch.sc.instance("counter").memory,
                1000.0,
                DUMP_ESTIMATE_S,
                RESTORE_ESTIMATE_S,
                50_000_000,
            )
        )
    )
    # cold's pages go to the destination's page server port: the agents' pair is reserved
    port = MIGRATION_PORT if strategy == "precopy" else None
    assert net.ops("reserve")[0][1:5] == ("mec1", "mec2", want, port)
    assert net.ops("relocate") == [("relocate", "counter", "mec2", GUEST_PORT_BASE)]
    assert net.grants == {}
    assert events[-1] == "finished" and "point_of_no_return" in events
    if strategy == "precopy":
        assert record.metrics["rounds"] == 3
        assert net.ops("resize")[0][1] == Grant(1, 50_000_000)


def test_migrate_back_home_uses_the_models_port(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork
) -> None:
    orch.deploy("cache", "mec2")
    record = orch.migrate("cache", "mec1")
    assert record.outcome is Outcome.DONE
    home = orch.model.attachment("cache").port
    assert sites["mec1"].instances["cache"].spec.port == home
    assert net.ops("relocate")[-1] == ("relocate", "cache", "mec1", home)


def test_migrate_failure_rolls_back_and_raises(
    orch: Orchestrator, sites: dict[str, FakeSite], net: FakeNetwork
) -> None:
    orch.deploy("counter")
    sites["mec2"].fail_at = {"restore"}
    with pytest.raises(MigrationError) as ei:
        orch.migrate("counter", "mec2")
    assert ei.value.record.outcome is Outcome.ROLLED_BACK
    assert orch.where("counter") == "mec1"
    assert "counter" not in sites["mec2"].instances
    assert net.ops("relocate")[-1] == (
        "relocate",
        "counter",
        "mec1",
        orch.port_at("counter", "mec1"),
    )


def test_migrate_without_network(edge: Scenario, sites: dict[str, FakeSite]) -> None:
    orch = Orchestrator(edge, sites)
    orch.deploy("counter")
    assert orch.migrate("counter", "mec2").outcome is Outcome.DONE
    assert orch.where("counter") == "mec2"


def test_site_error_is_what_the_fakes_raise(sites: dict[str, FakeSite]) -> None:
    with pytest.raises(SiteError):
        sites["mec1"].spec("counter")


def test_each_migration_gets_its_own_id(orch: Orchestrator) -> None:
    orch.deploy("counter")
    first = orch.migrate("counter", "mec2", strategy="cold")
    second = orch.migrate("counter", "mec1", strategy="cold")
    assert first.id != second.id and first.id.startswith("mig-")
    assert orch.migrate("counter", "mec2", strategy="cold", migration_id="mine").id == "mine"
