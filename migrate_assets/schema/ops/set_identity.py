"""set_identity: add, drop or change a column's identity so that the table stays writable (the statements
come from `schema.sequences`: SET GENERATED keeps the sequence position, an added identity numbers after the
largest value, serial -> identity hands the sequence's name over)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl, Refused, live_column
from migrate_assets.schema.sequences import IdentityChange, identity_change


@dataclass(frozen=True)
class SetIdentity(ColumnOperation):
    kind = "set_identity"
    phase = "misc"
    identity: str | None = None  # "always" | "by default" | None
    previous: str | None = None
    #: declarative diff: the desired and the live column (serial, sequence …); else derived from the table
    want: Column | None = field(default=None, repr=False, compare=False)
    have: Column | None = field(default=None, repr=False, compare=False)

    def _change(self, table: Table) -> IdentityChange:
        have = self.have or live_column(table, self.column)
        want = self.want or replace(have, identity=self.identity)
        return identity_change(table.schema, table.name, want, have)

    def describe(self, table: Table) -> str:
        return f"identity of {table.qualified}.{self.column}: {self._change(table).describe}"

    def plain(self, table: Table) -> Ddl:
        ic = self._change(table)
        if ic.refusal:
            raise Refused("identity", ic.refusal)
        return Ddl(ic.sql, ic.inverse, ic.inverse is not None, (), ic.hazards)
