"""set_collation: a column's collation, as the spec states it (`collation:`). `ALTER COLUMN … TYPE <same type>
COLLATE …`: ACCESS EXCLUSIVE; the stored values do not change (no rewrite of the table) but every index on the
column is rebuilt under the lock (long-running) and the sort order readers see changes (breaking). The inverse
sets the old collation back."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl, live_column


@dataclass(frozen=True)
class SetCollation(ColumnOperation):
    kind = "set_collation"
    collation: str = "default"
    previous: str = "default"

    def describe(self, table: Table) -> str:
        return f"set collation of {table.qualified}.{self.column} to {self.collation}"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        typ = live_column(table, self.column).type.render()
        return Ddl((ddl.set_collation(s, t, self.column, typ, self.collation),),
                   (ddl.set_collation(s, t, self.column, typ, self.previous),), True,
                   ("sort order and comparisons of the column change",), hazards.SET_COLLATION)
