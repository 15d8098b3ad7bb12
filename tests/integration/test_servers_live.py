"""Real Debian servers as instances, with their stock configurations (issue 14), on real OVS,
os-ken, runc and CRIU (scenarios/servers.yaml):

- nginx (`/etc/nginx/nginx.conf` as shipped: a root master on port 80 whose workers run as
  www-data) and Redis (as user redis) start, and deploy waits until they answer;
- each moves mec1 -> mec2 -> mec1 -> ... under every live strategy while a client at ue1 keeps
  ONE connection open (a keep-alive GET / every 5 ms for nginx, an INCR every 5 ms for Redis);
  the connection survives every hop, Redis's counter is the client's last value, and nginx's
  access log (a state directory, written by the workers) holds a line for every answered GET;
- what a service writes on stdout and stderr is readable where it runs now (its log moved);
- a service that does not start fails its deploy with its own last lines, and leaves nothing.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ground.paths import site_root
from migration.site import SiteError
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from tests.integration import server_hops
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "scenarios" / "servers.yaml"
STRATEGIES = ("cold", "precopy", "postcopy", "hybrid")
WWW_DATA = 33


@dataclass
class Bed:
    sc: Scenario
    orch: Orchestrator
    ue: Any
    logs: Path


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    logs = tmp_path_factory.mktemp("agents")
    sc = load_scenario(SERVERS)
    with (
        make_testbed(SERVERS, instance_hosts=False) as tb,
        SiteAgents(tb.emu, SERVERS, log_dir=logs) as agents,
    ):
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        yield Bed(sc, orch, tb.emu.host("ue1"), logs)


def uids_of(site: str, instance: str) -> list[int]:
    """The real uids of every process of the instance's container (its runc state's pid and
    that process's descendants)."""
    state = subprocess.run(
        ["runc", "--root", f"/run/mecmig/runc/servers-{site}", "state", instance],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    first = int(json.loads(state.stdout)["pid"])
    todo, seen = [first], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children")
        todo += [int(c) for c in children.read_text().split()] if children.exists() else []
    uids = []
    for pid in seen:
        status = Path(f"/proc/{pid}/status").read_text()
        uids.append(int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1]))
    return uids


def hop_all(
    bed: Bed, instance: str, protocol: str, port: int, interval_ms: float = 5.0
) -> tuple[dict[str, Any], str]:
    """Every live strategy in turn under one client connection; the probe's result and the
    site the instance ends at."""
    result, _, where = server_hops.hop_all(
        bed.sc, bed.orch, bed.ue, instance, protocol, port, interval_ms
    )
    return result, where


def test_nginx_with_its_stock_configuration_moves_under_every_strategy(bed: Bed) -> None:
    bed.orch.teardown("web")
    bed.orch.deploy("web")  # returns once port 80 listens
    uids = uids_of("mec1", "web")
    assert uids[0] == 0 and WWW_DATA in uids[1:], uids  # a root master, www-data workers

    # nginx closes a keep-alive connection after 1000 requests (keepalive_requests, as
    # shipped): a GET every 20 ms keeps the whole run on one connection
    result, where = hop_all(bed, "web", "http", 80, interval_ms=20)
    assert result["same_connection"] and result["failures"] == 0, json.dumps(result)
    assert result["replies"] > 100, json.dumps(result)
    # the access log is a state directory the workers write: it moved with every hop, and
    # it holds a line per answered GET (and per GET still in flight at the end, at most)
    log = site_root("servers", where) / "web" / "xfer" / "state" / "var" / "log" / "nginx"
    lines = (log / "access.log").read_text().splitlines()
    assert result["replies"] <= len(lines) <= result["sent"], (len(lines), result)
    assert all('"GET / HTTP/1.1" 404' in line for line in lines[-10:])
    bed.orch.teardown("web")


def test_redis_as_its_own_user_keeps_its_counter_and_its_log(bed: Bed) -> None:
    bed.orch.teardown("kv")
    bed.orch.deploy("kv")  # returns once redis-cli ping answers
    import pwd

    redis_uid = pwd.getpwnam("redis").pw_uid
    assert set(uids_of("mec1", "kv")) == {redis_uid}

    result, where = hop_all(bed, "kv", "redis", 6379)
    assert result["same_connection"] and result["failures"] == 0, json.dumps(result)
    assert result["counter_consistent"] and result["last_value"] == result["replies"], result
    # what Redis printed when it started at mec1 is readable at the site it runs at now
    lines = bed.orch.site(where).logs("kv", 200)  # type: ignore[attr-defined]
    assert any("Ready to accept connections" in line for line in lines), lines[-5:]
    bed.orch.teardown("kv")


def psql(bed: Bed, sql: str) -> str:
    ip = str(bed.sc.instance("db").ip)
    proc = bed.ue.popen(
        ["psql", "-h", ip, "-U", "postgres", "-At", "-c", sql],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return str(out.decode()).strip()


def test_postgresql_as_its_own_user_keeps_its_table_and_its_sequence(bed: Bed) -> None:
    bed.orch.teardown("db")
    bed.orch.deploy("db")  # initdb, then postgres; returns once 5432 listens
    import pwd

    assert set(uids_of("mec1", "db")) == {pwd.getpwnam("postgres").pw_uid}
    psql(
        bed, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g"
    )
    digest = "SELECT count(*), sum(id), md5(string_agg(v, '' ORDER BY id)) FROM t"
    before = psql(bed, digest)
    assert before.startswith("10000|50005000|"), before

    result, where = hop_all(bed, "db", "postgres", 5432)
    assert result["same_connection"] and result["failures"] == 0, json.dumps(result)
    assert result["counter_consistent"] and result["last_value"] == result["replies"], result
    assert psql(bed, digest) == before  # every row, byte for byte
    assert bed.orch.where("db") == where
    bed.orch.teardown("db")


def test_a_service_that_does_not_start_fails_its_deploy_with_its_own_words(bed: Bed) -> None:
    web = bed.sc.instance("web")
    broken = web.model_copy(
        update={"name": "broken", "ip": ipaddress.IPv4Address("10.0.0.39"),
                "command": ("/usr/sbin/nginx", "-g", "daemon off;", "-c", "/etc/nginx/none.conf")}
    )  # fmt: skip
    sc = bed.sc.model_copy(update={"instances": [*bed.sc.instances, broken]})
    orch = Orchestrator(sc, bed.orch.sites, bed.orch.network)
    with pytest.raises(SiteError) as err:
        orch.deploy("broken")
    text = str(err.value)
    assert "broken did not start: its process is stopped: it exited; removed" in text, text
    assert 'open() "/etc/nginx/none.conf" failed (2: No such file or directory)' in text, text
    assert bed.orch.site("mec1").status("broken") == "absent"
