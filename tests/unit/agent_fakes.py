"""A site agent with nothing real under it: runc and CRIU answered per container by a recording
fake runner, transfers and lazy pages replaced by stand-ins that move nothing. What the agent's
API tests use to show that bad input changes nothing (no directory, no command) and that the
API answers what its OpenAPI document says, with nothing started."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent import service as service_module
from agent.container import SiteContainers
from agent.lazy import LazyDump
from agent.netns import ContainerNetwork
from agent.page_relay import RelayStats
from agent.runc import Runc
from agent.service import SiteService
from agent.transfer import Manifest, TransferStats
from ground.runner import Result, Spawned
from tests.unit.test_predump_chain import FakeRuncRunner

RUNC_STEPS = ("run", "state", "kill", "delete", "checkpoint", "restore")


class SiteRunner(FakeRuncRunner):
    """Every command it is given, in `calls`; runc's state kept per container (run and restore
    start one, a final checkpoint ends it, kill stops it, delete forgets it); checkpoints write
    images as CRIU would (FakeRuncRunner). Starting long-running programs is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.status: dict[str, str] = {}

    def run(self, argv: Sequence[str], **kw: Any) -> Result:  # Runner.run's keywords
        args = list(argv)
        self.calls.append(args)
        step = next((a for a in args if a in RUNC_STEPS), None) if args[0] == "runc" else None
        if step is None:
            return super().run(args, **kw)
        container = args[args.index("kill") + 1] if step == "kill" else args[-1]
        if step == "state":
            status = self.status.get(container)
            if status is None:
                return Result(tuple(args), 1, "", "container does not exist", 0.0)
            return Result(tuple(args), 0, f'{{"status": "{status}", "pid": 0}}', "", 0.0)
        if step == "checkpoint":
            self._checkpoint(args)
            if "--leave-running" not in args and "--pre-dump" not in args:
                self.status.pop(container, None)
        elif step in ("run", "restore"):
            self.status[container] = "running"
        elif step == "kill":
            self.status[container] = "stopped"
        elif step == "delete":
            self.status.pop(container, None)
        return Result(tuple(args), 0, "", "", 0.0)

    def spawn(self, argv: Sequence[str], log_path: str, *args: Any, **kw: Any) -> Spawned:
        raise AssertionError(f"a long-running program was started: {list(argv)}")


class _Process:
    """A page server or lazy-pages daemon that has done its work."""

    pid = 0

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def kill(self, group: bool = False) -> None:
        return None

    def stop(self, timeout: float = 10.0, **_: Any) -> int:
        return 0

    def alive(self) -> bool:
        return False

    def tail(self, lines: int = 20) -> str:
        return ""


class _Receiver:
    """Receives nothing: answers at once that nothing arrived."""

    def __init__(
        self,
        dest: Path,
        host: str,
        port: int,
        on_file: Callable[[str, Path], None] | None = None,
    ) -> None:
        self.port = port

    def start(self) -> int:
        return self.port

    def wait(self, timeout: float | None = None) -> TransferStats:
        return TransferStats(0, 0, 0, 0, 0.0, "full")

    def close(self) -> None:
        return None


class _Relay:
    """Relays nothing (a dump that sends its pages to a page server: agent.page_relay)."""

    def __init__(self, *_: Any) -> None:
        return None

    def start(self) -> str:
        return "127.0.0.1:1"

    def close(self, timeout: float = 10.0) -> RelayStats:
        return RelayStats(0, 0.0)


def _send_dir(src: Path, host: str, port: int, **_: Any) -> tuple[TransferStats, Manifest]:
    return TransferStats(0, 0, 0, 0, 0.0, "full"), Manifest(1 << 20)


def no_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's transfers and lazy pages move nothing and start nothing."""
    monkeypatch.setattr(service_module, "send_dir", _send_dir)
    monkeypatch.setattr(service_module, "Receiver", _Receiver)
    dump = LazyDump(_Process(), 0.0)  # type: ignore[arg-type]
    monkeypatch.setattr(service_module, "start_lazy_dump", lambda *a, **kw: dump)
    monkeypatch.setattr(service_module, "start_lazy_restore", lambda *a, **kw: _Process())
    monkeypatch.setattr(service_module, "PageRelay", _Relay)
    monkeypatch.setattr(service_module, "start_page_server", lambda *a, **kw: _Process())
    monkeypatch.setattr(service_module, "replay_pages", lambda *a, **kw: 0)


def fake_site(
    tmp_path: Path, runner: SiteRunner | None = None, files_from: Sequence[Path] | None = None
) -> tuple[SiteService, SiteRunner]:
    """Site mec1 at `tmp_path`/sites, over `runner` (a new SiteRunner by default)."""
    runner = runner or SiteRunner()
    runc = Runc(runner, tmp_path / "runc", Path("/opt/criu"), tmp_path / "logs")
    containers = SiteContainers(
        "mec1", tmp_path / "sites", "s1", runc, ContainerNetwork(runner, site="mec1")
    )
    service = SiteService(
        containers,
        "10.0.0.1",
        7100,
        spawner=runner,  # type: ignore[arg-type]  # a Runner, not the SubprocessRunner
        files_from=files_from,
    )
    return service, runner


def tree(root: Path) -> list[str]:
    """Every path under `root` (relative), sorted: what a request changed on disk."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
