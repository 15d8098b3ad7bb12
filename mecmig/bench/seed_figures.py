"""The seeds' reference figures that our benchmarks print beside their own (verbatim from the
papers in ../shared/seeds; units as the papers give them).

- seed 000 (Addad et al., SFC migration patterns), Tables I and II: the asynchronous pattern's
  per-container downtime and total migration time at migration bandwidths of 0.3 MB/s, 2 MB/s
  and full (3 GB/s); LXC containers of 470 MB (Dummy-LXC) and 573 MB (video server); 10 runs.
- seed 004 (Ramanathan et al., VM and container migration of core network functions), Tables 8
  and 9: migration time and downtime of HSS, MME and SPGW containers, stop-and-copy (Docker CLI:
  checkpoint, copy, restore) and pre-copy (runc pre-dump + dump); 5 runs; sizes from Table 11.
  Table 7: its pre-copy's "VPN Setting" step, the network re-pointing inside the downtime.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1_000_000


@dataclass(frozen=True)
class SeedFigure:
    """One number of a seed's table: a mean with what the paper gives of its spread."""

    seed: str  # "000", "004"
    where: str  # "Table I"
    quantity: str  # "downtime", "total", "network re-pointing"
    subject: str  # what was measured, as the paper names it
    method: str  # the seed's migration method ("stop-and-copy", "pre-copy", "asynchronous")
    mean: float
    unit: str
    n: int  # runs per cell, as the paper says
    sd: float | None = None  # as printed (seed 000: the population sd)
    ci95: float | None = None  # half-width, as printed
    cv: float | None = None
    size_bytes: int | None = None  # the container's size (state moved), where the paper says

    @property
    def cite(self) -> str:
        return f"seed {self.seed}, {self.where}"


def _seed000(
    where: str, quantity: str, rows: list[tuple[float, float, float, float]]
) -> list[SeedFigure]:
    sizes = {"Dummy-LXC": 470 * MB, "Video server": 573 * MB}
    return [
        SeedFigure(
            seed="000",
            where=where,
            quantity=quantity,
            subject=f"{container}, {bandwidth}",
            method="asynchronous SFC migration",
            mean=mean,
            unit="s",
            n=10,
            sd=sd,
            ci95=ci,
            cv=cv,
            size_bytes=sizes[container],
        )
        for (container, bandwidth), (mean, sd, ci, cv) in zip(_CASES000, rows, strict=True)
    ]


# seed 000's cases, in its tables' order: (container, migration bandwidth)
_CASES000 = [
    (c, bw)
    for bw in ("0.3 MB/s", "full bandwidth (3 GB/s)", "2 MB/s")
    for c in ("Dummy-LXC", "Video server")
]
# (mean s, sd, CI 95 %, CV) per case
SEED000_DOWNTIME = _seed000(
    "Table I",
    "downtime",
    [
        (2.674, 0.075, 0.056, 0.028),
        (4.397, 0.076, 0.057, 0.017),
        (1.189, 0.049, 0.037, 0.041),
        (1.429, 0.047, 0.035, 0.033),
        (1.222, 0.066, 0.05, 0.054),
        (1.571, 0.056, 0.042, 0.036),
    ],
)
SEED000_TOTAL = _seed000(
    "Table II",
    "total",
    [
        (16.296, 0.667, 0.503, 0.041),
        (42.658, 0.742, 0.56, 0.017),
        (11.833, 1.891, 1.426, 0.16),
        (12.661, 1.273, 0.96, 0.1),
        (11.922, 1.28, 0.965, 0.107),
        (13.842, 0.346, 0.26, 0.025),
    ],
)

# seed 004, Table 11: the data each container method moved (MB)
_SIZE_SC = {"HSS": 173 * MB, "MME": 42 * MB, "SPGW": 100 * MB}
_SIZE_PRE = {"HSS": 130_300_000, "MME": 41_790_000, "SPGW": 100_390_000}


def _seed004(
    where: str, quantity: str, rows: list[tuple[str, float, float, float, float, float, float]]
) -> list[SeedFigure]:
    return [
        SeedFigure(
            seed="004",
            where=where,
            quantity=quantity,
            subject=f"{nf} container",
            method=method,
            mean=mean,
            unit="s",
            n=5,
            ci95=ci,
            cv=cv,
            size_bytes=sizes[nf],
        )
        for nf, *cells in rows
        for method, sizes, (mean, ci, cv) in (
            ("stop-and-copy", _SIZE_SC, cells[:3]),
            ("pre-copy", _SIZE_PRE, cells[3:]),
        )
    ]


# (NF, stop-and-copy mean, CI, CV, pre-copy mean, CI, CV); the VM columns are not ours to compare
SEED004_TOTAL = _seed004(
    "Table 8",
    "total",
    [
        ("HSS", 15.01, 0.43, 0.03, 4.84, 0.26, 0.06),
        ("MME", 5.74, 0.18, 0.03, 3.09, 0.13, 0.04),
        ("SPGW", 8.85, 0.42, 0.05, 4.47, 0.13, 0.03),
    ],
)
SEED004_DOWNTIME = _seed004(
    "Table 9",
    "downtime",
    [
        ("HSS", 15.01, 0.43, 0.03, 2.3, 0.15, 0.07),
        ("MME", 5.74, 0.18, 0.03, 1.86, 0.08, 0.04),
        ("SPGW", 8.85, 0.42, 0.05, 2.51, 0.07, 0.03),
    ],
)
SEED004_REPOINT = [
    SeedFigure(
        "004",
        "Table 7",
        "network re-pointing",
        f'{nf} container, "VPN Setting"',
        "pre-copy",
        value,
        "s",
        5,
    )
    for nf, value in (("HSS", 0.528), ("MME", 0.491), ("SPGW", 0.581))
]
