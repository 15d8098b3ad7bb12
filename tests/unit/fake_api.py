"""An in-memory `ControllerAPI` for testing the REST layer and the client without a controller.

Two sites (`edge1` on s1, `edge2` on s2) joined by one 100 Mbit/s link; every reservation is
admitted against that link's capacity, so a test gets a 409 by asking for more than is left.
Set `fail` to make every call raise that exception (for the 500 path).
"""

from __future__ import annotations

import threading

from controller.api_models import (
    ChainView,
    Conflict,
    Forbidden,
    Health,
    HoldReleaseView,
    HoldRequest,
    HoldView,
    InstanceView,
    LinkDirectionView,
    LinkView,
    NotFound,
    RelocationRequest,
    RelocationView,
    ReservationRequest,
    ReservationView,
    SiteView,
    SwitchView,
    TopologyView,
)

LINK_BPS = 100_000_000
SITES = {"edge1": "s1", "edge2": "s2"}


class FakeAPI:
    """A thread-safe, in-memory implementation of `controller.api_models.ControllerAPI`."""

    def __init__(self) -> None:
        self.fail: Exception | None = None
        self._lock = threading.Lock()
        self._next_id = 1
        self._reservations: dict[int, ReservationView] = {}
        self._hosts: dict[str, InstanceView] = {
            "ue1": InstanceView(
                name="ue1", kind="ue", ip="10.0.0.1", mac="02:00:00:00:00:01", switch="s1", port=1
            ),
            "app1": InstanceView(
                name="app1",
                kind="instance",
                ip="10.0.0.10",
                mac="02:00:00:00:00:10",
                switch="s1",
                port=2,
                site="edge1",
            ),
        }

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def _reserved_bps(self, excluding: int | None = None) -> int:
        return sum(r.rate_bps for rid, r in self._reservations.items() if rid != excluding)

    def _admit(self, rate_bps: int, excluding: int | None = None) -> None:
        residual = LINK_BPS - self._reserved_bps(excluding)
        if rate_bps > residual:
            raise Conflict(
                "not enough bandwidth on s1-s2", requested_bps=rate_bps, residual_bps=residual
            )

    def _endpoint_switch(self, name: str) -> str:
        if name in SITES:
            return SITES[name]
        if name in self._hosts:
            return self._hosts[name].switch
        raise NotFound(f"unknown host or site {name!r}", name=name)

    def health(self) -> Health:
        self._check()
        return Health(scenario="fake", switches_connected=2, switches_expected=2)

    def topology_view(self) -> TopologyView:
        self._check()
        with self._lock:
            reserved = self._reserved_bps()
        directions = [
            LinkDirectionView(
                src=a, dst=b, capacity_bps=LINK_BPS, reserved_bps=r, residual_bps=LINK_BPS - r
            )
            for a, b, r in (("s1", "s2", reserved), ("s2", "s1", 0))
        ]
        return TopologyView(
            sites=[
                SiteView(name=site, switch=switch, cpus=4.0, memory_bytes=2**32)
                for site, switch in SITES.items()
            ],
            switches=[
                SwitchView(name=f"s{i}", dpid=i, site=f"edge{i}", connected=True) for i in (1, 2)
            ],
            links=[
                LinkView(
                    a="s1",
                    b="s2",
                    a_port=3,
                    b_port=3,
                    capacity_bps=LINK_BPS,
                    latency_ms=2.0,
                    up=True,
                    directions=directions,
                )
            ],
        )

    def instances(self) -> list[InstanceView]:
        self._check()
        with self._lock:
            return list(self._hosts.values())

    def chains(self) -> list[ChainView]:
        self._check()
        return [ChainView(name="video", ue="ue1", functions=["app1"], proto="udp", port=5004)]

    def reservations(self) -> list[ReservationView]:
        self._check()
        with self._lock:
            return list(self._reservations.values())

    def reservation(self, rid: int) -> ReservationView:
        self._check()
        with self._lock:
            try:
                return self._reservations[rid]
            except KeyError:
                raise NotFound(f"no reservation {rid}", id=rid) from None

    def reserve(self, req: ReservationRequest) -> ReservationView:
        self._check()
        with self._lock:
            path = [self._endpoint_switch(req.src), self._endpoint_switch(req.dst)]
            self._admit(req.rate)
            rid = self._next_id
            self._next_id += 1
            view = ReservationView(
                id=rid,
                src=req.src,
                dst=req.dst,
                rate_bps=req.rate,
                burst_kb=req.burst_kb if req.burst_kb is not None else 64,
                path=path,
                match=req.match,
                meter_id=1000 + rid,
                cookie=f"0x{rid:x}",
                owner=req.owner,
            )
            self._reservations[rid] = view
            return view

    def resize(self, rid: int, rate_bps: int, owner: str | None = None) -> ReservationView:
        self._check()
        with self._lock:
            if rid not in self._reservations:
                raise NotFound(f"no reservation {rid}", id=rid)
            self._owned(rid, owner)
            self._admit(rate_bps, excluding=rid)
            view = self._reservations[rid].model_copy(update={"rate_bps": rate_bps})
            self._reservations[rid] = view
            return view

    def release(self, rid: int, owner: str | None = None) -> None:
        self._check()
        with self._lock:
            if rid not in self._reservations:
                raise NotFound(f"no reservation {rid}", id=rid)
            self._owned(rid, owner)
            del self._reservations[rid]

    def _owned(self, rid: int, owner: str | None) -> None:
        held_by = self._reservations[rid].owner
        if held_by != owner:
            raise Forbidden(f"reservation {rid} has another owner", id=rid, owner=held_by)

    def hold(self, instance: str, req: HoldRequest) -> HoldView:
        self._check()
        self._instance(instance)
        return HoldView(instance=instance, held=True, timeout_s=req.timeout_s)

    def release_hold(self, instance: str) -> HoldReleaseView:
        self._check()
        self._instance(instance)
        return HoldReleaseView(
            instance=instance, released_packets=0, dropped_packets=0, held_ms=1.0
        )

    def _instance(self, name: str) -> None:
        with self._lock:
            host = self._hosts.get(name)
        if host is None or host.kind != "instance":
            raise NotFound(f"unknown instance {name!r}", instance=name)

    def relocate(self, req: RelocationRequest) -> RelocationView:
        self._check()
        with self._lock:
            old = self._hosts.get(req.instance)
            if old is None or old.kind != "instance":
                raise NotFound(f"unknown instance {req.instance!r}", instance=req.instance)
            switch = SITES.get(req.to, req.to)
            if switch not in SITES.values():
                raise NotFound(f"unknown site or switch {req.to!r}", to=req.to)
            port = req.port if req.port is not None else 2
            site = next((s for s, sw in SITES.items() if sw == switch), None)
            self._hosts[req.instance] = old.model_copy(
                update={"switch": switch, "port": port, "site": site}
            )
            return RelocationView(
                instance=req.instance,
                old_switch=old.switch,
                old_port=old.port,
                new_switch=switch,
                new_port=port,
                switches_touched=sorted({old.switch, switch}),
                flow_mods=4,
                switchover_ms=1.5,
            )
