"""add_column: a new column, nullable or NOT NULL with a default (or, under expand, a backfill)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from psycopg import sql

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import (
    Ddl,
    ExpandBuilder,
    ExpressionChecks,
    Operation,
    OpExpression,
    Problem,
    Refused,
    ShapeSink,
)
from migrate_assets.schema.types import parse_type


@dataclass(frozen=True)
class AddColumn(Operation):
    kind = "add_column"
    phase = "add_col"
    expandable = True
    name: str
    type: str
    nullable: bool = False
    default: str | None = None
    backfill: str | None = None
    #: the declared column when planned by the declarative diff (identity, serial, generated, comment)
    column: Column | None = field(default=None, repr=False, compare=False)
    #: declarative diff only: the table is known to be empty, so NOT NULL without a default is fine
    empty_table: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return None if col is None else cls(name=col.name, type=col.type.render_declared(), nullable=col.nullable,
                                            default=col.default)

    @classmethod
    def of(cls, c: Column, *, empty_table: bool) -> AddColumn:
        return cls(c.name, c.type.render(), c.nullable, c.default, column=c, empty_table=empty_table)

    def target(self) -> str:
        return self.name

    def check(self, table: Table) -> list[Problem]:
        if table.column(self.name) is not None:
            return [Problem("name", f"column {self.name!r} already exists in {table.qualified}")]
        return []

    def check_written(self) -> list[Problem]:
        if not self.nullable and self.default is None and self.backfill is None:
            return [Problem("nullable", "a NOT NULL column needs a `default` or a `backfill` expression")]
        return []

    def declared_type(self) -> tuple[str, str] | None:
        return "type", self.type

    def with_declared_type(self, type_sql: str) -> AddColumn:
        return replace(self, type=type_sql)

    def expressions(self, table: Table | None) -> tuple[OpExpression, ...]:
        written = (OpExpression("default", self.default, self.type, "none", declared=True)
                   if self.default is not None else None,
                   OpExpression("backfill", self.backfill, self.type, "old", declared=True)
                   if self.backfill is not None else None)
        return tuple(e for e in written if e is not None)

    def check_expressions(self, table: Table, x: ExpressionChecks) -> None:
        if self.backfill is not None:
            x.expression("fill", "backfill", self.backfill, self.type, "old")
        if self.default is None or not x.expression("default", "default", self.default, self.type, "none"):
            return
        if x.volatile_default("default", self.default, self.type):  # expand fills the column from it
            x.expression("fill", "default", self.backfill or self.default, self.type, "old")

    def _declared(self) -> Column:
        return self.column or Column(self.name, parse_type(self.type), self.nullable, self.default)

    def describe(self, table: Table) -> str:
        c = self._declared()
        typ = c.type.render_declared() if not c.serial else ddl.type_sql(c).as_string(None)
        return f"add column {table.qualified}.{c.name} {typ}"

    def plain(self, table: Table) -> Ddl:
        c = self._declared()
        s, t = table.schema, table.name
        needs_value = not c.nullable and c.default is None and not c.serial and not c.identity and not c.generated
        if self.column is None and self.backfill is not None:  # expand honours it (a batched UPDATE)
            raise Refused("backfill", "evolve adds a column in one ALTER TABLE and cannot backfill it; use "
                                      "`default`, or run `migrate-assets expand` for a backfill")
        if needs_value and not self.empty_table:
            raise Refused("nullable", "a NOT NULL column needs a default (or nullable: true) to be added to a "
                                      "table that has rows")
        inverse = (ddl.drop_column(s, t, c.name),)
        if self.column is None:  # change-file form: the declared type spelling, no comment
            spec = ddl.column_spec(c.name, parse_type(self.type).render_declared(), default=c.default,
                                   not_null=not c.nullable)
            return Ddl((ddl.add_column(s, t, spec),), inverse, True, (), hazards.add_column(c, backfilled=False))
        if not c.nullable and c.default is not None and hazards.is_volatile(c.default):
            # a volatile default would rewrite the table under ACCESS EXCLUSIVE: add, fill, then guard NOT NULL
            fwd = [
                ddl.add_column(s, t, ddl.column_def(replace(c, default=None), with_not_null=False)),
                ddl.set_default(s, t, c.name, c.default),
                ddl.fill_nulls(s, t, c.name, sql.SQL("DEFAULT")),
                *ddl.guarded_set_not_null(s, t, c.name, ddl.not_null_check_name(t, c.name)),
            ]
            hz = hazards.add_column(c, backfilled=True)
        else:
            fwd = [ddl.add_column(s, t, ddl.column_def(c))]
            hz = hazards.add_column(c, backfilled=False)
        if c.comment is not None:
            fwd.append(ddl.comment_column(s, t, c.name, c.comment))
        return Ddl(tuple(fwd), inverse, True, (), hz)

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.drop_column import DropColumn

        return DropColumn(self.name)

    def expand(self, x: ExpandBuilder) -> None:
        s, t = x.table.schema, x.table.name
        fill_expr = self.backfill
        volatile = self.default is not None and x.volatile_default()
        fwd = [ddl.add_column(s, t, ddl.column_spec(self.name, self.type,
                                                    default=None if volatile else self.default))]
        if volatile:
            assert self.default is not None
            fwd.append(ddl.set_default(s, t, self.name, self.default))
            fill_expr = fill_expr or self.default
        check = None
        if not self.nullable:
            check = x.check_name()
            fwd.append(ddl.not_null_check(s, t, self.name, check))
        x.step(f"add column {self.name}", fwd, [ddl.drop_column(s, t, self.name, if_exists=True)])
        if fill_expr is not None:
            x.fill(self.name, self.type, fill_expr)
        x.record(f"add column {self.name} {self.type}", (self.name,), not_null=None if self.nullable else self.name,
                 check=check, check_at_expand=True)

    def effects(self, sink: ShapeSink) -> None:
        sink.added(self.name, self.type, self.nullable, self.default)
