"""No downtime behind the lock, at one site with runc/CRIU faked: what the dumps ask CRIU for,
the lock a restore hands over to CRIU, and what the agent does when a lock outlives a restore.

(Live: tests/integration/test_request_response_live.py.)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from agent.container import (
    CRIU_DUMP_OPTIONS,
    CRIU_RESTORE_OPTIONS,
    CRIU_ROUND_OPTIONS,
    SiteContainers,
)
from agent.netns import LOCK_TABLE, ContainerNetwork, NetnsError
from agent.runc import CheckpointOptions, Runc
from agent.service import SiteService
from agent.transfer import send_dir
from ground.runner import Result
from tests.unit.migration_fakes import make_spec
from tests.unit.test_criu_images import inventory
from tests.unit.test_predump_chain import FakeRuncRunner

ACCEPT = {"accept": None}
RUN_ID = "0b5e7a2c-run"  # what FakeRuncRunner's dumps write into inventory.img


class NftRunner(FakeRuncRunner):
    """FakeRuncRunner plus the nft tables of each namespace, and what criu.conf said at each
    runc call (runc reads it when it starts CRIU)."""

    def __init__(self, conf: Path) -> None:
        super().__init__()
        self.conf = conf
        self.tables: dict[str, set[str]] = {}
        self.opened: dict[str, set[str]] = {}  # tables CRIU's restore opened (patch 0011)
        self.confs: list[tuple[str, str]] = []  # (runc operation, criu.conf at that moment)
        self.criu_leaves_lock = False  # a CRIU whose restore misses the handed-over table
        self.unlocked_between: list[str] = []  # a namespace locked before a transaction, not after

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 60.0,
        input: str | None = None,
        netns_pid: int | None = None,
        env: Mapping[str, str] | None = None,
        detached_stdio: bool = False,
    ) -> Result:
        args = list(argv)
        if args[0] == "runc" and ("checkpoint" in args or "restore" in args):
            op = "checkpoint" if "checkpoint" in args else "restore"
            self.confs.append((op, self.conf.read_text()))
        if args[:3] == ["ip", "netns", "exec"] and args[4] == "nft":
            return self._nft(args[3], args[5:], input or "")
        result = super().run(args, check=check, input=input, netns_pid=netns_pid)
        if args[0] == "runc" and "restore" in args and not self.criu_leaves_lock:
            for ns, tables in self.tables.items():  # CRIU's network unlock opens the dump's table
                if f"CRIU-{RUN_ID}" in tables:
                    self.opened.setdefault(ns, set()).add(f"CRIU-{RUN_ID}")
        return result

    def locked(self, ns: str) -> bool:
        return bool(self.tables.get(ns, set()) - self.opened.get(ns, set()))

    def _nft(self, ns: str, args: list[str], script: str) -> Result:
        tables = self.tables.setdefault(ns, set())
        opened = self.opened.setdefault(ns, set())
        if args == ["-j", "list", "ruleset", "inet"]:  # as nft 1.0.6 prints it, metainfo left out
            listing: list[dict[str, object]] = []
            for t in sorted(tables):
                listing.append({"table": {"family": "inet", "name": t}})
                for hook in ("input", "output"):
                    listing.append(
                        {"chain": {"table": t, "name": hook, "hook": hook, "policy": "drop"}}
                    )
                for hook in ("input", "output"):
                    if t in opened:  # CRIU's restore put this rule first (patch 0011)
                        listing.append({"rule": {"table": t, "chain": hook, "expr": [ACCEPT]}})
                    mark = {"match": {"op": "==", "left": {"meta": {"key": "mark"}}}}
                    listing.append({"rule": {"table": t, "chain": hook, "expr": [mark, ACCEPT]}})
            return Result(("nft",), 0, json.dumps({"nftables": listing}), "", 0.0)
        assert args == ["-f", "-"]
        self.inputs.append(script)
        was_locked = self.locked(ns)
        for line in script.splitlines():
            words = line.split()
            if words[:3] == ["add", "table", "inet"]:
                tables.add(words[3])
            elif words[:3] == ["delete", "table", "inet"]:
                tables.remove(words[3])
                opened.discard(words[3])
        if was_locked and not self.locked(ns) and not script.startswith("delete table inet CRIU"):
            self.unlocked_between.append(ns)
        return Result(("nft",), 0, "", "", 0.0)


@pytest.fixture()
def site(tmp_path: Path) -> tuple[SiteContainers, NftRunner]:
    runner = NftRunner(tmp_path / "sites" / "svc" / "criu.conf")
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    c = SiteContainers(
        "mec1", tmp_path / "sites", "s1", runc, ContainerNetwork(runner, site="mec1")
    )
    c.create(make_spec("svc"))
    return c, runner


def test_a_pre_copy_round_takes_no_lock_and_leaves_the_sockets_alone(
    site: tuple[SiteContainers, NftRunner],
) -> None:
    """A round's packets must not be dropped: its sockets are never restored (the final
    dump's are), so CRIU neither locks the network nor puts them in repair mode."""
    c, runner = site
    c.checkpoint("svc", CheckpointOptions(leave_running=True))
    argv = runner.checkpoints[-1]
    assert "--leave-running" in argv and "--tcp-established" not in argv
    assert runner.confs[-1] == ("checkpoint", CRIU_ROUND_OPTIONS)
    options = CRIU_ROUND_OPTIONS.splitlines()
    assert options == [
        "network-lock skip", "tcp-close", "skip-in-flight", "manage-cgroups=ignore",
        "no-breakpoints",
    ]  # fmt: skip


