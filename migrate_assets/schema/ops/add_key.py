"""add_key: a PRIMARY KEY or UNIQUE constraint on an existing table, online: `CREATE UNIQUE INDEX CONCURRENTLY`
(SHARE UPDATE EXCLUSIVE, writers go on; long-running), then `ADD CONSTRAINT … USING INDEX` (an instant: the index
is already valid). Both run after the main transaction commits. The inverse drops the constraint (and with it the
index), or the index alone when the build failed half way."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Constraint, Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class AddKey(Operation):
    kind = "add_key"
    transactional = False
    con: Constraint = field(repr=False, default=None)  # type: ignore[assignment]
    primary: bool = False

    @property
    def change_kind_for(self) -> str:
        return "add_primary_key" if self.primary else "add_unique"

    def target(self) -> str:
        return self.con.name or ""

    def describe(self, table: Table) -> str:
        what = "primary key" if self.primary else "unique"
        return f"add {what} {self.con.name} ({', '.join(self.con.columns)}) to {table.qualified} (index built concurrently)"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        kind = "PRIMARY KEY" if self.primary else "UNIQUE"
        fwd = (ddl.create_key_index(s, t, self.con), ddl.add_key_using_index(s, t, kind, self.con))
        inv = (ddl.drop_constraint(s, t, self.con.name or ""), ddl.drop_index(s, self.con.name or "", concurrently=True))
        return Ddl(fwd, inv, True, (), hazards.ADD_KEY_ONLINE)

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.drop_constraint import DropConstraint

        kind = "PRIMARY KEY" if self.primary else "UNIQUE"
        return DropConstraint(self.con.name or "", kind.lower(), restore=(ddl.add_constraint(table.schema, table.name, kind, self.con),))
