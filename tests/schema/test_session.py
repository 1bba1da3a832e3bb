"""Timeouts and lock holders, written once for every engine that runs DDL."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.schema.session import (
    lock_holders,
    pg_duration,
    session_timeouts,
    set_timeouts,
    timeouts_sql,
)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.25, "250ms"), (2, "2000ms"), (2.0005, "2000ms"), (0, "0ms"), (0.0004, "1ms"), (-1, "0ms")],
)
def test_duration_in_milliseconds_and_a_positive_one_never_means_no_limit(seconds: float, expected: str) -> None:
    assert pg_duration(seconds) == expected


def test_timeouts_sql_sets_only_what_is_given() -> None:
    both = timeouts_sql(local=True, lock_timeout=0.1, statement_timeout=0)
    assert both.as_string() == "SET LOCAL lock_timeout = '100ms';\nSET LOCAL statement_timeout = '0ms'"
    assert timeouts_sql(local=False, statement_timeout=3).as_string() == "SET statement_timeout = '3000ms'"


def _settings(conn: psycopg.Connection) -> tuple[str, str]:
    row = conn.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')").fetchone()
    assert row is not None
    return row[0], row[1]


def test_local_timeouts_end_with_the_transaction(module_dsn: str) -> None:
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        with conn.transaction():
            set_timeouts(conn, local=True, lock_timeout=0.25, statement_timeout=2)
            assert _settings(conn) == ("250ms", "2s")
        assert _settings(conn) == ("0", "0")


def test_session_timeouts_reset_only_what_they_set(module_dsn: str) -> None:
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        set_timeouts(conn, local=False, statement_timeout=5)  # the caller's own setting
        with session_timeouts(conn, lock_timeout=0.25):
            assert _settings(conn) == ("250ms", "5s")
        assert _settings(conn) == ("0", "5s")


def test_lock_holders_names_the_blocking_session(module_dsn: str) -> None:
    with psycopg.connect(module_dsn, autocommit=True) as conn, psycopg.connect(module_dsn) as other:
        conn.execute("CREATE TABLE held (id int)")
        other.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        pid = other.info.backend_pid
        assert lock_holders(conn, "public.held") == f"pid {pid} holds AccessExclusiveLock (idle in transaction)"
        other.rollback()
        assert lock_holders(conn, "public.held") == ""
        assert lock_holders(conn, "no such table!") == ""
