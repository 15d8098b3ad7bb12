"""runc, driven through the injected command runner, with our CRIU 4.2.1.

Each site keeps its containers under its own runc root (`--root`), so the same container name can
exist at the source and the destination during a migration. runc's own errors go to a log file
(`--log`): a detached container must not inherit pipes, so stdio is /dev/null.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.criu_images import STATS_DUMP, STATS_RESTORE
from ground.runner import CommandError, Runner

log = logging.getLogger(__name__)


# A service holding a file lock (flock or POSIX: a pid file, a "one copy only" lock) cannot be
# dumped unless CRIU handles locks; with this it dumps them and takes them again at the restore,
# so the lock moves with the service (tests/integration/test_file_locks_live.py).
FILE_LOCKS = "--file-locks"


class RuncError(Exception):
    """A runc operation failed: which one, on which container, and what runc/CRIU said."""

    def __init__(self, op: str, container: str, detail: str) -> None:
        super().__init__(f"runc {op} {container} failed: {detail}")
        self.op = op
        self.container = container
        self.detail = detail


@dataclass(frozen=True)
class CheckpointOptions:
    """How to checkpoint: stop or leave running, lazy pages through a page server."""

    leave_running: bool = False
    tcp_established: bool = True
    lazy_pages: bool = False
    page_server: str | None = None  # "ADDR:PORT"
    status_fd: int | None = None
    parent_path: str | None = None  # pre-dump parent (kernels with dirty tracking)
    pre_dump: bool = False


# A restore reads its images from local disk: no slower than this, plus a start. runc waits
# for ever on a CRIU that was killed after it forked the tree (the tree keeps runc's socket
# open); seen in CI: 120 s, long enough for the client's connection to give up, where the
# rollback that follows keeps it.
RESTORE_BASE_S = 20.0
RESTORE_MIN_RATE = 50e6  # bytes/s


def criu_ready(read_fd: int, timeout_s: float) -> bool:
    """Whether CRIU wrote its ready byte (NUL) to its `--status-fd` within `timeout_s`; closes
    `read_fd`, the pipe's read end."""
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout_s)
        return (os.read(read_fd, 1) if ready else b"") == b"\0"
    finally:
        os.close(read_fd)


def restore_timeout_s(image: Path) -> float:
    """How long a `runc restore` of the images in `image` may take."""
    size = 0
    try:
        for f in image.rglob("*"):
            if f.is_file():
                size += f.stat().st_size
    except OSError:
        pass
    return RESTORE_BASE_S + size / RESTORE_MIN_RATE


