"""add_check: `ADD CONSTRAINT … CHECK (…) NOT VALID` on an existing table (ACCESS EXCLUSIVE for an instant, no
scan: only new writes are checked), then `ValidateConstraint` after commit scans under SHARE UPDATE EXCLUSIVE.
The expression passed the expression gate (`exprcheck`) before it gets here."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Check, Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class AddCheck(Operation):
    kind = "add_check"
    phase = "add_con"
    check: Check = field(repr=False, default=None)  # type: ignore[assignment]
    not_valid: bool = True

    def target(self) -> str:
        return self.check.name

    def describe(self, table: Table) -> str:
        return f"add check {self.check.name} ({self.check.expression}) to {table.qualified}" + (
            " NOT VALID" if self.not_valid else "")

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        hz = hazards.ALTER_METADATA if self.not_valid else hazards.ADD_CONSTRAINT
        return Ddl((ddl.add_check(s, t, self.check, not_valid=self.not_valid),),
                   (ddl.drop_constraint(s, t, self.check.name),), True, (), hz)

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.drop_constraint import DropConstraint

        return DropConstraint(self.check.name, "check", restore=self.plain(table).forward)