def test_the_final_dump_locks_and_keeps_the_connections(
    site: tuple[SiteContainers, NftRunner],
) -> None:
    c, runner = site
    c.checkpoint("svc", CheckpointOptions(leave_running=True))
    c.checkpoint("svc", CheckpointOptions())
    argv = runner.checkpoints[-1]
    assert "--leave-running" not in argv and "--tcp-established" in argv
    assert runner.confs[-1] == ("checkpoint", CRIU_DUMP_OPTIONS)
    assert CRIU_DUMP_OPTIONS == (
        "network-lock nftables\nskip-in-flight\nmanage-cgroups=ignore\nno-breakpoints\n"
    )


def test_a_hold_script_goes_with_either_kind_of_dump(
    site: tuple[SiteContainers, NftRunner],
) -> None:
    c, runner = site
    url = "http://127.0.0.1:8080/v1/instances/svc/hold"
    c.checkpoint("svc", CheckpointOptions(), hold_url=url)
    final = runner.confs[-1][1]
    script = (c.dir("svc") / "criu-hold.sh").resolve()
    assert final == CRIU_DUMP_OPTIONS + f"action-script {script}\n"
    c.checkpoint("svc", CheckpointOptions(leave_running=True), hold_url=url)
    assert runner.confs[-1][1] == CRIU_ROUND_OPTIONS + f"action-script {script}\n"


def _migrated_here(c: SiteContainers, runner: NftRunner) -> None:
    """A destination: prepared (locked), images arrived (the fake dump writes them)."""
    spec = make_spec("svc")
    c.destroy("svc")
    c.prepare_target(spec)
    runner.run(
        c.runc.checkpoint_argv("svc", c.images_dir("svc"), c.dir("svc") / "w", CheckpointOptions())
    )


def test_the_restore_hands_the_lock_to_the_table_crius_unlock_opens(
    site: tuple[SiteContainers, NftRunner], caplog: pytest.LogCaptureFixture
) -> None:
    """The target is locked by our table until CRIU takes over, under the full run id of the
    dump (CRIU 4.2.1 as released cut it to 31 characters and missed it). CRIU's unlock opens
    that table (a rule that accepts everything first, patch 0011); the agent deletes it in the
    background."""
    c, runner = site
    _migrated_here(c, runner)
    ns = c.net.netns_name(c.plug(c.spec("svc")))
    assert runner.tables[ns] == {LOCK_TABLE}
    with caplog.at_level(logging.WARNING):
        c.restore("svc")
    # CRIU's table first, then ours goes (in the background, waited for after the restore):
    # the namespace is never unlocked in between
    c.net.settle(c.plug(c.spec("svc")))  # the opened table's deletion, in the background
    handover, ours_gone, opened_gone = runner.inputs[-3:]
    assert handover.startswith(f"add table inet CRIU-{RUN_ID}\n")
    assert ours_gone == f"add table inet {LOCK_TABLE}\ndelete table inet {LOCK_TABLE}\n"
    assert opened_gone == f"delete table inet CRIU-{RUN_ID}\n"
    assert runner.unlocked_between == []
    assert runner.confs[-1] == ("restore", CRIU_RESTORE_OPTIONS)
    assert runner.tables[ns] == set()
    assert not caplog.records  # an opened table is no lock left behind: nothing to report


def test_a_lock_that_outlives_the_restore_is_removed_and_reported(
    site: tuple[SiteContainers, NftRunner], caplog: pytest.LogCaptureFixture
) -> None:
    c, runner = site
    _migrated_here(c, runner)
    runner.criu_leaves_lock = True  # e.g. CRIU 4.2.1 without scripts/patches
    ns = c.net.netns_name(c.plug(c.spec("svc")))
    with caplog.at_level(logging.WARNING):
        c.restore("svc")
        c.net.settle(c.plug(c.spec("svc")))  # the restored tasks run meanwhile
    assert runner.tables[ns] == set()
    assert runner.inputs[-1] == f"delete table inet CRIU-{RUN_ID}\n"
    assert any("left its network lock" in r.getMessage() for r in caplog.records)


