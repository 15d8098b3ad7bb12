"""Incremental decisions equal the full recomputation (issue 15, item 1).

On random topologies (switches with one link, meshes, parts cut off, links of little capacity so
that admission refuses and reroutes fail) and random sequences of every operation the controller
takes (reserve, resize, release, relocate, hold, unhold, a host learnt or moved, a link down or
up, an operation rolled back), `FabricState` runs beside `FullFabricState` (the state as it was:
every switch's flows rebuilt from scratch and diffed whole, admission summed over every
reservation: tests/unit/state_oracle.py). After every operation both must have decided the same
(records, paths, errors), planned the same messages stage by stage, and want the same flows and
meters on every switch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.state import FabricState, StateError
from tests.unit.state_oracle import FullFabricState
from topology.errors import TopologyError
from topology.scenario import Scenario, parse_scenario

M = 1_000_000
RATES = (1 * M, 5 * M, 10 * M, 30 * M, 60 * M)
CAPACITIES = ("10Mbit", "20Mbit", "50Mbit", "100Mbit")
PORTS = (5001, 5002, None)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Sites, maybe some other switches, links: mostly a tree (leaves) plus a few more."""
    n_sites = draw(st.integers(2, 7))
    n_other = draw(st.integers(0, 4))
    nodes = [f"mec{i + 1}" for i in range(n_sites)] + [f"x{i + 1}" for i in range(n_other)]
    pairs: set[tuple[str, str]] = set()
    if n_other >= 2 and draw(st.booleans()):
        # two levels: aggregation switches in a line or a ring, every site under one of them
        aggs = nodes[n_sites:]
        for a, b in zip(aggs, aggs[1:], strict=False):
            pairs.add((a, b))
        if draw(st.booleans()):
            pairs.add(tuple(sorted((aggs[0], aggs[-1]))))  # type: ignore[arg-type]
        for site in nodes[:n_sites]:
            pairs.add((site, draw(st.sampled_from(aggs))))
    else:
        order = draw(st.permutations(nodes))
        for i, node in enumerate(order[1:], start=1):
            if draw(st.floats(0, 1)) < 0.85:
                pairs.add(tuple(sorted((node, order[draw(st.integers(0, i - 1))]))))  # type: ignore[arg-type]
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(st.sampled_from(nodes)), draw(st.sampled_from(nodes))
        if a != b:
            pairs.add(tuple(sorted((a, b))))  # type: ignore[arg-type]
    links = [
        {"between": list(p), "capacity": draw(st.sampled_from(CAPACITIES))}
        for p in sorted(pairs, key=lambda p: draw(st.integers(0, 100)))
    ]
    sites = [f"mec{i + 1}" for i in range(n_sites)]
    instances = [
        {"name": f"app{i}", "site": draw(st.sampled_from(sites)), "command": "sleep 1",
         "ip": f"10.0.0.{20 + i}"}
        for i in range(draw(st.integers(0, 4)))
    ]  # fmt: skip
    ues = [
        {"name": f"ue{i}", "attach": draw(st.sampled_from(nodes)), "ip": f"10.0.0.{100 + i}"}
        for i in range(draw(st.integers(0, 2)))
    ]
    chains = []
    if ues and instances and draw(st.booleans()):
        k = draw(st.integers(1, len(instances)))
        chains.append(
            {
                "name": "c1",
                "ue": ues[0]["name"],
                "functions": [inst["name"] for inst in instances[:k]],
                "traffic": {"proto": draw(st.sampled_from(["tcp", "any"])), "port": 8080},
            }
        )
        if chains[0]["traffic"]["proto"] == "any":
            del chains[0]["traffic"]["port"]
    return parse_scenario(
        {
            "name": "random",
            "sites": [{"name": s} for s in sites],
            "switches": [{"name": f"x{i + 1}"} for i in range(n_other)],
            "links": links,
            "instances": instances,
            "ues": ues,
            "chains": chains,
        }
    )


Op = Callable[[Any], Any]


