"""create_enum: `CREATE TYPE … AS ENUM (…)` for an enum a spec declares and the database lacks; in the main
transaction, before any table that uses it. The inverse drops it again (nothing can use it yet)."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class CreateEnum(Operation):
    kind = "create_enum"
    values: tuple[str, ...] = ()

    def describe(self, table: Table) -> str:
        return f"create enum {table.qualified} ({', '.join(self.values)})"

    def plain(self, table: Table) -> Ddl:
        return Ddl((ddl.create_enum(table.schema, table.name, self.values),),
                   (ddl.drop_type(table.schema, table.name),), True, (), hazards.NONE)
