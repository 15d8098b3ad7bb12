"""`mecmig deploy`, `mecmig status` and `mecmig stop` through `mecmig.cli.main`, over in-memory
sites and a fake controller put where the commands get their clients (mecmig.site_access): what
they print, and their exit codes (0 ok, 1 failed or unknown name, 2 bad command line, 3 no agent
or no controller answers)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import mecmig.cli
import mecmig.site_access
from controller.client import ControllerUnreachable
from mecmig.cli import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from migration.site import InstanceSpec, SiteError
from orchestration.api_models import MigrationView
from tests.unit.migration_fakes import FakeClock, FakeSite, connect
from tests.unit.test_instances import record

ROOT = Path(__file__).resolve().parents[2]
EDGE = str(ROOT / "scenarios" / "edge.yaml")
FOREVER = 10**9
# what an agent answers when a service does not start (its last log lines; markup-like text)
START_FAILURE = (
    "site mec1: web did not start: its process is stopped: it exited; removed. Its last "
    "lines:\n  | nginx: [emerg] bind() to 0.0.0.0:80 failed (13: Permission denied)\n"
    "  | [/data/app] exited"
)


class StartFails(FakeSite):
    """A site whose agent refuses to start `web`, with the service's last lines."""

    def create(self, spec: InstanceSpec) -> None:
        if spec.name == "web":
            raise SiteError(START_FAILURE)
        super().create(spec)


class FakeController:
    """What the commands ask of the controller: its health, relocations, the migrations."""

    def __init__(self, base_url: str = "http://ctl", **_: Any) -> None:
        self.base_url = base_url
        self.token = None
        self.scenario = "edge"
        self.up = True
        self.records: list[MigrationView] = []
        self.relocated: list[tuple[str, str, int]] = []

    def _check(self) -> None:
        if not self.up:
            raise ControllerUnreachable(f"cannot reach the controller at {self.base_url}")

    def health(self) -> Any:
        self._check()
        return SimpleNamespace(scenario=self.scenario)

    def relocate(self, instance: str, site: str, port: int) -> Any:
        self._check()
        self.relocated.append((instance, site, port))
        return SimpleNamespace(switchover_ms=1.0)

    def migrations(self) -> list[MigrationView]:
        self._check()
        return self.records


class Rig:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, site_class: type[FakeSite]) -> None:
        clock = FakeClock()
        self.sites = {
            n: site_class(n, f"192.168.0.{i}", clock) for i, n in enumerate(("mec1", "mec2"), 1)
        }
        connect(*self.sites.values())
        self.controller = FakeController()
        self.asked: dict[str, Any] = {}

        def clients(sc: Any, endpoints: Any, token: Any, timeout: float) -> dict[str, FakeSite]:
            self.asked.update(endpoints=endpoints, token=token, timeout=timeout)
            return self.sites

        def controller(url: str, **kw: Any) -> FakeController:
            self.controller.base_url = url
            return self.controller

        monkeypatch.setattr(mecmig.site_access, "site_clients", clients)
        monkeypatch.setattr(mecmig.site_access, "MigrationClient", controller)
        monkeypatch.setattr(mecmig.cli.console, "width", 200)

    def down(self, *names: str) -> None:
        for name in names:
            self.sites[name].unreachable_at = {"status", "create", "destroy"}
            self.sites[name].unreachable_calls = FOREVER

    def creates(self) -> int:
        return sum(len(s.ops("create")) for s in self.sites.values())


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    return Rig(monkeypatch, FakeSite)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--scenario", EDGE])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------- deploy


def test_deploy_without_names_starts_every_instance_at_its_site(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "deploy")
    assert code == EXIT_OK, err
    for name in ("counter", "web", "cache"):
        assert f"{name}: started at mec1 (" in out
        assert rig.sites["mec1"].instances[name].status == "running"
    assert [r[:2] for r in rig.controller.relocated] == [
        ("counter", "mec1"),
        ("web", "mec1"),
        ("cache", "mec1"),
    ]
    assert rig.asked["timeout"] == 600.0 and rig.asked["endpoints"] == {}


