"""`mecmig bench compression`'s figure and report: per path and image, the copy's time plain,
zstd and as chosen, and whether the chosen mode was ever slower than the plain copy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mecmig.bench.harness_report import runs_section, statistics_table
from mecmig.bench.report import markdown_table, new_figure, save_figure

if TYPE_CHECKING:
    from mecmig.bench.compression import Plan
    from mecmig.bench.harness_testbed import BenchRun

COLORS = {"none": "C0", "zstd": "C1", "chosen": "C2"}
MiB = 1 << 20


def plot_compression(summary: dict[str, Any], rows: Sequence[dict[str, Any]], out: Path) -> str:
    """A panel per path: per image, the mean time of each mode (its runs as dots); above the
    chosen bar, what the choice took."""
    from mecmig.bench.compression import IMAGES, MODES, PATHS

    fig, axes = new_figure(len(PATHS), width=5.0)
    for ax, path in zip(axes, PATHS, strict=True):
        cells = {c["image"]: c for c in summary["cells"] if c["path"] == path}
        width = 0.26
        for k, mode in enumerate(MODES):
            xs = [i + (k - 1) * width for i in range(len(IMAGES))]
            means = [
                (cells[im]["seconds_mean"][mode] or 0.0) if im in cells else 0.0 for im in IMAGES
            ]
            ax.bar(xs, means, width, color=COLORS[mode], label=mode, alpha=0.85)
            for x, im in zip(xs, IMAGES, strict=True):
                pts = [
                    r["seconds"]
                    for r in rows
                    if r["path"] == path and r["image"] == im and r["mode"] == mode
                ]
                ax.plot([x] * len(pts), pts, "k.", ms=3)
                if mode == "chosen" and im in cells:
                    ax.annotate(
                        "/".join(cells[im]["chosen_ran"]), (x, max(pts, default=0.0)),
                        ha="center", fontsize=7, xytext=(0, 3), textcoords="offset points",
                    )  # fmt: skip
        link = next(iter(cells.values()))["link_bps"] / 1e6 if cells else 0.0
        ax.set_xticks(range(len(IMAGES)), list(IMAGES))
        ax.set_ylabel("copy time (s)")
        ax.set_title(f"{path} (measured {link:.0f} Mbit/s)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, out / "compression.png")
    return "compression.png"


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def verdict(cell: dict[str, Any], tolerance: float) -> str:
    if cell["slower"] is None:
        return "not judged (no plain or chosen run)"
    same = cell["chosen_ran"] == ["none"]
    ratio = cell["chosen_over_none"]
    if cell["slower"]:
        return f"**slower**: {ratio:.3f}x the plain copy's mean (beyond {tolerance:.0%})"
    note = " (the chosen copy is the plain one: the difference is run-to-run noise)" if same else ""
    return f"never slower: {ratio:.3f}x the plain copy's mean{note}"


def report_markdown(
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    plan: Plan,
    done: BenchRun,
    files: Sequence[str],
) -> str:
    from mecmig.bench.compression_link import SHORT_COPIES, SHORT_COPY_S

    session = done.session
    tol = summary["tolerance"]
    overall = summary["never_slower"]
    table = [
        [
            c["path"], c["image"], f"{c['link_bps'] / 1e6:.0f}",
            _s(c["seconds_mean"]["none"]), _s(c["seconds_mean"]["zstd"]),
            _s(c["seconds_mean"]["chosen"]), "/".join(c["chosen_ran"]),
            _s(c["chosen_over_none"], 3), _s(c["worst_pair"], 3),
            _s((c["bytes_on_wire_mean"]["zstd"] or 0.0) / MiB, 1),
            f"{c['bytes_total'] / MiB:.1f}",
        ]
        for c in summary["cells"]
    ]  # fmt: skip
    whys = {(r["path"], r["image"]): r["why"] for r in rows if r["mode"] == "chosen"}
    lines = [
        "# Compression on a migration's copy: plain, zstd and the engine's choice "
        "(issue 13, item 5)",
        "",
        f"`{session.command}`, started {session.started_at}, {done.duration_s} s. Two "
        f"{plan.size_mib} MiB memory images (a CRIU `pages-1.img` each): this machine's shared "
        "libraries and Python sources end to end (compressible: code and data) and "
        "`os.urandom` (random), copied with the agents' transfer (`agent.transfer.send_dir`) "
        "over a veth pair into a network namespace of its own, shaped by tc TBF at 100 Mbit/s "
        "(`100mbit`) or not (`unshaped`; both ends and the copy share this machine's cores). "
        "Each path's rate is the best of two plain copies of the random image (of "
        f"{SHORT_COPIES} where they are short). {plan.repeat} "
        "run(s) per path, image and mode. `chosen`: `migration.compression.choose` on a fresh "
        "sample of the image (`agent.compression.measure`, 4 MiB in 16 pieces) and the path's "
        "rate, then the copy in that mode: what the migration engine does per copy. A run (a "
        "path and an image) copies in the three modes one after the other; where one of "
        f"those copies took under {SHORT_COPY_S:g} s it makes {SHORT_COPIES} such rounds, "
        "each in another order, and counts each mode's fastest copy (short copies vary by "
        "half here while other work shares the cores; the modes compared are copied side "
        "by side in time; `copies_s` in each row).",
        "",
        "## Is the chosen mode ever slower than the plain copy?",
        "",
        f"Slower means the chosen copies' mean time above the plain copies' by more than "
        f"{tol:.0%} (the worst pair, chosen / plain of the same repetition, is in the table).",
        "",
        *[
            f"- {c['path']}, {c['image']}: {verdict(c, tol)}; chose {'/'.join(c['chosen_modes'])}"
            for c in summary["cells"]
        ],
        "",
        "Overall: "
        + (
            "not judged"
            if overall is None
            else "the chosen mode was never slower than the plain copy"
            if overall
            else "**the chosen mode was slower than the plain copy somewhere** (above)"
        ),  # fmt: skip
        "",
        "## Per path and image (means)",
        "",
        markdown_table(
            [
                "path",
                "image",
                "link (Mbit/s)",
                "none (s)",
                "zstd (s)",
                "chosen (s)",
                "chosen ran",
                "chosen / none",
                "worst pair",
                "zstd on wire (MiB)",
                "image (MiB)",
            ],
            table,
        ),  # fmt: skip
        "",
        "Why the choice went as it did (one chosen run per cell):",
        "",
        *[f"- {p}, {im}: {why}" for (p, im), why in whys.items()],
        "",
        "## Statistics (over repetitions)",
        "",
        *[
            f"{what}:\n\n{statistics_table(done.runs, metric)}"
            for metric, what in (
                ("none_s", "Plain copy (s)"),
                ("zstd_s", "zstd copy (s)"),
                ("chosen_s", "Chosen mode's copy (s)"),
                ("chosen_over_none", "Chosen / plain"),
            )
        ],  # fmt: skip
        "",
        "Not covered: CRIU's page-server pages and post-copy's lazy pages do not go through "
        "this copy, so they are never compressed.",
        "",
        runs_section(session, files),
    ]
    return "\n".join(lines) + "\n"
