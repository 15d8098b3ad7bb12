"""The harness's parts of a benchmark's report.md and plots: the runs and their state, the
statistics tables (mean, sd, 95 % CI, CV), the seeds' figures beside ours, an error-bar plot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_stats import Stats
from mecmig.bench.report import markdown_table
from mecmig.bench.seed_figures import SeedFigure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from mecmig.bench.harness import ExperimentRun, Session


def number(value: float | None, digits: int = 3) -> str:
    """`value` with `digits` significant digits ('-' for None)."""
    return "-" if value is None else f"{value:.{digits}g}"


def stats_text(s: Stats | None, unit: str = "", digits: int = 3) -> str:
    """'1.23 ± 0.05 s (CV 0.04, n=10)'; a single value: '1.23 s (n=1)'; None: '-'."""
    if s is None:
        return "-"
    unit = f" {unit}" if unit else ""
    if s.ci95 is None:
        return f"{number(s.mean, digits)}{unit} (n={s.n})"
    return f"{number(s.mean, digits)} ± {number(s.ci95, 2)}{unit} (CV {number(s.cv, 2)}, n={s.n})"


def seed_text(f: SeedFigure) -> str:
    """A seed's figure as its table gives it: mean ± CI (sd, CV, n)."""
    if f.ci95 is None:
        return f"{f.mean:g} {f.unit} (n={f.n}, no spread given)"
    extra = [f"sd {f.sd:g}"] if f.sd is not None else []
    extra += [f"CV {f.cv:g}"] if f.cv is not None else []
    return f"{f.mean:g} ± {f.ci95:g} {f.unit} ({', '.join([*extra, f'n={f.n}'])})"


@dataclass(frozen=True)
class Comparison:
    """A seed's figure and ours for the nearest thing we measure (`ours` in the seed's unit)."""

    figure: SeedFigure
    ours: Stats | None
    ours_what: str


def seed_table(rows: Sequence[Comparison]) -> str:
    """Markdown: each seed's number beside ours, cited by table, with the ratio of the means."""
    return markdown_table(
        [
            "seed (table)",
            "their case",
            "theirs: mean ± 95 % CI",
            "ours: mean ± 95 % CI",
            "our case",
            "ours / theirs",
        ],
        [
            [
                c.figure.cite,
                f"{c.figure.quantity}, {c.figure.subject}, {c.figure.method}",
                seed_text(c.figure),
                stats_text(c.ours, c.figure.unit),
                c.ours_what,
                "-"
                if c.ours is None or not c.figure.mean
                else f"{c.ours.mean / c.figure.mean:.2g}",
            ]
            for c in rows
        ],
    )


def statistics_table(
    run: ExperimentRun,
    metric: str,
    cell: Callable[[str, Any], str] = lambda name, value: str(value),
    digits: int = 4,
    headers: dict[str, str] | None = None,
) -> str:
    """Markdown: per statistics group of `run`, the metric's n, mean, sd, 95 % CI and CV (the
    group's parameters as `cell(name, value)` says, under `headers[name]` or their names)."""
    groups = run.experiment.groups()
    found = [s for s in run.statistics() if s["metric"] == metric]
    unit = found[0]["unit"] if found else ""
    return markdown_table(
        [
            *((headers or {}).get(g, g) for g in groups),
            "n",
            f"mean ({unit})",
            "sd",
            "95 % CI",
            "CV",
            "median",
            "min – max",
        ],
        [
            [
                *(cell(g, s[g]) for g in groups),
                s["n"],
                number(s["mean"], digits),
                number(s["sd"], digits),
                "-"
                if s["ci95"] is None
                else f"±{number(s['ci95'], 3)} [{number(s['ci95_low'], digits)}, "
                f"{number(s['ci95_high'], digits)}]",
                number(s["cv"], 2),
                number(s["median"], digits),
                f"{number(s['min'], digits)} – {number(s['max'], digits)}",
            ]
            for s in found
        ],
    )


def runs_section(session: Session, files: Sequence[str]) -> str:
    """Markdown: each experiment (scenario, workload, sweep, repetitions), its runs' state and
    the files written; a run that crashed or never ran is named."""
    lines = ["## Experiments and runs", ""]
    for e in session.experiments:
        st = e.status()
        runs = st["runs"]
        sweep = "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in st["sweep"].items())
        lines.append(
            f"- **{st['name']}**: scenario `{st['scenario']}`, workload: {st['workload']}; "
            f"sweep {sweep or '-'}; {st['repetitions']} repetition(s); "
            f"{runs['complete']} of {runs['planned']} runs complete"
            + (f" ({runs['resumed']} read back by --resume)" if runs["resumed"] else "")
            + f"; raw JSON per run in `{st['raw']}/`."
        )
        for key in runs["unfinished"]:
            lines.append(f"  - **crashed, partial data**: `{key}`")
        if runs["not_started"]:
            lines.append(f"  - not run: {len(runs['not_started'])} run(s)")
    if not session.complete:
        lines += [
            "",
            '**This run is incomplete** (`"complete": false` in summary.json); '
            "`--resume` runs what is missing.",
        ]
    lines += ["", "Files beside this report: " + ", ".join(f"`{f}`" for f in files) + "."]
    return "\n".join(lines) + "\n"


def plot_statistics(
    ax: Axes,
    stats: Sequence[dict[str, Any]],
    *,
    metric: str,
    x: str,
    series: str | None = None,
    x_value: Callable[[Any], float] = float,
    series_label: Callable[[Any], str] = str,
    scale: float = 1.0,
    colors: dict[Any, str] | None = None,
) -> None:
    """Means of `metric` vs parameter `x` with their 95 % CIs as error bars, a line per value of
    `series` (labelled for the legend); values multiplied by `scale` (e.g. ms -> s)."""
    mine = [s for s in stats if s["metric"] == metric]
    keys = list(dict.fromkeys(s[series] for s in mine)) if series else [None]
    for key in keys:
        points = sorted(
            (s for s in mine if series is None or s[series] == key), key=lambda s: x_value(s[x])
        )
        if not points:
            continue
        ax.errorbar(
            [x_value(s[x]) for s in points],
            [s["mean"] * scale for s in points],
            yerr=[0.0 if s["ci95"] is None else s["ci95"] * scale for s in points],
            marker="o",
            capsize=4,
            lw=1.6,
            color=None if colors is None else colors.get(key),
            label=metric if series is None else series_label(key),
        )
