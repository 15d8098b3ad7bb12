"""A real cold migration over a 100 Mbit/s path compresses its copy (issue 13, item 5).

scenarios/loss.yaml (two sites, 100 Mbit/s links, no loss here): the memhog `counter` (64 MiB,
every page touched, dirtying 1 MB/s: a byte per page, so its memory is nearly all zeros) is
migrated cold from mec1 to mec2 through the orchestrator, reservations and all. Its final dump
is sampled, the engine chooses zstd for the copy (the link is far slower than the compressor)
and the transfer phase moves far fewer bytes than the image holds; the service keeps its state
(its fingerprint and counter) across the move."""

from __future__ import annotations

from typing import Any

import pytest

from mecmig.bench import ROOT

pytestmark = pytest.mark.timeout(600)

SCENARIO = ROOT / "scenarios" / "loss.yaml"
MEMORY = 64 << 20


def phase(record: dict[str, Any], name: str) -> dict[str, Any]:
    found = [p for p in record["phases"] if p["name"] == name]
    assert len(found) == 1, [p["name"] for p in record["phases"]]
    one: dict[str, Any] = found[0]
    return one


def test_a_cold_migration_over_100_mbits_compresses_compressible_memory() -> None:
    from mecmig.bench.harness_testbed import agents_testbed
    from mecmig.bench.migration_cases import Bench, Case
    from topology.scenario import load_scenario

    with agents_testbed(SCENARIO) as (tb, clients):
        bench = Bench(tb, clients, load_scenario(SCENARIO))
        row = bench.run_case(Case("cold", MEMORY, 1_000_000), lambda _: None)
        assert bench.last_record is not None
        record = bench.last_record.to_dict()
    assert "error" not in row, row.get("error")
    assert record["outcome"] == "done"
    dump, transfer = phase(record, "freeze_dump"), phase(record, "transfer")
    image = dump["detail"]["image_bytes"]
    print(
        f"\n  image {image / 2**20:.1f} MiB, on the wire {transfer['bytes'] / 2**20:.2f} MiB "
        f"in {transfer['detail']['send_s']:.2f} s ({transfer['detail']['compress_why']}); "
        f"downtime {row.get('downtime_ms')} ms, state intact {row.get('state_intact')}"
    )
    assert dump["detail"]["sampled"] is True
    assert transfer["detail"]["compress"] == "zstd", transfer["detail"]["compress_why"]
    assert image >= MEMORY
    assert transfer["bytes"] < 0.1 * image  # memhog's pages are nearly all zeros
    assert row["state_intact"] is True
