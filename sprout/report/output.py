"""The report as a table for a terminal, as CSV and as JSON: the same figures in each (the
table rounds them for reading; CSV and JSON keep them whole)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import fields

from sprout.report.figures import MIN_USERS, Figure

FIELDS = tuple(field.name for field in fields(Figure))
COLUMNS = ("outcome", "arm", "users", "value [95% interval]", "vs control [95% interval]", "p")


def to_json(figures: Sequence[Figure]) -> str:
    return json.dumps([figure.as_dict() for figure in figures], ensure_ascii=False, indent=2)


def to_csv(figures: Sequence[Figure]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(figure.as_dict() for figure in figures)
    return out.getvalue()


def number(value: float | None, unit: str) -> str:
    """A figure as a person reads it: shares and rates in percent, seconds with an "s"."""
    if value is None:
        return "—"
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.2f}"


def interval(value: float | None, low: float | None, high: float | None, unit: str) -> str:
    shown = number(value, unit)
    if low is None or high is None:
        return shown
    return f"{shown} [{number(low, unit)}, {number(high, unit)}]"


def difference(figure: Figure) -> str:
    if figure.control:
        return "(control)"
    # A difference of shares is in percentage points, not percent.
    shown = interval(figure.difference, figure.difference_low, figure.difference_high, figure.unit)
    return shown.replace("%", " pt") if figure.unit == "%" else shown


def _p(p_value: float) -> str:
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def table_rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for figure in figures:
        value = interval(figure.value, figure.low, figure.high, figure.unit)
        if figure.p90 is not None:
            value += f" (p90 {number(figure.p90, figure.unit)})"
        p_value = "" if figure.p_value is None else _p(figure.p_value)
        users = str(figure.users) + (" !" if figure.warning else "")
        rows.append((figure.label, figure.arm, users, value, difference(figure), p_value))
    return rows


def to_table(figures: Sequence[Figure]) -> str:
    """A block per experiment and channel; "!" marks figures with too few users."""
    blocks = []
    for (experiment, channel), group in _groups(figures):
        rows = [COLUMNS, *table_rows(group)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        lines = [f"Experiment {experiment} — channel: {channel}"]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                  for row in rows]  # fmt: skip
        if any(figure.warning for figure in group):
            lines.append(
                f"! fewer than {MIN_USERS} users in the arm or the control: too few to say anything"
            )
        blocks.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(blocks) + "\n"


def _groups(figures: Sequence[Figure]) -> list[tuple[tuple[str, str], list[Figure]]]:
    groups: dict[tuple[str, str], list[Figure]] = {}
    for figure in figures:
        groups.setdefault((figure.experiment, figure.channel), []).append(figure)
    return list(groups.items())
