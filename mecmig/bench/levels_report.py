"""`mecmig bench levels`'s figure and report: the viability matrix beside seed 003's Table IV,
per cell T_pre, T_down and bytes, and where mecmig does better than the paper's procedures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import runs_section, statistics_table
from mecmig.bench.levels_matrix import APPS, LEVEL_NAMES
from mecmig.bench.report import markdown_table, new_figure, save_figure
from migration.strategies import LEVELS

if TYPE_CHECKING:
    from mecmig.bench.harness import ExperimentRun, Session

CELL_TEXT = {"yes": "yes", "no": "no", "manual": "yes (manual command)", "mixed": "mixed", "-": "-"}
CELL_COLOR = {"yes": "#7fc97f", "manual": "#c9e59b", "no": "#f0837c", "mixed": "#fdc086"}
# seed 003's only absolute downtimes: ASW by FullSP at 100 Mbit/s, 0 % and 5 % loss (s)
SEED_003_ASW_FULLSP_DOWN_S = (3.431, 5.027)
SEED_003_COMMIT_FREEZE_MS = (178, 197)


def plot_levels(rows: Sequence[dict[str, Any]], summary: dict[str, Any], out: Path) -> str:
    """Left: the measured matrix, coloured, Table IV's word under ours. Right: per cell the
    median T_pre and T_down (client)."""
    fig, (left, right) = new_figure(2, width=5.5)
    measured, table = summary["matrix"], summary["table_iv"]
    for i, app in enumerate(APPS):
        for j, level in enumerate(LEVEL_NAMES):
            cell = measured[app][level]
            left.add_patch(_rect(j, i, CELL_COLOR.get(cell, "#dddddd")))
            left.text(j + 0.5, i + 0.42, CELL_TEXT[cell], ha="center", va="center", fontsize=8)
            left.text(j + 0.5, i + 0.72, f"Table IV: {CELL_TEXT[table[app][level]]}",
                      ha="center", va="center", fontsize=6, color="#444444")  # fmt: skip
    left.set_xlim(0, len(LEVEL_NAMES))
    left.set_ylim(len(APPS), 0)
    left.set_xticks([j + 0.5 for j in range(len(LEVEL_NAMES))])
    left.set_xticklabels([f"{lv} ({LEVELS[lv]})" for lv in LEVEL_NAMES])
    left.set_yticks([i + 0.5 for i in range(len(APPS))])
    left.set_yticklabels(list(APPS))
    left.set_title("viable at the destination, state as at the stop")
    cells = summary["cells"]
    names = [f"{a}/{lv}" for a in APPS for lv in LEVEL_NAMES if f"{a}/{lv}" in cells]
    x = range(len(names))
    pre = [(cells[n]["t_pre_ms"] or 0) / 1e3 for n in names]
    down = [(cells[n]["t_down_ms"] or 0) / 1e3 for n in names]
    right.bar([i - 0.2 for i in x], pre, 0.4, label="T_pre (to the freeze, serving)")
    right.bar([i + 0.2 for i in x], down, 0.4, label="T_down (client's longest silence)")
    right.set_xticks(list(x))
    right.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    right.set_ylabel("s (median)")
    right.set_title("two phases per cell")
    right.grid(alpha=0.3, axis="y")
    right.legend(fontsize=7)
    save_figure(fig, out / "levels.png")
    return "levels.png"


def _rect(x: float, y: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, facecolor=color, edgecolor="white", lw=2)


def report_markdown(
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    session: Session,
    runs: ExperimentRun,
    duration: float,
    files: Sequence[str],
) -> str:
    measured, table = summary["matrix"], summary["table_iv"]
    cells = summary["cells"]
    verdict = "**matches**" if summary["matches_table_iv"] else "**differs from**"
    lines = [
        "# Seed 003's state levels: the viability matrix (Table IV)",
        "",
        f"`{session.command}`, started {session.started_at}, {duration} s. Each app of "
        "scenarios/levels.yaml started afresh at mec1 and moved to mec2 by each level; a "
        "client at ue1 sends a request on a new connection every 10 ms throughout. Levels: "
        + ", ".join(f"{lv} = `{s}`" for lv, s in LEVELS.items())
        + ". SFP is given the scenario's command as its manual command; the counter app finds "
        "its state file through its environment (`USERCOUNT_FILE`), which SFP does not carry.",
        "",
        f"## The matrix (measured; it {verdict} Table IV)",
        "",
        markdown_table(
            ["app", *(f"{lv} ({LEVELS[lv]})" for lv in LEVEL_NAMES)],
            [
                [
                    app,
                    *(
                        f"{CELL_TEXT[measured[app][lv]]} (IV: {CELL_TEXT[table[app][lv]]})"
                        for lv in LEVEL_NAMES
                    ),
                ]
                for app in APPS
            ],
        ),  # fmt: skip
        f"SFP without a command refused before anything moved (422 over REST): "
        f"{'yes, every app' if summary['sfp_refused_without_command'] else '**no**'}.",
        "",
        *(f"- {d}" for d in summary["differences"]),
        *(f"- failed, left out of the matrix: {f}" for f in summary["failed_runs"]),
        "",
        "## Per cell (medians)",
        "",
        markdown_table(
            [
                "app / level",
                "runs",
                "viable",
                "T_pre (ms)",
                "T_down client (ms)",
                "freeze to serving (ms)",
                "bytes",
            ],
            [
                [
                    n,
                    c["runs"],
                    c["viable"],
                    _n(c["t_pre_ms"]),
                    _n(c["t_down_ms"]),
                    _n(c["engine_down_ms"]),
                    _n(c["bytes"], 0),
                ]
                for n, c in cells.items()
            ],
        ),  # fmt: skip
        "## Where mecmig does better than the paper's procedures",
        "",
        *better(rows),
        "",
        "## Statistics per app and level",
        "",
        "### T_down (client)",
        "",
        statistics_table(runs, "t_down_ms"),
        "",
        "### T_pre",
        "",
        statistics_table(runs, "t_pre_ms"),
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"


def better(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The points, with this run's numbers where it has them."""
    ok = [r for r in rows if r.get("outcome") == "done"]
    at_freeze = [r["bytes_at_freeze"] for r in ok if r["level"] != "fullsp" and r["bytes"]]
    full = [r for r in ok if r["app"] == "memcached" and r["level"] == "fullsp"]
    down = sorted(r["t_down_ms"] for r in full if r["t_down_ms"] is not None)
    lo, hi = SEED_003_COMMIT_FREEZE_MS
    out = [
        f"- **No commit freeze.** FCCP and FullSP pause the container {lo}-{hi} ms for `docker "
        "commit` in the pre-relocation phase; `restart` copies the files while the service "
        "runs, without pausing it (pre-copy's rounds are leave-running dumps: on a kernel "
        "without dirty-memory tracking, as here, each freezes the service for its dump).",
        "- **The bulk while serving, only the delta at the freeze**, for every level: SFP and "
        "FCCP send /data and /volume in rounds while the app serves and only what changed "
        "after the stop (the paper tars and copies the whole volume inside the downtime)"
        + (f": here {min(at_freeze)}-{max(at_freeze)} B at the freeze." if at_freeze else "."),
        "- **Downtime as the client sees it**: a request every 10 ms on a new connection, from "
        "the UE, through the SDN switch; the paper's ends when `docker run` returns.",
        "- **Same address, same MAC, traffic steered by the controller** (held while frozen, "
        "delivered after): no gateway or DNS change, and under full state the app's TCP "
        "connections survive.",
        "- **SFP's missing command is refused before anything moves** (422, the service keeps "
        "running at the source), not discovered when the destination cannot start it.",
    ]
    if down:
        out.append(
            f"- memcached by full state: client-observed T_down {down[0]:.0f}-{down[-1]:.0f} ms "
            f"here (1 Gbit/s emulated links) against the paper's "
            f"{SEED_003_ASW_FULLSP_DOWN_S[0]} s (100 Mbit/s, 0 % loss)."
        )
    return out


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
