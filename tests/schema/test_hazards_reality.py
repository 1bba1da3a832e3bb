"""Hazard predictions against what Postgres really does: relfilenode (rewrite) and pg_locks (lock mode).

Each transactional change runs inside an open transaction on a table with rows; we read the table's
relfilenode and the locks our backend holds before rolling back.
"""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import apply, execute, plan

CASES = [
    # (name, v1 column type/extra, v2 column type/extra, expected kinds)
    ("varchar_widen", "{name: v, type: varchar(10)}", "{name: v, type: varchar(20)}"),
    ("varchar_to_text", "{name: v, type: varchar(10)}", "{name: v, type: text}"),
    ("varchar_narrow", "{name: v, type: varchar(20)}", "{name: v, type: varchar(10)}"),
    ("numeric_widen", "{name: v, type: 'numeric(10,2)'}", "{name: v, type: 'numeric(12,2)'}"),
    ("numeric_scale", "{name: v, type: 'numeric(10,2)'}", "{name: v, type: 'numeric(12,3)'}"),
    ("int_to_bigint", "{name: v, type: int}", "{name: v, type: bigint}"),
    ("int_to_text", "{name: v, type: int}", "{name: v, type: text}"),
    ("ts_precision", "{name: v, type: timestamp(3)}", "{name: v, type: timestamp(6)}"),
    ("add_nullable", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: text, nullable: true}"),
    ("add_default", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: text, default: \"'x'\"}"),
    ("add_now", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: timestamptz, default: now()}"),
    ("add_serial", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: serial}"),
    ("add_volatile_nullable", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: float8, nullable: true, default: random()}"),
    ("add_volatile_notnull", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: uuid, default: gen_random_uuid()}"),
    ("add_identity", "{name: v, type: int}", "{name: v, type: int}, {name: w, type: bigint, identity: always}"),
    ("set_not_null", "{name: v, type: int, nullable: true}", "{name: v, type: int}"),
    ("drop_not_null", "{name: v, type: int}", "{name: v, type: int, nullable: true}"),
    ("set_default", "{name: v, type: int}", "{name: v, type: int, default: '7'}"),
    ("rename", "{name: v, type: int}", "{name: w, type: int, renamed_from: [v]}"),
    ("drop_column", "{name: v, type: int}, {name: w, type: int}", "{name: v, type: int}"),
    ("comment", "{name: v, type: int}", "{name: v, type: int, comment: hello}"),
]  # fmt: skip


def _spec(name: str, cols: str) -> str:
    return f"table: {name}\ncolumns: [{{name: id, type: int, primary_key: true}}, {cols}]\n"


@pytest.mark.parametrize(("name", "v1", "v2"), CASES, ids=[c[0] for c in CASES])
def test_transactional_hazards_match_postgres(module_dsn: str, name: str, v1: str, v2: str) -> None:
    apply(module_dsn, plan(module_dsn, _spec(name, v1)))
    values = {"ts_precision": "g, now()", "drop_column": "g, g, g"}.get(name, "g, g")
    execute(module_dsn, f"INSERT INTO {name} SELECT {values} FROM generate_series(1, 50) g")  # noqa: S608
    p = plan(module_dsn, _spec(name, v2))
    assert p.changes and all(c.transactional for c in p.changes)
    for change in p.changes:
        with psycopg.connect(module_dsn) as conn:  # not autocommit: one open transaction
            before = conn.execute("SELECT pg_relation_filenode(%s::regclass)", [name]).fetchone()
            for stmt in change.sql:
                conn.execute(stmt.encode())
            after = conn.execute("SELECT pg_relation_filenode(%s::regclass)", [name]).fetchone()
            modes = {
                r[0]
                for r in conn.execute(
                    "SELECT mode FROM pg_locks WHERE relation = %s::regclass AND pid = pg_backend_pid() AND granted",
                    [name],
                ).fetchall()
            }
            conn.rollback()
        rewrote = before != after
        assert (Hazard.REWRITES_TABLE in change.hazards) == rewrote, (change.description, change.hazards, rewrote)
        assert (Hazard.ACCESS_EXCLUSIVE_LOCK in change.hazards) == ("AccessExclusiveLock" in modes), (change.description, modes)


def test_index_builds_on_existing_tables_are_concurrent_and_do_not_rewrite(fresh_dsn: str) -> None:
    v1 = _spec("t", "{name: v, type: int}")
    apply(fresh_dsn, plan(fresh_dsn, v1))
    execute(fresh_dsn, "INSERT INTO t SELECT g, g FROM generate_series(1, 100) g")
    before = execute_scalar(fresh_dsn, "SELECT pg_relation_filenode('t')")
    p = plan(fresh_dsn, v1 + "indexes: [{name: t_v, columns: [v]}]\n")
    (c,) = p.changes
    assert c.kind == "add_index" and not c.transactional and "CONCURRENTLY" in c.sql[0]
    assert Hazard.ACCESS_EXCLUSIVE_LOCK not in c.hazards and Hazard.LONG_RUNNING in c.hazards
    apply(fresh_dsn, p)
    assert execute_scalar(fresh_dsn, "SELECT pg_relation_filenode('t')") == before
    assert execute_scalar(fresh_dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v'::regclass") is True


def execute_scalar(dsn: str, q: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(q.encode()).fetchone()
        return row[0] if row else None


def test_breaking_flags() -> None:
    from migrate_assets.schema.diff import diff
    from tests.schema.helpers import tables

    (live,) = tables(_spec("t", "{name: v, type: varchar(20)}, {name: w, type: int}"))
    (want,) = tables(_spec("t", "{name: v, type: varchar(10)}, {name: x, type: int, renamed_from: [w]}"))
    res = diff([want], {live.key: live}, nonempty=set())
    by_kind = {c.kind: c for c in res.changes}
    assert by_kind["alter_type"].breaking and Hazard.NOT_REVERSIBLE in by_kind["alter_type"].hazards
    assert by_kind["rename_column"].breaking and by_kind["rename_column"].inverse_sql
    (drop,) = diff([], {live.key: live}, drop_tables=[live.key]).changes
    assert drop.kind == "drop_table" and drop.breaking and drop.inverse_sql is None
