"""rename_enum_value: `ALTER TYPE … RENAME VALUE 'old' TO 'new'` (PostgreSQL 10+), in the main transaction. Rows
keep their value under the new label; readers comparing with the old label no longer match (breaking). The
inverse renames it back."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class RenameEnumValue(Operation):
    kind = "rename_enum_value"
    old: str = ""
    new: str = ""

    def describe(self, table: Table) -> str:
        return f"rename value {self.old!r} of enum {table.qualified} to {self.new!r}"

    def plain(self, table: Table) -> Ddl:
        s, n = table.schema, table.name
        return Ddl((ddl.rename_enum_value(s, n, self.old, self.new),), (ddl.rename_enum_value(s, n, self.new, self.old),),
                   True, ("readers comparing with the old label",), hazards.RENAME_ENUM_VALUE)
