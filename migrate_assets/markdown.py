"""Markdown tables for reports: the CLI's `--format markdown` and Dagster metadata render them the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], newline: str = " ") -> str:
    """A pipe table; `|` in cells is escaped and line breaks become `newline` (e.g. `<br>` for the Dagster UI)."""

    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", newline)

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
