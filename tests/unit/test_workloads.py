"""The workload programs (run with Debian's /usr/bin/python3, as in a container), the downtime
probe and the memcached helpers, all on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workloads import WORKLOADS, httpstream, memcached_check, memhog, sfcfwd, workload_path
from workloads.probe import Probe

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
SIZE = 16 * 1024 * 1024
SEED = 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"workload exited with {proc.returncode}")
        if ready.exists():
            pid, port = ready.read_text().split()
            assert int(pid) == proc.pid
            return int(port)
        time.sleep(0.02)
    raise AssertionError("workload did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Hog:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, ready: Path) -> None:
        self.proc = proc
        self.port = port
        self.ready = ready


def _start_hog(tmp: Path, *extra: str, port: int = 0, cwd: Path | None = None) -> Hog:
    ready = tmp / f"ready-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(workload_path("memhog")), "--size", str(SIZE), "--seed", str(SEED)]
        + ["--port", str(port), "--host", "127.0.0.1", "--ready-file", str(ready), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd or tmp,
    )
    return Hog(proc, _wait_ready(proc, ready), ready)


@pytest.fixture
def hog(tmp_path: Path) -> Iterator[Hog]:
    h = _start_hog(tmp_path, "--dirty-rate", "10MB/s")
    yield h
    _stop(h.proc)
    out, err = h.proc.communicate()
    assert out == b"" and err == b"", "memhog must stay silent"


class Conn:
    """One persistent line-protocol connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rwb")

    def ask(self, line: str) -> str:
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        return self.file.readline().decode()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- packaging ---------------------------------------------------------------------------------


def test_workload_paths_are_self_contained_files() -> None:
    for name in WORKLOADS:
        path = workload_path(name)
        assert path.is_file() and path.name == f"{name}.py"
        text = path.read_text()
        assert "mecmig" not in [
            line.split()[1].split(".")[0]
            for line in text.splitlines()
            if line.startswith(("import ", "from "))
        ]
    with pytest.raises(ValueError):
        workload_path("nope")


@pytest.mark.parametrize("name", [w for w in WORKLOADS if w not in ("pgserver", "sfcfwd")])
def test_workloads_run_from_a_copy_with_system_python(tmp_path: Path, name: str) -> None:
    """As in a container: a copy in a directory of its own, Debian's python3, isolated mode."""
    copy = tmp_path / f"{name}.py"
    shutil.copy(workload_path(name), copy)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-I", str(copy), "--port", "0", "--ready-file", str(ready)]
        + (["--size", "4MiB"] if name == "memhog" else []),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        port = _wait_ready(proc, ready)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        _stop(proc)
    out, err = proc.communicate()
    assert out == b"" and err == b""
    assert not (tmp_path / "__pycache__").exists()


def test_the_chain_function_runs_from_a_copy_and_answers_stats(tmp_path: Path) -> None:
    """sfcfwd as in a container (a copy, Debian's python3, isolated mode), on lo: its packet
    socket opens, its memory is filled, and STATS answers with its (empty) flow table."""
    copy = tmp_path / "sfcfwd.py"
    shutil.copy(workload_path("sfcfwd"), copy)
    ready = tmp_path / "ready"
    argv = ["--interface", "lo", "--control-port", "0", "--memory", "2MiB", "--seed", "3"]
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-I", str(copy), *argv, "--ready-file", str(ready)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        port = _wait_ready(proc, ready)
        stats = sfcfwd.ask_stats("127.0.0.1", port)
        asked = subprocess.run(
            [SYSTEM_PYTHON, "-I", str(copy), "--ask", "127.0.0.1", "--control-port", str(port)],
            capture_output=True, text=True, check=True, cwd=tmp_path,
        )  # fmt: skip
        assert json.loads(asked.stdout)["fingerprint"] == stats["fingerprint"]
    finally:
        _stop(proc)
    out, err = proc.communicate()
    assert out == b"" and err == b""
    assert stats["flows"] == {} and stats["forwarded"] == stats["dropped"] == 0
    assert stats["fingerprint"] == sfcfwd.expected_fingerprint(3, 2 << 20)
    assert not (tmp_path / "__pycache__").exists()


