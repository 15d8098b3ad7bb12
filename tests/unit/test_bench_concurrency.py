"""`mecmig bench concurrency`'s pure parts: what runs in each instance (read from the scenario),
when a moved instance kept its state, the per-run figures and the issue's goals."""

from __future__ import annotations

from typing import Any

import pytest

from mecmig.bench.concurrency import (
    JOBS,
    QUICK,
    SCENARIO,
    Plan,
    Workload,
    member_intact,
    migration_rows,
    run_row,
    workload_of,
)
from mecmig.bench.concurrency_report import summarize
from topology.scenario import load_scenario
from workloads.memhog import expected_fingerprint as memhog_fingerprint
from workloads.sfcfwd import expected_fingerprint as sfcfwd_fingerprint


def test_every_service_of_the_scenario_is_a_known_workload_and_every_job_exists() -> None:
    sc = load_scenario(SCENARIO)
    kinds = {i.name: workload_of(i.command).program for i in sc.instances}
    assert set(kinds.values()) == {"memhog", "sfcfwd"}
    chains = {c.name for c in sc.chains}
    for job in JOBS:
        assert (job.name in chains) if job.kind == "chain" else (job.name in kinds), job
    assert len(JOBS) == 10 and {j.kind for j in JOBS} == {"instance", "chain"}
    assert len({j.deadline_s for j in JOBS}) == len(JOBS)  # every user leaves at its own time
    deadlines = [j.deadline_s for j in JOBS]
    assert deadlines != sorted(deadlines)  # not in submission order: FIFO and EDF differ
    # every migration crosses the one 100 Mbit/s link
    slow = [link for link in sc.links if link.capacity == 100_000_000]
    assert len(slow) == 1 and sc.site("mec1").switch_name in slow[0].between


def test_workload_of_reads_program_seed_and_memory() -> None:
    assert workload_of("/usr/bin/python3 /data/memhog.py --size 12MiB --seed 3") == Workload(
        "memhog", 3, 12 << 20
    )
    assert workload_of(["/usr/bin/python3", "/data/sfcfwd.py", "--memory", "4MiB"]) == Workload(
        "sfcfwd", 42, 4 << 20
    )
    with pytest.raises(ValueError, match="not a memhog or sfcfwd"):
        workload_of("/usr/bin/python3 /data/httpstream.py")


def test_a_memhog_is_intact_when_the_same_process_kept_its_memory() -> None:
    w = Workload("memhog", 42, 4 << 20)
    good = memhog_fingerprint(42, 4 << 20)
    before = {"counter": 100, "fingerprint": good, "uptime_ms": 1000, "asked_at": 50.0}

    def after(counter: int, uptime_ms: int, fingerprint: str = good) -> dict[str, Any]:
        return {"counter": counter, "fingerprint": fingerprint, "uptime_ms": uptime_ms,
                "asked_at": 70.0}  # fmt: skip

    assert member_intact(w, before, after(400, 21_050))  # 20 s later, 20.05 s older
    # restarted in between: checked at once (uptime went back) or long after (it grew, but
    # by less than the 20 s that passed); memory lost; not answering
    assert not member_intact(w, before, after(5, 50))
    assert not member_intact(w, before, after(1900, 19_000))
    assert not member_intact(w, before, after(400, 21_050, "0" * 64))
    assert not member_intact(w, before, {"error": "ConnectionRefusedError"})


def test_a_forwarder_is_intact_when_it_kept_its_start_and_memory_and_forwarded() -> None:
    w = Workload("sfcfwd", 7, 4 << 20)
    good = sfcfwd_fingerprint(7, 4 << 20)
    before = {"started": 12.5, "fingerprint": good, "forwarded": 10}
    assert member_intact(w, before, {"started": 12.5, "fingerprint": good, "forwarded": 14})
    assert not member_intact(w, before, {"started": 99.0, "fingerprint": good, "forwarded": 14})
    assert not member_intact(w, before, {"started": 12.5, "fingerprint": good, "forwarded": 10})


