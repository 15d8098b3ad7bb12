"""What would happen: the predicted start, finish and final rate of each of a set of
requests under a policy, from the same simulation the live `Scheduler` reports its queue with,
so benchmarks and tests can compare best-effort, one-per-link and network-aware offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestration.schedule_inputs import check_capacities, check_new
from orchestration.schedule_models import DirectedLink, MigrationRequest, Policy, Prediction
from orchestration.schedule_plan import new_job, simulate

# A simulated rate this close below the min rate is the min rate (float sums of intervals).
RATE_EPS = 1e-9


def estimate(
    policy: Policy | str,
    capacities: Mapping[DirectedLink, int],
    requests: Iterable[MigrationRequest],
) -> tuple[Prediction, ...]:
    """What would happen to `requests` (each arriving at its `submitted_s`, None = 0) under
    `policy`, nothing else running: per request, in the order given, its predicted start,
    finish, final rate, budget met (final rate >= its min rate) and deadline met.

    Raises what `Scheduler.submit` raises (duplicate ids, unknown links, never fits)."""
    pol = Policy(policy)
    caps = check_capacities(capacities)
    reqs = list(requests)
    check_new(pol, caps, reqs, {})
    jobs = [
        new_job(req, seq, 0.0 if req.submitted_s is None else req.submitted_s)
        for seq, req in enumerate(reqs)
    ]
    start = min((job.submitted_s for job in jobs), default=0.0)
    sim = simulate(pol, caps, [], [], start, arrivals=jobs)
    out = []
    for req in reqs:
        s = sim[req.id]
        rate = s.final_rate_bps
        budget_met = rate is not None and rate >= req.min_rate_bps * (1 - RATE_EPS)
        deadline_met = None
        if req.deadline_s is not None:
            deadline_met = s.finish_s is not None and s.finish_s <= req.deadline_s
        out.append(Prediction(req.id, s.start_s, s.finish_s, rate, budget_met, deadline_met))
    return tuple(out)
