"""The source database action: DDL in one transaction, and the data an undo of it would lose."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from migrate_assets.errors import DataLoss, LayerRequestError, StalePlanError
from migrate_assets.evolution.actions.base import Action, RunContext, refuse_losses
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.results import DdlApplied, StepResult


@dataclass(frozen=True)
class SourceDdl(Action[DdlApplied]):
    kind: ClassVar[str] = "source_ddl"
    layer: ClassVar[str] = Layer.SOURCE_DB
    result_type: ClassVar[type[StepResult]] = DdlApplied
    table: str
    statements: tuple[str, ...]
    inverse_statements: tuple[str, ...] | None
    lock_timeout: float = 2.0
    expected_fingerprint: str | None = None
    #: an inverse: its DROP COLUMN / DROP TABLE / retype statements are probed for the data they would lose first
    undo: bool = False

    @property
    def reversible(self) -> bool:
        return self.inverse_statements is not None

    def losses(self, ctx: RunContext) -> list[DataLoss]:
        if not self.undo:
            return []
        out = []
        for h in hazards(self.statements):
            if h.to_type is None:
                n = ctx.source.count_values(h.table, h.column)
            else:
                try:
                    n = ctx.source.count_changed(h.table, h.column or "", h.to_type, h.using or "")
                except LayerRequestError:
                    continue  # the cast rejects a value: the undo itself fails on it, changing nothing
            if n:
                out.append(DataLoss(Layer.SOURCE_DB, h.table, h.column or "", n,
                                    "changed by the cast back to " + h.to_type if h.to_type else ""))
        return out

    def run(self, ctx: RunContext) -> DdlApplied:
        refuse_losses(self, ctx)
        if self.expected_fingerprint is not None:
            now = ctx.source.fingerprint(self.table)
            if now != self.expected_fingerprint:
                raise StalePlanError(self.expected_fingerprint, now)
        res = ctx.source.execute_ddl(list(self.statements), self.lock_timeout)
        return DdlApplied(res.commit_lsn, res.attempts)

    def probe(self, ctx: RunContext) -> DdlApplied | None:
        # the DDL is one transaction: a changed fingerprint means it committed
        if self.expected_fingerprint is None or ctx.source.fingerprint(self.table) == self.expected_fingerprint:
            return None
        return DdlApplied(ctx.source.current_lsn(), probed=True)

    def inverse(self, result: DdlApplied) -> Action[Any] | None:
        if self.inverse_statements is None:
            return None
        return SourceDdl(table=self.table, statements=self.inverse_statements, inverse_statements=self.statements,
                         lock_timeout=self.lock_timeout, undo=True)

    def touches(self) -> set[tuple[str, str]]:
        return {("source table", self.table)}

    def describe(self) -> str:
        return "; ".join(self.statements)


_QID = r'"((?:[^"]|"")+)"'
_DROP_COLUMN = re.compile(rf"ALTER TABLE {_QID}\.{_QID} DROP COLUMN {_QID}")
_DROP_TABLE = re.compile(rf"DROP TABLE {_QID}\.{_QID}")
_RETYPE = re.compile(rf"ALTER TABLE {_QID}\.{_QID} ALTER COLUMN {_QID} TYPE (.+?) USING (.+)", re.DOTALL)


@dataclass(frozen=True)
class Hazard:
    """A statement that can lose data: DROP COLUMN (`column`), DROP TABLE (no column), or a retype (`to_type`,
    `using`), parsed from statements as the planner renders them (identifiers quoted by psycopg.sql)."""

    table: str
    column: str | None = None
    to_type: str | None = None
    using: str | None = None


def _unq(*groups: str) -> list[str]:
    return [g.replace('""', '"') for g in groups]


def hazards(statements: tuple[str, ...]) -> list[Hazard]:
    out: list[Hazard] = []
    for text in (s.strip() for s in statements):
        if m := _DROP_COLUMN.fullmatch(text):
            schema, table, column = _unq(*m.groups())
            out.append(Hazard(f"{schema}.{table}", column))
        elif m := _DROP_TABLE.fullmatch(text):
            schema, table = _unq(*m.groups())
            out.append(Hazard(f"{schema}.{table}"))
        elif m := _RETYPE.fullmatch(text):
            schema, table, column = _unq(*m.groups()[:3])
            out.append(Hazard(f"{schema}.{table}", column, m.group(4), m.group(5)))
    return out
