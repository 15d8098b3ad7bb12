"""Post-copy at one site: CRIU lazy pages (userfaultfd) driven through runc.

Source: `runc checkpoint --lazy-pages --page-server ADDR:PORT` dumps everything but the memory
pages and then stays behind as a page server; it says "ready" on a status pipe, and exits once
the destination has pulled every page. Destination: a `criu lazy-pages` daemon connects to that
page server and feeds `runc restore --lazy-pages`, which starts the restored process at once; its
memory arrives on demand and in the background. The daemon's work dir must be the restore's.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from agent.container import ContainerError, SiteContainers
from agent.orphans import Adopted
from agent.runc import CheckpointOptions, criu_ready
from ground.runner import Spawned, SubprocessRunner

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 120.0
ABORT_WAIT_S = 10.0  # a cut page server resumes the tasks and ends within this


@dataclass
class LazyDump:
    """A source instance frozen and dumped without its pages, serving them until pulled."""

    process: Spawned | Adopted  # Adopted: left by a previous agent (agent.orphans)
    seconds: float
    log_since: int = 0  # runc's log offset when it started: later errors are this dump's
    page_server: str | None = None  # "ADDR:PORT" it serves on


def cut_page_server(page_server: str, timeout: float = 2.0) -> bool:
    """Connect to a lazy dump's page server and hang up at once. CRIU (with our patch 0002)
    takes a connection that ends without PS_IOV_CLOSE as a failed transfer: the frozen tasks
    run on, their TCP sockets out of repair mode, the network lock lifted. Signals would
    leave them mute. False if nothing listens there (the page server has a client already,
    or has ended)."""
    host, _, port = page_server.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def abort_lazy_dump(dump: LazyDump, wait_s: float = ABORT_WAIT_S) -> str:
    """End a lazy dump before its pages have moved, the service running on at the source;
    say how."""
    if dump.page_server is not None and dump.process.alive():
        cut_page_server(dump.page_server)
        if dump.process.wait(wait_s) is not None:
            return "page server ended: the service runs on"
    dump.process.stop(timeout=5, group=True)  # runc's CRIU too: it holds the freeze
    return "page server killed"


def start_lazy_dump(
    c: SiteContainers,
    name: str,
    page_server: str,
    spawner: SubprocessRunner,
    *,
    on_predumps: bool = False,
    hold_url: str | None = None,
) -> LazyDump:
    """Freeze and dump `name` without its memory; return once the page server is ready.

    `on_predumps`: chained onto the pre-dump rounds (hybrid on a kernel with soft-dirty
    tracking): pages unchanged since the last round are read from those images at the
    destination, only the others are served lazily.
    """
    image = c.images_dir(name)
    parent = c.parent_of_final(name) if on_predumps else None
    if not on_predumps:
        c.drop_predumps(name)
    if image.exists():
        for old in image.iterdir():
            old.unlink()
    (c.dir(name) / "criu.conf").write_text(c.dump_options(name, hold_url))
    read_fd, write_fd = os.pipe()
    opts = CheckpointOptions(
        lazy_pages=True, page_server=page_server, status_fd=write_fd, parent_path=parent
    )
    argv = c.runc.checkpoint_argv(name, image, c.dir(name) / "work" / "lazy", opts)
    since = c.runc.log_mark(name)
    t0 = time.monotonic()
    try:
        proc = spawner.spawn(argv, str(c.dir(name) / "lazy-dump.log"), pass_fds=[write_fd])
    finally:
        os.close(write_fd)
    if not criu_ready(read_fd, READY_TIMEOUT_S):
        proc.kill(group=True)
        detail = c.runc.last_error(name, since) or proc.tail()
        raise ContainerError(f"site {c.site}: lazy dump of {name} failed: {detail}")
    return LazyDump(proc, time.monotonic() - t0, since, page_server)


def start_lazy_daemon(
    c: SiteContainers, name: str, page_server: str, spawner: SubprocessRunner, wait: bool = False
) -> Spawned:
    """Start `name`'s lazy-pages daemon, which will fetch its pages from `page_server`. With our
    CRIU (patch 0014) it reads the images only once the restore connects, so it can start
    before they have all arrived: ahead of the freeze (`SiteService.start_receive`), its start
    costs the frozen window nothing. Its images directory must exist now and stay that one.
    `wait`: return once it listens (then it only waits: started ahead, its start-up must not
    run beside the freeze's, on this machine's two cores it slowed the dump as much)."""
    host, _, port = page_server.rpartition(":")
    work = _restore_work(c, name)
    work.mkdir(parents=True, exist_ok=True)
    images = c.images_dir(name)
    images.mkdir(parents=True, exist_ok=True)
    (work / LAZY_SOCKET).unlink(missing_ok=True)  # a stale one would pass for its own
    daemon = spawner.spawn(
        [
            str(c.runc.criu),
            "lazy-pages",
            "--page-server",
            "--address",
            host,
            "--port",
            port,
            "-D",
            str(images.resolve()),
            "-W",
            str(work.resolve()),
            "-o",
            "lazy-pages.log",
        ],
        str(c.dir(name) / "lazy-pages.out"),
    )
    if wait:
        try:
            _wait_for_socket(work / LAZY_SOCKET, daemon)
        except ContainerError:
            daemon.kill(group=True)
            raise
    return daemon


def start_lazy_restore(
    c: SiteContainers,
    name: str,
    page_server: str,
    spawner: SubprocessRunner,
    daemon: Spawned | None = None,
) -> Spawned:
    """Restore `name` lazily, fed by `daemon` (started ahead by `start_lazy_daemon`) or, without
    one, by a daemon started now; return the daemon."""
    if daemon is None or not daemon.alive():
        if daemon is not None:
            log.warning("site %s: %s: the daemon started ahead has ended: %s", c.site, name,
                        daemon.tail())  # fmt: skip
        daemon = start_lazy_daemon(c, name, page_server, spawner)
    work = _restore_work(c, name)
    c.ready_to_restore(name)
    try:
        _wait_for_socket(work / LAZY_SOCKET, daemon)
        with c.output(name) as out:
            bundle = c.dir(name) / "bundle"
            c.runc.restore(name, bundle, c.images_dir(name), work, lazy_pages=True, output=out)
    except Exception:
        daemon.kill(group=True)
        raise
    c.restored(name)
    return daemon


LAZY_SOCKET = "lazy-pages.socket"  # the daemon's, in its work directory (the restore's)


def _restore_work(c: SiteContainers, name: str) -> Path:
    """The restore's CRIU work directory, which the lazy-pages daemon must share."""
    return c.dir(name) / "work" / "restore"


# how often the agent looks for the lazy-pages daemon's socket: the look is a stat(), and the
# wait sits inside the frozen window (the daemon opens its socket ~1 ms after it starts; at 5 ms
# steps runc's restore started 5-9 ms after the daemon)
SOCKET_POLL_S = 0.0005


def _wait_for_socket(path: os.PathLike[str], daemon: Spawned, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if not daemon.alive():
            raise ContainerError(f"criu lazy-pages exited: {daemon.tail()}")
        if time.monotonic() > deadline:
            raise ContainerError("criu lazy-pages did not open its socket")
        time.sleep(SOCKET_POLL_S)
