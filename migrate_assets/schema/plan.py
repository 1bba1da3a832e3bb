"""Plans as immutable data: changes with their SQL, inverse SQL and hazards, plus the live fingerprint.

A plan can be printed, stored as JSON (`plan --format json > plan.json`), read back and applied; the runner
refuses a stored plan whose fingerprint no longer matches the database (stale plan).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from migrate_assets.errors import InvalidInputError, Problem

if TYPE_CHECKING:
    from migrate_assets.schema.model import Table

PLAN_FORMAT_VERSION = 1


class Hazard(StrEnum):
    """What a change does to the database and its readers (SPEC §3)."""

    DELETES_DATA = "deletes_data"
    BREAKS_READERS = "breaks_readers"
    REWRITES_TABLE = "rewrites_table"
    ACCESS_EXCLUSIVE_LOCK = "access_exclusive_lock"
    LONG_RUNNING = "long_running"
    NOT_REVERSIBLE = "not_reversible"
    #: drops a PRIMARY KEY / UNIQUE constraint the spec no longer lists (writers may then store duplicates)
    REMOVES_CONSTRAINT = "removes_constraint"
    #: drops an index the spec no longer lists (queries that used it may slow down by orders of magnitude)
    REMOVES_INDEX = "removes_index"


BREAKING_HAZARDS = frozenset({Hazard.DELETES_DATA, Hazard.BREAKS_READERS, Hazard.REMOVES_CONSTRAINT, Hazard.REMOVES_INDEX})


@dataclass(frozen=True, slots=True)
class Unmanaged:
    """A live object the spec format cannot express (or one of its properties): listed, never changed."""

    table: str  #: qualified table the object belongs to (for a view: a table it reads)
    kind: str  #: index | unique | check | foreign_key | exclusion | trigger | view | collation | ...
    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"table": self.table, "kind": self.kind, "name": self.name, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Unmanaged:
        return cls(str(d["table"]), str(d["kind"]), str(d["name"]), str(d.get("reason", "")))


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change of one table.

    `sql` runs forward; `inverse_sql` undoes it (None when no lossless inverse exists); `transactional` is
    False for `CREATE/DROP INDEX CONCURRENTLY`, which run after the main transaction commits.
    """

    table: str
    kind: str
    description: str
    sql: tuple[str, ...]
    inverse_sql: tuple[str, ...] | None = None
    hazards: tuple[Hazard, ...] = ()
    transactional: bool = True
    column: str | None = None

    @property
    def breaking(self) -> bool:
        return any(h in BREAKING_HAZARDS for h in self.hazards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "kind": self.kind,
            "description": self.description,
            "column": self.column,
            "sql": "\n".join(s + ";" for s in self.sql),
            "inverse_sql": None if self.inverse_sql is None else "\n".join(s + ";" for s in self.inverse_sql),
            "statements": list(self.sql),
            "inverse_statements": None if self.inverse_sql is None else list(self.inverse_sql),
            "hazards": [h.value for h in self.hazards],
            "breaking": self.breaking,
            "transactional": self.transactional,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        inv = d.get("inverse_statements")
        return cls(
            table=str(d["table"]),
            kind=str(d["kind"]),
            description=str(d.get("description", "")),
            sql=tuple(str(s) for s in d["statements"]),
            inverse_sql=None if inv is None else tuple(str(s) for s in inv),
            hazards=tuple(Hazard(h) for h in d.get("hazards", [])),
            transactional=bool(d.get("transactional", True)),
            column=d.get("column"),
        )


@dataclass(frozen=True)
class Scope:
    """Which live tables a plan looked at (so a stored plan is re-checked against the same set)."""

    schemas: tuple[str, ...]
    tables: tuple[tuple[str, str], ...] | None  #: None = every table of `schemas`
    allow_drop_table: bool = False

    def describe(self) -> str:
        return json.dumps([list(self.schemas), None if self.tables is None else [list(t) for t in self.tables],
                           self.allow_drop_table])


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    fingerprint: str
    scope: Scope
    #: changes that cannot be planned safely, with the reason (apply refuses while any exist)
    refusals: tuple[str, ...] = ()
    #: live objects in scope that the spec cannot express; the plan leaves them exactly as they are
    unmanaged: tuple[Unmanaged, ...] = ()
    #: "column X of T is in the database but not in FILE": the spec is behind the database (`spec_gaps`)
    spec_gaps: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        """No change breaks readers or deletes data, and nothing was refused."""
        return not self.refusals and not any(c.breaking for c in self.changes)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.refusals

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.breaking)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": PLAN_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "safe": self.safe,
            "changes": [c.to_dict() for c in self.changes],
            "refusals": list(self.refusals),
            "unmanaged": [u.to_dict() for u in self.unmanaged],
            "spec_gaps": list(self.spec_gaps),
            "scope": {
                "schemas": list(self.scope.schemas),
                "tables": None if self.scope.tables is None else [list(t) for t in self.scope.tables],
                "allow_drop_table": self.scope.allow_drop_table,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any], file: str = "<plan>") -> Plan:
        try:
            if d.get("format_version") != PLAN_FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {d.get('format_version')!r}")
            sc = d["scope"]
            scope = Scope(
                tuple(str(s) for s in sc["schemas"]),
                None if sc["tables"] is None else tuple((str(a), str(b)) for a, b in sc["tables"]),
                bool(sc.get("allow_drop_table", False)),
            )
            return cls(
                changes=tuple(Change.from_dict(c) for c in d["changes"]),
                fingerprint=str(d["fingerprint"]),
                scope=scope,
                refusals=tuple(str(r) for r in d.get("refusals", [])),
                unmanaged=tuple(Unmanaged.from_dict(u) for u in d.get("unmanaged", [])),
                spec_gaps=tuple(str(g) for g in d.get("spec_gaps", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError([Problem(file=file, message=f"not a plan file written by `plan --format json`: {exc}")]) from exc

    @classmethod
    def from_json(cls, text: str, file: str = "<plan>") -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError([Problem(file=file, line=exc.lineno, message=f"invalid JSON: {exc.msg}")]) from exc
        if not isinstance(data, dict):
            raise InvalidInputError([Problem(file=file, message="expected a JSON object")])
        return cls.from_dict(data, file)


def with_spec_gaps(plan: Plan, desired: Iterable[Table]) -> Plan:
    """`plan` with each column the database has and its spec file does not declare said as such — the spec is
    behind the database (a change made outside `apply`), and the fix is to declare the column in that file
    (`evolve`, `contract` and `abort` write their changes back themselves): the plan's DROP COLUMN is what applying
    it would do, never the advice."""
    files = {t.qualified: t.source.file for t in desired if t.source is not None}
    gaps = tuple(f"column {c.column} of {c.table} is in the database but not in {files[c.table]}"
                 for c in plan.changes if c.kind == "drop_column" and c.column and c.table in files)
    return replace(plan, spec_gaps=gaps) if gaps else plan
