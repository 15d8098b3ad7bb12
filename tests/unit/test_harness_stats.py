"""mecmig.bench.harness_stats: known inputs -> known mean, sd, 95 % CI and CV; the seeds'
conventions recovered from their own tables."""

from __future__ import annotations

import math

import pytest

from mecmig.bench.harness_stats import (
    T95,
    Z95,
    ci95_half_width,
    describe,
    seed000_ci95,
    seed004_sd,
    t95,
)
from mecmig.bench.seed_figures import (
    SEED000_DOWNTIME,
    SEED000_TOTAL,
    SEED004_DOWNTIME,
    SEED004_TOTAL,
)


def test_describe_one_to_five() -> None:
    s = describe([1, 2, 3, 4, 5])
    assert s.n == 5 and s.mean == 3.0 and s.median == 3.0 and (s.min, s.max) == (1, 5)
    assert s.sd == pytest.approx(math.sqrt(2.5))  # sample sd, n - 1
    assert s.ci95 == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))  # t(4)
    assert s.ci95 == pytest.approx(1.9630, abs=1e-4)
    assert s.cv == pytest.approx(math.sqrt(2.5) / 3)
    assert s.ci95_low == pytest.approx(3 - 1.9630, abs=1e-4)
    assert s.ci95_high == pytest.approx(3 + 1.9630, abs=1e-4)


def test_describe_ten_runs() -> None:
    values = [10.0, 12.0, 11.0, 13.0, 9.0, 10.0, 12.0, 11.0, 14.0, 8.0]
    s = describe(values)
    assert s.mean == 11.0
    assert s.sd == pytest.approx(math.sqrt(30 / 9))
    assert s.ci95 == pytest.approx(2.262 * math.sqrt(30 / 9) / math.sqrt(10))
    assert s.cv == pytest.approx(math.sqrt(30 / 9) / 11)
    d = s.to_dict()
    assert d["n"] == 10 and d["mean"] == 11.0 and d["ci95_low"] == pytest.approx(9.694, abs=1e-3)


def test_one_value_has_no_spread_and_zero_mean_no_cv() -> None:
    s = describe([42.0])
    assert (s.n, s.mean, s.sd, s.ci95, s.cv) == (1, 42.0, None, None, None)
    assert s.to_dict()["ci95_low"] is None
    z = describe([-1.0, 1.0])
    assert z.mean == 0 and z.sd == pytest.approx(math.sqrt(2)) and z.cv is None
    with pytest.raises(ValueError):
        describe([])


def test_identical_values() -> None:
    s = describe([3.0, 3.0, 3.0])
    assert s.sd == 0 and s.ci95 == 0 and s.cv == 0


def test_t_table_then_normal() -> None:
    assert t95(1) == 12.706 and t95(4) == 2.776 and t95(9) == 2.262 and t95(30) == 2.042
    assert t95(35) == T95[30]  # between entries: the smaller df's value (wider, never narrower)
    assert t95(60) == 2.000 and t95(119) == T95[60] and t95(120) == 1.980
    assert t95(121) == Z95 and t95(10_000) == Z95
    values = list(T95.values())
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError):
        t95(0)
    with pytest.raises(ValueError):
        ci95_half_width(1.0, 1)


def test_scaled_keeps_the_cv() -> None:
    s = describe([1000.0, 1200.0, 1100.0]).scaled(0.001)
    assert s.mean == pytest.approx(1.1) and s.sd == pytest.approx(0.1)
    assert s.cv == pytest.approx(0.1 / 1.1) and s.max == pytest.approx(1.2)


@pytest.mark.parametrize("figure", SEED000_DOWNTIME + SEED000_TOTAL, ids=lambda f: f.subject)
def test_seed000_ci_is_students_t_on_a_population_sd(figure: object) -> None:
    """Seed 000, Tables I and II: CI = t(9) x sd / 3 and CV = sd / mean, to the printed digits."""
    from mecmig.bench.seed_figures import SeedFigure

    assert isinstance(figure, SeedFigure) and figure.sd is not None
    assert figure.ci95 == pytest.approx(seed000_ci95(figure.sd, figure.n), abs=0.0015)
    assert figure.cv == pytest.approx(figure.sd / figure.mean, abs=0.0015)
    # the same thing said with our describe(): its sample sd is the population sd x sqrt(n/(n-1))
    sample_sd = figure.sd * math.sqrt(figure.n / (figure.n - 1))
    assert ci95_half_width(sample_sd, figure.n) == pytest.approx(seed000_ci95(figure.sd, 10))


def test_seed004_ci_is_the_normal_approximation() -> None:
    """Seed 004, Tables 8 and 9: CI = 1.96 s / sqrt(5) gives the printed CV (to its two digits)
    for 8 of the 12 container cells, Student's t (2.776) for 2 (notes-004 §3.1)."""
    figures = SEED004_TOTAL + SEED004_DOWNTIME
    normal = sum(
        1
        for f in figures
        if f.ci95 is not None
        and f.cv is not None
        and round(seed004_sd(f.ci95, f.n) / f.mean, 2) == pytest.approx(f.cv, abs=0.0051)
    )
    student = sum(
        1
        for f in figures
        if f.ci95 is not None
        and f.cv is not None
        and round(f.ci95 * math.sqrt(f.n) / 2.776 / f.mean, 2) == pytest.approx(f.cv, abs=0.0051)
    )
    assert (normal, student) == (8, 2)  # of 12 cells