class Runc:
    """runc for one site: `root` keeps that site's container state apart from the others'."""

    def __init__(self, runner: Runner, root: Path, criu: Path, log_dir: Path) -> None:
        self.runner = runner
        self.root = root
        self.criu = criu
        self.log_dir = log_dir
        # the wall time of the last checkpoint and restore of each container (s): what the
        # runc process took, CRIU's own time inside it (the frozen window's profile)
        self._took: dict[tuple[str, str], float] = {}

    def took(self, op: str, container: str) -> float | None:
        """How long the last `op` ("checkpoint", "restore") of `container` ran, if it did."""
        return self._took.get((op, container))

    def _argv(self, container: str, *args: str) -> list[str]:
        log_file = self.log_dir / f"runc-{container}.log"
        return [
            "runc",
            "--root",
            str(self.root),
            "--criu",
            str(self.criu),
            "--log",
            str(log_file),
            "--log-format",
            "json",
            *args,
        ]

    def _run(
        self,
        op: str,
        container: str,
        args: list[str],
        detached: bool = False,
        timeout: float = 120.0,
        output: tuple[int, int] | None = None,
    ) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        since = self.log_mark(container)
        kw: dict[str, Any] = {"output_fds": output} if output is not None else {}
        try:
            self.runner.run(
                self._argv(container, *args), detached_stdio=detached, timeout=timeout, **kw
            )
        except CommandError as exc:
            raise RuncError(op, container, self.last_error(container, since) or str(exc)) from exc

    def log_mark(self, container: str) -> int:
        """Where runc's log of `container` ends now: errors after it belong to the next call."""
        try:
            return (self.log_dir / f"runc-{container}.log").stat().st_size
        except OSError:
            return 0

    def last_error(self, container: str, since: int = 0) -> str:
        """The last errors runc logged for `container` after offset `since` (empty if none)."""
        path = self.log_dir / f"runc-{container}.log"
        try:
            with open(path, "rb") as f:
                f.seek(since)
                lines = f.read().decode(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        msgs = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("error", "fatal"):
                msgs.append(str(entry.get("msg", "")))
        return "; ".join(msgs[-3:])

    # ------------------------------------------------------------------ lifecycle

    def run(self, container: str, bundle: Path, output: tuple[int, int] | None = None) -> None:
        """Create and start `container` from `bundle`, detached; `output`: its stdout and
        stderr (else /dev/null)."""
        self._drop_half_made(container)
        args = ["run", "--detach", "--bundle", str(bundle), container]
        self._run("run", container, args, detached=True, output=output)

    def state(self, container: str) -> dict[str, Any] | None:
        """runc's state of the container (status, pid, ...), or None if it does not exist."""
        result = self.runner.run(self._argv(container, "state", container), check=False)
        if result.returncode != 0:
            return None
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def status(self, container: str) -> str:
        """'running', 'paused', 'stopped', 'created' or 'absent'."""
        st = self.state(container)
        return "absent" if st is None else str(st.get("status"))

    def running_now(self, container: str, proc: Path = Path("/proc")) -> bool:
        """Whether runc would call `container` running, read from runc's state file and /proc
        without starting runc (`runc state` took 7-8 ms idle, more under load, and a restore
        asks inside the migration's frozen window): its init process alive (the start time
        runc recorded, not a zombie), no exec.fifo (created but not started), its freezer
        cgroup not FROZEN (paused). False whenever anything is unclear: ask `status` then."""
        base = self.root / container
        try:
            state = json.loads((base / "state.json").read_text())
            pid, started = int(state["init_process_pid"]), int(state["init_process_start"])
            stat = (proc / str(pid) / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] in ("Z", "X") or int(fields[19]) != started:
                return False
            if (base / "exec.fifo").exists():
                return False
            freezer = state.get("cgroup_paths", {}).get("freezer")
            if not freezer:
                return False
            return (Path(freezer) / "freezer.state").read_text().strip() == "THAWED"
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            return False

    def exec(self, container: str, argv: list[str], timeout: float = 10.0) -> str:
        """Run `argv` inside the running `container` (its user, namespaces, environment) and
        wait for it; its output. RuncError with the command's output if it fails."""
        full = self._argv(container, "exec", container, *argv)
        try:
            result = self.runner.run(full, timeout=timeout)
        except CommandError as exc:
            code = "timed out" if exc.returncode is None else f"exit {exc.returncode}"
            said = exc.stderr.strip()[-500:]
            raise RuncError("exec", container, f"{code}{': ' + said if said else ''}") from exc
        return result.stdout

    def kill(self, container: str, signal: str = "KILL") -> None:
        self._run("kill", container, ["kill", container, signal])

    def delete(self, container: str) -> None:
        """Remove the container (killing it if it runs); no error if it is gone already."""
        if self.state(container) is None:
            self._drop_half_made(container)  # a cut restore's: no state, but its mount
            return
        self._run("delete", container, ["delete", "--force", container])

    # ------------------------------------------------------------------ checkpoint / restore

    def checkpoint_argv(
        self, container: str, image: Path, work: Path, opts: CheckpointOptions
    ) -> list[str]:
        """The runc command line of a checkpoint (absolute paths: runc needs them)."""
        image.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        (work / STATS_DUMP).unlink(missing_ok=True)  # an earlier dump's times are not this one's
        args = [
            "checkpoint",
            "--image-path",
            str(image.resolve()),
            "--work-path",
            str(work.resolve()),
            FILE_LOCKS,
        ]
        if opts.leave_running:
            args.append("--leave-running")
        if opts.tcp_established:
            args.append("--tcp-established")
        if opts.pre_dump:
            args.append("--pre-dump")
        if opts.parent_path:
            args += ["--parent-path", opts.parent_path]
        if opts.lazy_pages:
            args.append("--lazy-pages")
        if opts.page_server:
            args += ["--page-server", opts.page_server]
        if opts.status_fd is not None:
            args += ["--status-fd", str(opts.status_fd)]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self._argv(container, *args, container)

    def checkpoint(self, container: str, image: Path, work: Path, opts: CheckpointOptions) -> None:
        """Checkpoint into `image` and wait for it to finish."""
        argv = self.checkpoint_argv(container, image, work, opts)
        since = self.log_mark(container)
        self._took.pop(("checkpoint", container), None)
        t0 = time.monotonic()
        try:
            self.runner.run(argv, timeout=600)
        except CommandError as exc:
            detail = self.last_error(container, since) or str(exc)
            raise RuncError("checkpoint", container, detail) from exc
        self._took[("checkpoint", container)] = time.monotonic() - t0

    def _drop_half_made(self, container: str) -> None:
        """A restore that was cut (its agent or its CRIU killed) leaves runc's directory of the
        container without its state (only `criu-root`); runc then refuses every later restore
        of that name ("container with given ID already exists"). Such a directory holds no
        container: remove it."""
        path = self.root / container
        if path.is_dir() and not (path / "state.json").exists():
            log.warning("%s: removing a half-made container's directory %s", container, path)
            root_mount = path / "criu-root"  # runc's bind mount of the rootfs for CRIU
            if root_mount.is_dir():
                self.runner.run(["umount", "-l", str(root_mount)], check=False)
            shutil.rmtree(path, ignore_errors=True)

    def restore(
        self,
        container: str,
        bundle: Path,
        image: Path,
        work: Path,
        *,
        tcp_established: bool = True,
        lazy_pages: bool = False,
        output: tuple[int, int] | None = None,
    ) -> None:
        """Restore `container` from `image`, detached, with `bundle`'s config (its netns);
        `output`: the restored process's stdout and stderr, in place of the pipes it had when
        it was dumped (runc maps them: --inherit-fd)."""
        work.mkdir(parents=True, exist_ok=True)
        (work / STATS_RESTORE).unlink(missing_ok=True)
        self._drop_half_made(container)
        args = [
            "restore",
            "--detach",
            "--image-path",
            str(image.resolve()),
            "--work-path",
            str(work.resolve()),
            "--bundle",
            str(bundle),
            FILE_LOCKS,
        ]
        if tcp_established:
            args.append("--tcp-established")
        if lazy_pages:
            args.append("--lazy-pages")
        self._took.pop(("restore", container), None)
        t0 = time.monotonic()
        self._run(
            "restore", container, [*args, container], detached=True, output=output,
            timeout=restore_timeout_s(image),
        )  # fmt: skip
        self._took[("restore", container)] = time.monotonic() - t0
