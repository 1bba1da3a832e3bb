"""rename_column: same values under a new name; readers of the old name break (Avro keeps it as an alias)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import (
    Ddl,
    ExpandBuilder,
    ExpressionChecks,
    Operation,
    Problem,
    ShapeSink,
    expand_problems,
    live_column,
)


@dataclass(frozen=True)
class RenameColumn(Operation):
    kind = "rename_column"
    phase = "rename"
    expandable = True
    from_: str
    to: str

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        table = live() if col is not None else None
        old = next((o for o in col.renamed_from if table.column(o) is not None), None) if col and table else None
        return cls(from_=old, to=name) if old else None

    def columns(self) -> tuple[str, ...]:
        return (self.from_,)

    def check(self, table: Table) -> list[Problem]:
        if table.column(self.from_) is None:
            return [Problem("from", f"column {self.from_!r} does not exist in {table.qualified}")]
        if table.column(self.to) is not None:
            return [Problem("to", f"column {self.to!r} already exists in {table.qualified}")]
        return []

    def check_written(self) -> list[Problem]:
        return [Problem("to", "`to` equals `from`")] if self.from_ == self.to else []

    def check_expand(self, table: Table, helper_column: Callable[[str], str]) -> list[Problem]:
        return expand_problems(table, "from", self.from_, copies=True)

    def check_expressions(self, table: Table, x: ExpressionChecks) -> None:
        x.reads("up", (self.from_,))
        x.reads("down", (self.to,))

    def describe(self, table: Table) -> str:
        return f"rename column {table.qualified}.{self.from_} to {self.to}"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        return Ddl((ddl.rename_column(s, t, self.from_, self.to),), (ddl.rename_column(s, t, self.to, self.from_),),
                   True, (f"rename_column {self.from_} → {self.to} breaks readers of the old name",),
                   hazards.RENAME_COLUMN)

    def inverse(self, table: Table) -> Operation | None:
        return RenameColumn(self.to, self.from_)

    def expand(self, x: ExpandBuilder) -> None:
        s, t = x.table.schema, x.table.name
        col = live_column(x.table, self.from_)
        typ = col.type.render()
        x.pair(col.name, self.to, typ, typ, ddl.ident(col.name).as_string(None), ddl.ident(self.to).as_string(None))
        check = None if col.nullable else x.check_name()
        contract = [ddl.drop_column(s, t, col.name)]
        if col.default is not None:  # the live default, in Postgres' own spelling
            contract.append(ddl.set_default(s, t, self.to, sql.SQL(col.default)))  # noqa: S608
        summary = f"rename column {col.name} to {self.to}"
        # its indexes and constraints are rebuilt on the new column (expand/indexes.py), not warned about
        x.contract(summary, contract)
        x.record(summary, (self.to,), not_null=self.to if check else None, check=check)

    def effects(self, sink: ShapeSink) -> None:
        sink.renamed(self.from_, self.to)
