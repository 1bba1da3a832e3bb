"""Pipeline tables are not changed behind the pipeline's back: each pending migration is tried first.

Before `migrations up` (and `run`, `down`) commits anything, the scripts it is about to run are executed, in
order, inside ONE transaction that is always rolled back, with the run's `lock_timeout`: Postgres itself parses
and runs the SQL, so there is no guessing about what a `DO` block, a function or a view rewrite does. Around each
script the catalog shape of every pipeline table is read (`shape_of`: existence, kind, replica identity, primary
key, and each column's name, type, nullability, default, identity and generation — what Debezium, the registry
and Iceberg see). A script after which a pipeline table's shape differs is reported with what changed.

The trial runs user SQL the user asked to run, on the writable connection that holds the run's advisory lock —
never for read-only commands (status, dry runs). Rolling back undoes every catalog and row change; what a
rollback cannot undo is what the real run would do too (sequence values consumed). Statements Postgres refuses
inside a transaction block (`CREATE INDEX CONCURRENTLY`, `VACUUM`, SQLSTATE 25001) are skipped in the trial, each
under its own savepoint: none of them can change a column; transaction control in a `no-transaction` file is
never sent. A script that fails in the trial ends the trial there (`Trial.failed`): the scripts checked before
it may run, and it is tried again on their result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from migrate_assets.schema.session import timeouts_sql
from migrate_assets.versioned import sqltext

#: one catalog read for every pipeline table; a table that is not there (dropped, renamed) has no row
_SHAPE_SQL = """
SELECT t.s, t.r, c.relkind::text, c.relreplident::text,
       (SELECT coalesce(json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                                  pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
                                                  a.attgenerated::text) ORDER BY a.attnum), '[]'::json)
          FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT coalesce(json_agg(a.attname ORDER BY k.ord), '[]'::json)
          FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid AND i.indisprimary)
  FROM unnest(%s::text[], %s::text[]) AS t(s, r)
  JOIN pg_namespace n ON n.nspname = t.s
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r
"""

_COLUMN_FIELDS = ("type", "not null", "default", "identity", "generated")


@dataclass(frozen=True)
class TableShape:
    """What the pipeline sees of one table."""

    kind: str
    replica_identity: str
    primary_key: tuple[str, ...]
    columns: tuple[tuple[Any, ...], ...]  # (name, type, not null, default, identity, generated) in column order


Shapes = dict[str, "TableShape | None"]


def shape_of(conn: psycopg.Connection[Any], tables: Sequence[str]) -> Shapes:
    """The shape of each `schema.table` in `tables` (None: no such table)."""
    parts = [t.split(".", 1) for t in tables]
    out: Shapes = dict.fromkeys(tables)
    rows = conn.execute(_SHAPE_SQL, ([p[0] for p in parts], [p[1] for p in parts])).fetchall()
    for s, r, kind, ident, cols, pk in rows:
        out[f"{s}.{r}"] = TableShape(kind, ident, tuple(pk), tuple(tuple(c) for c in cols))
    return out


def describe(before: TableShape | None, after: TableShape | None) -> list[str]:
    """What changed between two shapes of one table, in words (empty: nothing the pipeline sees)."""
    if before == after:
        return []
    if after is None:
        return ["table dropped or renamed"]
    if before is None:
        return ["table created"]
    out: list[str] = []
    old = {c[0]: c for c in before.columns}
    new = {c[0]: c for c in after.columns}
    out += [f"column {n} dropped or renamed" for n in old if n not in new]
    out += [f"column {n} added ({new[n][1]})" for n in new if n not in old]
    for n in old.keys() & new.keys():
        for i, what in enumerate(_COLUMN_FIELDS, start=1):
            if old[n][i] != new[n][i]:
                out.append(f"column {n} {what}: {_show(old[n][i])} -> {_show(new[n][i])}")
    if before.primary_key != after.primary_key:
        out.append(f"primary key: ({', '.join(before.primary_key)}) -> ({', '.join(after.primary_key)})")
    if before.replica_identity != after.replica_identity:
        out.append(f"replica identity: {before.replica_identity} -> {after.replica_identity}")
    if before.kind != after.kind:
        out.append(f"relation kind: {before.kind} -> {after.kind}")
    if not out:  # same columns, other order
        out.append("column order changed")
    return sorted(out)


def _show(value: Any) -> str:
    return "none" if value in (None, "") else str(value)


@dataclass(frozen=True)
class Script:
    """One script a run is about to execute."""

    file: str
    text: str
    no_transaction: bool


@dataclass(frozen=True)
class Touch:
    """A script that would change pipeline tables: per table, what it changes."""

    file: str
    tables: dict[str, list[str]]


@dataclass
class Trial:
    """The outcome of trying `scripts` in a rolled-back transaction."""

    checked: int = 0  #: scripts tried to the end (a prefix of the list)
    touches: list[Touch] = field(default_factory=list)
    failed: tuple[str, psycopg.Error] | None = None  #: the script that failed in the trial, and why
    ms: float = 0.0  #: the whole trial, including the scripts' own run time
    overhead_ms: float = 0.0  #: catalog reads, savepoints and the rollback only


def trial(conn: psycopg.Connection[Any], scripts: Sequence[Script], tables: Sequence[str], *,
          lock_timeout: float, statement_timeout: float = 0.0) -> Trial:
    """Run `scripts` in order in one transaction, rolled back whatever happens; report which change `tables`.

    `conn` is in autocommit mode and idle; it is idle again afterwards, with nothing of the scripts kept.
    """
    result = Trial()
    if not scripts or not tables:
        result.checked = len(scripts)
        return result
    started = time.perf_counter()
    in_scripts = 0.0
    conn.execute("BEGIN")
    try:
        conn.execute(timeouts_sql(local=True, lock_timeout=lock_timeout, statement_timeout=statement_timeout))
        before = shape_of(conn, tables)
        for script in scripts:
            t0 = time.perf_counter()
            try:
                _run(conn, script)
            except psycopg.Error as exc:
                in_scripts += time.perf_counter() - t0
                result.failed = (script.file, exc)
                break
            in_scripts += time.perf_counter() - t0
            after = shape_of(conn, tables)
            changed = {t: d for t in tables if (d := describe(before[t], after[t]))}
            if changed:
                result.touches.append(Touch(script.file, changed))
            before = after
            result.checked += 1
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("ROLLBACK")
    result.ms = (time.perf_counter() - started) * 1000
    result.overhead_ms = result.ms - in_scripts * 1000
    return result


def _run(conn: psycopg.Connection[Any], script: Script) -> None:
    if not script.no_transaction:
        conn.execute(script.text)  # simple protocol: every statement of the file, inside our transaction
        return
    statements = sqltext.split_statements(script.text)
    control = {s.start for s in sqltext.transaction_control(statements)}
    for stmt in statements:
        if stmt.start in control:
            continue  # BEGIN/COMMIT of a no-transaction file: never sent, the trial stays one transaction
        conn.execute(sql.SQL("SAVEPOINT migrate_assets_stmt"))
        try:
            conn.execute(stmt.text)
        except psycopg.Error as exc:
            if exc.sqlstate != "25001":  # active_sql_transaction: CONCURRENTLY, VACUUM ... cannot be tried
                raise
            conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT migrate_assets_stmt"))
        conn.execute(sql.SQL("RELEASE SAVEPOINT migrate_assets_stmt"))


def touches_text(touches: Sequence[Touch]) -> list[str]:
    """One line per script and table: `FILE changes TABLE: what; what`."""
    return [f"{t.file} changes pipeline table {table}: {'; '.join(what)}"
            for t in touches for table, what in t.tables.items()]
