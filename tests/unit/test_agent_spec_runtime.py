"""How an instance runs, at a site agent's API: uid, gid, groups, capabilities, state directories,
environment and working directory are bounded like every other field (a bad one gets a 422 that
names it and changes nothing: test_agent_bounds.Site.refused), documented, and round-trip through
the agent and its client unchanged; a spec written before these fields existed still reads."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from ground.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from migration.site import InstanceSpec
from orchestration.agent_client import AgentClient
from tests.unit import test_agent_bounds
from tests.unit.migration_fakes import make_spec
from tests.unit.test_agent_bounds import SPEC, Site

site = test_agent_bounds.site  # the fixture: site mec1 holding `svc`, faked under tmp_path
RUNTIME: dict[str, Any] = {
    "uid": 105,
    "gid": 111,
    "groups": [110, 4],
    "capabilities": ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"],
    "state": ["/var/lib/postgresql", "/var/run/postgresql"],
    "env": ["PGDATA=/var/lib/postgresql/15/main", "LANG=C.UTF-8", "EMPTY="],
    "workdir": "/var/lib/postgresql",
}


def _spec(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **RUNTIME, **changes}


BAD = [
    pytest.param({"uid": -1}, "uid", id="uid-negative"),
    pytest.param({"uid": 2**32 - 1}, "uid", id="uid-minus-one"),
    pytest.param({"uid": "0"}, "uid", id="uid-string"),
    pytest.param({"gid": True}, "gid", id="gid-bool"),
    pytest.param({"groups": list(range(33))}, "groups", id="groups-many"),
    pytest.param({"groups": [-4]}, "groups", id="groups-negative"),
    pytest.param({"capabilities": ["CHOWN"]}, "capabilities", id="cap-not-canonical"),
    pytest.param({"capabilities": ["CAP_FLY"]}, "capabilities", id="cap-unknown"),
    pytest.param({"capabilities": ["CAP_KILL", "CAP_KILL"]}, "capabilities", id="cap-twice"),
    pytest.param({"capabilities": "CAP_KILL"}, "capabilities", id="cap-string"),
    pytest.param({"capabilities": [*ALL_CAPABILITIES, "CAP_KILL"]}, "capabilities", id="caps-many"),
    pytest.param({"state": ["/usr/lib/x"]}, "state", id="state-host"),
    pytest.param({"state": ["/run/pg"]}, "state", id="state-scratch"),
    pytest.param({"state": ["/data"]}, "state", id="state-data"),
    pytest.param({"state": ["/"]}, "state", id="state-root"),
    pytest.param({"state": ["var/x"]}, "state", id="state-relative"),
    pytest.param({"state": ["/var/../etc"]}, "state", id="state-dotdot"),
    pytest.param({"state": ["/var/x\n"]}, "state", id="state-newline"),
    pytest.param({"state": ["/var/a", "/var/a/b"]}, "state", id="state-nested"),
    pytest.param({"state": ["/var/a", "/var/a"]}, "state", id="state-twice"),
    pytest.param({"state": [f"/srv/{i}" for i in range(17)]}, "state", id="state-many"),
    pytest.param({"env": ["1A=x"]}, "env", id="env-name"),
    pytest.param({"env": ["A"]}, "env", id="env-no-value"),
    pytest.param({"env": ["A=\x00"]}, "env", id="env-nul"),
    pytest.param({"env": ["A=1", "A=2"]}, "env", id="env-twice"),
    pytest.param({"env": [f"V{i}=x" for i in range(65)]}, "env", id="env-many"),
    pytest.param({"env": {"A": "1"}}, "env", id="env-mapping"),
    pytest.param({"workdir": "data"}, "workdir", id="workdir-relative"),
    pytest.param({"workdir": "/a/../b"}, "workdir", id="workdir-dotdot"),
    pytest.param({"workdir": "/a/"}, "workdir", id="workdir-slash"),
]


@pytest.mark.parametrize(("change", "where"), BAD)
def test_a_bad_runtime_field_gets_422_and_nothing_is_created(
    site: Site, change: dict[str, Any], where: str
) -> None:
    answer = site.refused("POST", "/v1/instances", 422, body=_spec(**change))
    assert any(p["path"].startswith(where) for p in answer["problems"]), answer
    target = "/v1/instances/{name}/prepare-target"
    site.refused(
        "POST", "/v1/instances/web/prepare-target", 422, body=_spec(**change), template=target
    )


def test_a_spec_round_trips_through_the_agent_and_its_client(site: Site) -> None:
    client = AgentClient("mec1", "10.0.0.1", url="http://testserver", http=site.http)
    spec = InstanceSpec.from_dict(_spec(files={}))
    client.create(spec)
    assert client.spec("web") == spec
    assert site.service.containers.spec("web") == spec
    assert isinstance(client.spec("web").state, tuple)


def test_omitted_fields_take_the_defaults(site: Site) -> None:
    assert site.http.post("/v1/instances", json=SPEC).status_code == 201
    spec = site.service.containers.spec("web")
    assert (spec.uid, spec.gid, spec.groups, spec.state, spec.env) == (0, 0, (), (), ())
    assert spec.capabilities == DEFAULT_CAPABILITIES and spec.workdir == "/data"


def test_no_capabilities_is_none(site: Site) -> None:
    assert site.http.post("/v1/instances", json=_spec(capabilities=[])).status_code == 201
    assert site.service.containers.spec("web").capabilities == ()


def test_json_round_trip_and_a_spec_from_before_these_fields() -> None:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in RUNTIME.items()}
    spec = make_spec(**fields)
    assert InstanceSpec.from_json(spec.to_json()) == spec
    old = {k: v for k, v in json.loads(spec.to_json()).items() if k not in RUNTIME}
    assert InstanceSpec.from_json(json.dumps(old)) == make_spec()
    assert asdict(InstanceSpec.from_dict(json.loads(spec.to_json()))) == asdict(spec)


def test_the_document_gives_every_bound(site: Site) -> None:
    spec = site.doc["components"]["schemas"]["SpecBody"]["properties"]
    assert (spec["uid"]["minimum"], spec["uid"]["maximum"]) == (0, 2**32 - 2)
    assert spec["gid"]["maximum"] == 2**32 - 2
    assert spec["groups"]["maxItems"] == 32 and spec["groups"]["items"]["maximum"] == 2**32 - 2
    caps = spec["capabilities"]
    assert caps["items"]["enum"] == list(ALL_CAPABILITIES) and caps["uniqueItems"] is True
    assert caps["maxItems"] == len(ALL_CAPABILITIES)
    assert caps["default"] == list(DEFAULT_CAPABILITIES)
    assert spec["state"]["maxItems"] == 16 and spec["state"]["uniqueItems"] is True
    assert spec["state"]["items"]["pattern"] and spec["state"]["items"]["maxLength"] == 1024
    assert spec["env"]["maxItems"] == 64 and spec["env"]["items"]["pattern"].startswith(
        "^[A-Za-z_]"
    )
    assert spec["workdir"]["pattern"] and spec["workdir"]["default"] == "/data"
