"""The Open vSwitch point of `mecmig bench scale`: the generated fabric on real OVS bridges
(userspace datapath, links as patch ports on the ports the model gives), a real `mecmig
controller` process they connect to, and the REST operations timed over HTTP, as a client sees
them: every plan is sent over OpenFlow and confirmed by the switches' barriers.

No hosts are plugged in (a flow may output to a port that is not there yet, as after a host
left): what is measured is the controller and the switches taking its messages. Every bridge
made here is named `msc<switch>` and deleted afterwards, whatever happens. Root; run it alone
(one live emulation at a time).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.process import ControllerProcess
from ground.runner import SubprocessRunner
from mecmig.bench.scale_fabric import fabric
from mecmig.bench.scale_worker import Sample, row
from topology.scenario import load_scenario
from topology.world import topology_from_scenario

PREFIX = "msc"
CHUNK = 40  # bridges per ovs-vsctl call


class OvsUnavailable(RuntimeError):
    """No Open vSwitch to run on here (not root, not installed, not running)."""


def _vsctl(args: list[str]) -> None:
    SubprocessRunner().run(["ovs-vsctl", "--timeout=60", *args], timeout=120)


def _check() -> None:
    if os.geteuid() != 0:
        raise OvsUnavailable("needs root")
    if shutil.which("ovs-vsctl") is None:
        raise OvsUnavailable("ovs-vsctl is not installed (scripts/bootstrap)")
    shown = SubprocessRunner().run(["ovs-vsctl", "--timeout=5", "show"], check=False)
    if not shown.ok:
        raise OvsUnavailable("ovs-vswitchd is not running (scripts/bootstrap starts it)")


def ovs_point(sites: int, reps: int = 10) -> dict[str, Any]:
    """Time the REST operations on `sites` sites of real bridges; the rows, via "ovs"."""
    _check()
    work = Path(tempfile.mkdtemp(prefix="mecmig-scale-ovs-"))
    path = work / "fabric.yaml"
    path.write_text(json.dumps(fabric(sites)))  # JSON is YAML
    topo = topology_from_scenario(load_scenario(path))
    bridges = [f"{PREFIX}{sw.name}" for sw in topo.switches]
    ctl = ControllerProcess(path, state_file=work / "state.json", log_path=work / "ctl.log")
    try:
        ctl.start()
        start = time.monotonic()
        _make_bridges(topo, ctl.of_port)
        ctl.wait_switches(timeout=60 + len(bridges) / 2)
        connect_s = time.monotonic() - start
        rows = _operations(ctl, sites, reps)
    finally:
        ctl.stop()
        for i in range(0, len(bridges), CHUNK):
            cmd: list[str] = []
            for name in bridges[i : i + CHUNK]:
                cmd += ["--", "--if-exists", "del-br", name]
            _vsctl(cmd[1:])
        shutil.rmtree(work, ignore_errors=True)
    return {
        "sites": sites,
        "switches": len(bridges),
        "connect_s": round(connect_s, 1),
        "note": f"{len(bridges)} bridges connected and in sync in {connect_s:.1f} s",
        "rows": rows,
    }


def _make_bridges(topo: Any, of_port: int) -> None:
    switches = list(topo.switches)
    for i in range(0, len(switches), CHUNK):
        cmd: list[str] = []
        for sw in switches[i : i + CHUNK]:
            name = f"{PREFIX}{sw.name}"
            cmd += [
                "--", "add-br", name,
                "--", "set", "bridge", name, "datapath_type=netdev", "protocols=OpenFlow13",
                "fail_mode=secure", f"other-config:datapath-id={sw.dpid:016x}",
                "other-config:disable-in-band=true",
                "--", "set-controller", name, f"tcp:127.0.0.1:{of_port}",
            ]  # fmt: skip
        _vsctl(cmd[1:])
    links = list(topo.links)
    for i in range(0, len(links), CHUNK):
        cmd = []
        for j, ln in enumerate(links[i : i + CHUNK], start=i):
            a, b = f"{PREFIX}a{j}", f"{PREFIX}b{j}"
            for br, me, peer, port in ((ln.a, a, b, ln.a_port), (ln.b, b, a, ln.b_port)):
                cmd += [
                    "--", "add-port", f"{PREFIX}{br}", me,
                    "--", "set", "interface", me, "type=patch", f"options:peer={peer}",
                    f"ofport_request={port}",
                ]  # fmt: skip
        _vsctl(cmd[1:])


def _operations(ctl: ControllerProcess, sites: int, reps: int) -> list[dict[str, Any]]:
    client = ctl.client
    rng = random.Random(15)
    names = [f"mec{i + 1}" for i in range(sites)]
    apps = [f"app{n + 1}" for n in range(len(range(0, sites, 10)))]
    out: dict[str, Sample] = {
        op: Sample() for op in ("reserve", "resize", "release", "relocate", "hold", "unhold")
    }

    ids = []
    for i in range(reps):
        a, b = rng.sample(names, 2)
        with out["reserve"].timed():
            view = client.reserve(a, b, "10Mbit", match={"dst_port": 4000 + i})
        ids.append(view.id)
    for rid in ids:
        with out["resize"].timed():
            client.resize(rid, "20Mbit")
    for _ in range(reps):
        app, to = rng.choice(apps), rng.choice(names)
        with out["relocate"].timed():
            moved = client.relocate(app, to)
        out["relocate"].flows.append(moved.flow_mods)
    for i in range(reps):
        app = apps[i % len(apps)]
        with out["hold"].timed():
            client.hold(app, timeout_s=600)
        with out["unhold"].timed():
            client.release_hold(app)
    for rid in ids:
        with out["release"].timed():
            client.release(rid)
    for s in out.values():
        if not s.flows:
            s.flows = [0]
    return [row(sites, "ovs", op, s) for op, s in out.items()]
