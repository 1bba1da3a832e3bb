"""set_default / drop_default: metadata only (existing rows keep their values)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl, Operation


def _restore(table: Table, column: str, previous: str | None) -> tuple[str, ...]:
    if previous is None:
        return (ddl.drop_default(table.schema, table.name, column),)
    return (ddl.set_default(table.schema, table.name, column, previous),)


@dataclass(frozen=True)
class SetDefault(ColumnOperation):
    kind = "set_default"
    phase = "default"
    default: str
    #: the default to put back on undo (None: drop it); the declarative diff knows it from the live column
    previous: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return None if col is None or col.default is None else cls(name, col.default)

    def describe(self, table: Table) -> str:
        return f"set default of {table.qualified}.{self.column} to {self.default}"

    def plain(self, table: Table) -> Ddl:
        fwd = ddl.set_default(table.schema, table.name, self.column, self.default)
        return Ddl((fwd,), _restore(table, self.column, self.previous), True, (), hazards.ALTER_METADATA)

    def inverse(self, table: Table) -> Operation | None:
        if self.previous is None:
            return DropDefault(self.column, previous=self.default)
        return SetDefault(self.column, self.previous, previous=self.default)


@dataclass(frozen=True)
class DropDefault(ColumnOperation):
    kind = "drop_default"
    phase = "default"
    previous: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        return cls(name)

    def describe(self, table: Table) -> str:
        return f"drop default of {table.qualified}.{self.column}"

    def plain(self, table: Table) -> Ddl:
        fwd = ddl.drop_default(table.schema, table.name, self.column)
        return Ddl((fwd,), _restore(table, self.column, self.previous), True, (), hazards.ALTER_METADATA)

    def inverse(self, table: Table) -> Operation | None:
        return SetDefault(self.column, self.previous) if self.previous is not None else None
