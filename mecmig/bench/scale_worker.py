"""One size of `mecmig bench scale`, in a process of its own (so that its memory is its own):
`python -m mecmig.bench.scale_worker SITES REPS [--no-rest]` prints one JSON document.

On the generated fabric of SITES sites (`mecmig.bench.scale_fabric`): the state's build time and
memory (bytes Python holds for it, per site; per reservation once REPS are in force), then each
operation REPS times on the pure `FabricState` and through the REST API (`scale_rest`), each
time on different sites, hosts and links: reserve (a site's agent to another's, across the ring;
the reservations stay, a burst of them), resize (each to twice its rate), release, relocate (an
instance to another site), hold and unhold (an instance), a site's uplink down and up (through
the runtime, as a port status is: REST has no link events), a link of the aggregation ring down
and up (pure state only, a few times: most forwarding trees change), admission alone. Times are
of the call only, in ms. Once the state is built it is set aside from the garbage collector's
passes, as the controller sets its own (`ground.heap.settle`).
"""

from __future__ import annotations

import gc
import json
import logging
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from controller.ofmsg import FlowMod
from controller.plan import Plan
from controller.state import FabricState
from ground import heap
from mecmig.bench.scale_fabric import aggregation_count, scenario
from topology.admission import admit_on

M = 1_000_000
OPERATIONS = (
    "reserve",
    "resize",
    "release",
    "relocate",
    "hold",
    "unhold",
    "link_down",
    "link_up",
    "ring_down",
    "ring_up",
    "admission",
)
RING_REPS = 5  # a link between aggregation switches: most trees change, tens of ms each


def flows_in(plan: Plan) -> int:
    return sum(isinstance(m, FlowMod) for stage in plan for msgs in stage.values() for m in msgs)


