"""Enum types in spec files: declared, created, given new values (BEFORE/AFTER, outside the main transaction) and
values renamed — never dropped, and a value is never removed or moved (Postgres cannot do either: the plan refuses
with the reason).

    enum: public.mood              # or `enum: mood` with `schema: public`
    values: [happy, {name: content, renamed_from: [ok]}, sad]

Only the enums a spec declares are read from the catalog (one query); others are left alone (`export` lists them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # spec loading imports this module; the database client and the operations load when planning
    import psycopg

from migrate_assets.schema.model import Named, Source, Table
from migrate_assets.schema.plan import Change
from migrate_assets.schema.types import parse_type

if TYPE_CHECKING:
    from migrate_assets.schema import ops
else:  # imported on first use: an unchanged schema plans without it (lazy_ops)
    from migrate_assets.schema.lazy_ops import ops

ENUM_KEYS = {"enum", "schema", "values", "drop"}


@dataclass(frozen=True)
class Enum(Named):
    schema: str
    name: str
    values: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...] = ()  #: (old label, new label), desired side only
    #: desired side: `drop: true` — drop it when nothing uses it (`schema.enum_drops`)
    drop: bool = field(default=False, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)


    @property
    def type_name(self) -> str:
        """The name as `PgType` spells it (`public.mood`, `"My S".e`)."""
        quoted = ".".join('"' + p.replace('"', '""') + '"' for p in (self.schema, self.name))
        return parse_type(quoted).name


class SpecSet(list[Table]):
    """The tables of a spec set (it is the list of them), plus the enums it declares."""

    enums: tuple[Enum, ...] = ()
    #: views, materialized views, schemas and extensions it declares (`schema/views.py`)
    schema_objects: tuple[Any, ...] = ()
    sequences: tuple[Any, ...] = ()  #: `schema.sequence_objects.Sequence`s
    domains: tuple[Any, ...] = ()  #: `schema.domains.Domain`s
    composites: tuple[Any, ...] = ()  #: `schema.composites.Composite`s


def enums_of(desired: Sequence[Table]) -> tuple[Enum, ...]:
    return desired.enums if isinstance(desired, SpecSet) else ()


_LIVE = """
SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
WHERE (n.nspname, t.typname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%s::json) k)
GROUP BY n.nspname, t.typname
"""


def live_enums(conn: psycopg.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Enum]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = conn.execute(_LIVE, [json.dumps(wanted, ensure_ascii=False)]).fetchall()
    return {(str(s), str(n)): Enum(str(s), str(n), tuple(v)) for s, n, v in rows}


def all_live_enums(conn: psycopg.Connection, schemas: Iterable[str]) -> list[Enum]:
    rows = conn.execute(
        "SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t "
        "JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid "
        "WHERE n.nspname = ANY(%s) AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e') "
        "GROUP BY 1, 2 ORDER BY 1, 2", [sorted(set(schemas))]).fetchall()
    return [Enum(str(s), str(n), tuple(v)) for s, n, v in rows]


def _change(e: Enum, op: Any, *, after_commit: bool = False) -> Change:
    anchor = Table(e.schema, e.name)
    d = op.plain(anchor)
    return Change(e.qualified, op.change_kind, op.describe(anchor), d.forward, d.inverse, d.hazards,
                  not (after_commit or op.after_commit()), None)


def diff_enums(desired: Iterable[Enum], live: dict[tuple[str, str], Enum]) -> tuple[list[Change], list[str]]:
    """Changes that make each declared enum match, and refusals (a value removed or moved)."""

    changes: list[Change] = []
    refusals: list[str] = []
    for want in desired:
        have = live.get(want.key)
        if want.drop:  # planned by schema.enum_drops
            continue
        if have is None:
            changes.append(_change(want, ops.CreateEnum(values=want.values)))
            continue
        labels = list(have.values)
        for old, new in want.renamed:
            if old in labels and new not in labels:
                labels[labels.index(old)] = new
                changes.append(_change(want, ops.RenameEnumValue(old=old, new=new)))
        gone = [v for v in labels if v not in want.values]
        if gone:
            refusals.append(f"enum {want.qualified}: value(s) {', '.join(gone)} would have to be removed, which "
                            "Postgres cannot do; keep them in the spec (or rename them with renamed_from)")
            continue
        if [v for v in want.values if v in labels] != labels:
            refusals.append(f"enum {want.qualified}: the existing values {', '.join(labels)} would change order, "
                            "which Postgres cannot do")
            continue
        first_kept = next((v for v in want.values if v in labels), None)
        for i, v in enumerate(want.values):
            if v in labels:
                continue
            if i == 0:
                op = ops.AddEnumValue(type=want.type_name, value=v, before=first_kept)
            else:
                op = ops.AddEnumValue(type=want.type_name, value=v, after=want.values[i - 1])
            # outside the transaction block: a value added inside one cannot be used before it commits
            changes.append(_change(want, op, after_commit=True))
    return changes, refusals