def _mig(
    name: str, completion: float, *, budget: bool = True, deadline: bool = True
) -> dict[str, Any]:
    return {
        "migration": name, "completion_ms": completion, "downtime_ms": 500.0,
        "budget_met": budget, "deadline_met": deadline, "state_intact": True, "outcome": "done",
    }  # fmt: skip


def _batch(policy: str, n: int, migs: list[dict[str, Any]], peak: float = 0.5) -> dict[str, Any]:
    row = run_row(policy, n, migs, {"s1->core": peak})
    row["repetition"] = 1
    return row


def test_a_run_row_counts_misses_and_flags_an_overcommitted_link() -> None:
    row = _batch("best-effort", 2, [_mig("a", 1000.0), _mig("b", 3000.0, deadline=False)], 1.2)
    assert row["mean_completion_ms"] == 2000.0 and row["makespan_ms"] == 3000.0
    assert row["deadline_misses"] == 1 and row["budget_misses"] == 0
    assert row["link_overcommitted"] is True
    rows = migration_rows([row])
    assert [(r["policy"], r["n"], r["repetition"]) for r in rows] == [("best-effort", 2, 1)] * 2


def test_goals_judge_network_aware_against_both_baselines_at_ten() -> None:
    plan = Plan((10,), ("best-effort", "one-per-link", "network-aware"), 1)
    ten = [f"m{i}" for i in range(10)]
    batches = [
        _batch("best-effort", 10, [_mig(m, 30_000.0, deadline=False) for m in ten]),
        _batch("one-per-link", 10, [_mig(m, 16_000.0, deadline=i < 7) for i, m in enumerate(ten)]),
        _batch("network-aware", 10, [_mig(m, 14_000.0, deadline=i > 0) for i, m in enumerate(ten)]),
    ]
    g = summarize(batches, plan)["goals"]
    assert g["network_aware_budgets_met_every_n"] is True
    assert g["completion_ratio_vs_best_effort_at_10"] == pytest.approx(14 / 30, abs=1e-3)
    assert g["completion_half_of_best_effort_at_10"] is True
    assert g["deadline_misses_per_batch_at_10"] == {"network-aware": 1.0, "one-per-link": 3.0}
    assert g["deadline_misses_third_of_one_per_link_at_10"] is True
    # two misses are more than a third of three; a missed budget fails the first goal
    batches[2] = _batch("network-aware", 10, [
        _mig(m, 14_000.0, deadline=i > 1, budget=i != 5) for i, m in enumerate(ten)
    ])  # fmt: skip
    g = summarize(batches, plan)["goals"]
    assert g["deadline_misses_third_of_one_per_link_at_10"] is False
    assert g["network_aware_budgets_met_every_n"] is False


def test_quick_plan_runs_every_policy() -> None:
    assert set(QUICK.policies) == {"best-effort", "one-per-link", "network-aware"}


def test_goals_without_data_are_not_judged() -> None:
    plan = Plan((2, 10), ("best-effort", "one-per-link", "network-aware"), 1)
    g = summarize([_batch("best-effort", 2, [_mig("a", 1000.0)])], plan)["goals"]
    assert g["network_aware_budgets_met_every_n"] is None
    assert g["no_link_overcommitted_network_aware"] is None
    assert "completion_half_of_best_effort_at_10" not in g
    assert g["state_intact"] is True
    assert summarize([], plan)["goals"]["state_intact"] is None


def test_a_failed_migration_does_not_shorten_the_mean_completion() -> None:
    plan = Plan((10,), ("best-effort", "network-aware"), 1)
    failed = {**_mig("b", 10.0), "outcome": "rolled_back", "budget_met": False}
    batches = [
        _batch("best-effort", 10, [_mig("a", 30_000.0)]),
        _batch("network-aware", 10, [_mig("a", 20_000.0), failed]),
    ]
    g = summarize(batches, plan)["goals"]
    assert g["completion_ratio_vs_best_effort_at_10"] == pytest.approx(2 / 3, abs=1e-3)
    assert g["network_aware_budgets_met_every_n"] is False
