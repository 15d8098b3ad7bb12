"""Summary statistics of repeated runs, as seeds 000 and 004 report them: mean, standard deviation,
95 % confidence interval of the mean and coefficient of variation (pure functions, no scipy).

Our convention: the sample standard deviation (n - 1), a confidence interval from Student's t with
n - 1 degrees of freedom (`T95`, normal beyond the table), CV = sd / mean.

The seeds' own conventions, recovered from their tables (so that a reader can compare like with
like; tests/unit/test_harness_stats.py checks both against the seeds' numbers):
- seed 000, Tables I and II (n = 10): CI = t(9) x sd / 3, i.e. its "Std deviation" column is the
  population deviation (divided by n) and its CI Student's t with the sample deviation;
  CV = that sd / mean.
- seed 004, Tables 8 and 9 (n = 5): CI = 1.96 x s / sqrt(5) (the normal approximation; notes-004
  §3.1), CV = s / mean; it prints no sd.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

Z95 = 1.959964  # two-sided 95 % quantile of the normal distribution

# two-sided 95 % quantiles of Student's t by degrees of freedom (1..30, then 40, 60, 120)
T95: dict[int, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip


def t95(df: int) -> float:
    """Student's t two-sided 95 % quantile for `df` degrees of freedom: the table's value, or the
    largest tabulated df below it (a slightly wider interval, never narrower); normal past 120."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, not {df}")
    if df > max(T95):
        return Z95
    return T95[max(d for d in T95 if d <= df)]


def ci95_half_width(sd: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean of `n` values whose sample standard
    deviation is `sd`: t(n - 1) x sd / sqrt(n)."""
    if n < 2:
        raise ValueError("a confidence interval needs at least two values")
    return t95(n - 1) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Stats:
    """What the seeds print per cell, and a little more. sd, ci95 and cv are None for fewer than
    two values (and cv also when the mean is 0)."""

    n: int
    mean: float
    sd: float | None
    ci95: float | None  # half-width: the interval is mean +- ci95
    cv: float | None
    median: float
    min: float
    max: float

    @property
    def ci95_low(self) -> float | None:
        return None if self.ci95 is None else self.mean - self.ci95

    @property
    def ci95_high(self) -> float | None:
        return None if self.ci95 is None else self.mean + self.ci95

    def scaled(self, factor: float) -> Stats:
        """The same statistics in another unit (e.g. ms -> s: 0.001); the CV does not change."""

        def m(value: float | None) -> float | None:
            return None if value is None else value * factor

        return Stats(
            n=self.n,
            mean=self.mean * factor,
            sd=m(self.sd),
            ci95=m(self.ci95),
            cv=self.cv,
            median=self.median * factor,
            min=self.min * factor,
            max=self.max * factor,
        )

    def to_dict(self, digits: int = 4) -> dict[str, float | int | None]:
        """JSON fields, rounded to `digits` significant decimals after the point."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "n": self.n,
            "mean": r(self.mean),
            "sd": r(self.sd),
            "ci95": r(self.ci95),
            "ci95_low": r(self.ci95_low),
            "ci95_high": r(self.ci95_high),
            "cv": r(self.cv),
            "median": r(self.median),
            "min": r(self.min),
            "max": r(self.max),
        }


def describe(values: Iterable[float]) -> Stats:
    """Mean, sample sd, Student's-t 95 % CI half-width, CV, median, min and max of `values`."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("no values to describe")
    n, mean = len(data), statistics.fmean(data)
    sd = statistics.stdev(data, mean) if n > 1 else None
    return Stats(
        n=n,
        mean=mean,
        sd=sd,
        ci95=None if sd is None else ci95_half_width(sd, n),
        cv=None if sd is None or mean == 0 else sd / abs(mean),
        median=statistics.median(data),
        min=min(data),
        max=max(data),
    )


def seed000_ci95(reported_sd: float, n: int) -> float:
    """Seed 000's CI from its own "Std deviation" (a population sd): t(n - 1) x sd / sqrt(n - 1)."""
    return t95(n - 1) * reported_sd / math.sqrt(n - 1)


def seed004_sd(ci95: float, n: int) -> float:
    """The sample sd behind one of seed 004's CIs (normal approximation): ci x sqrt(n) / 1.96."""
    return ci95 * math.sqrt(n) / Z95
