"""Expand → status → contract / abort against a real PostgreSQL: shapes, gates, idempotency, validation."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import (
    ChangeFileError,
    ExpandConflictError,
    NotSafeToContractError,
    TransientError,
)
from migrate_assets.expand import runner, table_fingerprint
from tests.expand.conftest import change, columns, expand, helper_objects, make_items, status

ALL_OPS = """
table: public.items
operations:
  - rename_column: {from: email, to: email_address}
  - change_type: {column: amount, to_type: int8}
  - change_type: {column: code, to_type: integer, up: "nullif(code, '')::integer", down: "coalesce(code::text, '')"}
  - add_column: {name: tier, type: text, nullable: true, default: "'bronze'"}
  - drop_column: {column: legacy}
  - set_not_null: {column: region, backfill: "coalesce(region, 'eu')"}
"""

NEW_SHAPE = """
CREATE TABLE expected (
    id bigint PRIMARY KEY, email_address text NOT NULL, amount bigint DEFAULT 0, code integer,
    region text NOT NULL, note text, tier text DEFAULT 'bronze'
)
"""


def fingerprint(dsn: str, table: str = "items") -> str:
    with psycopg.connect(dsn) as conn:
        return table_fingerprint(conn, "public", table)


def relfilenode(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int((conn.execute("SELECT pg_relation_filenode('items')").fetchone() or (0,))[0])


def test_contract_leaves_exactly_the_new_shape(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 3000)
    ch = change(ALL_OPS)
    node = relfilenode(fresh_dsn)
    res = expand(fresh_dsn, ch, batch_size=700)
    assert res["status"] == "expanded" and res["backfill"]["rows_visited"] == 3000
    assert relfilenode(fresh_dsn) == node, "expand must not rewrite the table"
    assert set(res["new_columns"]) == {"email_address", "_ma_new_amount", "_ma_new_code", "tier"}
    st = status(fresh_dsn, ch)
    assert st.safe_to_contract, st.reasons
    with psycopg.connect(fresh_dsn) as conn:
        out = runner.contract(conn, ch)
        assert out["status"] == "contracted"
        conn.execute(NEW_SHAPE)
        conn.commit()
    assert sorted(columns(fresh_dsn)) == sorted(columns(fresh_dsn, "expected"))
    assert helper_objects(fresh_dsn) == []
    with psycopg.connect(fresh_dsn) as conn:
        rows = conn.execute(
            "SELECT id, email_address, amount, code, region FROM items WHERE id IN (3, 4) ORDER BY id"
        )
        assert rows.fetchall() == [
            (3, "user3@example.com", 3, None, "eu"),
            (4, "user4@example.com", 4, 4, "us"),
        ]
        # the new shape works with plain inserts relying on the carried-over defaults
        conn.execute("INSERT INTO items (id, email_address, region) VALUES (-1, 'a@b', 'x')")
        assert conn.execute("SELECT amount, tier FROM items WHERE id = -1").fetchone() == (0, "bronze")
        # contract again is a no-op, expand after contract too
        assert runner.contract(conn, ch)["status"] == "already_contracted"
        assert runner.expand(conn, ch)["status"] == "already_contracted"


def test_abort_restores_the_exact_old_shape(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 2000)
    before, cols = fingerprint(fresh_dsn), columns(fresh_dsn)
    ch = change(ALL_OPS)
    expand(fresh_dsn, ch, batch_size=500)
    assert fingerprint(fresh_dsn) != before
    with psycopg.connect(fresh_dsn) as conn:
        # a new-shape insert (legacy omitted) must be repaired before NOT NULL can come back
        conn.execute("INSERT INTO items (id, email_address, legacy) VALUES (-5, 'x@y', 'l')")
        conn.commit()
        out = runner.abort(conn, ch)
    assert out["status"] == "aborted" and out["schema_restored"] is True
    assert fingerprint(fresh_dsn) == before
    assert columns(fresh_dsn) == cols
    assert helper_objects(fresh_dsn) == []
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT email FROM items WHERE id = -5").fetchone() == ("x@y",)
        assert runner.abort(conn, ch)["status"] == "already_aborted"
    # an aborted change can be expanded again
    assert expand(fresh_dsn, ch)["status"] == "expanded"


def test_expand_twice_is_a_no_op(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 1000)
    ch = change(ALL_OPS)
    assert expand(fresh_dsn, ch)["status"] == "expanded"
    fp = fingerprint(fresh_dsn)
    with psycopg.connect(fresh_dsn) as conn:
        state_before = conn.execute(
            "SELECT rows_done, phase, updated_at FROM migrate_assets_operations"
        ).fetchall()
    again = expand(fresh_dsn, ch)
    assert again["status"] == "already_expanded"
    assert fingerprint(fresh_dsn) == fp
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute(
            "SELECT rows_done, phase, updated_at FROM migrate_assets_operations"
        ).fetchall() == (state_before)


def test_contract_refused_while_unsafe_and_forced(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 500)
    ch = change("table: items\noperations:\n  - change_type: {column: amount, to_type: bigint}\n")
    with psycopg.connect(fresh_dsn) as conn, pytest.raises(NotSafeToContractError) as exc:
        runner.contract(conn, ch)
    assert exc.value.exit_code == 3 and "expand first" in str(exc.value)
    expand(fresh_dsn, ch)
    with psycopg.connect(fresh_dsn) as conn:
        # a writer that bypasses the trigger makes old and new disagree
        trigger = runner.status(conn, ch).trigger
        conn.execute(f'ALTER TABLE items DISABLE TRIGGER "{trigger}"')
        conn.execute("UPDATE items SET amount = amount + 1 WHERE id <= 7")
        conn.commit()
        st = runner.status(conn, ch)
        assert (st.trigger_enabled, st.mismatched_rows, st.safe_to_contract) == (False, 7, False)
        with pytest.raises(NotSafeToContractError, match="7 rows"):
            runner.contract(conn, ch)
        assert "_ma_new_amount" in [c[0] for c in columns(fresh_dsn)]
        out = runner.contract(conn, ch, force=True)
        assert out["status"] == "contracted" and out["forced"] is True
    assert columns(fresh_dsn)[-1] == ("amount", "bigint", False)


def test_not_null_with_nulls_left_is_refused_even_when_forced(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 100)
    before = fingerprint(fresh_dsn)
    ch = change("table: items\noperations:\n  - set_not_null: {column: region}\n")
    expand(fresh_dsn, ch)
    st = status(fresh_dsn, ch)
    assert st.operations[0].null_rows == 50 and not st.safe_to_contract
    with psycopg.connect(fresh_dsn) as conn:
        with pytest.raises(NotSafeToContractError, match="contains null values|violated"):
            runner.contract(conn, ch, force=True)
        assert runner.abort(conn, ch)["schema_restored"] is True
    assert fingerprint(fresh_dsn) == before


@pytest.mark.parametrize(
    ("yaml_op", "key", "message"),
    [
        (
            "change_type: {column: code, to_type: integer, up: \"nullif(code, '')::integr\"}",
            "up",
            'type "integr" does not exist',
        ),
        (
            'change_type: {column: code, to_type: integer, up: "nope + 1"}',
            "up",
            'column "nope" does not exist',
        ),
        (
            'change_type: {column: code, to_type: integer, up: "1) AS integer); DROP TABLE items; SELECT CAST((1"}',
            "up",
            "';' is not allowed",
        ),
        ('change_type: {column: amount, to_type: "bigint, x int"}', "to_type", "invalid type"),
        ('change_type: {column: amount, to_type: bigint, down: "amount::text::uuid"}', "down", ""),
        ('set_not_null: {column: region, backfill: "coalesce(region, 1"}', "backfill", "unbalanced '('"),
        ('add_column: {name: t, type: text, default: "now("}', "default", "unbalanced '('"),
        ("change_type: {column: missing, to_type: bigint}", "column", "does not exist"),
        ("change_type: {column: id, to_type: integer}", "column", "primary key"),
        ("rename_column: {from: email, to: code}", "to", "already exists"),
    ],
)
def test_invalid_expression_changes_nothing(fresh_dsn: str, yaml_op: str, key: str, message: str) -> None:
    make_items(fresh_dsn, 10)
    before = fingerprint(fresh_dsn)
    ch = change(f"table: items\noperations:\n  - {yaml_op}\n", "bad.yaml")
    with pytest.raises(ChangeFileError) as exc:
        expand(fresh_dsn, ch)
    assert exc.value.exit_code == 2
    (problem,) = exc.value.problems
    assert problem.file == "bad.yaml" and problem.line == 3 and problem.key.endswith("." + key)
    assert message in problem.message
    assert fingerprint(fresh_dsn) == before
    assert helper_objects(fresh_dsn) == []
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT to_regclass('migrate_assets_operations')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (10,)


def test_one_active_change_per_table(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 10)
    first = change("table: items\noperations:\n  - drop_column: {column: note}\n")
    second = change("table: items\noperations:\n  - drop_column: {column: legacy}\n")
    expand(fresh_dsn, first)
    with pytest.raises(ExpandConflictError) as exc:
        expand(fresh_dsn, second)
    assert exc.value.exit_code == 3


def test_quoted_names_volatile_default_and_percent(fresh_dsn: str) -> None:
    """Every identifier is quoted; a volatile default is backfilled instead of rewriting the table."""
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute('CREATE SCHEMA "Sales"')
        conn.execute(
            'CREATE TABLE "Sales"."Order Lines" ("Line No" int PRIMARY KEY, "user" int, "select" text)'
        )
        conn.execute('INSERT INTO "Sales"."Order Lines" SELECT g, g, g::text FROM generate_series(1, 300) g')
        conn.commit()
        node = conn.execute("""SELECT pg_relation_filenode('"Sales"."Order Lines"')""").fetchone()
    ch = change(
        'table: "Sales.Order Lines"\noperations:\n'
        '  - change_type: {column: user, to_type: bigint, up: "\\"user\\" % 7", down: "\\"user\\"::int"}\n'
        "  - rename_column: {from: select, to: Select Me}\n"
        "  - add_column: {name: uid, type: uuid, nullable: true, default: gen_random_uuid()}\n"
    )
    assert (ch.schema, ch.table) == ("Sales", "Order Lines")
    res = expand(fresh_dsn, ch, batch_size=64)
    assert res["status"] == "expanded"
    st = status(fresh_dsn, ch)
    assert st.safe_to_contract, st.reasons
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("""SELECT pg_relation_filenode('"Sales"."Order Lines"')""").fetchone() == node
        assert conn.execute(
            'SELECT count(DISTINCT uid), count(*) FILTER (WHERE uid IS NULL) FROM "Sales"."Order Lines"'
        ).fetchone() == (300, 0)
        conn.execute(
            'INSERT INTO "Sales"."Order Lines" ("Line No", "user", "select") VALUES (1000, 15, \'x\')'
        )
        assert conn.execute(
            'SELECT "_ma_new_user", "Select Me", uid IS NOT NULL FROM "Sales"."Order Lines" '
            'WHERE "Line No" = 1000'
        ).fetchone() == (1, "x", True)
        conn.commit()
        runner.contract(conn, ch, force=True)
    assert [c[0] for c in columns(fresh_dsn, '"Sales"."Order Lines"')] == [
        "Line No",
        "user",
        "Select Me",
        "uid",
    ]
    assert columns(fresh_dsn, '"Sales"."Order Lines"')[1] == ("user", "bigint", False)


@pytest.mark.parametrize(
    ("ddl", "fill"),
    [
        # composite, non-integer key: keyset batches
        (
            "CREATE TABLE kv (tenant text, n int, v integer, PRIMARY KEY (tenant, n))",
            "INSERT INTO kv SELECT 't' || (g % 7), g, g FROM generate_series(1, 2500) g",
        ),
        # sparse integer key: range batches must jump over gaps
        (
            "CREATE TABLE kv (n bigint PRIMARY KEY, v integer)",
            "INSERT INTO kv SELECT g * 100003, g FROM generate_series(1, 2500) g",
        ),
    ],
)
def test_backfill_key_shapes(fresh_dsn: str, ddl: str, fill: str) -> None:
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(ddl)
        conn.execute(fill)
    ch = change(
        'table: kv\noperations:\n  - change_type: {column: v, to_type: bigint, up: "v * 2", down: "v / 2"}\n'
    )
    res = expand(fresh_dsn, ch, batch_size=300)
    assert res["backfill"]["rows_visited"] == 2500 and res["backfill"]["rows_updated"] == 2500
    assert res["backfill"]["batches"] < 40
    st = status(fresh_dsn, ch)
    assert (st.rows_to_backfill, st.mismatched_rows, st.safe_to_contract) == (0, 0, True)
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM kv WHERE _ma_new_v <> v * 2").fetchone() == (0,)


def test_backfill_never_rewrites_old_values_through_down(fresh_dsn: str) -> None:
    """down(up(x)) != x for '007': the backfill must fill the new column without touching the old one."""
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE c (id int PRIMARY KEY, code text)")
        conn.execute("INSERT INTO c VALUES (1, '007'), (2, ''), (3, NULL), (4, '42')")
    ch = change(
        "table: c\noperations:\n  - change_type: {column: code, to_type: integer, "
        'up: "nullif(code, \'\')::integer", down: "code::text"}\n'
    )
    expand(fresh_dsn, ch)
    with psycopg.connect(fresh_dsn) as conn:
        rows = conn.execute("SELECT id, code, _ma_new_code FROM c ORDER BY id").fetchall()
        assert rows == [(1, "007", 7), (2, "", None), (3, None, None), (4, "42", 42)]
        conn.execute("UPDATE c SET _ma_new_code = 8 WHERE id = 1")  # a new-shape write does flow down
        assert conn.execute("SELECT code FROM c WHERE id = 1").fetchone() == ("8",)


def test_lock_timeout_is_retried_and_leaves_nothing_half_done(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 100)
    before = fingerprint(fresh_dsn)
    ch = change("table: items\noperations:\n  - change_type: {column: amount, to_type: bigint}\n")
    holder = psycopg.connect(fresh_dsn)
    holder.execute("LOCK TABLE items IN ACCESS SHARE MODE")  # a long reader blocks the DDL
    try:
        with psycopg.connect(fresh_dsn) as conn, pytest.raises(TransientError, match="lock timeout"):
            runner.expand(conn, ch, runner.Options(lock_timeout=0.1, attempts=3, backoff=0.05))
        assert fingerprint(fresh_dsn) == before
        assert helper_objects(fresh_dsn) == []
    finally:
        holder.close()
    assert expand(fresh_dsn, ch, lock_timeout=0.1)["status"] == "expanded"
