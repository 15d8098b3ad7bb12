"""Each copy's compression, chosen by the engine (issue 13, item 5): from the link's rate (the
grant's, else the plan's) and the latest dump's sample of the memory; the copy asks the source
for it and the transfer phase records it and why."""

from __future__ import annotations

from dataclasses import replace

from migration.engine import SAMPLE_BELOW_BPS
from migration.timeline import MigrationRecord, PhaseRecord
from tests.unit.migration_fakes import MB, SAMPLE_RANDOM
from tests.unit.test_engine import INSTANCE, make_world

SLOW = 100_000_000  # 100 Mbit/s: slower than the compressed copy (1 Gbit/s in the fakes)


def detail(record: MigrationRecord, name: str) -> dict[str, object]:
    phase: PhaseRecord | None = record.phase(name)
    assert phase is not None, name
    return phase.detail


def test_cold_on_a_slow_link_samples_its_final_dump_and_compresses_the_copy() -> None:
    w = make_world(rate_bps=SLOW)
    record = w.migration().run()
    assert w.src.sampled == [True]  # the final dump, the only one
    assert w.src.compresses == ["zstd"]
    t = detail(record, "transfer")
    assert t["compress"] == "zstd" and str(t["compress_why"]).startswith("zstd ")
    assert "link 100 Mbit/s" in str(t["compress_why"])
    assert detail(record, "freeze_dump")["sampled"] is True
    phases = {p["name"]: p for p in record.to_dict()["phases"]}
    assert phases["transfer"]["detail"]["compress"] == "zstd"  # the record shows it


def test_incompressible_memory_goes_plain() -> None:
    w = make_world(rate_bps=SLOW)
    w.src.memory = SAMPLE_RANDOM
    record = w.migration().run()
    assert w.src.compresses == ["none"]
    assert "does not compress" in str(detail(record, "transfer")["compress_why"])


def test_a_fast_link_skips_the_frozen_sample_and_copies_plain() -> None:
    w = make_world(rate_bps=SAMPLE_BELOW_BPS)
    record = w.migration().run()
    assert w.src.sampled == [False]  # no 15-60 ms of sampling while frozen
    assert w.src.compresses == ["none"]
    assert detail(record, "transfer")["compress_why"] == "no sample of the memory"
    assert detail(record, "freeze_dump")["sampled"] is False


def test_the_link_is_the_grants_rate() -> None:
    # the plan asks for 10 Gbit/s; the network grants 100 Mbit/s: compression pays
    w = make_world(rate_bps=10_000_000_000, net={"max_bps": SLOW})
    record = w.migration().run()
    assert w.src.sampled == [True] and w.src.compresses == ["zstd"]
    assert "link 100 Mbit/s" in str(detail(record, "transfer")["compress_why"])


def test_without_a_grant_the_plans_rate() -> None:
    w = make_world(rate_bps=SLOW, net={"refuse": True})
    w.migration().run()
    assert w.src.compresses == ["zstd"]


def test_a_site_without_a_sample_copies_plain() -> None:
    w = make_world(rate_bps=SLOW)
    w.src.memory = None  # an agent from before samples existed
    record = w.migration().run()
    assert w.src.sampled == [True] and w.src.compresses == ["none"]
    assert detail(record, "transfer")["compress_why"] == "no sample of the memory"


def test_precopy_samples_every_round_live_and_not_the_frozen_dump() -> None:
    w = make_world(
        "precopy", rate_bps=SLOW, src={"dirty_tracking": True, "send_bytes": (64 * MB, 1 * MB)},
        dirty_tracking=True,
    )  # fmt: skip
    record = w.migration().run()
    rounds = len(w.src.ops("pre_dump"))
    assert rounds >= 1
    assert w.src.sampled == [True] * rounds + [False]  # the final dump reuses the rounds'
    assert w.src.compresses == ["zstd"] * (rounds + 1)
    assert detail(record, "precopy-1")["compress"] == "zstd"
    assert detail(record, "transfer")["compress"] == "zstd"
    assert w.dst.instances[INSTANCE].status == "running"


def test_a_plan_may_force_the_copies_compression() -> None:
    """bench loss reproduces seed 003's uncompressed copies: the plan says none, whatever the
    sample and the link would choose; or zstd where the engine would not."""
    for forced, memory in (("none", None), ("zstd", SAMPLE_RANDOM)):
        w = make_world(rate_bps=SLOW)
        if memory is not None:
            w.src.memory = memory
        w.plan = replace(w.plan, compress=forced)
        record = w.migration().run()
        assert w.src.compresses == [forced]
        why = detail(record, "transfer")["compress_why"]
        assert why == "asked for by the migration's plan"
