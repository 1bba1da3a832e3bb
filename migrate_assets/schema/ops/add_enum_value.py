"""add_enum_value: `ALTER TYPE … ADD VALUE IF NOT EXISTS 'v' BEFORE|AFTER 'w'`, run after the main transaction
commits, on its own (a value added inside a transaction cannot be used before it commits, and Postgres before 12
refuses it there at all). No table is locked or rewritten. Postgres cannot drop an enum value, so there is no
inverse."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class AddEnumValue(Operation):
    kind = "add_enum_value"
    transactional = False
    value: str = ""
    before: str | None = None
    after: str | None = None

    def describe(self, table: Table) -> str:
        where = f" before {self.before!r}" if self.before else f" after {self.after!r}" if self.after else ""
        return f"add value {self.value!r} to enum {table.qualified}{where}"

    def plain(self, table: Table) -> Ddl:
        return Ddl((ddl.add_enum_value(table.schema, table.name, self.value, before=self.before, after=self.after),),
                   None, False, (), hazards.ADD_ENUM_VALUE)
