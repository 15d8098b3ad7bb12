"""Pre-dump chains at one site (kernels with soft-dirty tracking), with runc/CRIU faked.

This kernel has no soft-dirty tracking, so `runc checkpoint --pre-dump` cannot run here; the
fake runner below does what runc and CRIU do with the image directories (runc checks that
`--parent-path` is relative and names a directory, CRIU writes its images and a `parent` link),
so the layout, the command lines and the chain's journey over a real transfer are tested.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from agent.container import PREDUMPS, ContainerError, SiteContainers
from agent.netns import ContainerNetwork
from agent.runc import CheckpointOptions, Runc
from agent.transfer import Receiver, send_dir
from ground.runner import Result
from tests.unit.migration_fakes import make_spec
from tests.unit.test_criu_images import inventory

TASK_PID = 4000  # what runc's state says the container's first process is


class FakeRuncRunner:
    """Answers runc's commands the way runc + CRIU would for the image directories."""

    def __init__(self) -> None:
        self.checkpoints: list[list[str]] = []
        self.restores: list[list[str]] = []
        self.created = False
        self.inputs: list[str] = []  # what nft was fed

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
        if input is not None:
            self.inputs.append(input)
        if args[0] == "runc" and "checkpoint" in args:
            self.checkpoints.append(args)
            self._checkpoint(args)
        elif args[0] == "runc" and "restore" in args:
            self.restores.append(args)
        elif args[0] == "runc" and "run" in args:
            self.created = True
        if args[0] == "runc" and "state" in args:
            if not self.created:
                return Result(tuple(args), 1, "", "container does not exist", 0.0)
            state = f'{{"status": "running", "pid": {TASK_PID}}}'
            return Result(tuple(args), 0, state, "", 0.0)
        return Result(tuple(args), 0, "", "", 0.0)

    @staticmethod
    def _checkpoint(args: list[str]) -> None:
        image = Path(args[args.index("--image-path") + 1])
        assert image.is_absolute()
        image.mkdir(parents=True, exist_ok=True)
        if "--parent-path" in args:
            parent = args[args.index("--parent-path") + 1]
            assert not os.path.isabs(parent), "runc: --parent-path must be relative"
            assert (image / parent).is_dir(), f"runc: invalid --parent-path {parent}"
            (image / "parent").symlink_to(parent)  # what CRIU does with it
        (image / "pages-1.img").write_bytes(os.urandom(8192))
        (image / "inventory.img").write_bytes(inventory("0b5e7a2c-run"))


@pytest.fixture()
def site(tmp_path: Path) -> tuple[SiteContainers, FakeRuncRunner]:
    runner = FakeRuncRunner()
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    c = SiteContainers(
        "mec1", tmp_path / "sites", "s1", runc, ContainerNetwork(runner, site="mec1")
    )
    c.create(make_spec("svc"))
    return c, runner


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_rounds_chain_onto_each_other(site: tuple[SiteContainers, FakeRuncRunner]) -> None:
    c, runner = site
    c.images_dir("svc").mkdir(parents=True)
    (c.images_dir("svc") / "stale.img").write_bytes(b"from an earlier migration")
    c.pre_dump("svc", 1)
    c.pre_dump("svc", 2)
    first, second = runner.checkpoints
    assert "--pre-dump" in first and _opt(first, "--parent-path") is None
    assert "--tcp-established" not in first and "--leave-running" not in first
    assert _opt(second, "--parent-path") == "../1"
    assert _opt(second, "--image-path") == str((c.predump_dir("svc") / "2").resolve())
    assert c.last_predump("svc") == 2
    assert not c.images_dir("svc").exists()  # a new chain: nothing stale travels with it
    assert os.readlink(c.predump_dir("svc") / "2" / "parent") == "../1"


def test_final_dump_links_to_the_last_round(site: tuple[SiteContainers, FakeRuncRunner]) -> None:
    c, runner = site
    c.pre_dump("svc", 1)
    c.pre_dump("svc", 2)
    image = c.checkpoint("svc", CheckpointOptions(), on_predumps=True)
    final = runner.checkpoints[-1]
    assert "--pre-dump" not in final and "--tcp-established" in final
    assert _opt(final, "--parent-path") == f"../{PREDUMPS}/2"
    assert (image / "parent").resolve() == (c.predump_dir("svc") / "2").resolve()


def test_a_whole_dump_drops_the_chain(site: tuple[SiteContainers, FakeRuncRunner]) -> None:
    c, runner = site
    c.pre_dump("svc", 1)
    c.checkpoint("svc", CheckpointOptions(leave_running=True))
    assert _opt(runner.checkpoints[-1], "--parent-path") is None
    assert not c.predump_dir("svc").exists() and c.last_predump("svc") == 0


def test_rounds_out_of_order_are_refused(site: tuple[SiteContainers, FakeRuncRunner]) -> None:
    c, runner = site
    with pytest.raises(ContainerError, match="no pre-dump to chain onto"):
        c.checkpoint("svc", CheckpointOptions(), on_predumps=True)
    with pytest.raises(ContainerError, match="without round 1"):
        c.pre_dump("svc", 2)
    with pytest.raises(ContainerError, match="round 0"):
        c.pre_dump("svc", 0)
    c.pre_dump("svc", 1)
    c.pre_dump("svc", 2)
    c.pre_dump("svc", 1)  # round 1 again: a new chain replaces the old one
    assert c.last_predump("svc") == 1
    assert len(runner.checkpoints) == 3


def test_the_chain_travels_and_resolves_at_the_destination(
    site: tuple[SiteContainers, FakeRuncRunner], tmp_path: Path
) -> None:
    """Rounds and final images sent like the agent sends them: the links still resolve."""
    c, _ = site
    dest = tmp_path / "dest-xfer"
    manifest = None
    for round_ in (1, 2):
        c.pre_dump("svc", round_)
        with Receiver(dest, host="127.0.0.1") as rx:
            _, manifest = send_dir(c.xfer_dir("svc"), "127.0.0.1", rx.port, previous=manifest)
            rx.wait(10)
    c.checkpoint("svc", CheckpointOptions(), on_predumps=True)
    with Receiver(dest, host="127.0.0.1") as rx:
        stats, _ = send_dir(
            c.xfer_dir("svc"),
            "127.0.0.1",
            rx.port,
            previous=manifest,
            immutable=lambda rel: rel.startswith(f"{PREDUMPS}/"),
        )
        rx.wait(10)
    # the final send moved the final images, not the rounds again
    assert stats.bytes_skipped >= 2 * 8192
    chain = [dest / "images"]
    while (chain[-1] / "parent").is_symlink():
        chain.append((chain[-1] / "parent").resolve())
    assert chain[1:] == [(dest / PREDUMPS / "2").resolve(), (dest / PREDUMPS / "1").resolve()]
    assert all((d / "pages-1.img").is_file() for d in chain)


def test_restore_drops_the_chain_it_no_longer_needs(
    site: tuple[SiteContainers, FakeRuncRunner],
) -> None:
    c, runner = site
    c.pre_dump("svc", 1)
    c.checkpoint("svc", CheckpointOptions(), on_predumps=True)
    c.restore("svc")
    assert runner.restores and not c.predump_dir("svc").exists()
    # the lock went to the table CRIU's restore removes, named after the dump's run id
    handover = [i for i, s in enumerate(runner.inputs) if "CRIU-0b5e7a2c-run" in s]
    assert handover and "delete table inet mecmig-lock" in runner.inputs[handover[0] + 1]
