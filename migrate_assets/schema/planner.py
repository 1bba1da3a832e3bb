"""The I/O half of planning: introspect the live tables in scope, let Postgres canonicalise and check the
desired expressions, probe emptiness where a NOT NULL column needs it, then run the pure `diff`.

Round trips do not depend on the number of tables: 4 catalog queries + 2 search_path toggles, one batch for
expression canonicalisation (only when some spelling differs or defaults are new), one emptiness probe (only
when needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema.diff import (
    TableKey,
    diff,
    in_sync,
    pending_defaults,
    pending_predicates,
    tables_needing_row_check,
)
from migrate_assets.schema.introspect import (
    Canonical,
    canonicalize,
    existing_schemas,
    find_invalid,
    introspect,
    tables_with_rows,
)
from migrate_assets.schema.model import Column, Table, fingerprint, gc_paused
from migrate_assets.schema.plan import Plan, Scope
from migrate_assets.schema.types import PgType

INTERNAL_PREFIX = "migrate_assets_"


@dataclass(frozen=True)
class PlanOptions:
    default_schema: str = "public"
    only_tables: tuple[str, ...] = ()  #: `--table` filters: `name` or `schema.name`
    allow_drop_table: bool = False
    ignore: frozenset[TableKey] = frozenset()  #: e.g. the migrations state table


def _qualify(name: str, default_schema: str) -> TableKey:
    s, dot, t = name.partition(".")
    return (s, t) if dot else (default_schema, name)


def select_tables(desired: Sequence[Table], opts: PlanOptions) -> tuple[list[Table], Scope]:
    wanted = {_qualify(n, opts.default_schema) for n in opts.only_tables}
    chosen = [t for t in desired if not wanted or t.key in wanted]
    schemas = tuple(sorted({t.schema for t in desired} | {opts.default_schema}))
    if wanted:
        tables: tuple[TableKey, ...] | None = tuple(sorted(wanted))
    elif opts.allow_drop_table:
        tables = None
    else:
        tables = tuple(sorted(t.key for t in chosen))
    return chosen, Scope(schemas, tables, opts.allow_drop_table)


def live_tables(conn: psycopg.Connection, scope: Scope, ignore: Iterable[TableKey] = ()) -> dict[TableKey, Table]:
    live = introspect(conn, scope.schemas, scope.tables)
    skip = set(ignore)
    return {k: t for k, t in live.items() if k not in skip and not k[1].startswith(INTERNAL_PREFIX)}


def scope_fingerprint(live: dict[TableKey, Table], scope: Scope) -> str:
    return fingerprint(live, scope.describe())


def build_plan(
    conn: psycopg.Connection, desired: Sequence[Table], opts: PlanOptions = PlanOptions(), scope: Scope | None = None
) -> Plan:
    """Plan the changes that make the database match `desired` (within `scope` when replaying a stored plan)."""
    with gc_paused():
        return _build_plan(conn, desired, opts, scope)


def _build_plan(conn: psycopg.Connection, desired: Sequence[Table], opts: PlanOptions, scope: Scope | None) -> Plan:
    if scope is None:
        chosen, scope = select_tables(desired, opts)
    else:
        in_scope = set(scope.tables) if scope.tables is not None else None
        chosen = [t for t in desired if (t.key in in_scope if in_scope is not None else t.schema in scope.schemas)]
        opts = PlanOptions(opts.default_schema, opts.only_tables, scope.allow_drop_table, opts.ignore)
    live = live_tables(conn, scope, opts.ignore)
    todo = [t for t in chosen if not in_sync(t, live.get(t.key))]  # the rest plan nothing
    canon = _canonical(conn, chosen, todo, live)
    check = tables_needing_row_check(todo, live)
    nonempty = tables_with_rows(conn, check) if check else set()
    drops: list[TableKey] = []
    if opts.allow_drop_table:
        want = {t.key for t in desired}
        drops = sorted(k for k in live if k not in want)
    new_schemas = {t.schema for t in chosen if t.key not in live}
    missing = new_schemas - existing_schemas(conn, new_schemas) if new_schemas else set()
    res = diff(todo, live, canon=canon, nonempty=nonempty, drop_tables=drops, missing_schemas=missing)
    return Plan(tuple(res.changes), scope_fingerprint(live, scope), scope, tuple(res.refusals))


def _canonical(
    conn: psycopg.Connection, desired: Sequence[Table], todo: Sequence[Table], live: dict[TableKey, Table]
) -> Canonical:
    # every desired default is validated by Postgres the first time it is used (new table or column);
    # unchanged ones whose text already matches the live spelling need no round trip, so only the tables
    # in `todo` are looked at (an invalid default is still reported at every column of `desired` using it)
    new_columns = {id(c) for c in _new_columns(todo, live)}
    wanted: list[tuple[PgType, str]] = []
    for c, needs in pending_defaults(todo, live):
        if c.default is not None and (needs or id(c) in new_columns):
            wanted.append((c.type, c.default))
    preds = pending_predicates(todo, live)
    if not wanted and not preds:
        return Canonical({}, {})
    try:
        return canonicalize(conn, wanted, preds)
    except psycopg.Error as exc:
        bad = find_invalid(conn, wanted)
        problems = []
        for t, d, why in bad:
            for tbl in desired:
                for c in tbl.columns:
                    if c.default == d and c.type == t:
                        src = c.source
                        problems.append(
                            Problem(
                                src.file if src else "<spec>",
                                f"default {d!r} is not valid for type {t.render()}: {why}",
                                (src.key + ".default") if src else "default",
                                src.lineno if src else None,
                            )
                        )
        if not problems:
            problems.append(Problem("<spec>", f"an index predicate or default was rejected by Postgres: {exc}"))
        raise SpecError(problems) from None


def _new_columns(desired: Sequence[Table], live: dict[TableKey, Table]) -> list[Column]:
    out: list[Column] = []
    for t in desired:
        lt = live.get(t.key)
        if lt is None:
            out.extend(t.columns)
            continue
        names = {c.name for c in lt.columns}
        out.extend(c for c in t.columns if c.name not in names and not any(o in names for o in c.renamed_from))
    return out
