"""add_enum_value: a new label of an enum type (`ALTER TYPE … ADD VALUE`); Postgres has no way to remove one.

The operation changes a type, not the table's columns: in a change file it stands alone (the table named is the
pipeline table whose columns use the enum, whose registry subject and connector carry the new label). Its DDL is
`ADD VALUE IF NOT EXISTS`, so running it again after a failure later in the pipeline only finishes the other
layers. It takes a lock on the type, not on the table, and cannot be undone: `NOT_REVERSIBLE` is its hazard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import ddl
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation, Problem
from migrate_assets.schema.plan import Hazard
from migrate_assets.schema.spec import ident_problem
from migrate_assets.schema.types import parse_type

#: the longest label Postgres stores (NAMEDATALEN - 1 bytes)
MAX_LABEL_BYTES = 63


def qualified_type(name: str, schema: str) -> str:
    """The enum's name as PgType spells it, a bare name taken to be in `schema` (raises UnknownTypeError)."""
    return parse_type(name if "." in name else f"{schema}.{name}").name


@dataclass(frozen=True)
class AddEnumValue(Operation):
    kind = "add_enum_value"
    phase = "misc"
    changes_type = True

    type: str
    value: str
    before: str | None = None
    after: str | None = None

    def target(self) -> str:
        return self.type

    def position(self) -> str:
        return f" before {self.before!r}" if self.before else f" after {self.after!r}" if self.after else ""

    def describe(self, table: Table) -> str:
        return f"add value {self.value!r} to enum {qualified_type(self.type, table.schema)}{self.position()}"

    def statement(self, schema: str) -> str:
        schema_name, name = _split(qualified_type(self.type, schema))
        where: sql.Composable = sql.SQL("")
        if self.before is not None:
            where = sql.SQL(" BEFORE {}").format(sql.Literal(self.before))
        elif self.after is not None:
            where = sql.SQL(" AFTER {}").format(sql.Literal(self.after))
        return ddl.render(sql.SQL("ALTER TYPE {} ADD VALUE IF NOT EXISTS {}{}").format(
            sql.Identifier(schema_name, name), sql.Literal(self.value), where))

    def plain(self, table: Table) -> Ddl:
        return Ddl((self.statement(table.schema),), None, False, (), (Hazard.NOT_REVERSIBLE,))

    def check_written(self) -> list[Problem]:
        """`type` is `name` or `schema.name`, labels are 1-63 bytes, at most one of before/after."""
        out = []
        if len(self.type.split(".")) > 2 or any(ident_problem(p) for p in self.type.split(".")):
            out.append(Problem("type", "expected an enum type such as public.mood (`name` or `schema.name`, plain "
                                       "identifiers)"))
        for key in ("value", "before", "after"):
            label = getattr(self, key)
            if label is not None and not 0 < len(label.encode()) <= MAX_LABEL_BYTES:
                out.append(Problem(key, f"an enum label is 1 to {MAX_LABEL_BYTES} bytes long"))
        if self.before is not None and self.after is not None:
            out.append(Problem("after", "give `before` or `after`, not both"))
        if self.value in (self.before, self.after):
            out.append(Problem("value", "the new label cannot be placed next to itself"))
        return out

    def check_expand(self, table: Table, helper_column: Callable[[str], str]) -> list[Problem]:
        return [Problem("type", "add_enum_value changes a type, not a column: expand–contract has nothing to "
                                "copy; run it with `migrate-assets evolve`")]



def _split(qualified: str) -> tuple[str, str]:
    """(schema, name) of a PgType-spelt `schema.type`."""
    from migrate_assets.schema.introspect import split_qualified

    parts = split_qualified(qualified)
    if len(parts) != 2:
        raise ValueError(f"expected schema.type, got {qualified!r}")
    return parts[0], parts[1]
