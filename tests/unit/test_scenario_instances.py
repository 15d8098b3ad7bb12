"""How a scenario's instance runs: user, groups, capabilities, state directories, environment
and working directory, each checked with a message under its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ground.capabilities import DEFAULT_CAPABILITIES
from topology.scenario import ScenarioError, parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def _with(**fields: Any) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "scenarios" / "edge.yaml").read_text())
    data["instances"][1].update(fields)
    assert isinstance(data, dict)
    return data


def _problems(**fields: Any) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(_with(**fields), source="t.yaml")
    return dict(info.value.problems)


def test_defaults_are_root_podmans_capabilities_no_state_and_data() -> None:
    web = parse_scenario(_with()).instance("web")
    assert web.user is None and web.groups == ()
    assert web.capabilities == DEFAULT_CAPABILITIES
    assert web.state == () and web.env == () and web.workdir == "/data"


def test_every_field_given() -> None:
    web = parse_scenario(
        _with(
            user="www-data",
            groups=["ssl-cert", 4],
            capabilities=["chown", "CAP_SETUID", "SETGID", "net_bind_service", "CHOWN"],
            state=["/var/lib/nginx/", "/var/log/nginx"],
            env={"LANG": "C.UTF-8", "WORKERS": 2},
            workdir="/var/lib/nginx",
        )
    ).instance("web")
    assert web.user == "www-data" and web.groups == ("ssl-cert", "4")
    assert web.capabilities == ("CAP_CHOWN", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE")
    assert web.state == ("/var/lib/nginx", "/var/log/nginx")
    assert web.env == ("LANG=C.UTF-8", "WORKERS=2")
    assert web.workdir == "/var/lib/nginx"
    assert hash(web)  # the scenario stays immutable and hashable


def test_no_capabilities_at_all() -> None:
    assert parse_scenario(_with(capabilities=[])).instance("web").capabilities == ()


def test_yaml_reads_uid_gid_as_text_not_base_60() -> None:
    """YAML 1.1 reads 33:33 as 2013; the scenario's loader reads it as YAML 1.2 does."""
    text = (ROOT / "scenarios" / "edge.yaml").read_text()
    text = text.replace("    volume: true", "    volume: true\n    user: 33:33\n    groups: [4]")
    web = parse_scenario(text).instance("web")
    assert web.user == "33:33" and web.groups == ("4",)
    text = text.replace("user: 33:33", "user: 999")
    assert parse_scenario(text).instance("web").user == "999"


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"user": "www data"}, "user", "is not a user: expected a name, a uid, or user:group"),
        ({"user": "a:b:c"}, "user", "is not a user"),
        ({"user": True}, "user", "valid string"),
        ({"user": 2**32}, "user", "user and group ids go up to 4294967294"),
        ({"groups": ["a b"]}, "groups[0]", "is not a group"),
        ({"groups": [str(i) for i in range(33)]}, "groups", "at most 32"),
        ({"capabilities": ["FLY"]}, "capabilities", "'FLY' is not a Linux capability (known:"),
        ({"capabilities": "CHOWN"}, "capabilities", "valid tuple"),
        ({"state": ["/usr/share/x"]}, "state", "/usr is the host's, mounted read-only"),
        ({"state": ["/run/postgresql"]}, "state", "declare e.g. /var/run/<name> instead"),
        ({"state": ["/"]}, "state", "'/' cannot be a state directory"),
        ({"state": ["/data/x"]}, "state", "writable already"),
        ({"state": ["var/x"]}, "state", "absolute path"),
        ({"state": ["/var/../etc"]}, "state", "'..'"),
        ({"state": ["/var/a", "/var/a/b"]}, "state", "'/var/a/b' is inside '/var/a'"),
        ({"state": [f"/srv/{i}" for i in range(17)]}, "state", "at most 16"),
        ({"env": {"1A": "x"}}, "env", "'1A' is not a variable name"),
        ({"env": {"A": None}}, "env", "A: the value must be a string or a number"),
        ({"env": ["A=1"]}, "env", "env must be a mapping of NAME: value"),
        ({"workdir": "data"}, "workdir", "a working directory must be an absolute path"),
    ],
)
def test_a_bad_value_is_named_with_its_path(
    fields: dict[str, Any], where: str, message: str
) -> None:
    problems = _problems(**fields)
    key = f"instances[1].{where}"
    assert key in problems, problems
    assert message in problems[key]


def test_a_sync_period_belongs_to_a_stateless_service_with_a_volume() -> None:
    web = parse_scenario(_with(stateless=True, volume=True, sync_period_s=2)).instance("web")
    assert web.sync_period_s == 2.0
    assert parse_scenario(_with()).instance("web").sync_period_s is None
    for fields in ({"stateless": True, "volume": False}, {"volume": True}, {"volume": False}):
        problems = _problems(sync_period_s=1, **fields)
        assert "only a stateless service with a volume" in problems["instances[1]"], problems
    for bad in (0, 0.05, 3601, "soon"):
        problems = _problems(stateless=True, volume=True, sync_period_s=bad)
        assert "instances[1].sync_period_s" in problems, problems
