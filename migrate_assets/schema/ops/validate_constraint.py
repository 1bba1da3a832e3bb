"""validate_constraint: `VALIDATE CONSTRAINT` of a NOT VALID FOREIGN KEY or CHECK, after the main transaction
commits: reads every row under SHARE UPDATE EXCLUSIVE (writers go on). Nothing to undo: the constraint stays."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class ValidateConstraint(Operation):
    kind = "validate_constraint"
    transactional = False
    name: str = ""

    def target(self) -> str:
        return self.name

    def describe(self, table: Table) -> str:
        return f"validate constraint {self.name} of {table.qualified} (existing rows, writers not blocked)"

    def plain(self, table: Table) -> Ddl:
        return Ddl((ddl.validate_constraint(table.schema, table.name, self.name),), (), True, (), hazards.VALIDATE)
