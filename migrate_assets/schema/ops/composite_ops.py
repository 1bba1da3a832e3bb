"""Composite type operations (`schema.composites` plans them): ACCESS EXCLUSIVE on the type only, no table locked
or rewritten (Postgres 15, tests/schema/test_composites.py)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import hazards
from migrate_assets.schema.ddl import q
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation
from migrate_assets.schema.plan import Hazard

Attr = tuple[str, str, "str | None"]


def _typ(table: Table) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


def _attr(a: Attr) -> sql.Composable:
    from migrate_assets.schema.composites import attribute_sql

    return attribute_sql(a[0], a[1], a[2])


def _words(a: Attr) -> str:
    return f"{a[0]} {a[1]}" + (f" collate {a[2]}" if a[2] else "")


@dataclass(frozen=True)
class CreateComposite(Operation):
    """`CREATE TYPE … AS (…)`; the undo drops it (nothing used it before)."""

    kind = "create_composite"
    attributes: tuple[Attr, ...] = ()

    def describe(self, table: Table) -> str:
        return f"create composite type {table.qualified} ({', '.join(_words(a) for a in self.attributes)})"

    def plain(self, table: Table) -> Ddl:
        return Ddl((q("CREATE TYPE {} AS ({})", _typ(table), sql.SQL(", ").join(_attr(a) for a in self.attributes)),),
                   (q("DROP TYPE {}", _typ(table)),), True, (), hazards.NONE)


@dataclass(frozen=True)
class AddAttribute(Operation):
    """`ALTER TYPE … ADD ATTRIBUTE` at the end: stored values read it as NULL; no table rewritten."""

    kind = "add_attribute"
    attribute: Attr = ("", "", None)

    def describe(self, table: Table) -> str:
        return f"composite type {table.qualified}: add attribute {_words(self.attribute)} (no table rewritten)"

    def plain(self, table: Table) -> Ddl:
        return Ddl((q("ALTER TYPE {} ADD ATTRIBUTE {}", _typ(table), _attr(self.attribute)),),
                   (q("ALTER TYPE {} DROP ATTRIBUTE {}", _typ(table), sql.Identifier(self.attribute[0])),), True, (),
                   hazards.NONE)


@dataclass(frozen=True)
class DropAttribute(Operation):
    """`ALTER TYPE … DROP ATTRIBUTE`: the attribute's values in stored rows are gone (the undo adds it back
    empty)."""

    kind = "drop_attribute"
    attribute: Attr = ("", "", None)
    used_by: tuple[str, ...] = ()

    def describe(self, table: Table) -> str:
        held = f"; its values in {', '.join(self.used_by)} are lost" if self.used_by else ""
        return f"composite type {table.qualified}: drop attribute {_words(self.attribute)}{held}"

    def plain(self, table: Table) -> Ddl:
        hz = (Hazard.BREAKS_READERS,) + ((Hazard.DELETES_DATA, Hazard.NOT_REVERSIBLE) if self.used_by else ())
        return Ddl((q("ALTER TYPE {} DROP ATTRIBUTE {}", _typ(table), sql.Identifier(self.attribute[0])),),
                   (q("ALTER TYPE {} ADD ATTRIBUTE {}", _typ(table), _attr(self.attribute)),), not self.used_by,
                   ("readers of the attribute fail",), hz)


@dataclass(frozen=True)
class AlterAttribute(Operation):
    """`ALTER TYPE … ALTER ATTRIBUTE … TYPE … [COLLATE]`, only planned while no table column holds the type."""

    kind = "alter_attribute"
    attribute: Attr = ("", "", None)
    previous: Attr = ("", "", None)

    def describe(self, table: Table) -> str:
        return (f"composite type {table.qualified}: attribute {self.attribute[0]} becomes "
                f"{_words(self.attribute)[len(self.attribute[0]) + 1:]} (was {_words(self.previous)})")

    def plain(self, table: Table) -> Ddl:
        def stmt(a: Attr) -> str:
            from migrate_assets.schema.domains import collation_sql

            coll = sql.SQL(" COLLATE {}").format(collation_sql(a[2])) if a[2] else sql.SQL("")
            return q("ALTER TYPE {} ALTER ATTRIBUTE {} TYPE {}{}", _typ(table), sql.Identifier(a[0]), sql.SQL(a[1]),
                     coll)

        return Ddl((stmt(self.attribute),), (stmt(self.previous),), True, (), hazards.NONE)
