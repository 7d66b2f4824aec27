"""Summaries -> the cells of a markdown table (figures, ratios, failures) -> printed tables."""

from __future__ import annotations

import math

from .log import log
from .race import Contender, Summary

__all__ = ["failed_row", "fmt", "print_table", "race_cells", "ratio"]


def fmt(value: float | None, spec: str = ".2f") -> str:
    """``value`` formatted, or ``-`` when there is none."""
    if value is None or math.isnan(value):
        return "-"
    return format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``1.23x``, or ``-`` when either is missing."""
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def print_table(title: str, headers: list[str], rows: list[list[str]], notes: list[str]) -> str:
    """Log a markdown table with its notes below it, and return its text."""
    # Markdown: a pipe inside a cell (shell pipelines) must not end the cell.
    headers = [h.replace("|", "\\|") for h in headers]
    rows = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(parts) + " |"

    out = [f"\n## {title}\n", line(headers)]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [line(row) for row in rows]
    out += ["", *(f"  {note}" for note in notes)]
    text = "\n".join(out)
    log(text)
    return text


def race_cells(
    c: Contender, s: Summary, rate: float, base_rate: float | None, ours: str
) -> list[str]:
    """The columns the backup and restore tables share: name, time, speed, ratios, CPU."""
    return [
        c.name,
        fmt(s.wall),
        f"{s.wall_min:.1f}-{s.wall_max:.1f}",
        fmt(rate, ".1f"),
        ratio(rate, base_rate),
        ours,
        fmt(s.cpu),
        fmt(s.server_cpu),
    ]


def failed_row(c: Contender, width: int) -> list[str]:
    """The row of a contender without a successful run: ``not run``, or why it failed."""
    if not c.runs:
        return [c.name, "not run", *["-"] * (width - 2)]
    error = next((r.error for r in c.runs if not r.ok), "?")
    first = error.strip().splitlines()[-1] if error.strip() else error
    return [c.name, "FAILED", first[:60], *["-"] * (width - 3)]