def test_sizes_and_rates_parse() -> None:
    assert memhog.parse_size("64MiB") == 64 * 1024 * 1024
    assert memhog.parse_size("1G") == 1 << 30
    assert memhog.parse_size("100MB") == 100_000_000
    assert memhog.parse_size("4096") == 4096
    assert memhog.parse_rate("10MB/s") == 10_000_000
    assert memhog.parse_rate("0") == 0
    assert memhog.parse_rate("1.5MiB/s") == 1572864
    with pytest.raises(ValueError):
        memhog.parse_size("lots")


def test_bad_arguments_fail_before_start(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(workload_path("memhog")), "--size", "1k", "--port", "0"],
        capture_output=True,
        timeout=10,
    )
    assert proc.returncode == 1 and b"--size" in proc.stderr


# -- memhog ------------------------------------------------------------------------------------


def test_memhog_protocol_on_one_reused_connection(hog: Hog) -> None:
    conn = Conn(hog.port)
    try:
        c0, fp0, up0 = conn.ask("GET").split()
        assert fp0 == memhog.expected_fingerprint(SEED, SIZE)
        pong = conn.ask("PING").split()
        assert pong[0] == "PONG" and int(pong[1]) >= int(c0)
        assert conn.ask("WHAT") == "ERR unknown command\n"
        time.sleep(0.3)
        c1, fp1, up1 = conn.ask("GET").split()
        assert 15 <= int(c1) - int(c0) <= 40  # a tick every 10 ms
        assert int(up1) - int(up0) >= 290
        assert fp1 == fp0, "the fingerprint region must never change"
        for _ in range(50):  # the same connection, many times
            assert conn.ask("PING").startswith("PONG ")
    finally:
        conn.close()


def test_memhog_serves_many_clients(hog: Hog) -> None:
    conns = [Conn(hog.port) for _ in range(20)]
    try:
        for _ in range(3):
            counters = [int(c.ask("PING").split()[1]) for c in conns]
            assert counters == sorted(counters)
        pipelined = conns[0]
        pipelined.file.write(b"PING\nPING\nGET\n")
        pipelined.file.flush()
        replies = [pipelined.file.readline().decode() for _ in range(3)]
        assert replies[0].startswith("PONG") and replies[1].startswith("PONG")
        assert replies[2].split()[1] == memhog.expected_fingerprint(SEED, SIZE)
        assert pipelined.ask("QUIT") == ""  # closed
    finally:
        for c in conns:
            c.close()


def test_memhog_touches_its_memory_and_dirties_at_the_rate(tmp_path: Path) -> None:
    h = _start_hog(tmp_path, "--dirty-rate", "100MB/s")
    try:
        status = Path(f"/proc/{h.proc.pid}/status").read_text()
        rss_kib = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1])
        assert rss_kib * 1024 >= SIZE, "every page is touched at start"
        conn = Conn(h.port)
        cpu0 = _cpu_seconds(h.proc.pid)
        s0 = dict(kv.split("=") for kv in conn.ask("STATS").split())
        time.sleep(1.0)
        s1 = dict(kv.split("=") for kv in conn.ask("STATS").split())
        cpu = _cpu_seconds(h.proc.pid) - cpu0
        conn.close()
        elapsed_s = (int(s1["uptime_ms"]) - int(s0["uptime_ms"])) / 1000
        rate = (int(s1["dirtied_bytes"]) - int(s0["dirtied_bytes"])) / elapsed_s
        assert 0.7e8 <= rate <= 1.3e8
        assert cpu < 0.5, f"memhog used {cpu:.2f} s of CPU in 1 s"
        assert h.proc.poll() is None
    finally:
        _stop(h.proc)


def test_memhog_without_dirtying_writes_nothing(tmp_path: Path) -> None:
    h = _start_hog(tmp_path, "--dirty-rate", "0")
    try:
        conn = Conn(h.port)
        time.sleep(0.1)
        stats = dict(kv.split("=") for kv in conn.ask("STATS").split())
        conn.close()
        assert stats["dirtied_bytes"] == "0" and int(stats["counter"]) > 0
    finally:
        _stop(h.proc)


