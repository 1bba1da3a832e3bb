"""comment_column: metadata only."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl, Operation


@dataclass(frozen=True)
class CommentColumn(ColumnOperation):
    kind = "comment_column"
    change_kind = "set_comment"
    phase = "misc"
    comment: str | None = None
    previous: str | None = None

    def describe(self, table: Table) -> str:
        return f"comment on column {table.qualified}.{self.column}"

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        return Ddl((ddl.comment_column(s, t, self.column, self.comment),),
                   (ddl.comment_column(s, t, self.column, self.previous),), True, (), hazards.NONE)

    def inverse(self, table: Table) -> Operation | None:
        return CommentColumn(self.column, self.previous, self.comment)
