"""A service's stdout and stderr: the log sink (agent.logsink) and the pipes and file each
`runc run`/`runc restore` gets (agent.service_logs), with real processes and pipes."""

from __future__ import annotations

import os
from pathlib import Path

from agent.logsink import Sink, copy
from agent.service_logs import ServiceLogs, log_file, tail
from ground.runner import SubprocessRunner


def test_the_sink_copies_both_pipes_until_both_end(tmp_path: Path) -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(out_w, b"listening on 80\n")
    os.write(err_w, b"warning: no TLS\n")
    os.close(out_w)
    os.close(err_w)
    sink = Sink(tmp_path / "service.log", 1 << 20)
    copy([out_r, err_r], sink)
    sink.close()
    assert sorted((tmp_path / "service.log").read_text().splitlines()) == [
        "listening on 80",
        "warning: no TLS",
    ]


def test_the_sink_rotates_at_its_size_keeping_one_generation(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    sink = Sink(path, 100)
    for i in range(30):
        sink.write(f"line {i:02d}\n".encode())  # 8 bytes each
    sink.close()
    assert path.stat().st_size <= 100
    assert path.with_name("service.log.1").stat().st_size <= 100
    lines = tail(tmp_path.parent / tmp_path.name, 0)  # nothing asked: nothing given
    assert lines == []


def test_what_a_started_process_writes_reaches_the_log_and_the_tail(tmp_path: Path) -> None:
    xfer = tmp_path / "xfer"
    logs = ServiceLogs(SubprocessRunner(), max_bytes=1 << 20)
    with logs.output("svc", tmp_path, xfer) as (out, err):
        os.write(out, b"one\ntwo\n")
        os.write(err, b"three\n")
    logs.stop("svc")  # every write end is closed: the sink ends by itself
    assert logs.sinks == {}
    assert sorted(log_file(xfer).read_text().splitlines()) == ["one", "three", "two"]
    assert len(tail(xfer, 2)) == 2
    assert tail(tmp_path / "nothing", 5) == []


def test_the_tail_reads_the_rotated_file_first(tmp_path: Path) -> None:
    path = log_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.with_name("service.log.1").write_text("a\nb\n")
    path.write_text("c\n")
    assert tail(tmp_path, 2) == ["b", "c"]
    assert tail(tmp_path, 10) == ["a", "b", "c"]
