"""What the orchestrator puts in a spec of how an instance runs: its user and groups resolved to
numbers (here from injected /etc files), its capabilities, state directories, environment and
working directory as the scenario says; an unknown name stops a deploy before any site acts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ground.capabilities import DEFAULT_CAPABILITIES
from ground.users import Accounts
from orchestration.orchestrator import (
    GUEST_PORT_BASE,
    Orchestrator,
    UnknownAccountName,
    UnknownName,
)
from tests.unit.migration_fakes import FakeClock, FakeSite
from topology.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = Accounts.parse(
    "root:x:0:0::/root:/bin/sh\npostgres:x:105:111::/var/lib/postgresql:/bin/sh\n",
    "root:x:0:\nssl-cert:x:110:postgres\npostgres:x:111:\nadm:x:4:\n",
)


def _orchestrator(accounts: Accounts | None = ACCOUNTS, **cache: Any) -> Orchestrator:
    data = yaml.safe_load((ROOT / "scenarios" / "edge.yaml").read_text())
    data["instances"][2].update(cache)
    sites = {"mec1": FakeSite("mec1", "192.168.0.1", FakeClock())}
    return Orchestrator(parse_scenario(data), sites, accounts=accounts)


def test_by_default_root_podmans_capabilities_and_data() -> None:
    spec = _orchestrator(accounts=None).spec_at("cache", "mec1")  # no /etc read for root
    assert (spec.uid, spec.gid, spec.groups) == (0, 0, ())
    assert spec.capabilities == DEFAULT_CAPABILITIES
    assert (spec.state, spec.env, spec.workdir) == ((), (), "/data")


def test_every_field_from_the_scenario() -> None:
    orch = _orchestrator(
        user="postgres",
        groups=["adm"],
        capabilities=["setuid", "setgid"],
        state=["/var/lib/postgresql", "/var/run/postgresql"],
        env={"PGDATA": "/var/lib/postgresql/15/main", "PGPORT": 5432},
        workdir="/var/lib/postgresql",
    )
    spec = orch.spec_at("cache", "mec1")
    assert (spec.uid, spec.gid, spec.groups) == (105, 111, (110, 4))
    assert spec.capabilities == ("CAP_SETGID", "CAP_SETUID")
    assert spec.state == ("/var/lib/postgresql", "/var/run/postgresql")
    assert spec.env == ("PGDATA=/var/lib/postgresql/15/main", "PGPORT=5432")
    assert spec.workdir == "/var/lib/postgresql"
    assert orch.spec_at("cache", "mec2") == replace(
        spec, port=GUEST_PORT_BASE + 2
    )  # same elsewhere


def test_numbers_need_no_lookup_of_a_name() -> None:
    spec = _orchestrator(accounts=Accounts(), user="33:33", groups=[4]).spec_at("cache", "mec1")
    assert (spec.uid, spec.gid, spec.groups) == (33, 33, (4,))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user": "nginx"}, "cache: no user 'nginx' in /etc/passwd"),
        ({"user": "postgres:dba"}, "cache: no group 'dba' in /etc/group"),
        ({"groups": ["wheel"]}, "cache: no group 'wheel' in /etc/group"),
    ],
)
def test_an_unknown_name_stops_the_deploy_before_any_site_acts(
    fields: dict[str, Any], message: str
) -> None:
    orch = _orchestrator(**fields)
    with pytest.raises(UnknownAccountName, match=message) as info:
        orch.deploy("cache")
    assert "this host's /etc" in str(info.value)
    assert not isinstance(info.value, UnknownName)  # no 404: the instance exists
    site = orch.sites["mec1"]
    assert isinstance(site, FakeSite) and "cache" not in site.instances


def test_the_hosts_files_are_read_once_when_a_name_needs_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[Path] = []

    def of_host(etc: Path = Path("/etc")) -> Accounts:
        reads.append(etc)
        return ACCOUNTS

    monkeypatch.setattr(Accounts, "of_host", staticmethod(of_host))
    orch = _orchestrator(accounts=None, user="postgres")
    assert orch.spec_at("counter", "mec1").uid == 0 and reads == []
    assert orch.spec_at("cache", "mec1").uid == 105
    assert orch.spec_at("cache", "mec1").uid == 105 and len(reads) == 1