def test_memhog_tick_survives_a_clock_jump() -> None:
    """After a restore elsewhere the monotonic clock may jump: the counter keeps counting."""
    hog = memhog.MemHog(4 * 4096, 0, 0, host="127.0.0.1")
    try:
        nxt = hog.tick(100.0, 100.0)
        assert hog.counter == 1 and nxt == pytest.approx(100.01)
        nxt = hog.tick(100.035, nxt)  # a little late: caught up
        assert hog.counter == 4
        nxt = hog.tick(105.0, nxt)  # frozen 5 s: no catch-up
        assert hog.counter == 5 and nxt == pytest.approx(105.01)
        nxt = hog.tick(3.0, nxt)  # clock went back: a new schedule, no stall
        assert nxt == pytest.approx(3.01)
        nxt = hog.tick(3.015, nxt)
        assert hog.counter == 6
    finally:
        hog.listener.close()


# -- the probe ---------------------------------------------------------------------------------


def test_probe_steady_state(hog: Hog) -> None:
    result = Probe("127.0.0.1", hog.port, interval_ms=5).run(1.0)
    assert result.replies > 150
    assert result.failures == 0 and result.reconnects == 0
    assert result.same_connection and result.counter_monotonic
    assert result.downtime_ms < 50
    assert result.first_counter is not None and result.last_counter is not None
    assert 80 <= result.last_counter - result.first_counter <= 120
    assert result.fingerprint_first == memhog.expected_fingerprint(SEED, SIZE)
    assert result.fingerprint_stable is True


def test_probe_sees_a_freeze_as_downtime_on_the_same_connection(hog: Hog) -> None:
    """SIGSTOP/SIGCONT is what a CRIU freeze looks like from the client."""
    probe = Probe("127.0.0.1", hog.port, interval_ms=5).start()
    time.sleep(0.5)
    stopped_ns = time.monotonic_ns()
    os.kill(hog.proc.pid, signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(hog.proc.pid, signal.SIGCONT)
    resumed_ns = time.monotonic_ns()
    time.sleep(0.5)
    result = probe.stop()
    assert 250 <= result.downtime_ms <= 450, result.downtime_ms
    long_gaps = [g for g in result.gaps if g[1] - g[0] > 100]  # short ones: scheduling jitter
    assert len(long_gaps) == 1
    start, end = long_gaps[0]
    assert 400 <= start <= 700 and 250 <= end - start <= 460
    # start_ns puts the gap on the monotonic clock: it spans the stop, and ends after the resume
    last_reply_ns = result.start_ns + start * 1e6
    first_reply_ns = result.start_ns + end * 1e6
    assert stopped_ns - 20e6 <= last_reply_ns <= stopped_ns
    assert resumed_ns <= first_reply_ns <= resumed_ns + 50e6
    assert result.to_dict()["start_ns"] == result.start_ns
    assert result.same_connection and result.reconnects == 0 and result.failures == 0
    assert result.counter_monotonic and result.fingerprint_stable is True


def test_probe_reconnects_when_the_service_restarts(tmp_path: Path) -> None:
    h = _start_hog(tmp_path)
    port = h.port
    probe = Probe("127.0.0.1", port, interval_ms=5, connect_timeout_ms=200).start()
    time.sleep(0.5)
    _stop(h.proc)
    time.sleep(0.2)
    h2 = _start_hog(tmp_path, port=port)  # a fresh process: its counter starts again
    try:
        time.sleep(0.5)
        result = probe.stop()
    finally:
        _stop(h2.proc)
    # >= 1: a connect can land in the dying process's accept queue and be reset right after
    assert result.reconnects >= 1 and not result.same_connection
    assert result.connect_failures > 0 and result.failures >= result.connect_failures
    assert not result.counter_monotonic
    assert result.downtime_ms >= 150 and result.gaps
    assert result.replies > 100


def test_probe_against_nothing(tmp_path: Path) -> None:
    result = Probe("127.0.0.1", _free_port(), interval_ms=5).run(0.2)
    assert result.replies == 0 and result.failures > 0 and not result.same_connection
    assert result.first_counter is None and result.downtime_ms >= 150


def test_probe_cli_prints_json(hog: Hog) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "workloads.probe", "127.0.0.1", str(hog.port)]
        + ["--interval-ms", "5", "--duration", "0.5", "--json"],
        capture_output=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    doc = json.loads(cli.stdout)
    assert doc["same_connection"] is True and doc["counter_monotonic"] is True
    assert doc["replies"] > 50 and doc["downtime_ms"] < 50 and doc["failures"] == 0
    assert "samples" not in doc


