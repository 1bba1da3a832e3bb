"""drop_column: removes a column and its data; no inverse brings the values back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import (
    ColumnOperation,
    Ddl,
    ExpandBuilder,
    Operation,
    Problem,
    ShapeSink,
    expand_problems,
    live_column,
)


def writers_may_omit(c: Column) -> bool:
    """Whether Postgres fills the column when an insert leaves it out (or it takes NULL)."""
    return c.nullable or c.default is not None or c.serial or c.identity is not None or c.generated is not None


@dataclass(frozen=True)
class DropColumn(ColumnOperation):
    kind = "drop_column"
    phase = "drop_col"
    expandable = True

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return cls(name)

    def check_expand(self, table: Table, helper_column: Callable[[str], str]) -> list[Problem]:
        return expand_problems(table, "column", self.column, copies=False)

    def describe(self, table: Table) -> str:
        return f"drop column {table.qualified}.{self.column}"

    def plain(self, table: Table) -> Ddl:
        return Ddl((ddl.drop_column(table.schema, table.name, self.column),), None, False,
                   (f"drop_column {self.column} deletes data",), hazards.DROP_COLUMN)

    def expand(self, x: ExpandBuilder) -> None:
        s, t = x.table.schema, x.table.name
        col = live_column(x.table, self.column)
        if not writers_may_omit(col):
            x.step(f"let new-shape writers omit {col.name}", [ddl.drop_not_null(s, t, col.name)],
                   [ddl.set_not_null(s, t, col.name)])
        x.warn_indexes(col.name)
        x.contract(f"drop column {col.name}", [ddl.drop_column(s, t, col.name)])
        x.record(f"drop column {col.name}")

    def effects(self, sink: ShapeSink) -> None:
        sink.dropped(self.column)
