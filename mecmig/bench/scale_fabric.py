"""The generated operator fabrics of `mecmig bench scale`: sites under aggregation switches that
form a ring.

`sites` MEC sites (mec1 ...; switch s1 ..., each with its agent host) hang off
ceil(sqrt(sites)) aggregation switches (agg1 ...), at least 2, sites dealt round-robin; the
aggregation switches form a ring (a single link for two). Every tenth site also hosts a service
instance (app1 ...) and a UE attached there (ue1 ...), so hosts are about 1.2 x sites.
Uplinks carry 10 Gbit/s, ring links 40 Gbit/s.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from topology.scenario import Scenario, parse_scenario

UPLINK = "10Gbit"
RING = "40Gbit"
SUBNET = ipaddress.IPv4Network("10.0.0.0/16")
INSTANCE_EVERY = 10


def aggregation_count(sites: int) -> int:
    return max(2, math.ceil(math.sqrt(sites)))


def fabric(sites: int) -> dict[str, Any]:
    """The scenario document of a two-level fabric of `sites` sites."""
    if not 2 <= sites <= 20_000:
        raise ValueError(f"a generated fabric has 2 to 20000 sites, got {sites}")
    aggs = aggregation_count(sites)
    ring = [(f"agg{i + 1}", f"agg{(i + 1) % aggs + 1}") for i in range(aggs if aggs > 2 else 1)]
    uplinks = [(f"mec{i + 1}", f"agg{i % aggs + 1}") for i in range(sites)]
    hosts = list(SUBNET.hosts())
    base = sites + 10  # agents take the first addresses (filled in by the scenario loader)
    extra = list(range(0, sites, INSTANCE_EVERY))
    return {
        "name": f"scale{sites}",
        "description": f"{sites} sites under {aggs} aggregation switches in a ring",
        "network": {"subnet": str(SUBNET)},
        "sites": [{"name": f"mec{i + 1}"} for i in range(sites)],
        "switches": [{"name": f"agg{i + 1}"} for i in range(aggs)],
        "links": [{"between": list(p), "capacity": UPLINK} for p in uplinks]
        + [{"between": list(p), "capacity": RING} for p in ring],
        "instances": [
            {
                "name": f"app{n + 1}",
                "site": f"mec{i + 1}",
                "command": "sleep infinity",
                "ip": str(hosts[base + 2 * n]),
            }
            for n, i in enumerate(extra)
        ],
        "ues": [
            {"name": f"ue{n + 1}", "attach": f"mec{i + 1}", "ip": str(hosts[base + 2 * n + 1])}
            for n, i in enumerate(extra)
        ],
    }


def scenario(sites: int) -> Scenario:
    """The validated scenario of `fabric(sites)`."""
    return parse_scenario(fabric(sites), source=f"<generated: {sites} sites>")
