"""The northbound facade: what the REST API (and in-process callers) can ask of the controller.

Every call runs as one job on the runtime's worker, so the answers are consistent snapshots and the
operations are serialised, and every change is a transaction (`Runtime.transaction`): the model
is committed only once the switches confirmed it, and a refused change is undone on both. Model
errors become API errors with a message: admission refused -> 409, unknown names -> 404,
impossible requests -> 422, a switch that refuses or does not confirm -> 502 (the change undone,
`context.switches` names the switches).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar, cast

from controller.api_models import (
    ApiError,
    ChainView,
    Conflict,
    Forbidden,
    Health,
    HoldReleaseView,
    HoldRequest,
    HoldView,
    InstanceView,
    Invalid,
    LinkDirectionView,
    LinkView,
    NotFound,
    PromotionRequest,
    PromotionView,
    Proto,
    RelocationBatchRequest,
    RelocationBatchView,
    RelocationRequest,
    RelocationView,
    ReservationRequest,
    ReservationView,
    SiteView,
    StandbyRequest,
    StandbyView,
    SwitchView,
    TopologyView,
    TrafficMatch,
)
from controller.reservations import ReservationRecord
from controller.runtime import Execution, Runtime, SwitchError
from controller.state import Occupied, StateError, UnknownName
from controller.traffic_hold import TrafficHolds
from topology.admission import reserved_per_link
from topology.errors import AdmissionError, TopologyError
from topology.model import Attachment

log = logging.getLogger(__name__)
T = TypeVar("T")


class BadGateway(ApiError):
    status = 502


class Northbound:
    """Implements `controller.api_models.ControllerAPI` on a running `Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.holds = TrafficHolds(runtime)

    # ------------------------------------------------------------------ views

    def health(self) -> Health:
        st = self.rt.state
        return Health(
            scenario=st.scenario.name,
            switches_connected=sum(self.rt.in_sync(sw.dpid) for sw in st.declared.switches),
            switches_expected=len(st.declared.switches),
        )

    def topology_view(self) -> TopologyView:
        return self.rt.call(self._topology_view)

    def _topology_view(self) -> TopologyView:
        st = self.rt.state
        reserved = reserved_per_link(r.as_model() for r in st.reservations.values())
        site_of = {s.switch: s.name for s in st.declared.sites}
        links = []
        for link in st.declared.links:
            dirs = [
                LinkDirectionView(
                    src=u,
                    dst=v,
                    capacity_bps=link.capacity_bps,
                    reserved_bps=reserved.get((u, v), 0),
                    residual_bps=max(0, link.capacity_bps - reserved.get((u, v), 0)),
                )
                for u, v in ((link.a, link.b), (link.b, link.a))
            ]
            links.append(
                LinkView(
                    a=link.a,
                    b=link.b,
                    a_port=link.a_port,
                    b_port=link.b_port,
                    capacity_bps=link.capacity_bps,
                    latency_ms=link.latency_ms,
                    up=st.topo.has_link(link.a, link.b),
                    directions=dirs,
                )
            )
        return TopologyView(
            sites=[
                SiteView(name=s.name, switch=s.switch, cpus=s.cpus, memory_bytes=s.memory_bytes)
                for s in st.declared.sites
            ],
            switches=[
                SwitchView(
                    name=sw.name,
                    dpid=sw.dpid,
                    site=site_of.get(sw.name),
                    connected=self.rt.in_sync(sw.dpid),
                )
                for sw in st.declared.switches
            ],
            links=links,
        )

    def instances(self) -> list[InstanceView]:
        def job() -> list[InstanceView]:
            st = self.rt.state
            site_of = {s.switch: s.name for s in st.declared.sites}
            return [
                InstanceView(
                    name=a.host,
                    kind="learned" if a.host.startswith("learned-") else a.kind,
                    ip=a.ip,
                    mac=a.mac or "",
                    switch=a.switch,
                    port=a.port,
                    site=site_of.get(a.switch),
                )
                for a in st.hosts.values()
            ]

        return self.rt.call(job)

    def chains(self) -> list[ChainView]:
        return [
            ChainView(
                name=c.name,
                ue=c.members[0],
                functions=list(c.members[1:]),
                proto=c.proto,
                port=c.port,
            )
            for c in self.rt.call(lambda: list(self.rt.state.chains))
        ]

    def reservations(self) -> list[ReservationView]:
        return [_view(r) for r in self.rt.call(lambda: list(self.rt.state.reservations.values()))]

    def reservation(self, rid: int) -> ReservationView:
        rec = self.rt.call(lambda: self.rt.state.reservations.get(rid))
        if rec is None:
            raise NotFound(f"no reservation {rid}", id=rid)
        return _view(rec)

    # ------------------------------------------------------------------ operations

    def reserve(self, req: ReservationRequest) -> ReservationView:
        def job() -> ReservationRecord:
            m = req.match
            with self.rt.transaction() as tx:
                rec, plan = self.rt.state.reserve(
                    req.src,
                    req.dst,
                    req.rate,
                    proto=m.proto,
                    dst_port=m.dst_port,
                    src_port=m.src_port,
                    ip_src=m.ip_src,
                    ip_dst=m.ip_dst,
                    burst_kb=req.burst_kb,
                    owner=req.owner,
                )
                tx.execute(plan)
            log.info(
                "reservation %d: %s -> %s %d bit/s via %s (owner=%s)",
                rec.id,
                rec.src,
                rec.dst,
                rec.rate_bps,
                ">".join(rec.path),
                rec.owner,
            )
            return rec

        return _view(self._run(job))

    def resize(self, rid: int, rate_bps: int, owner: str | None = None) -> ReservationView:
        def job() -> ReservationRecord:
            self._owned(rid, owner)
            with self.rt.transaction() as tx:
                rec, plan = self.rt.state.resize(rid, rate_bps)
                tx.execute(plan)
            log.info("reservation %d resized to %d bit/s", rid, rate_bps)
            return rec

        return _view(self._run(job))

    def release(self, rid: int, owner: str | None = None) -> None:
        def job() -> None:
            self._owned(rid, owner)
            with self.rt.transaction() as tx:
                tx.execute(self.rt.state.release(rid))
            log.info("reservation %d released", rid)

        self._run(job)

    def relocate(self, req: RelocationRequest) -> RelocationView:
        return self.relocate_batch(RelocationBatchRequest(moves=[req])).moves[0]

    def relocate_batch(self, req: RelocationBatchRequest) -> RelocationBatchView:
        def job() -> RelocationBatchView:
            with self.rt.transaction() as tx:
                moved, plan = self.rt.state.relocate_many(
                    [(m.instance, m.to, m.port) for m in req.moves]
                )
                done = tx.execute(plan)
            log.info(
                "relocated %s in %.2f ms (%d flow-mods)",
                ", ".join(
                    f"{new.host} {old.switch}:{old.port} -> {new.switch}:{new.port}"
                    for old, new in moved
                ),
                done.elapsed_ms,
                done.flow_mods,
            )
            views = [_moved_view(old, new, done) for old, new in moved]
            return RelocationBatchView(
                moves=views,
                switches_touched=done.switches,
                flow_mods=done.flow_mods,
                switchover_ms=round(done.elapsed_ms, 3),
                switches_pending=done.skipped,
            )

        return self._run(job)

    def standbys(self, instance: str) -> list[StandbyView]:
        """The instance's standbys (warm replicas' ports), by switch."""
        return self._run(
            lambda: [self._standby_view(a) for a in self.rt.state.standbys_of(instance)]
        )

    def add_standby(self, instance: str, req: StandbyRequest) -> StandbyView:
        """A port at `req.to` becomes a standby of the instance (409 if it is taken)."""

        def job() -> StandbyView:
            with self.rt.transaction() as tx:
                att, plan = self.rt.state.add_standby(instance, req.to, req.port)
                tx.execute(plan)
            return self._standby_view(att)

        return self._run(job)

    def remove_standby(self, instance: str, at: str) -> None:
        """The instance's standby at `at` (site or switch) is forgotten (404 if none)."""

        def job() -> None:
            with self.rt.transaction() as tx:
                tx.execute(self.rt.state.remove_standby(instance, at)[1])

        self._run(job)

    def promote(self, instance: str, req: PromotionRequest) -> PromotionView:
        """The instance's traffic moves to its standby at `req.to` in one make-before-break
        change (409 if it has none there)."""

        drain = req.keep_old and req.drain_ms > 0

        def job() -> PromotionView:
            with self.rt.transaction() as tx:
                old, new, plan = self.rt.state.promote(
                    instance, req.to, keep_old=req.keep_old, drain=drain,
                    deliver_old=drain and req.deliver_old,
                )  # fmt: skip
                done = tx.execute(plan)
            if drain:
                timer = threading.Timer(req.drain_ms / 1000.0, self._seal, (instance, old))
                timer.daemon = True
                timer.start()
            log.info(
                "promoted %s %s:%d -> %s:%d in %.2f ms (%d flow-mods)",
                instance,
                old.switch,
                old.port,
                new.switch,
                new.port,
                done.elapsed_ms,
                done.flow_mods,
            )
            return PromotionView(
                **_moved_view(old, new, done).model_dump(),
                old_place="standby" if req.keep_old else "forgotten",
            )

        return self._run(job)

    def _seal(self, instance: str, at: Attachment) -> None:
        """A drained promotion's old place gets its drop now (if it is still that standby)."""

        def job() -> None:
            with self.rt.transaction() as tx:
                tx.execute(self.rt.state.seal_standby(instance, at))

        try:
            self._run(job)
        except Exception:  # noqa: BLE001 - a timer's last line: the next resync adds it
            log.exception("the drop of %s's old place %s:%d", instance, at.switch, at.port)

    def _standby_view(self, att: Attachment) -> StandbyView:
        site = next((s.name for s in self.rt.state.declared.sites if s.switch == att.switch), None)
        return StandbyView(instance=att.host, switch=att.switch, port=att.port, site=site)

    def hold(self, instance: str, req: HoldRequest) -> HoldView:
        return self._run(lambda: self.holds.hold(instance, req.timeout_s))

    def release_hold(self, instance: str) -> HoldReleaseView:
        return self._run(lambda: self.holds.release(instance))

    def held_packet(self, flow_cookie: int, frame: bytes, dpid: int | None = None) -> None:
        """From the event thread: a packet of a hold flow, caught at switch `dpid` (queued on
        the worker, in order)."""
        self.rt.submit(lambda: self.holds.packet_in(flow_cookie, frame, dpid))

    # ------------------------------------------------------------------ helpers

    def _owned(self, rid: int, owner: str | None) -> None:
        """On the worker, before a change: Forbidden unless the caller names the reservation's
        owner (none for one reserved without). An owner is not a secret (every caller can list
        them): it keeps one tenant's client from changing another's reservation by a wrong id."""
        rec = self.rt.state.reservations.get(rid)
        if rec is not None and rec.owner != owner:
            raise Forbidden(
                f"reservation {rid} belongs to {rec.owner!r}: name its owner to change it"
                if rec.owner is not None
                else f"reservation {rid} has no owner: leave the owner out to change it",
                id=rid,
                owner=rec.owner,
            )

    def _run(self, job: Callable[[], T]) -> T:
        """Run `job` on the worker; model errors become the API's errors (see the module)."""
        try:
            return self.rt.call(job)
        except AdmissionError as exc:
            raise Conflict(
                str(exc), bottleneck=exc.bottleneck, residual_bps=exc.residual_bps
            ) from exc
        except KeyError as exc:
            raise NotFound(str(exc.args[0]) if exc.args else "not found") from exc
        except UnknownName as exc:
            raise NotFound(str(exc), name=exc.name) from exc
        except Occupied as exc:
            raise Conflict(str(exc)) from exc
        except (StateError, TopologyError, ValueError) as exc:
            raise Invalid(str(exc)) from exc
        except SwitchError as exc:
            outcome = ""
            if exc.undone:
                outcome = "; the change was undone"
            elif exc.unconfirmed:
                outcome = (
                    f"; undoing it was not confirmed by {', '.join(exc.unconfirmed)} (they get "
                    "their whole config when they reconnect)"
                )
            raise BadGateway(
                f"{exc}{outcome}",
                switches=list(exc.switches),
                undone=exc.undone,
                unconfirmed=list(exc.unconfirmed),
            ) from exc


def _moved_view(old: Attachment, new: Attachment, done: Execution) -> RelocationView:
    return RelocationView(
        instance=new.host,
        old_switch=old.switch,
        old_port=old.port,
        new_switch=new.switch,
        new_port=new.port,
        switches_touched=done.switches,
        flow_mods=done.flow_mods,
        switchover_ms=round(done.elapsed_ms, 3),
        switches_pending=done.skipped,
    )


def _view(rec: ReservationRecord) -> ReservationView:
    return ReservationView(
        id=rec.id,
        src=rec.src,
        dst=rec.dst,
        rate_bps=rec.rate_bps,
        burst_kb=rec.burst_kb,
        path=list(rec.path),
        match=TrafficMatch(
            ip_src=rec.ip_src,
            ip_dst=rec.ip_dst,
            proto=cast(Proto, rec.proto),  # the model checked it
            dst_port=rec.dst_port,
            src_port=rec.src_port,
        ),
        meter_id=rec.meter_id,
        cookie=f"{rec.cookie:#x}",
        owner=rec.owner,
    )
