"""A -> B -> C -> A across three sites, each hop live, the client's connection never dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from agent.runc import Runc
from ground.paths import criu_binary
from ground.runner import SubprocessRunner
from migration.timeline import Outcome
from mininet_scenarios.agents import SiteAgents
from mininet_scenarios.testbed import testbed as make_testbed
from orchestration.links import RestControllerLink
from orchestration.orchestrator import Orchestrator
from topology.scenario import load_scenario

EDGE3 = Path(__file__).resolve().parents[2] / "scenarios" / "edge3.yaml"
CGROUPS = Path("/sys/fs/cgroup")


def in_container(site: str, script: str) -> str:
    """Run `script` with sh in the counter container at `site` (its mount namespace and root)."""
    state = subprocess.run(
        ["runc", "--root", f"/run/mecmig/runc/edge3-{site}", "state", "counter"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = str(json.loads(state.stdout)["pid"])
    done = subprocess.run(
        ["nsenter", "-t", pid, "-m", "-r", "/bin/sh", "-c", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def cgroup_members(path: str) -> dict[str, set[str]]:
    """The processes in cgroup `path` of every hierarchy that has it (v1: one per controller;
    v2: the one unified hierarchy, keyed "")."""
    found = {}
    for procs in [
        CGROUPS / path.lstrip("/") / "cgroup.procs",
        *CGROUPS.glob(f"*{path}/cgroup.procs"),
    ]:
        if procs.is_file():
            key = (
                ""
                if procs.parent == CGROUPS / path.lstrip("/")
                else procs.relative_to(CGROUPS).parts[0]
            )
            found[key] = set(procs.read_text().split())
    return found


def test_hops_round_three_sites_keep_state_and_connection(tmp_path: Path) -> None:
    sc = load_scenario(EDGE3)
    with make_testbed(EDGE3, instance_hosts=False) as tb, SiteAgents(tb.emu, EDGE3) as agents:
        orch = Orchestrator(sc, agents.clients, RestControllerLink(tb.ctl.client))
        orch.deploy("counter")
        ue = tb.emu.host("ue1")
        for _ in range(75):
            if "PONG" in ue.cmd(
                "bash -c 'exec 3<>/dev/tcp/10.0.0.21/7000 && echo PING >&3 && head -c4 <&3'"
            ):
                break
            time.sleep(0.2)
        probe = ue.popen(
            [
                sys.executable,
                "-m",
                "workloads.probe",
                "10.0.0.21",
                "7000",
                "--interval-ms",
                "5",
                "--duration",
                "25",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(1)
        # its tmpfs mounts move with it: /run holds a file (CRIU archives it with tar), /tmp is
        # empty with a mode of its own (CRIU patch 0008: no tar, the root's mode kept)
        in_container("mec1", "echo kept > /run/marker && chmod 1770 /tmp")
        strategies = ["precopy", "postcopy", "cold"]
        for to, strategy in zip(("mec2", "mec3", "mec1"), strategies, strict=True):
            assert orch.migrate("counter", to, strategy=strategy).outcome is Outcome.DONE
            assert orch.where("counter") == to
            # the restored tasks are born in the container's cgroups at the new site: runc puts
            # CRIU there, which leaves the cgroups to it (`manage-cgroups=ignore`)
            members = cgroup_members(f"/mecmig/{to}/counter")
            assert members and all(members.values()), (strategy, members)
            assert len({frozenset(m) for m in members.values()}) == 1, (strategy, members)
            # the restore's fast status (state file and /proc, no runc started) agrees with runc
            runc = Runc(
                SubprocessRunner(), Path(f"/run/mecmig/runc/edge3-{to}"), criu_binary(), tmp_path
            )
            assert runc.status("counter") == "running" and runc.running_now("counter")
            seen = in_container(to, "cat /run/marker; stat -c %a /tmp; ls -A /tmp | wc -l")
            assert seen.split() == ["kept", "1770", "0"], (strategy, seen)
            time.sleep(1.0)  # let the client's TCP retransmission back-off recover
        out, err = probe.communicate(timeout=60)
        result = json.loads(out)
        assert result["same_connection"] and result["counter_monotonic"], result
        assert result["fingerprint_stable"], result