def test_deploy_at_a_site_and_the_agents_named(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "deploy", "web", "cache", "--site", "mec2", "--agent", "mec2=http://10.0.0.2:7070"
    )
    assert code == EXIT_OK
    assert "web: started at mec2" in out and "cache: started at mec2" in out
    assert set(rig.sites["mec2"].instances) == {"web", "cache"}
    assert rig.asked["endpoints"] == {"mec2": "http://10.0.0.2:7070"}


def test_a_second_deploy_is_refused_and_the_others_go_on(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "deploy", "counter")[0] == EXIT_OK
    code, out, err = run(capsys, "deploy", "counter", "web", "--site", "mec2")
    assert code == EXIT_FAILED
    assert "counter: not started: counter already runs at mec1: stop it first" in err
    assert "web: started at mec2" in out
    assert "counter" not in rig.sites["mec2"].instances


def test_a_failed_start_prints_what_the_agent_said(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = Rig(monkeypatch, StartFails)
    code, out, err = run(capsys, "deploy")
    assert code == EXIT_FAILED
    assert f"web: not started: {START_FAILURE}" in err, "verbatim: no markup eaten"
    assert "counter: started at mec1" in out and "cache: started at mec1" in out
    assert ("web", "mec1") not in [r[:2] for r in rig.controller.relocated]


def test_deploy_of_unknown_names_does_nothing(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "deploy", "counter", "nope")
    assert code == EXIT_FAILED
    assert "no instance nope in scenario edge (instances: counter, web, cache)" in err
    code, _, err = run(capsys, "deploy", "counter", "--site", "mars")
    assert code == EXIT_FAILED and "no site mars in scenario edge (sites: mec1, mec2)" in err
    assert rig.creates() == 0


def test_deploy_with_no_agent_or_no_controller_is_not_ready(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    rig.controller.up = False
    code, _, err = run(capsys, "deploy")
    assert code == EXIT_ENVIRONMENT
    assert "cannot reach the controller at http://127.0.0.1:8080" in err
    assert "--no-controller" in err
    rig.controller.up = True
    rig.controller.scenario = "default"
    code, _, err = run(capsys, "deploy")
    assert code == EXIT_FAILED and "runs scenario 'default', not 'edge'" in err
    rig.down("mec1", "mec2")
    code, _, err = run(capsys, "deploy", "--no-controller")
    assert code == EXIT_ENVIRONMENT and "no site agent answers" in err
    assert err.count("not started") == 1, "it stops at the first: nothing can be deployed"
    assert rig.creates() == 0


def test_deploy_with_one_agent_down_is_refused(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    rig.down("mec2")
    code, _, err = run(capsys, "deploy", "counter", "--no-controller")
    assert code == EXIT_FAILED
    assert "whether it runs elsewhere cannot be told; site mec2: agent unreachable" in err
    assert rig.creates() == 0


# ---------------------------------------------------------------------------------- status


def test_status_table(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "counter")
    run(capsys, "deploy", "web", "--site", "mec2")
    rig.controller.records = [record("mig-a", "web", "done", 41.7, "postcopy")]
    code, out, _ = run(capsys, "status")
    assert code == EXIT_OK
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "mec1" in lines["counter"] and "running" in lines["counter"]
    assert "mig-a (mec1 -> mec2)" in lines["web"] and "postcopy" in lines["web"]
    assert "42 ms" in lines["web"] and "done" in lines["web"]
    assert "absent" in lines["cache"]
    assert "and the controller at http://127.0.0.1:8080" in " ".join(out.split())


def test_status_json_is_the_rest_apis_shape(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "counter")
    rig.controller.records = [
        record("mig-a", "counter", "done", 10.0),
        record("mig-b", "counter", "rolled_back", 5.0),
    ]
    code, out, _ = run(capsys, "status", "--json")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["scenario"] == "edge" and data["migrations"]["known"] is True
    rows = {r["name"]: r for r in data["instances"]}
    assert rows["counter"]["sites"] == {"mec1": "running", "mec2": "absent"}
    assert rows["counter"]["last_migration"]["id"] == "mig-b"
    assert rows["counter"]["last_migration"]["outcome"] == "rolled_back"
    assert rows["web"]["last_migration"] is None
    assert rig.asked["timeout"] == 10.0, "status asks the agents with a short timeout"


def test_status_names_an_agent_that_does_not_answer(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "deploy", "counter")
    rig.down("mec2")
    rig.controller.up = False
    code, out, _ = run(capsys, "status")
    assert code == EXIT_OK
    assert out.count("mec2 could not say: site mec2: agent unreachable") == 1
    assert "the controller at http://127.0.0.1:8080 did not say" in out
    code, out, _ = run(capsys, "status", "--json")
    data = json.loads(out)
    rows = {r["name"]: r for r in data["instances"]}
    assert rows["web"]["status"] == "unknown" and "mec2" in rows["web"]["unreachable"]
    assert data["migrations"]["known"] is False


def test_status_with_no_agent_is_not_ready(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    rig.down("mec1", "mec2")
    code, out, err = run(capsys, "status", "--no-controller")
    assert code == EXIT_ENVIRONMENT
    assert "mec1 could not say" in out and "no site agent answers" in err


# ---------------------------------------------------------------------------------- stop


def test_stop_removes_it_everywhere(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "counter", "web")
    rig.sites["mec2"].create(InstanceSpec("counter", ("x",), "10.0.0.21", 24, "02:00:0a", 100))
    rig.sites["mec2"].instances["counter"].status = "stopped"
    code, out, _ = run(capsys, "stop", "counter", "web", "cache")
    assert code == EXIT_OK
    assert "counter: removed at mec1 (was running), mec2 (was stopped)" in out
    assert "web: removed at mec1 (was running)" in out
    assert "cache: at no site, nothing to remove" in out
    assert all(not s.instances for s in rig.sites.values())


def test_stop_of_unknown_names_or_nothing(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "counter")
    code, _, err = run(capsys, "stop", "counter", "nope")
    assert code == EXIT_FAILED and "no instance nope" in err
    assert rig.sites["mec1"].instances["counter"].status == "running"
    with pytest.raises(SystemExit) as info:
        main(["stop"])
    assert info.value.code == EXIT_USAGE


def test_stop_that_cannot_ask_a_site(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "counter")
    rig.down("mec2")
    code, out, err = run(capsys, "stop", "counter")
    assert code == EXIT_FAILED
    assert "counter: removed at mec1 (was running)" in out
    assert "counter: may still be at mec2: site mec2: agent unreachable" in err
    rig.down("mec1")
    assert run(capsys, "stop", "counter")[0] == EXIT_ENVIRONMENT


# ------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("command", ["deploy", "status", "stop counter"])
def test_bad_agent_flags_and_token_files_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    argv = command.split()
    code, _, err = run(capsys, *argv, "--agent", "mec9=http://10.0.0.9:7070")
    assert code == EXIT_USAGE and f"mecmig {argv[0]}: " in err and "mec9" in err
    token = tmp_path / "token"
    token.write_text("secret")
    token.chmod(0o644)
    code, _, err = run(capsys, *argv, "--agent-token-file", str(token))
    assert code == EXIT_USAGE and f"chmod 600 {token}" in err


@pytest.mark.parametrize("command", ["deploy", "status", "stop"])
def test_each_command_explains_itself(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "Exit 0" in out and "--scenario" in out and "--agent SITE=URL" in out


# ---------------------------------------------------------------------------------- logs


def test_logs_are_read_where_the_instance_runs_now(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "deploy", "web", "--site", "mec2")[0] == EXIT_OK
    code, out, err = run(capsys, "logs", "web", "-n", "3")
    assert code == EXIT_OK, err
    assert out.splitlines() == [f"web at mec2: line {i}" for i in range(3)]  # FakeSite.logs
    assert "web at mec2: its last 3 lines" in err


def test_logs_of_an_instance_that_runs_nowhere_or_is_unknown_fail(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "logs", "web")
    assert code == EXIT_FAILED and "web runs at no site" in err
    code, _, err = run(capsys, "logs", "nosuch")
    assert code == EXIT_FAILED and "nosuch" in err
    with pytest.raises(SystemExit) as exit_:
        main(["logs", "web", "-n", "0", "--scenario", EDGE])
    assert exit_.value.code == EXIT_USAGE
