"""What every benchmark writes: `summary.json` (header + rows), `report.md` and plots.

started = utc_now()
...
write_summary(out, command="mecmig bench x", started_at=started, quick=False, rows=rows)
fig, axes = new_figure(ncols=2)
...
save_figure(fig, out / "x.png")
write_report(out, "# x\\n" + markdown_table(["a", "b"], [[1, 2]]))
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ground.runner import CommandError, Runner, SubprocessRunner

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second (e.g. 2025-01-31T12:00:00+00:00)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def host_facts(runner: Runner | None = None) -> dict[str, Any]:
    """The machine a benchmark ran on: kernel, CPU count, Open vSwitch and Python versions."""
    runner = runner or SubprocessRunner()
    try:
        out = runner.run(["ovs-vswitchd", "--version"], timeout=10).stdout
        match = re.search(r"Open vSwitch\)\s*(\S+)", out)
        ovs = match.group(1) if match else out.strip().splitlines()[0]
    except (CommandError, IndexError):
        ovs = None
    return {
        "kernel": platform.release(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ovs_version": ovs,
        "python": platform.python_version(),
    }


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else None


def command_line(words: Sequence[str]) -> str:
    """`words` as one shell-quoted command line (for the report's "run it again" line)."""
    return shlex.join(words)


def write_summary(
    out_dir: Path,
    *,
    command: str,
    started_at: str,
    quick: bool,
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `out_dir/summary.json`: {command, started_at, host, quick, rows, summary, ...}."""
    doc: dict[str, Any] = {
        "command": command,
        "started_at": started_at,
        "host": host_facts(),
        "quick": quick,
        **(extra or {}),
        "rows": list(rows),
    }
    if summary is not None:
        doc["summary"] = summary
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY_FILE
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (cells converted with str(); None becomes '-')."""

    def cell(value: object) -> str:
        return "-" if value is None else str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, markdown: str) -> Path:
    """Write `out_dir/report.md`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    return path


def new_figure(
    ncols: int = 1, *, width: float = 6.5, height: float = 4.5
) -> tuple[Figure, list[Any]]:
    """A figure of `ncols` side-by-side axes (Agg backend; safe without a display or pyplot)."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save_figure(fig: Figure, path: Path, dpi: int = 130) -> Path:
    """Save `fig` as PNG to `path` (directories created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def fmt_rate(bps: float | None) -> str:
    """A bit rate for people: '20 Mbit/s', '1.5 Gbit/s', '-' for None."""
    if bps is None:
        return "-"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bps) >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.0f} bit/s"
