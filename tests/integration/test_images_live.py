"""Instances that run images (issue 14), on real OVS, os-ken, runc and CRIU
(scenarios/images.yaml, its images made by `mecmig image pack` from installed packages):

- nginx from a rootfs tarball, Redis from an OCI image layout whose config gives its command
  and its user (resolved in the image's own /etc/passwd);
- each instance's root is its image: the host's programs are not in it;
- a new state directory starts as the image has it (nginx's default page answers 200);
- each moves mec1 -> mec2 -> mec1 -> ... under every live strategy with one client connection
  kept, its data intact, and its image sent to mec2 once: the first hop to mec2 sends the
  whole image, no later hop sends any of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ground.paths import site_root
from ground.rootfs_image import open_image
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from tests.integration import server_hops
from tests.integration.live import runc_pid
from topology.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ("cold", "precopy", "postcopy", "hybrid")
REDIS_CMD = (
    "redis-server /etc/redis/redis.conf --daemonize no --supervised no --bind 0.0.0.0 "
    "--protected-mode no --pidfile /run/redis-server.pid --logfile /dev/stdout"
)


@dataclass
class Bed:
    sc: Scenario
    orch: Orchestrator
    ue: Any
    images: Path


def mecmig(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mecmig.cli", *args], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    here = tmp_path_factory.mktemp("scenario")
    scenario = here / "images.yaml"
    shutil.copy(ROOT / "scenarios" / "images.yaml", scenario)
    images = here / "images"  # where the scenario's relative paths point
    mecmig("image", "pack", "nginx", "nginx-common", "--file", "/etc/nginx", "--file",
           "/var/www/html", "--out", str(images / "nginx.tar"))  # fmt: skip
    mecmig("image", "pack", "redis-server", "redis-tools", "--file", "/etc/redis", "--out",
           str(images / "redis.tar"), "--oci", f"{images}/oci:redis", "--user", "redis",
           "--cmd", REDIS_CMD)  # fmt: skip
    sc = load_scenario(scenario)
    with (
        make_testbed(scenario, instance_hosts=False) as tb,
        SiteAgents(tb.emu, scenario, log_dir=here / "agents") as agents,
    ):
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        yield Bed(sc, orch, tb.emu.host("ue1"), images)
        for name in ("web", "kv"):
            orch.teardown(name)
    for site in sc.sites:  # the sites' image stores this test filled
        shutil.rmtree(site_root("images", site.name), ignore_errors=True)


def pid_of(site: str, instance: str) -> int:
    return runc_pid("images", site, instance)


def hop_all(
    bed: Bed, instance: str, protocol: str, port: int, interval_ms: float
) -> tuple[dict[str, Any], list[Any]]:
    result, records, _ = server_hops.hop_all(
        bed.sc, bed.orch, bed.ue, instance, protocol, port, interval_ms
    )
    return result, records


def assert_sent_once(records: list[Any], image_bytes: int) -> None:
    """mec2 had not the image: the first hop sent it whole; mec1 had it, and so did mec2 then."""
    sent = [r.metrics["image_bytes_sent"] for r in records]
    assert sent == [image_bytes, 0, 0, 0], sent


def test_nginx_from_a_rootfs_tarball_moves_and_its_image_goes_once(bed: Bed) -> None:
    bed.orch.teardown("web")
    bed.orch.deploy("web")  # the image sent to mec1, then port 80 listens
    root = Path(f"/proc/{pid_of('mec1', 'web')}/root")
    assert (root / "usr/sbin/nginx").is_file()
    assert not (root / "usr/bin/python3").exists()  # the image's root, not the host's
    # /var/www/html started as the image has it: the default page is there
    html = site_root("images", "mec1") / "web/xfer/state/var/www/html"
    assert "Welcome to nginx" in (html / "index.nginx-debian.html").read_text()
    url = f"http://{bed.sc.instance('web').ip}/"
    curl = bed.ue.popen(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], stdout=subprocess.PIPE
    )
    assert curl.communicate(timeout=30)[0] == b"200"

    result, records = hop_all(bed, "web", "http", 80, interval_ms=20)
    assert result["same_connection"] and result["failures"] == 0, json.dumps(result)
    assert result["replies"] > 100, json.dumps(result)
    image = open_image(str(bed.images / "nginx.tar"))
    assert_sent_once(records, bed.images.joinpath("nginx.tar").stat().st_size)
    assert all(r.metrics["image"] == image.digest for r in records)
    log = site_root("images", "mec1") / "web/xfer/state/var/log/nginx/access.log"
    lines = log.read_text().splitlines()
    assert result["replies"] <= len(lines) - 1 <= result["sent"], (len(lines), result)
    assert all('"GET / HTTP/1.1" 200' in line for line in lines[-10:])
    # the site it runs at keeps its last migration, which no controller recorded here
    last = {r.name: r for r in bed.orch.status()}["web"].last_migration
    assert last is not None and (last.id, last.outcome) == (records[-1].id, "done"), last
    bed.orch.teardown("web")


def test_redis_from_an_oci_layout_runs_as_its_images_user_and_keeps_its_counter(bed: Bed) -> None:
    bed.orch.teardown("kv")
    bed.orch.deploy("kv")
    passwd = (site_root("images", "mec1") / ".images").glob("*/rootfs/etc/passwd")
    redis_uid = next(
        int(line.split(":")[2])
        for path in passwd
        for line in path.read_text().splitlines()
        if line.startswith("redis:")
    )
    status = Path(f"/proc/{pid_of('mec1', 'kv')}/status").read_text()
    assert f"Uid:\t{redis_uid}\t" in status, status

    result, records = hop_all(bed, "kv", "redis", 6379, interval_ms=5)
    assert result["same_connection"] and result["failures"] == 0, json.dumps(result)
    assert result["counter_consistent"] and result["last_value"] == result["replies"], result
    tar_size = sum(
        p.stat().st_size for p in (bed.images / "oci" / "blobs" / "sha256").iterdir()
    )  # the layout as sent: its blobs (one image in it) and tar headers
    sent = records[0].metrics["image_bytes_sent"]
    assert tar_size < sent < tar_size + 64 * 1024, (sent, tar_size)
    assert_sent_once(records, sent)
    bed.orch.teardown("kv")
