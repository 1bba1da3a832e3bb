"""A database with a canary (table with a row, a sequence) and a way to prove nothing was written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.security.corpus import CANARY, CANARY_SEQ

#: columns of `items`, the existing table the change files work on (change_type needs one column per payload)
ITEM_COLUMNS = 64


def snapshot(dsn: str) -> dict[str, Any]:
    """What a write would change: relations, columns with their defaults, the canary's rows, the sequence's
    position, large objects and functions. (Write counters are not compared: autovacuum moves them too.)"""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rels = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
            "AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%' ORDER BY 1, 2"
        ).fetchall()
        cols = conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2"
        ).fetchall()
        rows = conn.execute(f"SELECT * FROM {CANARY} ORDER BY 1").fetchall()  # noqa: S608
        seq = conn.execute(f"SELECT last_value, is_called FROM {CANARY_SEQ}").fetchone()  # noqa: S608
        los = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        procs = conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace").fetchone()
    return {"relations": rels, "columns": cols, "canary": rows, "sequence": seq, "large_objects": los,
            "functions": procs}


@pytest.fixture
def canary_db(fresh_dsn: str) -> Iterator[str]:
    """`fresh_dsn` with the canary table (one row), its sequence, dblink installed, and `items` (a primary key
    and text columns c0…c63, three rows) for change files to work on."""
    cols = ", ".join(f"c{i} text" for i in range(ITEM_COLUMNS))
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {CANARY} (id int PRIMARY KEY, note text)")
        conn.execute(f"INSERT INTO {CANARY} VALUES (1, 'still here')")  # noqa: S608
        conn.execute(f"CREATE SEQUENCE {CANARY_SEQ}")
        conn.execute("CREATE EXTENSION IF NOT EXISTS dblink")
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, {cols})")
        conn.execute("INSERT INTO items (id, c0) SELECT g, 'v' || g FROM generate_series(1, 3) g")
    yield fresh_dsn


def assert_canary_alive(dsn: str, before: dict[str, Any]) -> None:
    after = snapshot(dsn)
    assert after["canary"] == [(1, "still here")]
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
