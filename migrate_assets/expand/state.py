"""The `migrate_assets_operations` table: expand–contract state shared by every process.

One row per (table, change fingerprint). It records what contract and abort need to rebuild the exact plan in
another process (the resolved operations, the pre-expand table shape — `shape.to_json`, with schema's fingerprint
of it in `pre_fingerprint` — and the expression references), the phase,
and the backfill cursor — committed in the same transaction as each backfill batch, so a killed backfill resumes
exactly where the last committed batch ended. A partial unique index allows one active change per table.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

TABLE = "migrate_assets_operations"
ACTIVE = ("expanding", "expanded")
PHASES = ("expanding", "expanded", "contracted", "aborted")

_DDL = """
CREATE TABLE IF NOT EXISTS {t} (
    table_name        text        NOT NULL,
    fingerprint       text        NOT NULL,
    source            text        NOT NULL DEFAULT '',
    operations        jsonb       NOT NULL,
    table_info        jsonb       NOT NULL,
    refs              jsonb       NOT NULL DEFAULT '{{}}',
    volatile_defaults jsonb       NOT NULL DEFAULT '[]',
    pre_fingerprint   text        NOT NULL,
    phase             text        NOT NULL CHECK (phase IN ('expanding', 'expanded', 'contracted', 'aborted')),
    backfill_cursor   jsonb,
    backfill_max      jsonb,
    rows_total        bigint      NOT NULL DEFAULT 0,
    rows_done         bigint      NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    expanded_at       timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    rebuilds          jsonb       NOT NULL DEFAULT '[]',
    PRIMARY KEY (table_name, fingerprint)
);
CREATE UNIQUE INDEX IF NOT EXISTS {idx} ON {t} (table_name) WHERE phase IN ('expanding', 'expanded');
"""


@dataclass(frozen=True)
class OperationState:
    table_name: str
    fingerprint: str
    source: str
    operations: list[dict[str, Any]]
    table_info: dict[str, Any]
    refs: dict[str, list[str]]
    volatile_defaults: list[int]
    pre_fingerprint: str
    phase: str
    backfill_cursor: list[str] | None
    backfill_max: list[str] | None
    rows_total: int
    rows_done: int
    started_at: dt.datetime
    expanded_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: indexes and constraints of replaced columns, rebuilt on the new ones (`expand.indexes.Rebuild` as dicts)
    rebuilds: list[dict[str, Any]]

    @property
    def backfill_done(self) -> bool:
        return self.backfill_max is None or self.backfill_cursor == self.backfill_max


_FIELDS = [f for f in OperationState.__dataclass_fields__]


def _t(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, TABLE)


def ensure(conn: psycopg.Connection[Any], schema: str) -> None:
    """Create the state table on first use (serialised by a transaction-level advisory lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{TABLE}",))
        conn.execute(sql.SQL(_DDL).format(t=_t(schema), idx=sql.Identifier(f"{TABLE}_one_active")))
        (has,) = conn.execute("SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = %s::regclass "
                              "AND attname = 'rebuilds' AND NOT attisdropped)",
                              (_t(schema).as_string(conn),)).fetchone() or (True,)
        if not has:  # a table from before rebuilds were recorded: only then take its ACCESS EXCLUSIVE lock
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS rebuilds jsonb NOT NULL DEFAULT '[]'")
                         .format(_t(schema)))


def exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, TABLE).as_string(conn),)
    ).fetchone()
    return bool(row and row[0])


def _select(schema: str, where: sql.Composable) -> sql.Composed:
    # `rebuilds` read through the row as JSON: a table from before it existed reads as none (no DDL on a read)
    cols = [sql.Identifier(f) if f != "rebuilds" else sql.SQL("COALESCE(to_jsonb(o) -> 'rebuilds', '[]'::jsonb)")
            for f in _FIELDS]
    return sql.SQL("SELECT {} FROM {} AS o WHERE {}").format(sql.SQL(", ").join(cols), _t(schema), where)


def get(conn: psycopg.Connection[Any], schema: str, table: str, fp: str) -> OperationState | None:
    if not exists(conn, schema):
        return None
    row = conn.execute(
        _select(schema, sql.SQL("table_name = %s AND fingerprint = %s")), (table, fp)
    ).fetchone()
    return OperationState(*row) if row else None


def active(conn: psycopg.Connection[Any], schema: str, table: str) -> OperationState | None:
    if not exists(conn, schema):
        return None
    row = conn.execute(
        _select(schema, sql.SQL("table_name = %s AND phase IN ('expanding', 'expanded')")), (table,)
    ).fetchone()
    return OperationState(*row) if row else None


