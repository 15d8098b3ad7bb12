"""Running the cases of `mecmig bench migration`: one testbed, one memhog instance per case.

Per case: `counter` is deployed at mec1 with the case's memory size and dirty rate, the probe on
ue1 keeps one TCP connection to it (a PING every 5 ms), the instance is migrated mec1 -> mec2 with
the case's strategy, the probe is stopped 2 s after the migration returned, the instance is torn
down. The strategies are the engine's (cold, precopy, postcopy, hybrid, through the orchestrator:
reservation, traffic switch) and "baseline": seed 004's runc checkpoint -> copy -> runc restore,
driven here with the site agents' primitives and no reservation. The peer's rows, "podman" and
"podman-zstd" (`mecmig.bench.podman_peer`), run the same command at the same address under Podman
and move it with Podman's checkpoint export and restore import: they are in the default plan where
podman is installed (`scripts/bootstrap --podman`), and fail with that hint when asked for where
it is not.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mecmig.bench import ROOT
from mecmig.bench.podman_peer import PODMAN_STRATEGIES
from migration.strategies import STRATEGIES as REGISTRY

if TYPE_CHECKING:
    from mecmig.bench.podman_peer import PeerSite, PodmanPeer
    from migration.timeline import Listener, MigrationRecord
    from mininet_scenarios.testbed import Testbed
    from orchestration.agent_client import AgentClient
    from orchestration.orchestrator import Orchestrator
    from topology.scenario import Scenario

EDGE = ROOT / "scenarios" / "edge.yaml"
INSTANCE, SOURCE, DESTINATION, UE = "counter", "mec1", "mec2", "ue1"
BUDGET_MS = 1000.0
# the engine's strategies that move memory state (the bench checks that it arrived intact)
ENGINE_STRATEGIES = tuple(name for name, s in REGISTRY.items() if s.keeps_memory)
PEER_STRATEGIES = tuple(PODMAN_STRATEGIES)  # podman, podman-zstd
# the default plan's: the peer's rows where podman is installed (`make test` runs without it)
STRATEGIES = (
    *ENGINE_STRATEGIES,
    "baseline",
    *(PEER_STRATEGIES if shutil.which("podman") else ()),
)
KNOWN_STRATEGIES = (*ENGINE_STRATEGIES, "baseline", *PEER_STRATEGIES)
BASELINE_MODE = "runc-checkpoint-copy-restore"
PROBE_INTERVAL_MS = 5.0
PROBE_LEAD_S = 1.0  # the probe runs this long before the migration starts
PROBE_TAIL_S = 2.0  # ... and this long after it returned
PROBE_STALL_MS = 300_000.0  # never give up the connection during a long freeze
MIB = 2**20


@dataclass(frozen=True)
class Case:
    """One migration of the run."""

    strategy: str
    memory_bytes: int
    dirty_rate: int  # bytes/s, as memhog takes it
    repeat: int = 1

    @property
    def dirty_rate_bps(self) -> int:
        return self.dirty_rate * 8

    @property
    def label(self) -> str:
        rate = f"{self.dirty_rate / 1e6:g} MB/s"
        return f"{self.strategy:<8} {size_text(self.memory_bytes):>7}, dirty {rate:>8}"


def size_text(size: int) -> str:
    """'512MiB' when a whole number of MiB, else bytes (memhog reads both)."""
    return f"{size // MIB}MiB" if size % MIB == 0 else str(size)


def rate_text(rate: int) -> str:
    """'10MB/s' when a whole number of MB/s, else bytes/s (memhog reads both)."""
    return f"{rate // 1_000_000}MB/s" if rate and rate % 1_000_000 == 0 else str(rate)


def case_scenario(sc: Scenario, case: Case) -> Scenario:
    """The scenario with `counter` sized and dirtying as `case` says."""
    instances = []
    for inst in sc.instances:
        if inst.name == INSTANCE:
            command = _with_arg(inst.command, "--size", size_text(case.memory_bytes))
            command = _with_arg(command, "--dirty-rate", rate_text(case.dirty_rate))
            inst = inst.model_copy(update={"command": command, "memory": case.memory_bytes})
        instances.append(inst)
    return sc.model_copy(update={"instances": tuple(instances)})


def _with_arg(command: tuple[str, ...], flag: str, value: str) -> tuple[str, ...]:
    words = list(command)
    if flag in words:
        words[words.index(flag) + 1] = value
    else:
        words += [flag, value]
    return tuple(words)


class Bench:
    """The testbed of a whole run: controller, Mininet, one agent per site."""

    def __init__(self, tb: Testbed, clients: dict[str, AgentClient], sc: Scenario) -> None:
        from orchestration.links import RestControllerLink

        self.tb = tb
        self.clients = clients
        self.sc = sc
        self.link = RestControllerLink(tb.ctl.client)
        self.ip = str(sc.instance(INSTANCE).ip)
        self.port = 7000
        self.hold = "auto"  # whether the engine holds the service's traffic while frozen
        self.compress = "auto"  # the copies' compression (bench loss: "none", like seed 003)
        self.last_record: MigrationRecord | None = None  # the last case's, phases and all
        self._podman: PodmanPeer | None = None  # made by the first podman case

    def path_rate_bps(self) -> float:
        """The rate of one TCP stream from the source's MEC host to the destination's."""
        from mecmig.bench.path_rate import path_rate_bps

        return path_rate_bps(self.tb.emu, self.sc, SOURCE, DESTINATION)

    def orchestrator(self, case: Case) -> Orchestrator:
        from orchestration.orchestrator import Orchestrator

        return Orchestrator(case_scenario(self.sc, case), self.clients, self.link)

    def run_case(self, case: Case, on_phase: Callable[[str], None]) -> dict[str, Any]:
        """Deploy, probe, migrate, stop the probe, tear down; one row ('error' if it failed)."""
        from mecmig.bench.podman_peer import PeerMigrationError
        from migration.engine import MigrationError

        orch = self.orchestrator(case)
        row = empty_row(case)
        probe: ProbeRun | None = None
        record: MigrationRecord | None = None
        peer: PodmanPeer | None = None
        try:
            orch.teardown(INSTANCE)
            if case.strategy in PEER_STRATEGIES:
                peer = self.podman(orch)
            on_phase("deploy")
            if peer is not None:
                peer.deploy(self.peer_site(orch, SOURCE))
                self.link.relocate(INSTANCE, SOURCE, orch.port_at(INSTANCE, SOURCE))
            else:
                orch.deploy(INSTANCE)
            self._wait_answering(timeout=30 + case.memory_bytes / MIB * 0.1)
            on_phase("probe")
            probe = ProbeRun(self.tb, self.ip, self.port)
            marks: dict[str, int] = {}
            listener = _listener(on_phase, marks)
            try:
                if case.strategy == "baseline":
                    record = baseline_migration(self, orch, listener)
                elif peer is not None:
                    record = peer.migrate(
                        self.peer_site(orch, SOURCE),
                        self.peer_site(orch, DESTINATION),
                        case.strategy,
                        self._switch(orch),
                        listener,
                    )
                else:
                    record = orch.migrate(
                        INSTANCE,
                        DESTINATION,
                        strategy=case.strategy,
                        budget_ms=BUDGET_MS,
                        listener=listener,
                        hold=self.hold,
                        compress=self.compress,
                    )
            except (MigrationError, PeerMigrationError) as exc:
                record = exc.record
                row["error"] = f"migration {exc.record.outcome.value}: {exc}"
            on_phase("probe tail")
            time.sleep(PROBE_TAIL_S)
            result = probe.stop()
            row.update(probe_fields(result))
            row["client_timing_ms"] = client_timing(result, marks)
        except Exception as exc:  # noqa: BLE001 - a case that fails is reported, the run goes on
            row.setdefault("error", f"{type(exc).__name__}: {exc}")
        finally:
            if probe is not None:
                probe.close()
            try:
                orch.teardown(INSTANCE)
                if peer is not None:
                    peer.teardown()
            except Exception as exc:  # noqa: BLE001
                row.setdefault("error", f"teardown: {exc}")
        self.last_record = record
        if record is not None:
            row.update(record_fields(record.to_dict()))
        return row

    # -------------------------------------------------------------- the peer (Podman)

    def podman(self, orch: Orchestrator) -> PodmanPeer:
        """The run's Podman peer, set to this case's workload (PodmanError: podman missing)."""
        from ground.runner import SubprocessRunner
        from mecmig.bench.podman_peer import Podman, PodmanError, PodmanPeer, podman_problem

        workload = orch.spec_at(INSTANCE, SOURCE)  # its command, address and files
        if self._podman is None:
            runner = SubprocessRunner()
            problem = podman_problem(runner)
            if problem:
                raise PodmanError(problem)
            self._podman = PodmanPeer(Podman(runner), workload)
        self._podman.use(workload)
        return self._podman

    def peer_site(self, orch: Orchestrator, site: str) -> PeerSite:
        """A site as the peer sees it: its MEC host (where the copy runs), bridge and port."""
        from mecmig.bench.podman_peer import PeerSite
        from topology.world import agent_host

        s = self.sc.site(site)
        pid = int(self.tb.emu.host(agent_host(site)).pid)
        port = orch.port_at(INSTANCE, site)
        return PeerSite(site, pid, str(s.agent_ip), s.switch_name, port)

    def _switch(self, orch: Orchestrator) -> Callable[[], float | None]:
        """The traffic's switch to the destination, as the baseline's (its switchover, ms)."""

        def switch() -> float | None:
            port = orch.port_at(INSTANCE, DESTINATION)
            return self.tb.ctl.client.relocate(INSTANCE, DESTINATION, port).switchover_ms

        return switch

    def close(self) -> None:
        """Remove what the peer made (its images; each case removed its container)."""
        if self._podman is not None:
            self._podman.close()
            self._podman = None

    def _wait_answering(self, timeout: float) -> None:
        from mininet_scenarios.emulation import EmulationError
        from mininet_scenarios.measure import wait_answering

        try:
            wait_answering(self.tb.emu, UE, self.ip, self.port, timeout)
        except EmulationError as exc:
            raise RuntimeError(f"{INSTANCE} does not answer after deploy: {exc}") from exc


def _listener(on_phase: Callable[[str], None], marks: dict[str, int] | None = None) -> Listener:
    """Reports each phase's start to `on_phase`; with `marks`, also keeps when (monotonic ns, as
    the client probe counts) each phase first started and ended, as "<phase>:start"/":end"."""

    def listen(event: str, record: Any, phase: Any) -> None:
        if phase is None:
            return
        if event == "phase_started":
            on_phase(phase.name)
            if marks is not None:
                marks.setdefault(f"{phase.name}:start", time.monotonic_ns())
        elif event == "phase_done" and marks is not None:
            marks.setdefault(f"{phase.name}:end", time.monotonic_ns())

    return listen


def client_timing(p: dict[str, Any], marks: dict[str, int]) -> dict[str, float]:
    """Where the client's silence across the freeze sits against the migration's phases, in
    ms: from its last reply to the freeze phase's start (`last_reply_to_freeze`), from the
    restore's end to its first reply after it (`restore_end_to_first_reply`) and from the held
    traffic's delivery to it (`deliver_end_to_first_reply`). The silence is the longest one
    that overlaps the freeze phase's start to the restore's end, and ends in a reply (not at
    the probe's end: a service that never answered again has no first reply). Empty without
    such a silence or the phases' times."""
    start_ns = p.get("start_ns") or 0
    freeze, restored = marks.get("freeze_dump:start"), marks.get("restore:end")
    if not start_ns or freeze is None or restored is None:
        return {}
    end_ms = p.get("duration_ms")

    def across(gap: list[float]) -> bool:
        a_ns, b_ns = start_ns + gap[0] * 1e6, start_ns + gap[1] * 1e6
        ends_in_reply = end_ms is None or gap[1] < end_ms
        return a_ns <= restored and b_ns >= freeze and ends_in_reply

    gaps = [g for g in p.get("gaps") or [] if across(g)]
    if not gaps:
        return {}
    a, b = max(gaps, key=lambda g: g[1] - g[0])
    last_reply, first_reply = start_ns + a * 1e6, start_ns + b * 1e6
    out: dict[str, float] = {}
    for name, mark, before in (
        ("last_reply_to_freeze", "freeze_dump:start", False),
        ("restore_end_to_first_reply", "restore:end", True),
        ("deliver_end_to_first_reply", "deliver:end", True),
    ):
        if mark in marks:
            ms = (first_reply - marks[mark]) if before else (marks[mark] - last_reply)
            out[name] = round(ms / 1e6, 1)
    return out


# ------------------------------------------------------------------------------ baseline


def baseline_migration(bench: Bench, orch: Orchestrator, listener: Listener) -> MigrationRecord:
    """Seed 004's stop-and-copy: runc checkpoint (stops it) -> copy all -> switch -> runc restore.

    No reservation (the copy takes what the network gives), no pre-copy, no rollback: a failure
    leaves the instance dead (the case fails; the next case deploys afresh). The destination is
    prepared (locked netns, bundle) before the checkpoint, as the engine does; its duration is
    recorded ("prepare"), so the report can say what it would add inside the freeze.
    """
    from dataclasses import replace

    from ground.defaults import MIGRATION_PORT
    from migration.profile import dump_detail, restore_detail
    from migration.timeline import MigrationRecord, Outcome, Timeline

    src, dst = bench.clients[SOURCE], bench.clients[DESTINATION]
    record = MigrationRecord(
        id=f"baseline-{time.monotonic_ns()}",
        instance=INSTANCE,
        source=SOURCE,
        destination=DESTINATION,
        strategy="baseline",
        mode=BASELINE_MODE,
    )
    timeline = Timeline(record, listener=listener)
    port = orch.port_at(INSTANCE, DESTINATION)
    cpu0 = src.cpu_jiffies()
    try:
        with timeline.phase("prepare"):
            dst.prepare_target(replace(src.spec(INSTANCE), port=port))
        with timeline.phase("freeze_dump") as ph:
            dump = src.checkpoint(INSTANCE, leave_running=False)
            ph.detail.update(image_bytes=dump.image_bytes, dump_s=dump.seconds)
            ph.detail.update(dump_detail(dump))  # CRIU's and runc's times (migration.profile)
        with timeline.phase("transfer") as ph:
            dst.start_receive(INSTANCE)
            src.send(INSTANCE, dst.address, MIGRATION_PORT, delta=False)
            sent = dst.finish_receive(INSTANCE)
            ph.bytes = sent.bytes_on_wire
            ph.detail.update(mode=sent.mode, bytes_total=sent.bytes_total, send_s=sent.seconds)
        with timeline.phase("switch") as ph:
            view = bench.tb.ctl.client.relocate(INSTANCE, DESTINATION, port)
            ph.detail["switchover_ms"] = view.switchover_ms
        with timeline.phase("restore") as ph:
            ph.detail.update(restore_detail(dst.restore(INSTANCE)))
            status = dst.status(INSTANCE)
            if status != "running":
                raise RuntimeError(f"restored instance is {status}")
        timeline.mark_point_of_no_return()
        with timeline.phase("cleanup"):
            src.destroy(INSTANCE)
    except Exception as exc:
        from migration.engine import MigrationError

        timeline.finish(Outcome.FAILED, str(exc))
        raise MigrationError(f"baseline migration failed: {exc}", record) from exc
    freeze, restore = record.phase("freeze_dump"), record.phase("restore")
    if freeze is not None and restore is not None and restore.end_ms is not None:
        record.metrics["frozen_ms"] = restore.end_ms - freeze.start_ms
    busy1, total1 = src.cpu_jiffies()
    if total1 > cpu0[1]:
        record.metrics["source_cpu_util"] = (busy1 - cpu0[0]) / (total1 - cpu0[1])
    record.metrics["rounds"] = 0
    timeline.finish(Outcome.DONE)
    return record


# ------------------------------------------------------------------------------ the probe


class ProbeRun:
    """`python -m workloads.probe` on ue1 until stopped (SIGTERM): one TCP connection, a PING
    every 5 ms; it never gives a stalled connection up (a long freeze is downtime, not a break)."""

    def __init__(self, tb: Testbed, ip: str, port: int) -> None:
        from mininet_scenarios.measure import Probe

        self.started = time.monotonic()
        self.probe = Probe(
            tb.emu,
            UE,
            ip,
            port,
            interval_ms=PROBE_INTERVAL_MS,
            extra=["--stall-timeout-ms", f"{PROBE_STALL_MS:g}"],
        )
        time.sleep(PROBE_LEAD_S)
        if not self.probe.alive():
            failure = self.probe.failure()
            self.probe.close()
            raise RuntimeError(f"probe exited at once: {failure}")

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then its JSON result (RuntimeError with its stderr if it printed none)."""
        from mininet_scenarios.emulation import EmulationError

        try:
            return self.probe.stop(timeout=60)
        except EmulationError as exc:
            raise RuntimeError(str(exc)) from exc

    def close(self) -> None:
        """Kill it if it still runs, remove its files."""
        self.probe.close()


# ------------------------------------------------------------------------------ rows


def empty_row(case: Case) -> dict[str, Any]:
    return {
        "strategy": case.strategy,
        "memory_bytes": case.memory_bytes,
        "dirty_rate_bps": case.dirty_rate_bps,
        "repeat": case.repeat,
        "downtime_ms": None,
        "total_ms": None,
        "frozen_ms": None,
        "bytes_transferred": None,
        "state_intact": None,
        "same_connection": None,
        "mode": None,
        "outcome": None,
        "rounds": None,
        "source_cpu_util": None,
        "phases": {},
    }


def probe_fields(p: dict[str, Any]) -> dict[str, Any]:
    intact = bool(p["same_connection"] and p["counter_monotonic"] and p["fingerprint_stable"])
    silent = sum(b - a - p["interval_ms"] for a, b in p["gaps"])
    return {
        "downtime_ms": round(p["downtime_ms"], 1),
        "silent_ms": round(silent, 1),  # every gap > 3 intervals, added up (not only the longest)
        "gaps_over_100ms": sum(b - a > 100 for a, b in p["gaps"]),
        "state_intact": intact,
        "same_connection": p["same_connection"],
        "counter_monotonic": p["counter_monotonic"],
        "fingerprint_stable": p["fingerprint_stable"],
        "probe": {
            k: p[k]
            for k in (
                "duration_ms",
                "sent",
                "replies",
                "failures",
                "reconnects",
                "gaps",
                "first_counter",
                "last_counter",
                "rtt_ms_median",
            )
        },
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def record_fields(rec: dict[str, Any]) -> dict[str, Any]:
    metrics = rec["metrics"]
    phases = {p["name"]: _ms(p["duration_ms"]) for p in rec["phases"]}
    by_name = {p["name"]: p for p in rec["phases"]}
    reserve = by_name.get("reserve", {}).get("detail", {})
    boost = by_name.get("boost", {}).get("detail", {})
    dump = by_name.get("freeze_dump", {}).get("detail", {})
    transfer = by_name.get("transfer", {})
    util = metrics.get("source_cpu_util")
    return {
        "total_ms": _ms(rec["total_ms"]),
        "frozen_ms": _ms(metrics.get("frozen_ms")),
        "bytes_transferred": rec["bytes_transferred"],
        "mode": rec["mode"],
        "outcome": rec["outcome"],
        "rounds": metrics.get("rounds"),
        "source_cpu_util": None if util is None else round(util, 3),
        "phases": phases,
        "reserved_bps": reserve.get("granted_bps"),
        "boosted_bps": boost.get("granted_bps"),  # the final copy's reservation (pre-copy)
        "image_bytes": dump.get("image_bytes"),
        "held": bool(
            dump.get("held") or by_name.get("freeze_stop", {}).get("detail", {}).get("held")
        ),
        "held_packets": by_name.get("deliver", {}).get("detail", {}).get("packets"),
        "final_transfer_bytes": transfer.get("bytes"),
        "stop_reason": metrics.get("stop_reason"),
        "migration_error": rec["error"],
    }


@contextmanager
def bench_testbed() -> Iterator[Bench]:
    """Controller + Mininet (edge.yaml, instances left to the agents) + one agent per site."""
    from mininet_scenarios.agents import SiteAgents
    from mininet_scenarios.testbed import testbed
    from topology.scenario import load_scenario

    sc = load_scenario(EDGE)
    with testbed(EDGE, instance_hosts=False) as tb, SiteAgents(tb.emu, EDGE) as agents:
        bench = Bench(tb, agents.clients, sc)
        try:
            yield bench
        finally:
            bench.close()
