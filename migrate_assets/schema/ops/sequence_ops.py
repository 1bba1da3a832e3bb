"""Sequence operations (`schema.sequence_objects` plans them): create, alter options, change the owning column.
None of them touches a table's rows; none moves the sequence's current value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from migrate_assets.schema import hazards
from migrate_assets.schema.ddl import q
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation


def _seq(table: Table) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


def _words(options: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{k} {v}" for k, v in options)


@dataclass(frozen=True)
class CreateSequence(Operation):
    """`CREATE SEQUENCE … AS … INCREMENT … MINVALUE … MAXVALUE … START … CACHE … [NO] CYCLE`, before any table that
    uses it (ACCESS EXCLUSIVE on the new sequence only). The undo drops it (nothing used it before)."""

    kind = "create_sequence"
    options: tuple[tuple[str, Any], ...] = ()

    def describe(self, table: Table) -> str:
        return f"create sequence {table.qualified} ({_words(self.options)})"

    def plain(self, table: Table) -> Ddl:
        from migrate_assets.schema.sequence_objects import options_sql

        return Ddl((q("CREATE SEQUENCE {} {}", _seq(table), options_sql(self.options)),),
                   (q("DROP SEQUENCE {}", _seq(table)),), True, (), hazards.NONE)


@dataclass(frozen=True)
class AlterSequence(Operation):
    """`ALTER SEQUENCE … <changed options>`: SHARE ROW EXCLUSIVE on the sequence (a concurrent nextval waits for the
    instant), no table lock, the current value kept. The undo sets the old options back."""

    kind = "alter_sequence"
    options: tuple[tuple[str, Any], ...] = ()
    previous: tuple[tuple[str, Any], ...] = ()

    def describe(self, table: Table) -> str:
        return (f"alter sequence {table.qualified}: {_words(self.options)} (was {_words(self.previous)}; SHARE ROW "
                "EXCLUSIVE on the sequence for an instant, its current value kept)")

    def plain(self, table: Table) -> Ddl:
        from migrate_assets.schema.sequence_objects import options_sql

        return Ddl((q("ALTER SEQUENCE {} {}", _seq(table), options_sql(self.options)),),
                   (q("ALTER SEQUENCE {} {}", _seq(table), options_sql(self.previous)),), True, (), hazards.NONE)


@dataclass(frozen=True)
class SequenceOwnedBy(Operation):
    """`ALTER SEQUENCE … OWNED BY table.column | NONE`, after the table exists (ACCESS SHARE on the table). An owned
    sequence is dropped with its column or table: the plan says so."""

    kind = "sequence_owned_by"
    owner: tuple[str, str, str] | None = None
    previous: tuple[str, str, str] | None = None

    def describe(self, table: Table) -> str:
        to = ".".join(self.owner) if self.owner else "nothing"
        tail = " (dropped with that column from now on)" if self.owner else ""
        return f"sequence {table.qualified} owned by {to}{tail}"

    def plain(self, table: Table) -> Ddl:
        from migrate_assets.schema.sequence_objects import owner_sql

        return Ddl((q("ALTER SEQUENCE {} OWNED BY {}", _seq(table), owner_sql(self.owner)),),
                   (q("ALTER SEQUENCE {} OWNED BY {}", _seq(table), owner_sql(self.previous)),), True, (), hazards.NONE)
