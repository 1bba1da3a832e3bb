"""change_type: a column's new type, with `up`/`down` expressions for expand–contract.

Plain DDL lets Postgres pick its own cast for a widening (its no-rewrite proof then applies) and casts
explicitly otherwise; a narrowing loses values, so it is breaking and not lossless even when the wider type
can be put back. A live default that may not cast is dropped first and set again after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from psycopg import sql

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import (
    ColumnOperation,
    Ddl,
    ExpandBuilder,
    ExpressionChecks,
    Operation,
    OpExpression,
    Problem,
    ShapeSink,
    expand_problems,
    live_column,
)
from migrate_assets.schema.sequences import sequence_retype
from migrate_assets.schema.types import PgType, parse_type, type_change


@dataclass(frozen=True)
class ChangeType(ColumnOperation):
    kind = "change_type"
    change_kind = "alter_type"
    phase = "type"
    expandable = True
    to_type: str
    up: str | None = None
    down: str | None = None
    #: declarative diff only: the column stays serial (serial -> bigserial), so its sequence follows the type
    keeps_serial: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return None if col is None else cls(name, col.type.render())

    def check_expand(self, table: Table, helper_column: Callable[[str], str]) -> list[Problem]:
        return expand_problems(table, "column", self.column, copies=True, helper=helper_column(self.column))

    def declared_type(self) -> tuple[str, str] | None:
        return "to_type", self.to_type

    def with_declared_type(self, type_sql: str) -> ChangeType:
        return replace(self, to_type=type_sql)

    def expressions(self, table: Table | None) -> tuple[OpExpression, ...]:
        live = table.column(self.column) if table is not None else None
        written = (OpExpression("up", self.up, self.to_type, "old", declared=True) if self.up is not None else None,
                   OpExpression("down", self.down, live.type.render() if live else None, "new")
                   if self.down is not None else None)
        return tuple(e for e in written if e is not None)

    def check_expressions(self, table: Table, x: ExpressionChecks) -> None:
        live = live_column(table, self.column)
        ident = ddl.ident(self.column).as_string(None)  # no up / down: a plain cast each way
        x.expression("up", "up" if self.up is not None else "to_type", self.up if self.up is not None else ident,
                     self.to_type, "old")
        x.expression("down", "down" if self.down else "to_type", self.down if self.down is not None else ident,
                     live.type.render(), "new")
        if live.default is not None:  # contract sets it again, cast to the new type
            x.expression("default", "to_type", live.default, self.to_type, "none")

    def describe(self, table: Table) -> str:
        old = live_column(table, self.column).type.render()
        return f"change type of {table.qualified}.{self.column} from {old} to {parse_type(self.to_type).render()}"

    def resets_default(self, live: Column) -> bool:
        """The old default may not cast to the new type: drop it first (the caller sets the wanted one)."""
        return live.default is not None and not live.serial and not type_change(live.type, parse_type(self.to_type)).widening

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        live = live_column(table, self.column)
        old, new = live.type, parse_type(self.to_type)
        tc = type_change(old, new)

        def using(expression: str | None, frm: PgType, to: PgType) -> sql.Composable | None:
            if expression is not None:
                return ddl.expr(expression)
            if type_change(frm, to).widening:
                return None
            if frm.is_user_defined and to.is_user_defined:  # one enum (or domain) to another: through text
                return ddl.cast(self.column, to.render(), "text[]" if frm.is_array else "text")
            return ddl.cast(self.column, to.render())

        fwd = [ddl.alter_type(s, t, self.column, new.render(), using(self.up, old, new))]
        inv = [ddl.alter_type(s, t, self.column, old.render(), using(self.down, new, old))]
        if live.serial and self.keeps_serial and live.sequence:  # serial -> bigserial: the sequence follows
            fwd += sequence_retype(live.sequence, new)
            inv += sequence_retype(live.sequence, old)
        if self.resets_default(live):
            assert live.default is not None
            fwd.insert(0, ddl.drop_default(s, t, self.column))
            inv.append(ddl.set_default(s, t, self.column, live.default))
        breaking = () if tc.widening else (f"change_type {self.column}: {old.render()} → {new.render()} is not a widening",)
        return Ddl(tuple(fwd), tuple(inv), tc.widening, breaking, hazards.alter_type(old, new))

    def inverse(self, table: Table) -> Operation | None:
        old = live_column(table, self.column).type.render()
        return ChangeType(self.column, old, up=self.down, down=self.up)

    def expand(self, x: ExpandBuilder) -> None:
        s, t = x.table.schema, x.table.name
        col = live_column(x.table, self.column)
        old_type = col.type.render()
        new = x.helper_column(col.name)
        up = self.up or sql.SQL("CAST({} AS {})").format(ddl.ident(col.name), sql.SQL(self.to_type)).as_string(None)
        down = self.down or sql.SQL("CAST({} AS {})").format(ddl.ident(col.name), sql.SQL(old_type)).as_string(None)
        x.pair(col.name, new, old_type, self.to_type, up, down)
        check = None if col.nullable else x.check_name()
        contract = [ddl.drop_column(s, t, col.name), ddl.rename_column(s, t, new, col.name)]
        if col.default is not None:  # the live default (Postgres' own spelling), cast to the new type
            cast_default = sql.SQL("CAST(({}) AS {})").format(sql.SQL(col.default), sql.SQL(self.to_type))
            contract.append(ddl.set_default(s, t, col.name, cast_default))
        summary = f"change type of {col.name} from {old_type} to {self.to_type}"
        # its indexes and constraints are rebuilt on the new column (expand/indexes.py), not warned about
        x.contract(summary, contract)
        x.record(summary, (new,), not_null=new if check else None, check=check, final=col.name)

    def effects(self, sink: ShapeSink) -> None:
        sink.retyped(self.column, self.to_type)
