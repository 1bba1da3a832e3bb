"""Expand–contract operations as immutable data (SPEC §5).

An operation says *what* the new shape of a table is; the planner decides *how* (physical columns, triggers,
backfill, contract and abort SQL). Expressions are kept as the user wrote them: they are SQL text that Postgres
validates and that the planner only ever embeds in a function body or a statement Postgres has already accepted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class AddColumn:
    name: str
    type: str
    nullable: bool = False
    default: str | None = None
    backfill: str | None = None
    kind = "add_column"


@dataclass(frozen=True)
class RenameColumn:
    from_: str
    to: str
    kind = "rename_column"


@dataclass(frozen=True)
class ChangeType:
    column: str
    to_type: str
    up: str | None = None
    down: str | None = None
    kind = "change_type"


@dataclass(frozen=True)
class DropColumn:
    column: str
    kind = "drop_column"


@dataclass(frozen=True)
class SetNotNull:
    column: str
    backfill: str | None = None
    kind = "set_not_null"


Operation = AddColumn | RenameColumn | ChangeType | DropColumn | SetNotNull


def op_to_dict(op: Operation) -> dict[str, Any]:
    """The change-file form of an operation: `{kind: {key: value}}` (None values left out)."""
    body = {("from" if k == "from_" else k): v for k, v in asdict(op).items() if v is not None}
    return {op.kind: body}


def op_from_dict(data: dict[str, Any]) -> Operation:
    """Inverse of `op_to_dict`, for operations stored in the state table (already validated)."""
    ((kind, body),) = data.items()
    if kind == "add_column":
        return AddColumn(**body)
    if kind == "rename_column":
        return RenameColumn(from_=body["from"], to=body["to"])
    if kind == "change_type":
        return ChangeType(**body)
    if kind == "drop_column":
        return DropColumn(**body)
    if kind == "set_not_null":
        return SetNotNull(**body)
    raise ValueError(f"unknown operation {kind!r}")


def op_columns(op: Operation) -> tuple[str, ...]:
    """Existing column(s) of the old shape an operation works on (empty for add_column)."""
    if isinstance(op, RenameColumn):
        return (op.from_,)
    if isinstance(op, ChangeType | DropColumn | SetNotNull):
        return (op.column,)
    return ()


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
