"""The project's own bootstrap installed everything, and re-running it is quick and quiet."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRIU = ROOT / ".deps" / "criu" / "sbin" / "criu"


def test_second_bootstrap_is_fast_and_quiet() -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == "", "nothing to do should print nothing"
    assert elapsed < 30, f"bootstrap with nothing to do took {elapsed:.1f} s"


def test_bootstrap_check_finds_nothing_missing() -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_criu_4_2_1_built_from_source_looks_good() -> None:
    version = subprocess.run([str(CRIU), "--version"], capture_output=True, text=True, check=True)
    assert "Version: 4.2.1" in version.stdout
    check = subprocess.run([str(CRIU), "check"], capture_output=True, text=True, check=False)
    assert "Looks good" in check.stdout + check.stderr


def test_criu_keeps_its_kernel_facts_for_this_boot() -> None:
    """Patch 0005: where /run is no tmpfs CRIU kept no kdat cache and probed the kernel at
    every run (about 20 ms each, inside frozen windows); now the cache is named for the boot."""
    mounts = Path("/proc/mounts").read_text().splitlines()
    on_tmpfs = any(line.split()[1:3] == ["/run", "tmpfs"] for line in mounts)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    cache = Path("/run/criu.kdat") if on_tmpfs else Path(f"/run/criu.kdat.{boot}")
    subprocess.run([str(CRIU), "check"], capture_output=True, check=False)
    assert cache.exists() and cache.stat().st_size > 0, "criu kept no kdat cache"
    log = Path("/tmp") / f"mecmig-kdat-{os.getpid()}.log"
    try:
        subprocess.run(
            [str(CRIU), "check", "-v4", "-o", str(log)], capture_output=True, check=False
        )
        assert f"Loaded kdat cache from {cache}" in log.read_text()
    finally:
        log.unlink(missing_ok=True)


def test_lazy_pages_sysctl_is_set() -> None:
    assert int(Path("/proc/sys/fs/pipe-max-size").read_text()) >= 4194304


def test_runc_and_tools_are_installed() -> None:
    for tool in ("runc", "iperf3", "ethtool", "ping", "rsync", "iptables-restore", "memcached"):
        proc = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, check=False)
        assert proc.returncode == 0, f"{tool} missing"
