"""Expand–contract operations as immutable data (SPEC §5).

An operation says *what* the new shape of a table is (the classes live in `migrate_assets.schema.ops`, one
module each, and own their expand / contract / abort steps); the planner composes them into physical columns,
one trigger, a backfill, contract and abort SQL. Expressions are kept as the user wrote them: they are SQL text that Postgres
validates and that the planner only ever embeds in a function body or a statement Postgres has already accepted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from migrate_assets.schema.ops import (
    AddColumn,
    ChangeType,
    DropColumn,
    Operation,
    RenameColumn,
    SetNotNull,
    op_from_dict,
    op_to_dict,
)

__all__ = [
    "AddColumn", "ChangeSet", "ChangeType", "DropColumn", "Operation", "RenameColumn", "SetNotNull", "op_columns",
    "op_from_dict", "op_to_dict",
]  # fmt: skip


def op_columns(op: Operation) -> tuple[str, ...]:
    """Existing column(s) of the old shape an operation works on (empty for add_column)."""
    return op.columns()


@dataclass(frozen=True)
class ChangeSet:
    """One change file: a table and its operations, in order."""

    schema: str
    table: str
    operations: tuple[Operation, ...]
    source: str = "<memory>"
    #: key path of each operation's body in the source file, for error messages: ("operations", i, kind)
    locations: tuple[tuple[str | int, ...], ...] = ()
    #: (key path, line) of every key in the source file
    lines: tuple[tuple[tuple[str | int, ...], int], ...] = field(default=(), compare=False, repr=False)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def fingerprint(self) -> str:
        """Stable identity of the change: the state table is keyed by table + this."""
        doc = {"table": self.qualified, "operations": [op_to_dict(o) for o in self.operations]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """Line of the deepest known prefix of `path` in the source file."""
        known = dict(self.lines)
        p = tuple(path)
        while p:
            if p in known:
                return known[p]
            p = p[:-1]
        return known.get(())

    def location(self, index: int) -> tuple[str | int, ...]:
        if index < len(self.locations):
            return self.locations[index]
        return ("operations", index)
