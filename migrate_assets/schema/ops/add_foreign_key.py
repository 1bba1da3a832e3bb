"""add_foreign_key: on an existing table `ADD CONSTRAINT … FOREIGN KEY … NOT VALID` (new writes are checked at once;
SHARE ROW EXCLUSIVE on both tables for an instant, no scan), and `ValidateConstraint` after commit reads the
rows under SHARE UPDATE EXCLUSIVE while writers go on. On a new table the key is added valid (nothing to scan).
It runs after the main transaction (`after_commit`) when the unique key it references is itself built there."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_assets.schema import ddl
from migrate_assets.schema.model import ForeignKey, Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class AddForeignKey(Operation):
    kind = "add_foreign_key"
    phase = "add_con"
    fk: ForeignKey = field(repr=False, default=None)  # type: ignore[assignment]
    not_valid: bool = True
    #: the referenced key is built after commit: so is this
    late: bool = False

    def target(self) -> str:
        return self.fk.name

    def after_commit(self) -> bool:
        return self.late

    def describe(self, table: Table) -> str:
        f = self.fk
        return (f"add foreign key {f.name} ({', '.join(f.columns)}) to {table.qualified} referencing "
                f"{f.ref_schema}.{f.ref_table} ({', '.join(f.ref_columns)})" + (" NOT VALID" if self.not_valid else ""))

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        return Ddl((ddl.add_foreign_key(s, t, self.fk, not_valid=self.not_valid),),
                   (ddl.drop_constraint(s, t, self.fk.name),), True, (), ())

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.drop_constraint import DropConstraint

        return DropConstraint(self.fk.name, "foreign_key", restore=self.plain(table).forward)