def test_the_inventory_arriving_hands_the_lock_over_before_the_restore_asks(
    site: tuple[SiteContainers, NftRunner], caplog: pytest.LogCaptureFixture
) -> None:
    """The images' inventory names the run id while the pages are still on their way: the
    hand-over happens then, so the restore itself sends no nft command before runc (12-15
    ms of its frozen window, measured). The namespace is never unlocked on the way."""
    c, runner = site
    _migrated_here(c, runner)
    plug = c.plug(c.spec("svc"))
    ns = c.net.netns_name(plug)
    c.hand_over_soon("svc", c.images_dir("svc") / "inventory.img")
    c.net.settle(plug)
    assert runner.tables[ns] == {f"CRIU-{RUN_ID}"}
    sent = len(runner.inputs)
    with caplog.at_level(logging.WARNING):
        c.restore("svc")
    assert runner.confs[-1] == ("restore", CRIU_RESTORE_OPTIONS)
    c.net.settle(plug)
    assert runner.inputs[sent:] == [f"delete table inet CRIU-{RUN_ID}\n"]  # the opened one
    assert runner.tables[ns] == set() and runner.unlocked_between == []
    assert not caplog.records


def test_a_later_rounds_inventory_replaces_the_table_handed_over_before(
    site: tuple[SiteContainers, NftRunner],
) -> None:
    """Pre-copy rounds bring an inventory each, each with its own run id: the last one's
    table is the lock; the one handed over before goes with ours, after the new one is in
    place. A restore of images under another run id than the one handed over ahead hands
    over again."""
    c, runner = site
    _migrated_here(c, runner)
    plug = c.plug(c.spec("svc"))
    ns = c.net.netns_name(plug)
    c.net.hand_over_soon(plug, "round-1")
    c.net.hand_over_soon(plug, "round-2")
    c.net.settle(plug)
    assert runner.tables[ns] == {"CRIU-round-2"}
    assert runner.inputs[-1] == (
        f"add table inet {LOCK_TABLE}\ndelete table inet {LOCK_TABLE}\n"
        "add table inet CRIU-round-1\ndelete table inet CRIU-round-1\n"
    )
    c.restore("svc")  # the images say RUN_ID
    c.net.settle(plug)
    assert runner.tables[ns] == set() and runner.unlocked_between == []


def test_a_run_id_that_is_not_one_is_never_put_in_an_nft_script(
    site: tuple[SiteContainers, NftRunner], caplog: pytest.LogCaptureFixture
) -> None:
    """The run id comes from images that came over the network: anything but CRIU's kind of
    name is refused (and the restore, reading the same images, fails on it)."""
    c, runner = site
    _migrated_here(c, runner)
    plug = c.plug(c.spec("svc"))
    sent = len(runner.inputs)
    with caplog.at_level(logging.WARNING):
        c.net.hand_over_soon(plug, "x; flush ruleset")
        c.net.settle(plug)
    assert runner.inputs[sent:] == []
    assert any("bad CRIU run id" in r.getMessage() for r in caplog.records)
    with pytest.raises(NetnsError, match="bad CRIU run id"):
        c.net.hand_over_lock(plug, "x y")


def test_destroy_removes_runcs_log_of_the_instance(
    site: tuple[SiteContainers, NftRunner],
) -> None:
    """runc appends to its log at every checkpoint and restore: the log goes with the instance
    (the reliability bench found it growing at every site an instance passed through)."""
    c, _ = site
    log = c.runc.log_dir / "runc-svc.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text('{"level":"warning","msg":"x"}\n')
    c.destroy("svc")
    assert not log.exists()


def test_only_an_opened_table_is_deleted_after_a_restore(
    site: tuple[SiteContainers, NftRunner],
) -> None:
    """`drop_released` deletes the tables CRIU opened, never one that still locks."""
    c, runner = site
    plug = c.plug(c.spec("svc"))
    runner.tables[c.net.netns_name(plug)] = {f"CRIU-{RUN_ID}", "CRIU-open", LOCK_TABLE}
    assert c.net.drop_released(plug, {f"CRIU-{RUN_ID}": True, LOCK_TABLE: True}) == []
    assert c.net.drop_released(plug, {"CRIU-open": False, LOCK_TABLE: True}) == ["CRIU-open"]
    c.net.settle(plug)
    assert runner.inputs[-1] == "delete table inet CRIU-open\n"


def test_the_agent_hands_over_as_its_receive_brings_the_inventory(
    site: tuple[SiteContainers, NftRunner], tmp_path: Path
) -> None:
    """Through the agent's own receive: the inventory of the images arriving hands the lock
    over while the copy goes on; the restore that follows sends no hand-over of its own."""
    c, runner = site
    spec = make_spec("svc")
    c.destroy("svc")
    c.prepare_target(spec)
    plug = c.plug(spec)
    ns = c.net.netns_name(plug)
    service = SiteService(c, "127.0.0.1", 0)
    src = tmp_path / "xfer"
    (src / "images").mkdir(parents=True)
    (src / "images" / "inventory.img").write_bytes(inventory(RUN_ID))
    (src / "images" / "pages-1.img").write_bytes(os.urandom(1 << 20))
    port = service.start_receive("svc")
    send_dir(src, "127.0.0.1", port)
    service.finish_receive("svc")
    c.net.settle(plug)
    assert runner.tables[ns] == {f"CRIU-{RUN_ID}"}
    sent = len(runner.inputs)
    c.restore("svc")
    c.net.settle(plug)
    assert runner.inputs[sent:] == [f"delete table inet CRIU-{RUN_ID}\n"]
    assert runner.unlocked_between == []