def insert(
    conn: psycopg.Connection[Any],
    schema: str,
    *,
    table: str,
    fp: str,
    source: str,
    operations: list[dict[str, Any]],
    table_info: dict[str, Any],
    refs: dict[str, Any],
    volatile_defaults: list[int],
    pre_fingerprint: str,
    backfill_max: list[str] | None,
    rows_total: int,
    rebuilds: list[dict[str, Any]] | None = None,
) -> None:
    """Record a new expand (replacing an aborted attempt of the same change)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (table_name, fingerprint, source, operations, table_info, refs, volatile_defaults, "
            "pre_fingerprint, phase, backfill_cursor, backfill_max, rows_total, rebuilds) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'expanding', NULL, %s, %s, %s) "
            "ON CONFLICT (table_name, fingerprint) DO UPDATE SET source = EXCLUDED.source, "
            "operations = EXCLUDED.operations, table_info = EXCLUDED.table_info, refs = EXCLUDED.refs, "
            "volatile_defaults = EXCLUDED.volatile_defaults, pre_fingerprint = EXCLUDED.pre_fingerprint, "
            "phase = 'expanding', backfill_cursor = NULL, backfill_max = EXCLUDED.backfill_max, "
            "rows_total = EXCLUDED.rows_total, rows_done = 0, started_at = now(), expanded_at = NULL, "
            "finished_at = NULL, updated_at = now(), rebuilds = EXCLUDED.rebuilds"
        ).format(_t(schema)),
        (
            table,
            fp,
            source,
            Jsonb(operations),
            Jsonb(table_info),
            Jsonb(refs),
            Jsonb(volatile_defaults),
            pre_fingerprint,
            Jsonb(backfill_max) if backfill_max is not None else None,
            rows_total,
            Jsonb(rebuilds or []),
        ),
    )


def save_cursor(
    conn: psycopg.Connection[Any], schema: str, table: str, fp: str, cursor: list[str], rows: int
) -> None:
    """Advance the backfill cursor; call inside the batch's transaction."""
    conn.execute(
        sql.SQL(
            "UPDATE {} SET backfill_cursor = %s, rows_done = rows_done + %s, updated_at = now() "
            "WHERE table_name = %s AND fingerprint = %s"
        ).format(_t(schema)),
        (Jsonb(cursor), rows, table, fp),
    )


def set_total(conn: psycopg.Connection[Any], schema: str, table: str, fp: str, total: int) -> None:
    conn.execute(
        sql.SQL("UPDATE {} SET rows_total = %s WHERE table_name = %s AND fingerprint = %s").format(
            _t(schema)
        ),
        (total, table, fp),
    )


def cursor_statement(
    schema: str, table: str, fp: str, cursor: list[str], rows: sql.Composable
) -> sql.Composed:
    """The cursor update as a statement to embed in a batch's own statement (`rows`: SQL for rows visited)."""
    return sql.SQL(
        "UPDATE {} SET backfill_cursor = {}::jsonb, rows_done = rows_done + {}, updated_at = now() "
        "WHERE table_name = {} AND fingerprint = {}"
    ).format(_t(schema), sql.Literal(json.dumps(cursor)), rows, sql.Literal(table), sql.Literal(fp))


def watermark_statement(schema: str, table: str, fp: str, key: int, rows: int) -> sql.Composed:
    """Move an integer-key backfill's cursor forward to `key`, with `rows` visited up to it (absolute), never
    back: the statements of several backfill workers may commit out of order."""
    return sql.SQL(
        "UPDATE {} SET backfill_cursor = {}::jsonb, rows_done = {}, updated_at = now() "
        "WHERE table_name = {} AND fingerprint = {} "
        "AND (backfill_cursor IS NULL OR (backfill_cursor->>0)::numeric < {})"
    ).format(_t(schema), sql.Literal(json.dumps([str(key)])), sql.Literal(rows), sql.Literal(table),
             sql.Literal(fp), sql.Literal(key))


def set_phase_sql(schema: str, table: str, fp: str, phase: str) -> sql.Composed:
    """`set_phase` as one statement with its values inlined (for a transaction another engine runs: the
    evolution saga's DDL step of a pipeline table's contract)."""
    assert phase in PHASES
    stamp = {"expanded": "expanded_at", "contracted": "finished_at", "aborted": "finished_at"}.get(phase)
    extra = sql.SQL(", {} = now()").format(sql.Identifier(stamp)) if stamp else sql.SQL("")
    return sql.SQL("UPDATE {} SET phase = {}, updated_at = now(){} WHERE table_name = {} AND fingerprint = {}").format(
        _t(schema), sql.Literal(phase), extra, sql.Literal(table), sql.Literal(fp))


def set_phase(conn: psycopg.Connection[Any], schema: str, table: str, fp: str, phase: str) -> None:
    assert phase in PHASES
    stamp = {"expanded": "expanded_at", "contracted": "finished_at", "aborted": "finished_at"}.get(phase)
    extra = sql.SQL(", {} = now()").format(sql.Identifier(stamp)) if stamp else sql.SQL("")
    conn.execute(
        sql.SQL(
            "UPDATE {} SET phase = %s, updated_at = now(){} WHERE table_name = %s AND fingerprint = %s"
        ).format(_t(schema), extra),
        (phase, table, fp),
    )
