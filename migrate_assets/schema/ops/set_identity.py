"""set_identity: change a column's identity (always / by default / none); not reversible as planned."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl
from migrate_assets.schema.plan import Hazard


@dataclass(frozen=True)
class SetIdentity(ColumnOperation):
    kind = "set_identity"
    phase = "misc"
    identity: str | None = None  # "always" | "by default" | None
    previous: str | None = None

    def describe(self, table: Table) -> str:
        return f"identity of {table.qualified}.{self.column}: {self.previous} → {self.identity}"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        fwd = []
        if self.previous:
            fwd.append(ddl.drop_identity(s, t, self.column))
        if self.identity:
            fwd.append(ddl.add_identity(s, t, self.column, self.identity))
        # dropping an identity drops its sequence: the counter is not given back
        return Ddl(tuple(fwd), None, False, (), (hazards.AEL, Hazard.NOT_REVERSIBLE))
