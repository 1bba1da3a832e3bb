"""add_exclude: `ADD CONSTRAINT … EXCLUDE USING …` on an existing table. Postgres builds the constraint's index and
checks every row while it holds ACCESS EXCLUSIVE (readers and writers wait for the whole build); an exclusion
constraint has no NOT VALID and cannot be attached `USING INDEX`, so there is no online path: the hazard says so.
Element expressions and the predicate passed the expression gate (`exprcheck`) before they get here."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Exclude, Table
from migrate_assets.schema.ops.base import Ddl, Operation


@dataclass(frozen=True)
class AddExclude(Operation):
    kind = "add_exclude"
    phase = "add_con"
    exclude: Exclude = field(repr=False, default=None)  # type: ignore[assignment]

    def target(self) -> str:
        return self.exclude.name

    def describe(self, table: Table) -> str:
        els = ", ".join(f"{e.column or e.expression} WITH {e.operator}" for e in self.exclude.elements)
        return (f"add exclusion constraint {self.exclude.name} USING {self.exclude.using} ({els}) to {table.qualified}"
                " (builds its index under ACCESS EXCLUSIVE: no NOT VALID exists for EXCLUDE)")

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        return Ddl((ddl.add_exclude(s, t, self.exclude),), (ddl.drop_constraint(s, t, self.exclude.name),), True, (),
                   hazards.ADD_EXCLUDE)

    def inverse(self, table: Table) -> Operation | None:
        from migrate_assets.schema.ops.drop_constraint import DropConstraint

        return DropConstraint(self.exclude.name, "exclude", restore=self.plain(table).forward)
