"""drop_constraint: a PRIMARY KEY, UNIQUE, FOREIGN KEY, CHECK or EXCLUDE constraint the spec no longer lists. ACCESS
EXCLUSIVE for an instant (a FOREIGN KEY: on the referenced table too); its guarantee goes away, so the hazard is
`removes_constraint` (breaking). The inverse adds it back as it was (`restore`, from the live definition)."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class DropConstraint(Operation):
    kind = "drop_constraint"
    phase = "drop_con"
    name: str = ""
    what: str = "constraint"  #: primary key | unique | foreign_key | check | exclude
    restore: tuple[str, ...] = ()

    def target(self) -> str:
        return self.name

    def describe(self, table: Table) -> str:
        return f"drop {self.what.replace('_', ' ')} {self.name} of {table.qualified}"

    def plain(self, table: Table) -> Ddl:
        return Ddl((ddl.drop_constraint(table.schema, table.name, self.name),), self.restore or None, True,
                   ("its guarantee no longer holds for new writes",), hazards.DROP_CONSTRAINT)
