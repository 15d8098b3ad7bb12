"""Recovery, for real (issue 10): after a controller restart, a switch reconnecting, or the whole
emulation rebuilt under a running controller, every switch holds exactly the model, forwarding
works, and /v1/health counts only the switches really connected.

"Exactly the model" is checked against a reference the controller cannot bias: the same switch
wiped (`del-flows`, `del-meters`) and reconnected, which gets the model and nothing else. Tables
are compared as normalised `ovs-ofctl -O OpenFlow13 dump-flows` / `dump-meters` (no counters,
no durations, lines sorted), hashed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from controller.client import ControllerClient
from controller.ofmsg import CookieKind, cookie
from controller.process import ControllerProcess, free_port
from mininet_scenarios.emulation import Emulation, emulate
from tests.integration.live import ROOT, live, ofctl
from topology.scenario import load_scenario

DEFAULT = ROOT / "scenarios" / "default.yaml"
SWITCHES = ("s1", "s2", "core")
HOLD_COOKIE = re.compile(r"cookie=0x5[0-9a-f]{14},")  # cookie(CookieKind.HOLD, id)
_COUNTERS = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]+,? ?")


def flow_table(switch: str) -> list[str]:
    """The switch's flows, without counters and durations, sorted."""
    lines = ofctl(switch, "dump-flows").splitlines()
    return sorted(_COUNTERS.sub("", line).strip() for line in lines if "cookie=" in line)


def meter_table(switch: str) -> list[str]:
    """The switch's meters (configuration only), one line per meter, sorted."""
    out = ofctl(switch, "dump-meters")
    body = " ".join(line.strip() for line in out.splitlines() if "reply" not in line)
    return sorted(f"meter={m.strip()}" for m in body.split("meter=") if m.strip())


def table_hash(switch: str) -> str:
    text = "\n".join(flow_table(switch) + ["--"] + meter_table(switch))
    return hashlib.sha256(text.encode()).hexdigest()


def in_sync(client: ControllerClient, switch: str) -> bool:
    """Whether the controller counts `switch` as connected: its connection stands and it was
    brought in line with the model."""
    return any(sw.name == switch and sw.connected for sw in client.topology().switches)


