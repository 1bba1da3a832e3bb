"""Desired column types read through Postgres: every type a spec names is looked up in the catalog and spelled
the way `format_type` prints it, so the comparison with live columns never rests on the hand-written alias
table alone (`interval day to second(2)`, `public.mood[]`, a domain in another schema...).

Only types that no live column in scope already has are asked about (a live column's spelling *is* Postgres'),
so a schema in sync costs no query. Otherwise three statements, whatever the number of types:

1. `to_regtype(text)` for every distinct spelling: which exist (a missing one is a spec error naming file, line
   and key; nothing is changed);
2. one `SELECT CAST(NULL AS t1), CAST(NULL AS t2), …` prepared, never executed: its row description carries each
   type's typmod (a domain is described as its base type: it keeps its own oid from step 1 and no typmod) (the text already passed `types.parse_type`, a closed grammar of names, integers and
   brackets, so nothing else can be in it);
3. `format_type(oid, typmod)` for all of them, with `search_path = pg_catalog` (user types come back qualified).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import psycopg
from psycopg import pq, sql

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.types import PgType, from_catalog


def resolve_types(conn: psycopg.Connection, desired: Sequence[Table], live_types: set[PgType],
                  declared: set[str] = frozenset()) -> list[Table]:  # type: ignore[assignment]
    """`desired` with every column type in Postgres' own spelling; SpecError for types that do not exist.
    `declared`: names of types the spec set itself declares (enums), which may not exist yet."""
    wanted: dict[str, PgType] = {}
    for t in desired:
        for c in t.columns:
            if c.type not in live_types and c.type.name not in declared:
                wanted.setdefault(c.type.render(), c.type)
    if not wanted:
        return list(desired)
    from migrate_assets.schema.introspect import catalog_path

    spellings = sorted(wanted)
    with catalog_path(conn):
        rows = conn.execute("SELECT t, to_regtype(t)::oid FROM unnest(%s::text[]) AS t", [spellings]).fetchall()
        missing = {str(t) for t, oid in rows if oid is None}
        regtype = {str(t): int(oid) for t, oid in rows if oid is not None}
        present = [s for s in spellings if s not in missing]
        read: dict[str, str] = {}
        if present:
            casts = sql.SQL(", ").join(sql.SQL("CAST(NULL AS {})").format(sql.SQL(s)) for s in present)  # noqa: S608
            res = conn.pgconn.prepare(b"", sql.SQL("SELECT {}").format(casts).as_bytes(conn))
            if res.status != pq.ExecStatus.COMMAND_OK:
                msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"rejected").decode(errors="replace")
                raise SpecError([Problem("<types>", f"Postgres refused the column types {present}: {msg}")])
            desc = conn.pgconn.describe_prepared(b"")
            # a domain is described as its base type: its own oid then, and no typmod (it has none of its own)
            oids = [regtype[s] for s in present]
            mods = [desc.fmod(i) if desc.ftype(i) == regtype[s] else -1 for i, s in enumerate(present)]
            got = conn.execute(
                "SELECT format_type(o, m) FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS x(o, m, i) ORDER BY i",
                [oids, mods],
            ).fetchall()
            read = {s: str(r[0]) for s, r in zip(present, got, strict=True)}
    problems = [
        _problem(c, f"type {c.type.render()!r} does not exist in the database")
        for t in desired for c in t.columns if c.type.render() in missing
    ]  # fmt: skip
    if problems:
        raise SpecError(problems)
    spelled = {s: from_catalog(read[s], wanted[s].array_dims) for s in present}
    out = []
    for t in desired:
        cols = tuple(_respell(c, spelled) for c in t.columns)
        out.append(t if all(a is b for a, b in zip(cols, t.columns, strict=True)) else replace(t, columns=cols))
    return out


def _respell(c: Column, spelled: dict[str, PgType]) -> Column:
    pg = spelled.get(c.type.render())
    return c if pg is None or pg == c.type else replace(c, type=pg)


def _problem(c: Column, message: str) -> Problem:
    src = c.source
    if src is None:
        return Problem("<spec>", message, "type")
    return Problem(src.file, message, f"{src.key}.type" if src.key else "type", src.lineno)
