"""A server moved mec1 <-> mec2 under every live strategy while one client connection from a
UE keeps asking it (workloads.memcached_probe): shared by the live tests of real servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from migration.timeline import MigrationRecord, Outcome
from orchestration.orchestrator import Orchestrator
from topology.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ("cold", "precopy", "postcopy", "hybrid")


def hop_all(
    sc: Scenario,
    orch: Orchestrator,
    ue: Any,
    instance: str,
    protocol: str,
    port: int,
    interval_ms: float = 5.0,
) -> tuple[dict[str, Any], list[MigrationRecord], str]:
    """Every live strategy in turn under one client connection: the probe's result, the
    migration records and the site the instance ends at. Each migration must be done."""
    ip = str(sc.instance(instance).ip)
    probe = ue.popen(
        [sys.executable, "-m", "workloads.memcached_probe", ip, str(port), "--duration", "0",
         "--interval-ms", str(interval_ms), "--protocol", protocol, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    where = sc.instance(instance).site
    records = []
    try:
        time.sleep(1.0)
        for strategy in STRATEGIES:
            to = "mec2" if where == "mec1" else "mec1"
            record = orch.migrate(instance, to, strategy=strategy)
            assert record.outcome is Outcome.DONE, (strategy, record.error)
            assert orch.where(instance) == to
            records.append(record)
            where = to
            time.sleep(0.5)
    finally:
        probe.send_signal(signal.SIGINT)
        out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    result.pop("gaps", None)
    print(f"\n{instance}: {json.dumps(result)}")
    for r in records:
        print(f"  {r.strategy}: frozen {r.metrics.get('frozen_ms')} ms, image sent "
              f"{r.metrics.get('image_bytes_sent')} bytes")  # fmt: skip
    return result, records, where