def wait_for(what: str, ok: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def vsctl(*args: str) -> str:
    return subprocess.run(
        ["ovs-vsctl", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def disconnect(client: ControllerClient, switch: str) -> str:
    """Cut `switch` off the controller, its tables kept (it is pointed at a port where nothing
    listens: `ovs-vsctl del-controller` would flush them), and wait until the controller no
    longer counts it; its controller target, for `reconnect`."""
    target = vsctl("get-controller", switch)
    vsctl("set-controller", switch, f"tcp:127.0.0.1:{free_port()}")
    wait_for(f"{switch} no longer counted", lambda: not in_sync(client, switch), 5)
    return target


def reconnect(client: ControllerClient, switch: str, *, wipe: bool = False) -> None:
    """Disconnect `switch` (optionally wiping its tables meanwhile), reconnect it and wait until
    the controller has it in sync again."""
    target = disconnect(client, switch)
    if wipe:
        ofctl(switch, "del-flows")
        ofctl(switch, "del-meters")
    vsctl("set-controller", switch, target)
    wait_for(f"{switch} in sync again", lambda: in_sync(client, switch))
    settled(client)


def settled(client: ControllerClient) -> None:
    """Wait until the controller sees every link up again: a switch's links count as down
    while it is away (os-ken's topology app), and LLDP finds them again after it is back."""
    wait_for("every link up", lambda: all(link.up for link in client.topology().links))


def hashes() -> dict[str, str]:
    return {sw: table_hash(sw) for sw in SWITCHES}


@contextlib.contextmanager
def showing_log(ctl: ControllerProcess) -> Iterator[None]:
    """Print the end of `ctl`'s log if the block fails."""
    try:
        yield
    except BaseException:
        print(f"controller log (end):\n{ctl.log_tail(80)}")
        raise


def connected(client: ControllerClient) -> int:
    return client.health().switches_connected


def test_restart_and_reconnect_leave_exactly_the_model_and_a_reinstall_changes_nothing(
    tmp_path: Path,
) -> None:
    """(a) The controller restarts from a state file that missed its last reservation (it died
    before saving it), while a hold was in force: the switches keep what it left, and the new
    controller removes what it does not know (the meter too), and adds nothing else. (b) A
    reservation released while its meter's switch is disconnected: on reconnecting the switch
    loses that meter and its flows. A re-install (reconnect) changes no flow nor meter."""
    state = tmp_path / "state.json"
    with live("default.yaml", state_file=state) as lv:
        client = lv.ctl.client
        kept = client.reserve("mec1", "mec2", "20Mbit", match={"proto": "tcp", "dst_port": 5202})
        saved = state.read_text()
        lost = client.reserve("mec1", "mec2", "10Mbit", match={"proto": "tcp", "dst_port": 5203})
        client.hold("video", timeout_s=600)
        assert f"meter={lost.meter_id}" in ofctl("s1", "dump-meters")
        assert HOLD_COOKIE.search(ofctl("s1", "dump-flows"))
        lv.ctl.stop()
        state.write_text(saved)  # its last save never happened

        again = ControllerProcess(DEFAULT, state_file=state, of_port=lv.ctl.of_port)
        with again, showing_log(again):
            again.wait_switches()  # connected and in sync
            assert [r.id for r in again.client.reservations()] == [kept.id]
            settled(again.client)
            after_restart = hashes()
            meters = meter_table("s1")
            assert any(f"meter={kept.meter_id} " in m for m in meters), meters
            assert not any(f"meter={lost.meter_id} " in m for m in meters), meters
            for sw in SWITCHES:
                flows = "\n".join(flow_table(sw))
                assert f"cookie={cookie(CookieKind.RESERVATION, lost.id):#x}," not in flows
                assert not HOLD_COOKIE.search(flows), flows
                # the reference: the same switch wiped and reconnected gets the model only
                reconnect(again.client, sw, wipe=True)
                assert hashes() == after_restart, sw
            assert lv.emu.ping("ue1", "hmec2") == 0

            # idempotent: a re-install (the switch reconnects, is read and re-synced) changes
            # nothing
            for sw in SWITCHES:
                reconnect(again.client, sw)
                assert hashes() == after_restart, sw

            # (b) released while its switch is away
            extra = again.client.reserve(
                "mec1", "mec2", "5Mbit", match={"proto": "udp", "dst_port": 5300}
            )
            target = disconnect(again.client, "s1")
            assert connected(again.client) == 2
            again.client.release(extra.id)  # s1 is skipped: it is not connected
            assert f"meter={extra.meter_id} " in " ".join(meter_table("s1"))  # still there
            assert f"cookie={cookie(CookieKind.RESERVATION, extra.id):#x}," in ofctl(
                "s1", "dump-flows"
            )
            vsctl("set-controller", "s1", target)
            wait_for("s1 in sync again", lambda: in_sync(again.client, "s1"))
            settled(again.client)
            assert connected(again.client) == 3
            assert f"meter={extra.meter_id} " not in " ".join(meter_table("s1"))
            assert f"cookie={cookie(CookieKind.RESERVATION, extra.id):#x}," not in ofctl(
                "s1", "dump-flows"
            )
            assert hashes() == after_restart


def _reaches(emu: Emulation, src: str, dst: str) -> bool:
    return emu.ping(src, dst, count=1) == 0


def test_rebuilding_the_emulation_under_a_running_controller_keeps_forwarding() -> None:
    """The same controller drives three emulations in turn: each forwards (pings), its
    switches all count as connected while it runs and none once it is gone."""
    scenario = load_scenario(DEFAULT)
    expected = len(scenario.sites) + len(scenario.switches)
    with ControllerProcess(DEFAULT) as ctl:
        try:
            for round_ in range(3):
                with emulate(scenario, controller=("127.0.0.1", ctl.of_port)) as emu:
                    ctl.wait_switches(timeout=20)
                    assert connected(ctl.client) == expected
                    reaches = functools.partial(_reaches, emu, "ue1", "hmec2")
                    wait_for(f"round {round_}: ue1 reaches hmec2", reaches)
                    assert emu.ping("ue1", "hmec2", count=3) == 0
                    assert emu.ping("hmec1", "video", count=3) == 0
                    assert all(link.up for link in ctl.client.topology().links)
                wait_for(
                    "no switch counted once the emulation is gone",
                    lambda: connected(ctl.client) == 0,
                    5,
                )
            log = ctl.log_path.read_text()
            assert "Multiple connections" not in log
        except BaseException:
            print(ctl.log_tail(80))
            raise
    shutil.rmtree(ctl.log_path.parent, ignore_errors=True)


def test_a_restart_on_a_mesh_reads_every_route_back_and_has_nothing_to_send() -> None:
    """On a meshed scenario every switch is core (two links or more), so its far hosts' entries
    write their anchor into the metadata and table 2 routes them (controller.forwarding). Read
    back from Open vSwitch, those entries equal the model's: after a controller restart every
    switch is found in line (no message sent), its tables are unchanged, forwarding works."""
    three = ROOT / "scenarios" / "three-sites.yaml"
    names = ("s1", "s2", "s3", "core")
    with live("three-sites.yaml") as lv:
        assert "write_metadata:" in ofctl("s1", "dump-flows")
        assert "metadata=0x" in ofctl("s1", "dump-flows")
        before = {sw: table_hash(sw) for sw in names}
        lv.ctl.stop()
        again = ControllerProcess(three, of_port=lv.ctl.of_port)
        with again, showing_log(again):
            again.wait_switches()
            tail = again.log_tail(400)
            for sw in names:
                synced = re.findall(rf"switch {sw} held (\d+) flow\(s\).*; (\d+) message", tail)
                assert synced, tail
                held, sent = synced[-1]
                assert int(held) > 0 and sent == "0", (sw, synced[-1])
                assert table_hash(sw) == before[sw], sw
            assert lv.emu.ping("ue1", "video") == 0
            assert lv.emu.ping("hmec2", "hmec3") == 0