class Sample:
    """The times (ms) and flows changed of one operation."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.flows: list[int] = []

    @contextmanager
    def timed(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.ms.append((time.perf_counter() - start) * 1000)


class Workload:
    """Which sites, hosts and links each repetition uses (the same for both paths)."""

    def __init__(self, sites: int, reps: int, seed: int = 15) -> None:
        rng = random.Random(seed)
        aggs = aggregation_count(sites)
        names = [f"mec{i + 1}" for i in range(sites)]
        self.pairs = [tuple(rng.sample(names, 2)) for _ in range(reps)]
        apps = [f"app{n + 1}" for n in range(len(range(0, sites, 10)))]
        self.moves = [(rng.choice(apps), rng.choice(names)) for _ in range(reps)]
        self.held = [apps[i % len(apps)] for i in range(reps)]
        picked = rng.sample(range(sites), min(reps, sites))
        self.uplinks = [(f"s{i + 1}", f"agg{i % aggs + 1}") for i in picked]
        self.ring = [(f"agg{i + 1}", f"agg{(i + 1) % aggs + 1}") for i in range(aggs)]


def pure(state: FabricState, work: Workload) -> dict[str, Sample]:
    out = {op: Sample() for op in OPERATIONS}
    rids: list[int] = []
    for i, (a, b) in enumerate(work.pairs):
        s = out["reserve"]
        with s.timed():
            rec, plan = state.reserve(a, b, 10 * M, dst_port=1000 + i)
        s.flows.append(flows_in(plan))
        rids.append(rec.id)
    for rid in rids:
        s = out["resize"]
        with s.timed():
            _, plan = state.resize(rid, 20 * M)
        s.flows.append(flows_in(plan))
    for app, to in work.moves:
        s = out["relocate"]
        with s.timed():
            _, _, plan = state.relocate(app, to)
        s.flows.append(flows_in(plan))
    for app in work.held:
        for op in ("hold", "unhold"):
            s = out[op]
            with s.timed():
                plan = state.hold(app) if op == "hold" else state.unhold(app)
            s.flows.append(flows_in(plan))
    for a, b in work.uplinks:
        for op in ("link_down", "link_up"):
            s = out[op]
            with s.timed():
                plan = state.link_down(a, b) if op == "link_down" else state.link_up(a, b)
            s.flows.append(flows_in(plan))
    for a, b in work.ring[:RING_REPS]:
        for op in ("ring_down", "ring_up"):
            s = out[op]
            with s.timed():
                plan = state.link_down(a, b) if op == "ring_down" else state.link_up(a, b)
            s.flows.append(flows_in(plan))
    for a, b in work.pairs:
        s = out["admission"]
        src, dst = state.hosts[f"h{a}"].switch, state.hosts[f"h{b}"].switch
        with s.timed():
            admit_on(state._load, src, dst, 10 * M)
        s.flows.append(0)
    for rid in rids:
        s = out["release"]
        with s.timed():
            plan = state.release(rid)
        s.flows.append(flows_in(plan))
    return out


def rest(state: FabricState, work: Workload) -> tuple[dict[str, Sample], int]:
    from mecmig.bench.scale_rest import SoftController

    ctl = SoftController(state)
    http = ctl.http
    out = {op: Sample() for op in OPERATIONS if op not in ("admission", "ring_down", "ring_up")}

    def call(op: str, method: str, url: str, body: Any = None) -> Any:
        s = out[op]
        with s.timed():
            response = http.request(method, url, json=body)
        ctl.settle()  # the switches' own work, after the time is taken
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    try:
        ids = []
        for i, (a, b) in enumerate(work.pairs):
            body = {"src": a, "dst": b, "rate": "10Mbit", "match": {"dst_port": 2000 + i}}
            ids.append(call("reserve", "POST", "/v1/reservations", body)["id"])
        for rid in ids:
            call("resize", "PATCH", f"/v1/reservations/{rid}", {"rate": "20Mbit"})
        for app, to in work.moves:
            call("relocate", "POST", "/v1/relocations", {"instance": app, "to": to})
        for app in work.held:
            call("hold", "POST", f"/v1/instances/{app}/hold", {"timeout_s": 600})
            call("unhold", "DELETE", f"/v1/instances/{app}/hold")
        for a, b in work.uplinks:
            for op, up in (("link_down", False), ("link_up", True)):
                with out[op].timed():
                    ctl.link(a, b, up=up)
                ctl.settle()
        for rid in ids:
            call("release", "DELETE", f"/v1/reservations/{rid}")
        return out, ctl.refused()
    finally:
        ctl.close()


def measure(sites: int, reps: int, with_rest: bool) -> dict[str, Any]:
    logging.disable(logging.WARNING)
    sc = scenario(sites)
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    state = FabricState(sc)
    build_ms = (time.perf_counter() - start) * 1000
    state_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del state
    gc.collect()
    start = time.perf_counter()
    state = FabricState(sc)  # timed again without tracemalloc's overhead
    build_ms = min(build_ms, (time.perf_counter() - start) * 1000)
    work = Workload(sites, reps)
    per_reservation = reservation_bytes(sc, work)
    heap.settle()  # as the controller does once its state is built
    samples = pure(state, work)
    rows = [row(sites, "state", op, s) for op, s in samples.items()]
    refused = 0
    if with_rest:
        rest_samples, refused = rest(FabricState(sc), work)
        for op, s in rest_samples.items():
            s.flows = s.flows or samples[op].flows  # the same plans as on the pure state
            rows.append(row(sites, "runtime" if op.startswith("link") else "rest", op, s))
    return {
        "sites": sites,
        "switches": len(state.declared.switches),
        "hosts": len(state.hosts),
        "build_ms": round(build_ms, 2),
        "state_bytes": state_bytes,
        "bytes_per_site": round(state_bytes / sites),
        "bytes_per_reservation": per_reservation,
        "rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "refused": refused,
        "rows": rows,
    }


def reservation_bytes(sc: Any, work: Workload) -> int:
    """What Python holds per reservation in force (records, indexes, flows kept per switch)."""
    state = FabricState(sc)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, (a, b) in enumerate(work.pairs):
        state.reserve(a, b, 10 * M, dst_port=3000 + i)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return round(held / len(work.pairs))


def row(sites: int, via: str, op: str, s: Sample) -> dict[str, Any]:
    ms = sorted(s.ms)
    return {
        "sites": sites,
        "via": via,
        "operation": op,
        "n": len(ms),
        "median_ms": round(_quantile(ms, 0.5), 3),
        "p95_ms": round(_quantile(ms, 0.95), 3),
        "max_ms": round(ms[-1], 3),
        "flows_changed": round(_quantile(sorted(s.flows), 0.5)) if s.flows else 0,
    }


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted `values` (linear interpolation)."""
    if len(values) == 1:
        return values[0]
    pos = q * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def admission_only(sites: int, reps: int) -> dict[str, Any]:
    """Admission alone at `sites` (10,000): the fabric's topology and link loads, no state."""
    from mecmig.bench.scale_fabric import fabric
    from topology.admission import LinkLoad
    from topology.model import Link, Switch, Topology

    doc = fabric(sites)
    names = [s["name"] for s in doc["sites"]]
    switches = [Switch(f"s{i + 1}", i + 1) for i in range(sites)]
    switches += [Switch(s["name"], sites + i + 1) for i, s in enumerate(doc["switches"])]
    index = {name: f"s{i + 1}" for i, name in enumerate(names)}
    links = [
        Link(index.get(a, a), index.get(b, b), 10**10)
        for a, b in (link["between"] for link in doc["links"])
    ]
    start = time.perf_counter()
    load = LinkLoad(Topology(switches, links))
    build_ms = (time.perf_counter() - start) * 1000
    rng = random.Random(15)
    s = Sample()
    for _ in range(reps):
        a, b = rng.sample(range(sites), 2)
        with s.timed():
            path = admit_on(load, f"s{a + 1}", f"s{b + 1}", 10 * M)
        assert path is not None
        load.add(path, 10 * M)
        s.flows.append(0)
    return {
        "sites": sites,
        "build_ms": round(build_ms, 2),
        "row": row(sites, "state", "admission", s),
    }


def main(argv: list[str]) -> int:
    sites, reps = int(argv[0]), int(argv[1])
    if "--admission-only" in argv:
        print(json.dumps(admission_only(sites, reps)))
    else:
        print(json.dumps(measure(sites, reps, "--no-rest" not in argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
