"""The faults of `mecmig bench reliability`, each at a phase boundary of a migration.

A fault fires once, when the engine starts the phase it is aimed at (the migration's listener:
`phase_started`; `after` is the point of no return), synchronously: the phase then runs into it.
Each fault has its recovery, what an operator would do once the migration has ended (start the
killed agent again, bring the link back, free the disk). Nothing here is part of mecmig's own
code paths: the faults act from outside, on the real processes, links and files, as the
failures they stand for would; the benchmark is the only caller, and it is off unless run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.process import free_port
from mecmig.bench.fault_names import FAULT_NAMES
from mecmig.bench.reliability_rig import DESTINATION, INSTANCE, SOURCE, Rig
from orchestration.agent_client import AgentClient
from orchestration.orchestrator import Orchestrator

ROUND_PHASES = {"precopy"}  # only strategies with rounds reach them
ROUNDS_STRATEGIES = {"precopy", "hybrid"}
FILL_RESERVE = 64 * 1024  # what a full disk still has free
LINK_CUT_S = 5.0  # a cut link comes back after this long (or when the migration has ended)
CRIU_WAIT_S = 20.0
NETWORK_SETTLE_S = 15.0  # TCP's retransmission timer doubles: 0.2, 0.4 ... 6.4 s after a loss
SUPERVISOR_S = 2.0  # a killed agent is started again this long after


@dataclass
class Shot:
    """One fault being fired: where, and what it did (for the row's `detail`)."""

    rig: Rig
    strategy: str
    notes: dict[str, Any] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def background(self, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        self.threads.append(t)


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    phases: tuple[str, ...]
    inject: Callable[[Shot], None]
    recover: Callable[[Shot], None] = lambda shot: None
    # after the recovery, before the client stops: time for it to come back (a client whose
    # packets were lost waits for its next TCP retransmission, which backs off to seconds)
    settle_s: float = 1.0

    def applies(self, phase: str, strategy: str) -> bool:
        return phase in self.phases and (phase not in ROUND_PHASES or strategy in ROUNDS_STRATEGIES)


# ------------------------------------------------------------------ agents


def _kill_agent(site: str) -> Callable[[Shot], None]:
    """SIGKILL `site`'s agent; its supervisor (systemd's `Restart=`, say) starts it again
    SUPERVISOR_S later, while the migration goes on."""

    def inject(shot: Shot) -> None:
        shot.rig.agents.kill(site)
        shot.notes["killed"] = f"agent {site}"

        def supervise() -> None:
            time.sleep(SUPERVISOR_S)
            shot.rig.agents.restart(site)
            shot.rig.orch.sites[site] = shot.rig.agents.clients[site]
            shot.notes["restarted_after_s"] = SUPERVISOR_S

        shot.background(supervise)

    return inject


# ------------------------------------------------------------------ CRIU


def _kill_criu(site: str, verb: str) -> Callable[[Shot], None]:
    """SIGKILL the CRIU that `runc <verb>` of the instance runs at `site`, as soon as it runs."""

    def inject(shot: Shot) -> None:
        def hunt() -> None:
            deadline = time.monotonic() + CRIU_WAIT_S
            while time.monotonic() < deadline:
                pids = shot.rig.criu_of(site, verb)
                if pids:
                    time.sleep(0.005)  # let it start its work: mid-dump, mid-restore
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            continue
                    shot.notes["killed"] = (
                        f"criu {verb} at {site} (pid {', '.join(map(str, pids))})"
                    )
                    return
                time.sleep(0.002)
            shot.notes["killed"] = f"no criu {verb} ran at {site}"

        shot.background(hunt)

    return inject


# ------------------------------------------------------------------ network


def _link_ends(rig: Rig, a: str, b: str) -> list[str]:
    links = rig.emu.net.linksBetween(rig.emu.net.get(a), rig.emu.net.get(b))
    return [intf.name for link in links for intf in (link.intf1, link.intf2)]


def _cut_transfer_link(shot: Shot) -> None:
    rig = shot.rig
    ends = _link_ends(rig, rig.site_switch(DESTINATION), "core")
    back = threading.Event()

    def set_state(state: str) -> None:
        for end in ends:
            rig.runner.run(["ip", "link", "set", end, state], check=False)

    def later() -> None:
        back.wait(LINK_CUT_S)
        set_state("up")

    set_state("down")
    shot.notes["cut"] = f"{' / '.join(ends)} for up to {LINK_CUT_S:.0f} s"
    shot.undo.append(back.set)
    shot.background(later)


def _disconnect_switch(shot: Shot) -> None:
    rig = shot.rig
    sw = rig.site_switch(DESTINATION)
    target = rig.runner.run(["ovs-vsctl", "get-controller", sw]).stdout.split()
    # pointed at a port where nothing listens, its tables kept, as a switch that loses its
    # controller keeps them (`ovs-vsctl del-controller` would flush them)
    rig.runner.run(["ovs-vsctl", "set-controller", sw, f"tcp:127.0.0.1:{free_port()}"])
    shot.notes["disconnected"] = sw

    def reconnect() -> None:
        rig.runner.run(["ovs-vsctl", "set-controller", sw, *target])
        rig.ctl.wait_switches(timeout=60)

    shot.undo.append(reconnect)


def _restart_controller(shot: Shot) -> None:
    rig = shot.rig
    t0 = time.monotonic()
    rig.ctl.stop()
    rig.ctl.start()
    rig.ctl.wait_switches(timeout=60)
    shot.notes["restart_s"] = round(time.monotonic() - t0, 2)


# ------------------------------------------------------------------ disk


def _fill_destination_disk(shot: Shot) -> None:
    root = shot.rig.small_disk
    if not shot.rig.disk_is_small():
        raise RuntimeError(f"{root} is not the bench's own tmpfs: not filling it")
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    filler = root / "filler.bin"
    size = max(0, free - FILL_RESERVE)
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)
    shot.notes["filled"] = f"{size} bytes ({FILL_RESERVE // 1024} KiB left)"
    shot.undo.append(lambda: filler.unlink(missing_ok=True))


# ------------------------------------------------------------------ a second migration


def _second_migration(shot: Shot) -> None:
    """Another `mecmig migrate` of the same instance, from another process's orchestrator (no
    lock shared in memory): only the agents can keep the two apart."""
    rig = shot.rig
    # its own connections to the agents, closed when it is done, as another process's are
    clients = {
        name: AgentClient.at(name, c.address, rig.agents.endpoints[name], token=rig.agents.token)
        for name, c in rig.agents.clients.items()
    }
    other = Orchestrator(rig.sc, clients, rig.link)
    done = threading.Event()

    def run() -> None:
        try:
            rec = other.migrate(INSTANCE, DESTINATION, strategy="cold")
            shot.notes["second"] = rec.outcome.value
        except Exception as exc:  # noqa: BLE001 - what happened to it is the observation
            outcome = getattr(getattr(exc, "record", None), "outcome", None)
            shot.notes["second"] = f"{outcome.value if outcome else 'refused'}: {exc}"[:300]
        finally:
            for client in clients.values():
                client.close()
            done.set()

    shot.background(run)
    done.wait(1.0)  # let it reach the agents before the first goes on


def _join(shot: Shot) -> None:
    for undo in shot.undo:
        undo()
    for t in shot.threads:
        t.join(timeout=180)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "kill-source-agent",
            f"SIGKILL the source's agent (its containers live on); its supervisor starts it "
            f"again {SUPERVISOR_S:.0f} s later",
            ("prepare", "precopy", "freeze", "transfer", "switch", "restore", "after"),
            _kill_agent(SOURCE),
        ),
        Fault(
            "kill-destination-agent",
            f"SIGKILL the destination's agent; its supervisor starts it again "
            f"{SUPERVISOR_S:.0f} s later",
            ("prepare", "precopy", "freeze", "transfer", "switch", "restore", "after"),
            _kill_agent(DESTINATION),
        ),
        Fault(
            "kill-criu-dump",
            "SIGKILL CRIU while it dumps at the source",
            ("precopy", "freeze"),
            _kill_criu(SOURCE, "checkpoint"),
        ),
        Fault(
            "kill-criu-restore",
            "SIGKILL CRIU while it restores at the destination",
            ("restore",),
            _kill_criu(DESTINATION, "restore"),
        ),
        Fault(
            "cut-link",
            f"the destination's link to the core goes down for {LINK_CUT_S:.0f} s",
            ("prepare", "precopy", "freeze", "transfer", "switch", "restore", "after"),
            _cut_transfer_link,
            settle_s=NETWORK_SETTLE_S,
        ),
        Fault(
            "fill-disk",
            "the destination's disk is full (64 KiB left); freed afterwards",
            ("prepare", "precopy", "freeze", "transfer", "restore"),
            _fill_destination_disk,
        ),
        Fault(
            "restart-controller",
            "the controller process stops and starts again (same state file)",
            ("prepare", "precopy", "freeze", "transfer", "switch", "restore", "after"),
            _restart_controller,
        ),
        Fault(
            "disconnect-switch",
            "the destination site's switch loses its controller; reconnected afterwards",
            ("prepare", "precopy", "freeze", "transfer", "switch", "restore", "after"),
            _disconnect_switch,
            settle_s=NETWORK_SETTLE_S,
        ),
        Fault(
            "second-migration",
            "a second migration of the same instance (another orchestrator) starts",
            ("prepare", "precopy", "freeze", "transfer", "switch", "restore"),
            _second_migration,
        ),
    )
}


def recover(fault: Fault, shot: Shot) -> None:
    """Everything the fault started ends, then the operator's recovery runs."""
    _join(shot)
    fault.recover(shot)


if tuple(FAULTS) != FAULT_NAMES:  # the CLI lists the names from there
    raise ImportError("mecmig.bench.fault_names does not list the faults")
