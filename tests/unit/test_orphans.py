"""Adopting the post-copy processes a killed agent left behind (agent.orphans): recognising
them by their command lines, and waiting for, stopping and judging them without being their
parent."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.orphans import (
    Adopted,
    ProcessInfo,
    is_criu_dump_of,
    is_lazy_daemon,
    is_lazy_dump,
    processes,
)
from tests.unit.test_predump_chain import TASK_PID

ROOT = Path("/run/mecmig/runc/sc-mec1")
CRIU = Path("/opt/criu/criu")
IMAGES = Path("/var/lib/mecmig/sites/sc/mec2/svc/images")


def lazy_dump_argv(root: Path = ROOT, name: str = "svc") -> tuple[str, ...]:
    return (
        "runc", "--root", str(root), "--criu", str(CRIU), "--log", "/x/runc-svc.log",
        "--log-format", "json", "checkpoint", "--image-path", "/x/images", "--work-path",
        "/x/work/lazy", "--tcp-established", "--lazy-pages", "--page-server", "10.0.0.1:7200",
        "--status-fd", "5", name,
    )  # fmt: skip


def test_a_lazy_dump_is_recognised_by_its_runc_root_and_instance() -> None:
    assert is_lazy_dump(lazy_dump_argv(), ROOT, "svc")
    assert not is_lazy_dump(lazy_dump_argv(name="svc2"), ROOT, "svc")  # another instance
    assert not is_lazy_dump(lazy_dump_argv(Path("/run/mecmig/runc/sc-mec2")), ROOT, "svc")
    plain = tuple(a for a in lazy_dump_argv() if a != "--lazy-pages")
    assert not is_lazy_dump(plain, ROOT, "svc")  # a plain checkpoint is no page server
    assert not is_lazy_dump((), ROOT, "svc")


def test_a_lazy_pages_daemon_is_recognised_by_its_criu_and_image_directory() -> None:
    argv = (str(CRIU), "lazy-pages", "--page-server", "--address", "10.0.0.1", "--port",
            "7200", "-D", str(IMAGES), "-W", "/x/work/restore", "-o", "lazy-pages.log")  # fmt: skip
    assert is_lazy_daemon(argv, CRIU, IMAGES)
    assert not is_lazy_daemon(argv, CRIU, IMAGES.with_name("other"))
    assert not is_lazy_daemon(("/usr/sbin/criu", *argv[1:]), CRIU, IMAGES)
    assert not is_lazy_daemon((str(CRIU), "restore", "-D", str(IMAGES)), CRIU, IMAGES)


def _orphan(seconds: float) -> ProcessInfo:
    """A process that is not our child (its parent exits at once), found in /proc."""
    marker = f"mecmig-orphan-test-{time.monotonic_ns()}"
    code = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep({seconds})', "
        f"'{marker}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"
    )
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout)  # fmt: skip
    [info] = [p for p in processes() if p.pid == pid]
    assert info.argv[-1] == marker
    return info


def test_an_adopted_process_is_waited_for_and_judged_by_its_criu_log(tmp_path: Path) -> None:
    criu_log = tmp_path / "dump.log"
    criu_log.write_text("(00.001) Version: 4.2.1\n(00.200) Dumping finished successfully\n")
    proc = Adopted(_orphan(0.3), tmp_path / "out.log", criu_log)
    assert proc.alive() and proc.returncode is None
    assert proc.wait(0.05) is None  # still running
    assert proc.wait(10) == 0 and not proc.alive()

    criu_log.write_text("(00.100) Error (criu/uffd.c:1234): uffd: lost connection\n")
    assert proc.returncode == 1  # ended, and CRIU said it failed


def test_an_adopted_process_is_stopped_and_a_reused_pid_is_not_it(tmp_path: Path) -> None:
    info = _orphan(30)
    proc = Adopted(info, tmp_path / "out.log", tmp_path / "none.log")
    assert proc.stop(timeout=5) == 0
    assert not proc.alive()
    other = Adopted(ProcessInfo(info.pid, info.start + 1, info.argv), tmp_path / "o", tmp_path)
    assert not other.alive()  # same pid, another start time: not the process adopted


# ---------------------------------------------------------------------- the agent adopts them


def _fake_proc(root: Path, pid: int, argv: tuple[str, ...], pgid: int = 0) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    rest = " ".join(["0"] * 16 + ["4242"] + ["0"] * 10)  # field 22 (start time) = 4242
    (d / "stat").write_text(f"{pid} (runc) S 1 {pgid or pid} {rest}\n")


def test_a_new_agent_adopts_its_predecessors_page_server_and_finishes_it(tmp_path: Path) -> None:
    from agent.errors import NotPending
    from tests.unit.migration_fakes import make_spec
    from tests.unit.test_site_service import _service

    service = _service(tmp_path)
    service.create(make_spec("svc"))
    c = service.containers
    proc = tmp_path / "proc"
    _fake_proc(proc, 101, lazy_dump_argv(c.runc.root, "svc"))
    _fake_proc(proc, 102, lazy_dump_argv(c.runc.root, "other"))  # not an instance here
    daemon_argv = (str(c.runc.criu), "lazy-pages", "-D", str(c.images_dir("svc").resolve()))
    _fake_proc(proc, 103, daemon_argv)
    assert sorted(service.adopt_orphans(proc)) == [
        "lazy dump of svc (pid 101)",
        "lazy-pages daemon of svc (pid 103)",
    ]
    dump = service.lazy_dumps["svc"].process
    assert isinstance(dump, Adopted) and dump.alive()
    assert service.adopt_orphans(proc) == []  # adopted once

    # the page server ends (every page pulled): finishing the lazy dump succeeds
    (proc / "101" / "stat").unlink()
    service.finish_lazy_checkpoint("svc")
    with pytest.raises(NotPending):
        service.finish_lazy_checkpoint("svc")


def test_what_is_left_of_a_lazy_dump_after_its_runc_ended_is_criu_by_its_task() -> None:
    assert is_criu_dump_of(("criu: dump --rpc -t 21902      .",), 21902)
    assert not is_criu_dump_of(("criu: dump --rpc -t 21903      .",), 21902)
    assert not is_criu_dump_of(("criu: restore --rpc -t 21902",), 21902)


def test_stopping_a_process_group_ends_the_children_it_started(tmp_path: Path) -> None:
    # runc's CRIU is runc's child in runc's group: stopping runc alone left CRIU holding a
    # frozen service
    from ground.runner import SubprocessRunner

    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen(['sleep', '30']); print(p.pid, flush=True); time.sleep(30)"
    )
    parent = SubprocessRunner().spawn(
        [sys.executable, "-c", code], str(tmp_path / "log"), stdout_path=str(tmp_path / "out")
    )
    deadline = time.monotonic() + 10
    while not parent.stdout().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(parent.stdout())
    [info] = [p for p in processes() if p.pid == child]
    parent.stop(timeout=5, group=True)
    assert not parent.alive()
    assert not Adopted(info, tmp_path / "x", tmp_path / "y").alive()


def test_a_runc_and_its_criu_are_one_lazy_dump(tmp_path: Path) -> None:
    from tests.unit.migration_fakes import make_spec
    from tests.unit.test_site_service import _service

    service = _service(tmp_path)
    service.create(make_spec("svc"))
    proc = tmp_path / "proc"
    _fake_proc(proc, 201, lazy_dump_argv(service.containers.runc.root, "svc"))
    _fake_proc(proc, 202, (f"criu: dump --rpc -t {TASK_PID}      .",), pgid=201)
    assert service.adopt_orphans(proc) == ["lazy dump of svc (pid 201)"]


def test_a_criu_whose_runc_has_ended_is_adopted_by_its_task(tmp_path: Path) -> None:
    from tests.unit.migration_fakes import make_spec
    from tests.unit.test_site_service import _service

    service = _service(tmp_path)
    service.create(make_spec("svc"))
    proc = tmp_path / "proc"
    _fake_proc(proc, 302, (f"criu: dump --rpc -t {TASK_PID}      .",), pgid=301)
    _fake_proc(proc, 303, (f"criu: dump --rpc -t {TASK_PID + 1}      .",))  # another task's
    assert service.adopt_orphans(proc) == ["lazy dump of svc (pid 302)"]
    adopted = service.lazy_dumps["svc"].process
    assert isinstance(adopted, Adopted) and adopted.pgid == 301


def test_pages_that_finished_while_no_agent_ran_leave_no_images(tmp_path: Path) -> None:
    from tests.unit.migration_fakes import make_spec
    from tests.unit.test_site_service import _service

    service = _service(tmp_path)
    service.create(make_spec("svc"))
    images = service.containers.images_dir("svc")
    images.mkdir(parents=True, exist_ok=True)
    (images / "pages-1.img").write_bytes(b"x" * 4096)
    assert service.finish_pages("svc") == 0.0  # no daemon here: it ended before this agent
    assert not images.exists() or not any(images.iterdir())
