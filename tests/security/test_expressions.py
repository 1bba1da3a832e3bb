"""Every payload of the corpus through the one expression gate, in each role an expression can have, against a
real database: the hostile ones are refused, the side-effecting ones are accepted and never run, the legitimate
ones pass; the canary survives and nothing is written."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from migrate_assets.schema.exprcheck import (
    Expression,
    canonical_forms,
    check_expressions,
    is_volatile,
    referenced_columns,
    relation_shape,
)
from migrate_assets.schema.sqltext import check_expression
from tests.security.conftest import assert_canary_alive, snapshot
from tests.security.corpus import LEGIT, NO_SUBQUERY, OFFLINE, PARSE, REJECTED, UNRUN

ITEMS = sql.Identifier("public", "items")


def roles(text: str) -> list[Expression]:
    """`text` as a default (no columns), an index predicate, and an up/backfill value over `items`."""
    return [
        Expression(text, "spec.yaml", "columns[0].default", 7, type_sql="text", label="default"),
        Expression(f"({text}) IS NOT NULL", "spec.yaml", "indexes[0].where", 9, source=ITEMS, predicate=True),
        Expression(text, "change.yaml", "operations[0].change_type.up", 3, type_sql="text", source=ITEMS,
                   subqueries=True, label="up"),
    ]


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_the_offline_scanner_refuses(name: str) -> None:
    assert check_expression(OFFLINE[name])
    assert check_expression(OFFLINE[name], subqueries=True)


def test_subqueries_only_where_postgres_takes_them(canary_db: str) -> None:
    before = snapshot(canary_db)
    with psycopg.connect(canary_db, autocommit=True) as conn:
        for text in NO_SUBQUERY.values():
            default, predicate, up = roles(text)
            assert len(check_expressions(conn, [default, predicate])) == 2
            assert check_expressions(conn, [up]) == []
    assert_canary_alive(canary_db, before)


def test_every_role_refuses_the_hostile_corpus(canary_db: str) -> None:
    before = snapshot(canary_db)
    with psycopg.connect(canary_db, autocommit=True) as conn:
        for name, text in REJECTED.items():
            exprs = roles(text)
            problems = check_expressions(conn, exprs)
            assert len(problems) == len(exprs), (name, problems)
            for p, e in zip(sorted(problems, key=lambda p: p.key), sorted(exprs, key=lambda e: e.key), strict=True):
                assert (p.file, p.line, p.key) == (e.file, e.line, e.key)
                assert repr(e.text) in p.message
    assert_canary_alive(canary_db, before)


def test_parse_only_payloads_pass_the_scanner(canary_db: str) -> None:
    """The PARSE group is what only Postgres can refuse: proof the authoritative check is exercised."""
    for text in PARSE.values():
        assert check_expression(text, subqueries=True) is None, text


def test_side_effects_are_accepted_and_never_run(canary_db: str) -> None:
    before = snapshot(canary_db)
    start = time.monotonic()
    with psycopg.connect(canary_db, autocommit=True) as conn:
        pid = conn.info.backend_pid
        defaults = [Expression(t, "s.yaml", k, type_sql="text") for k, t in UNRUN.items()]
        assert check_expressions(conn, defaults) == []
        forms = canonical_forms(conn, defaults)  # planned, not run
        assert all(f is not None for f in forms), forms
        assert [is_volatile(conn, e) for e in defaults] == [True] * len(defaults)
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (pid,)  # terminate_self did not run
        assert conn.execute("SHOW search_path").fetchone() != ("pg_temp",)  # set_config did not run
    assert time.monotonic() - start < 20  # pg_sleep(30) did not run
    assert_canary_alive(canary_db, before)


def test_legitimate_expressions_pass_in_every_role(canary_db: str) -> None:
    with psycopg.connect(canary_db, autocommit=True) as conn:
        for text in LEGIT.values():
            assert check_expressions(conn, roles(text)) == [], text
        stable = [Expression(t, "s", "k", type_sql="text") for t in ("'x'", "now()::text")]
        assert [is_volatile(conn, e) for e in stable] == [False, False]


def test_referenced_columns_are_found_without_running_anything(canary_db: str) -> None:
    cols = [("id", "integer"), ("c0", "text"), ("c1", "text"), ("Mixed Case", "text")]
    with psycopg.connect(canary_db, autocommit=True) as conn:
        e = Expression("c0 || \"Mixed Case\" || id::text || 'c1'", "f", "k", type_sql="text", source=ITEMS)
        assert referenced_columns(conn, e, cols, "items") == ("id", "c0", "Mixed Case")
        shape = relation_shape(cols, "items")
        e2 = Expression("items.c1 > ''", "f", "k", source=shape, predicate=True)
        assert check_expressions(conn, [e2]) == []
        assert referenced_columns(conn, e2, cols, "items") == ("c1",)


def test_a_second_statement_never_reaches_postgres_even_past_the_scanner(canary_db: str) -> None:
    """Belt and braces: were the scanner fooled, the parse-only prepare still refuses a second statement."""
    from migrate_assets.schema import exprcheck

    before = snapshot(canary_db)
    with psycopg.connect(canary_db, autocommit=True) as conn, exprcheck.read_only(conn):
        err = exprcheck._parse_only(conn, b"SELECT 1; DROP TABLE canary")
    assert err is not None and "multiple commands" in err
    assert_canary_alive(canary_db, before)
