"""set_not_null: the guarded form everywhere (NOT VALID check, VALIDATE, SET NOT NULL, drop the check), so no
scan runs under ACCESS EXCLUSIVE. With a `backfill`, NULLs are replaced first: the old NULLs are gone, so the
operation is not lossless even though DROP NOT NULL puts the shape back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import (
    ColumnOperation,
    Ddl,
    ExpandBuilder,
    ExpressionChecks,
    Operation,
    OpExpression,
    ShapeSink,
    live_column,
)


@dataclass(frozen=True)
class SetNotNull(ColumnOperation):
    kind = "set_not_null"
    phase = "null"
    expandable = True
    backfill: str | None = None

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return cls(name)

    def expressions(self, table: Table | None) -> tuple[OpExpression, ...]:
        if self.backfill is None:
            return ()
        live = table.column(self.column) if table is not None else None
        return (OpExpression("backfill", self.backfill, live.type.render() if live else None, "old"),)

    def check_expressions(self, table: Table, x: ExpressionChecks) -> None:
        if self.backfill is not None:
            x.expression("fill", "backfill", self.backfill, live_column(table, self.column).type.render(), "old")

    def describe(self, table: Table) -> str:
        return f"set NOT NULL on {table.qualified}.{self.column}"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        fwd = [ddl.fill_nulls(s, t, self.column, ddl.expr(self.backfill))] if self.backfill else []
        fwd += ddl.guarded_set_not_null(s, t, self.column, ddl.not_null_check_name(t, self.column))
        return Ddl(tuple(fwd), (ddl.drop_not_null(s, t, self.column),), not self.backfill, (), hazards.SET_NOT_NULL)

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.drop_not_null import DropNotNull

        return DropNotNull(self.column)

    def expand(self, x: ExpandBuilder) -> None:
        s, t = x.table.schema, x.table.name
        col = live_column(x.table, self.column)
        if not col.nullable:
            x.warn(f"{col.name} is already NOT NULL; set_not_null does nothing")
            x.record(f"set {col.name} NOT NULL (already)")
            return
        check = x.check_name()
        x.step(f"guard {col.name} against NULLs", [ddl.not_null_check(s, t, col.name, check)],
               [ddl.drop_constraint(s, t, check)])
        if self.backfill is not None:
            x.fill(col.name, col.type.render(), self.backfill)
        x.record(f"set {col.name} NOT NULL", not_null=col.name, check=check, check_at_expand=True)

    def effects(self, sink: ShapeSink) -> None:
        sink.required(self.column)
