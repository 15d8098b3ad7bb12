"""A service that holds a file lock moves, and holds it still (issue 14: what CRIU can dump).

CRIU refuses to dump a process that holds a file lock unless it is told to handle them
(`--file-locks`); mecmig always tells it, at every dump and restore, so a lock moves with the
service. Here Redis runs under flock(1), which holds an exclusive lock on /data/lock for as long
as Redis lives (the way a service keeps a second copy of itself from starting): under every
live strategy the counter and the connection survive, and at each destination the lock is
still held (a second `flock -n` inside the instance fails).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from tests.integration.server_hops import hop_all
from topology.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
REDIS = (
    "/usr/bin/flock --exclusive /data/lock /usr/bin/redis-server /etc/redis/redis.conf "
    "--daemonize no --supervised no --bind 0.0.0.0 --protected-mode no --pidfile /run/r.pid "
    "--logfile /dev/stdout"
)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Orchestrator, Any]]:
    here = tmp_path_factory.mktemp("locks")
    data = yaml.safe_load((ROOT / "scenarios" / "servers.yaml").read_text())
    data["name"] = "locks"
    data["instances"] = [
        {"name": "locked", "site": "mec1", "command": REDIS, "memory": "64MiB",
         "ip": "10.0.0.51", "ports": [6379], "state": ["/var/lib/redis"]}
    ]  # fmt: skip
    scenario = here / "locks.yaml"
    scenario.write_text(yaml.safe_dump(data))
    sc = load_scenario(scenario)
    with (
        make_testbed(scenario, instance_hosts=False) as tb,
        SiteAgents(tb.emu, scenario, log_dir=here / "agents") as agents,
    ):
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        yield sc, orch, tb.emu.host("ue1")
        orch.teardown("locked")


def lock_held(site: str) -> bool:
    """Whether /data/lock is locked inside the instance (a non-blocking flock there fails)."""
    done = subprocess.run(
        ["runc", "--root", f"/run/mecmig/runc/locks-{site}", "exec", "locked",
         "/usr/bin/flock", "--nonblock", "--exclusive", "/data/lock", "/bin/true"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 1


def test_a_service_holding_a_file_lock_moves_with_its_lock(bed: Any) -> None:
    sc, orch, ue = bed
    orch.deploy("locked")
    assert lock_held("mec1")
    result, records, where = hop_all(sc, orch, ue, "locked", "redis", 6379)
    assert result["same_connection"] and result["failures"] == 0, json.dumps(result)
    assert result["counter_consistent"] and result["last_value"] == result["replies"], result
    assert where == "mec1" and lock_held("mec1")
    orch.teardown("locked")