# -- httpstream --------------------------------------------------------------------------------


@pytest.fixture
def web(tmp_path: Path) -> Iterator[int]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(workload_path("httpstream")), "--port", "0"]
        + ["--host", "127.0.0.1", "--ready-file", str(ready)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield _wait_ready(proc, ready)
    finally:
        _stop(proc)
    out, err = proc.communicate()
    assert out == b"" and err == b""


def test_httpstream_counter_and_stream_on_one_connection(web: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
    try:
        conn.request("GET", "/counter")
        first = int(conn.getresponse().read())
        conn.request("GET", "/stream?bytes=1000000")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Length") == "1000000"
        assert resp.read() == httpstream.expected_body(0, 1_000_000)
        conn.request("GET", "/counter")  # keep-alive: same connection
        assert int(conn.getresponse().read()) == first + 2
        conn.request("GET", "/stream?bytes=x")
        bad = conn.getresponse()
        assert bad.status == 400
        bad.read()
        conn.request("GET", "/nowhere")
        missing = conn.getresponse()
        assert missing.status == 404
        missing.read()
        conn.request("GET", "/stats")
        stats = json.loads(conn.getresponse().read())
        assert stats["streams"] == 1 and stats["bytes_sent"] == 1_000_000
    finally:
        conn.close()


def test_httpstream_paces_the_stream(web: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
    try:
        t0 = time.monotonic()
        conn.request("GET", "/stream?bytes=300000&rate=1000000")
        body = conn.getresponse().read()
        elapsed = time.monotonic() - t0
    finally:
        conn.close()
    assert body == httpstream.expected_body(0, 300_000)
    assert 0.25 <= elapsed <= 0.6


def test_expected_body_is_offset_consistent() -> None:
    whole = httpstream.expected_body(0, 200_000)
    assert httpstream.expected_body(70_000, 50_000) == whole[70_000:120_000]


# -- memcached -------------------------------------------------------------------------------


def test_memcached_argv() -> None:
    argv = memcached_check.memcached_argv(11311, 128)
    assert argv[0] == "/usr/bin/memcached"
    joined = " ".join(argv)
    for part in ("-u root", "-l 0.0.0.0", "-p 11311", "-U 0", "-m 128"):
        assert part in joined
    with pytest.raises(ValueError):
        memcached_check.memcached_argv(0, 64)


@pytest.mark.skipif(os.geteuid() != 0, reason="memcached -u root needs root")
def test_memcached_fill_and_verify() -> None:
    assert Path(memcached_check.MEMCACHED).exists(), "memcached is installed by bootstrap"
    port = _free_port()
    argv = memcached_check.memcached_argv(port, 64)
    argv[argv.index("0.0.0.0")] = "127.0.0.1"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "memcached did not start"
                assert proc.poll() is None, "memcached exited"
                time.sleep(0.05)
        expected = memcached_check.fill("127.0.0.1", port, 1000, 512, seed=3)
        assert len(expected) == 1000
        assert memcached_check.verify("127.0.0.1", port, expected) == (1000, 0)
        assert memcached_check.stats("127.0.0.1", port)["curr_items"] == "1000"
        changed = dict(expected)
        changed[next(iter(changed))] = b"other"
        changed["mecmig:absent"] = b"x"
        assert memcached_check.verify("127.0.0.1", port, changed) == (999, 2)
    finally:
        proc.kill()
        proc.wait()
