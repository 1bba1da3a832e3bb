"""drop_not_null: the column accepts NULLs; the inverse is a bare SET NOT NULL (it scans the table)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl, Operation, ShapeSink


@dataclass(frozen=True)
class DropNotNull(ColumnOperation):
    kind = "drop_not_null"
    phase = "null"

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return cls(name)

    def describe(self, table: Table) -> str:
        return f"drop NOT NULL on {table.qualified}.{self.column}"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        return Ddl((ddl.drop_not_null(s, t, self.column),), (ddl.set_not_null(s, t, self.column),), True, (),
                   hazards.ALTER_METADATA)

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.set_not_null import SetNotNull

        return SetNotNull(self.column)

    def effects(self, sink: ShapeSink) -> None:
        sink.optional(self.column)
