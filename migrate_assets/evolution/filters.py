"""Debezium's table and column filters, read the way the connector reads them.

`table.include.list`, `column.include.list` and their exclude twins are comma-separated regular expressions
that must match the whole `schema.table` (or `schema.table.column`). The planner, pre-flight and verify all
ask the same questions of them, so the reading is written once here.
"""

from __future__ import annotations

import re


def patterns(value: str | None) -> list[str]:
    """The non-empty entries of a comma-separated filter list."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def in_list(value: str | None, item: str) -> bool:
    """Whether `item` is matched (in full) by an entry of the list; an absent list matches nothing."""
    return any(re.fullmatch(p, item) for p in patterns(value))


def listed_tables(value: str | None) -> list[str]:
    """The entries that name one table literally (`schema.table`, dots escaped or not), unescaped."""
    names = (p.replace("\\.", ".") for p in patterns(value))
    return [n for n in names if re.fullmatch(r"[\w$]+\.[\w$]+", n)]


def captures_table(cfg: dict[str, str], table: str) -> bool:
    """Whether the connector captures `table` under its table filters (no list: every table)."""
    include, exclude = cfg.get("table.include.list"), cfg.get("table.exclude.list")
    if include is not None:
        return in_list(include, table)
    return exclude is None or not in_list(exclude, table)


def captures_column(cfg: dict[str, str], table: str, column: str) -> bool:
    """Whether the connector's column filters let `table.column` through (no list: every column)."""
    full = f"{table}.{column}"
    include, exclude = cfg.get("column.include.list"), cfg.get("column.exclude.list")
    if include is not None:
        return in_list(include, full)
    return exclude is None or not in_list(exclude, full)