def _operation(draw: st.DrawFn, full: FullFabricState) -> tuple[str, Op]:
    hosts = list(full.hosts)
    switches = [sw.name for sw in full.declared.switches]
    links = [(ln.a, ln.b) for ln in full.declared.links]
    rids = [*full.reservations, 99]
    ends = hosts + [s.name for s in full.declared.sites]
    kind = draw(
        st.sampled_from(
            ["reserve"] * 4
            + ["release", "resize", "resize", "relocate", "relocate", "hold", "unhold"]
            + ["link_down", "link_down", "link_up", "learn", "learn"]
        )
    )
    if kind == "reserve":
        src, dst = draw(st.sampled_from(ends)), draw(st.sampled_from(ends))
        rate, port = draw(st.sampled_from(RATES)), draw(st.sampled_from(PORTS))
        proto = "udp" if port is None else draw(st.sampled_from(["tcp", "udp"]))
        return f"reserve({src}, {dst}, {rate}, {proto}, {port})", lambda s: s.reserve(
            src, dst, rate, proto=proto, dst_port=port
        )
    if kind == "release":
        rid = draw(st.sampled_from(rids))
        return f"release({rid})", lambda s: s.release(rid)
    if kind == "resize":
        rid, rate = draw(st.sampled_from(rids)), draw(st.sampled_from(RATES))
        return f"resize({rid}, {rate})", lambda s: s.resize(rid, rate)
    if kind == "relocate":
        host, sw = draw(st.sampled_from(hosts)), draw(st.sampled_from(switches))
        port = draw(st.sampled_from([None, None, 7, 9]))
        return f"relocate({host}, {sw}, {port})", lambda s: s.relocate(host, sw, port)
    if kind in ("hold", "unhold"):
        host = draw(st.sampled_from(hosts))
        return f"{kind}({host})", lambda s: getattr(s, kind)(host)
    if kind in ("link_down", "link_up"):
        if not links:
            return "nothing", lambda s: []
        a, b = draw(st.sampled_from(links))
        return f"{kind}({a}, {b})", lambda s: getattr(s, kind)(a, b)
    known = [att.mac for att in full.hosts.values() if att.mac]
    mac = draw(st.sampled_from([*known, "02:00:00:00:00:aa", "02:00:00:00:00:bb"]))
    ip = draw(st.sampled_from([None, "10.0.0.200"]))
    sw, port = draw(st.sampled_from(switches)), draw(st.integers(5, 9))
    return f"learn({mac}, {ip}, {sw}, {port})", lambda s: s.learn_host(mac, ip, sw, port)


def _run(op: Op, state: Any) -> tuple[str, Any]:
    """("ok", what the operation returned) or (the error's class name, its message)."""
    try:
        return "ok", op(state)
    except (StateError, TopologyError, KeyError) as exc:
        return type(exc).__name__, str(exc)


def _same_model(state: FabricState, full: FullFabricState, what: str) -> None:
    assert state.reservations == full.reservations, what
    assert state.hosts == full.hosts and list(state.hosts) == list(full.hosts), what
    assert state.host_ids == full.host_ids, what
    assert state.holds == full.holds and state.down == full.down, what
    assert state.next_reservation == full.next_reservation, what
    assert state.desired() == full.desired(), what


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios(), data=st.data())
def test_incremental_decisions_equal_the_full_recomputation(
    scenario: Scenario, data: st.DataObject
) -> None:
    state, full = FabricState(scenario), FullFabricState(scenario)
    _same_model(state, full, "at start")
    history: list[str] = []
    for _ in range(data.draw(st.integers(1, 30))):
        what, op = _operation(data.draw, full)
        undo = data.draw(st.integers(0, 5)) == 0
        history.append(("undo " if undo else "") + what)
        shown = " ; ".join(history)
        snap, full_snap = state.snapshot(), full.snapshot()
        got, want = _run(op, state), _run(op, full)
        assert got == want, shown  # records and plans, message for message; or the same error
        if got[0] != "ok":
            assert state.snapshot() == snap, shown  # a refusal changes nothing
        _same_model(state, full, shown)
        if undo:
            switches = data.draw(st.sampled_from([None, {"s1"}]))
            assert state.roll_back(snap, switches) == full.roll_back(full_snap, switches), shown
            _same_model(state, full, shown + " (rolled back)")
    for sw in state.declared.switches:  # what a connecting switch gets (in any order)
        got_config, want_config = state.switch_config(sw.name), full.switch_config(sw.name)
        assert sorted(map(repr, got_config)) == sorted(map(repr, want_config)), sw.name
