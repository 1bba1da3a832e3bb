"""What passes the gate reads the same in every session.

Most user SQL is parsed once, by the DDL that stores it (a default, an index predicate). The bodies of the SQL
functions expand generates for `up` / `down` / `backfill` are not: Postgres keeps their text and every session
that fires the sync trigger reads it again, with that session's `standard_conforming_strings`. These tests build
the functions with expand's own builder and call them from a session with it off."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from migrate_assets.expand.planner import _function
from migrate_assets.schema.exprcheck import Expression, check_expressions
from tests.security.conftest import assert_canary_alive, snapshot
from tests.security.corpus import CANARY, LEGIT, OFFLINE


def _create(conn: psycopg.Connection[Any], name: str, text: str) -> sql.Composable:
    step, _ = _function("public", name, [], [], "text", text)
    for stmt in step.forward:
        conn.execute(stmt)
    return sql.SQL("SELECT {}()").format(sql.Identifier("public", name))


def _call(conn: psycopg.Connection[Any], call: sql.Composable, scs: str) -> tuple[str, Any]:
    conn.execute(sql.SQL("SET standard_conforming_strings = {}").format(sql.SQL(scs)))
    try:
        with conn.transaction():
            row = conn.execute(call).fetchone()
        return "value", row[0] if row else None
    except psycopg.Error as exc:
        return "error", exc.sqlstate
    finally:
        conn.execute("SET standard_conforming_strings = on")


def test_every_legitimate_expression_reads_the_same_with_standard_conforming_strings_off(canary_db: str) -> None:
    with psycopg.connect(canary_db, autocommit=True) as conn:
        assert check_expressions(conn, [Expression(t, "f", k, type_sql="text") for k, t in LEGIT.items()]) == []
        calls = {k: _create(conn, f"legit_{i}", t) for i, (k, t) in enumerate(sorted(LEGIT.items()))}
    before = snapshot(canary_db)
    with psycopg.connect(canary_db, autocommit=True) as conn:
        for k, call in calls.items():
            with conn.transaction():  # one transaction: now() is the same for both calls
                on, off = _call(conn, call, "on"), _call(conn, call, "off")
            assert on[0] == "value", (k, on)
            # off: the same value, or Postgres refuses (U&'' literals are refused there): never another reading
            assert off == on or (off == ("error", "0A000") and LEGIT[k].startswith("U&")), (k, on, off)
    assert_canary_alive(canary_db, before)


def test_the_gate_refuses_what_a_session_with_standard_conforming_strings_off_reads_as_statements(
    canary_db: str,
) -> None:
    """The payload is no theory: embedded the way expand embeds an `up`, one call from a session with
    standard_conforming_strings off deletes the canary's rows. The gate refuses it, offline and in every role."""
    payload = OFFLINE["scs_off_function_body"]
    with psycopg.connect(canary_db, autocommit=True) as conn:
        problems = check_expressions(conn, [Expression(payload, "change.yaml", "operations[0].change_type.up", 4,
                                                       type_sql="text", subqueries=True)])
        assert len(problems) == 1 and "standard_conforming_strings" in problems[0].message
        assert (problems[0].file, problems[0].line) == ("change.yaml", 4)
        # what the gate stops: the same text past it, as expand's function builder would embed it
        call = _create(conn, "unguarded", payload)
        assert _call(conn, call, "on")[0] == "value"
        assert conn.execute(f"SELECT count(*) FROM {CANARY}").fetchone() == (1,)  # noqa: S608
        _call(conn, call, "off")
        assert conn.execute(f"SELECT count(*) FROM {CANARY}").fetchone() == (0,)  # noqa: S608


@pytest.mark.parametrize(("name", "wrap"), [("e_string_continuation", "SELECT {}"),
                                           ("nbsp_dollar_is_identifier", "SELECT ({})"),
                                           ("nbsp_e_is_identifier", "SELECT {}")])
def test_the_scanner_reads_literals_where_postgres_does(canary_db: str, name: str, wrap: str) -> None:
    """Payloads the offline scanner once read as one literal and Postgres as several statements: Postgres' own
    Parse of them as a script finds more than one command, and the scanner now refuses them too."""
    from migrate_assets.schema import exprcheck
    from migrate_assets.schema.sqltext import check_expression

    text = OFFLINE[name]
    assert check_expression(text, subqueries=True)
    before = snapshot(canary_db)
    with psycopg.connect(canary_db, autocommit=True) as conn, exprcheck.read_only(conn):
        err = exprcheck._parse_only(conn, wrap.format(text).encode())
    assert err is not None and "multiple commands" in err, err
    assert_canary_alive(canary_db, before)


def test_volatility_is_read_without_evaluating_even_stable_functions(canary_db: str) -> None:
    """`is_volatile` plans the default in a select list: a stable function is not evaluated for an estimate
    (it was, as the comparison value of an index condition: `current_setting` of an unknown name failed there)."""
    from migrate_assets.schema.exprcheck import is_volatile

    def vol(text: str) -> bool:
        return is_volatile(conn, Expression(text, "f", "k", type_sql="text"))

    before = snapshot(canary_db)
    with psycopg.connect(canary_db, autocommit=True) as conn:
        assert vol("current_setting('no.such.setting')") is False
        assert vol("txid_current()::text") is False
        assert [vol(t) for t in ("'x'", "now()::text", "upper('x')")] == [False, False, False]
        assert [vol(t) for t in ("random()::text", "clock_timestamp()::text", "gen_random_uuid()::text",
                                 "CASE WHEN random() < 2 THEN 'a' END", "nextval('canary_seq')::text")] == [True] * 5
    assert_canary_alive(canary_db, before)
