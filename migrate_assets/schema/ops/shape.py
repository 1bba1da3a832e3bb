"""`TableShape`: a `ShapeSink` that applies operations to a `Table` model, so a sequence of operations can be
planned one after the other against the shape the earlier ones leave."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops.base import Operation
from migrate_assets.schema.types import parse_type


class TableShape:
    def __init__(self, table: Table) -> None:
        self.table = table

    def _map(self, name: str, fn: object) -> None:
        cols = tuple(fn(c) if c.name == name else c for c in self.table.columns)  # type: ignore[operator]
        self.table = replace(self.table, columns=cols)

    def added(self, name: str, type_: str, nullable: bool, default: str | None) -> None:
        col = Column(name, parse_type(type_), nullable, default)
        self.table = replace(self.table, columns=(*self.table.columns, col))

    def retyped(self, name: str, type_: str) -> None:
        self._map(name, lambda c: replace(c, type=parse_type(type_)))

    def renamed(self, old: str, new: str) -> None:
        self._map(old, lambda c: replace(c, name=new))

    def dropped(self, name: str) -> None:
        self.table = replace(self.table, columns=tuple(c for c in self.table.columns if c.name != name))

    def required(self, name: str) -> None:
        self._map(name, lambda c: replace(c, nullable=False))

    def optional(self, name: str) -> None:
        self._map(name, lambda c: replace(c, nullable=True))


def after(table: Table, ops: Iterable[Operation]) -> Table:
    """`table` as it is once `ops` ran."""
    shape = TableShape(table)
    for op in ops:
        op.effects(shape)
    return shape.table
