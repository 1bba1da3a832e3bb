"""`expand-status` (a read-only command) and `contract` count rows whose new column differs from `up(old)` by
evaluating the user's `up` over every row. A read-only session stops local writes, not a function with effects
outside the transaction: here `dblink_exec` logs one row per evaluation through its own connection. So
`expand.status.compute_status` evaluates `up` only when its plan shows no volatile function; otherwise the
mismatch count is "not checked" (None), the change is not safe to contract, and `contract` refuses (exit 3)
unless forced."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from migrate_assets.cli.expand_cmd import _status_md, _status_text
from migrate_assets.errors import NotSafeToContractError
from migrate_assets.expand import runner
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema.exprcheck import Expression, is_volatile
from migrate_assets.schema.session import read_only_options


def _logging_change(dsn: str) -> ChangeSet:
    """`rt_items` (3 rows) and a change whose `up` inserts one `rt_log` row per evaluation, via dblink; expanded
    (the backfill runs `up`: that is what expand is for), then the log emptied."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    target = " ".join(f"{k}={info[k]}" for k in ("host", "port", "dbname", "user", "password") if info.get(k))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE rt_log (at timestamptz DEFAULT now())")
        conn.execute("CREATE TABLE rt_items (id int PRIMARY KEY, n text)")
        conn.execute("INSERT INTO rt_items SELECT g, g::text FROM generate_series(1, 3) g")
    up = (f"CASE WHEN dblink_exec('{target}', 'INSERT INTO rt_log DEFAULT VALUES') IS NULL THEN 0 "
          "ELSE n::integer END")
    change = parse_change_text(f'table: rt_items\noperations:\n  - change_type: {{column: n, to_type: integer, '
                               f'up: "{up}"}}\n')
    with psycopg.connect(dsn, autocommit=True) as conn:
        runner.expand(conn, change, runner.Options())
        assert conn.execute("SELECT count(*) FROM rt_log").fetchone() == (3,)  # the log really logs
        conn.execute("TRUNCATE rt_log")
    return change


def _logged(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        (n,) = conn.execute("SELECT count(*) FROM rt_log").fetchone() or (0,)
    return int(n)


def test_expand_status_runs_no_user_expression(canary_db: str) -> None:
    change = _logging_change(canary_db)
    with psycopg.connect(canary_db, autocommit=True, options=read_only_options(canary_db)) as conn:
        st = runner.status(conn, change)
        with pytest.raises(NotSafeToContractError, match="volatile function"):
            runner.contract(conn, change, dry_run=True)
        dry = runner.contract(conn, change, dry_run=True, force=True)
    assert _logged(canary_db) == 0
    assert (st.phase, st.rows_to_backfill, st.mismatched_rows, st.safe_to_contract) == ("expanded", 0, None, False)
    assert st.operations[0].mismatched_rows is None and st.operations[0].expanded
    assert len(st.not_checked) == 1 and "volatile" in st.not_checked[0] and "--force" in st.not_checked[0]
    assert any("not compared" in r for r in st.reasons)
    doc = st.to_json()
    assert doc["mismatched_rows"] is None and doc["operations"][0]["mismatched_rows"] is None
    assert "mismatched rows: not checked" in _status_text(doc) and "mismatched=not checked" in _status_text(doc)
    assert "mismatched rows not checked" in _status_md(doc)
    assert dry["status"] == "dry_run" and dry["safe_to_contract"] is False


def test_contract_refuses_an_unchecked_up_unless_forced(canary_db: str) -> None:
    change = _logging_change(canary_db)
    with psycopg.connect(canary_db) as conn:
        with pytest.raises(NotSafeToContractError, match="volatile function") as exc:
            runner.contract(conn, change)
        assert exc.value.exit_code == 3 and "--force" in str(exc.value)
        conn.rollback()
        assert _logged(canary_db) == 0
        cols = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'rt_items'::regclass "
                            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum").fetchall()
        assert len(cols) == 3  # id, n and the new column: nothing contracted
        out = runner.contract(conn, change, force=True)
    assert out["status"] == "contracted" and out["forced"] is True
    assert _logged(canary_db) == 0
    with psycopg.connect(canary_db, autocommit=True) as conn:
        assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'rt_items'::regclass AND attname = 'n'").fetchone() == ("integer",)
        assert conn.execute("SELECT n FROM rt_items ORDER BY id").fetchall() == [(1,), (2,), (3,)]


def test_a_stable_up_is_still_checked(canary_db: str) -> None:
    """Only volatile calls are held back: a stable `up` (now()) and a plain cast are compared row by row, and a
    row written past the trigger is still found."""
    change = parse_change_text('table: items\noperations:\n  - change_type: {column: c0, to_type: text, '
                               'up: "CASE WHEN now() IS NULL THEN NULL ELSE upper(c0) END"}\n')
    with psycopg.connect(canary_db, autocommit=True) as conn:
        runner.expand(conn, change, runner.Options())
        st = runner.status(conn, change)
        assert (st.mismatched_rows, st.not_checked, st.safe_to_contract) == (0, [], True), st.reasons
        assert st.trigger is not None
        conn.execute(sql.SQL("ALTER TABLE items DISABLE TRIGGER {}").format(sql.Identifier(st.trigger)))
        conn.execute("UPDATE items SET c0 = 'changed' WHERE id = 1")
        st = runner.status(conn, change)
    assert (st.mismatched_rows, st.operations[0].mismatched_rows, st.safe_to_contract) == (1, 1, False)


def test_volatility_over_columns_is_read_from_the_plan(canary_db: str) -> None:
    source = sql.Identifier("public", "items")
    cases = {
        "c0": False,
        "items.c0 || id::text": False,
        "now()::text || c0": False,
        "(SELECT max(i.c0) FROM items i JOIN items j ON i.id = j.id)": False,  # a join inside is not the probe's
        "random()::text || c0": True,
        "CASE WHEN c1 IS NULL THEN c0 ELSE nextval('canary_seq')::text END": True,
        "(SELECT dblink_exec('dbname=nowhere', c0))": True,
    }
    with psycopg.connect(canary_db, autocommit=True) as conn:
        found = {t: is_volatile(conn, Expression(t, "f", "up", type_sql="text", source=source, subqueries=True))
                 for t in cases}
    assert found == cases
