"""Extension operations of the declarative plan: CREATE EXTENSION (with VERSION and SCHEMA), ALTER EXTENSION
… UPDATE TO and … SET SCHEMA. An extension the specs do not declare is never dropped. The anchor `table` is
`Table(schema or "", name)`."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation
from migrate_assets.schema.plan import Hazard


def _r(stmt: sql.Composable) -> str:
    return stmt.as_string(None)


@dataclass(frozen=True)
class CreateExtension(Operation):
    kind = "create_extension"
    name: str = ""
    schema: str | None = None
    version: str | None = None

    def describe(self, table: Table) -> str:
        where = f" in schema {self.schema}" if self.schema else ""
        return f"create extension {self.name}{where}" + (f" version {self.version}" if self.version else "")

    def plain(self, table: Table) -> Ddl:
        stmt = sql.SQL("CREATE EXTENSION IF NOT EXISTS {}{}{}").format(
            sql.Identifier(self.name),
            sql.SQL(" WITH SCHEMA {}").format(sql.Identifier(self.schema)) if self.schema else sql.SQL(""),
            sql.SQL(" VERSION {}").format(sql.Literal(self.version)) if self.version else sql.SQL(""))
        return Ddl((_r(stmt),), (_r(sql.SQL("DROP EXTENSION {}").format(sql.Identifier(self.name))),), True)


@dataclass(frozen=True)
class UpdateExtension(Operation):
    """ALTER EXTENSION … UPDATE TO: runs the extension's own update scripts (they may lock what the extension
    owns); the inverse exists only when the extension ships a path back."""

    kind = "update_extension"
    name: str = ""
    version: str = ""
    old_version: str = ""
    reversible: bool = False

    def describe(self, table: Table) -> str:
        return f"update extension {self.name} from version {self.old_version} to {self.version}"

    def plain(self, table: Table) -> Ddl:
        def to(v: str) -> str:
            return _r(sql.SQL("ALTER EXTENSION {} UPDATE TO {}").format(sql.Identifier(self.name), sql.Literal(v)))

        return Ddl((to(self.version),), (to(self.old_version),) if self.reversible else None, self.reversible, (),
                   () if self.reversible else (Hazard.NOT_REVERSIBLE,))


@dataclass(frozen=True)
class MoveExtension(Operation):
    """ALTER EXTENSION … SET SCHEMA (relocatable extensions only: the plan refuses the others)."""

    kind = "move_extension"
    name: str = ""
    schema: str = ""
    old_schema: str = ""

    def describe(self, table: Table) -> str:
        return f"move extension {self.name} from schema {self.old_schema} to {self.schema}"

    def plain(self, table: Table) -> Ddl:
        def to(s: str) -> str:
            return _r(sql.SQL("ALTER EXTENSION {} SET SCHEMA {}").format(sql.Identifier(self.name), sql.Identifier(s)))

        return Ddl((to(self.schema),), (to(self.old_schema),), True, (), (Hazard.BREAKS_READERS,))
