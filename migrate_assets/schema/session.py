"""Postgres session plumbing shared by everything that runs DDL: timeouts and who holds a lock.

A timeout given in seconds must mean the same thing whichever engine sets it, and every lock-timeout error
should name the blockers the same way, so each is written once here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

Timeout = Literal["lock_timeout", "statement_timeout"]


def pg_duration(seconds: float) -> str:
    """`seconds` as a Postgres duration in whole milliseconds (`'2000ms'`).

    Postgres reads 0 as "no limit", so a positive value never rounds down to it; 0 (or less) stays 0.
    """
    return f"{max(1, int(seconds * 1000))}ms" if seconds > 0 else "0ms"


def timeouts_sql(
    *, local: bool, lock_timeout: float | None = None, statement_timeout: float | None = None
) -> sql.Composed:
    """`SET [LOCAL] lock_timeout = '…';\\nSET [LOCAL] statement_timeout = '…'` for the timeouts given.

    A statement (not parameters) so that a script sent in one round trip, such as a versioned migration's
    transaction prefix, can embed it; `local` limits it to the current transaction.
    """
    scope = sql.SQL("SET LOCAL" if local else "SET")
    return sql.SQL(";\n").join(
        sql.SQL("{} {} = {}").format(scope, sql.SQL(name), sql.Literal(pg_duration(seconds)))
        for name, seconds in _given(lock_timeout, statement_timeout).items()
    )


def local_timeouts_calls(*, lock_timeout: float | None = None, statement_timeout: float | None = None) -> sql.Composed:
    """`set_config('lock_timeout', '…', true), …` for a SELECT list: the same as `SET LOCAL` for each timeout
    given, but one statement can carry them with other settings (a versioned migration's prefix, run per file)."""
    return sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(pg_duration(seconds)))
        for name, seconds in _given(lock_timeout, statement_timeout).items()
    )


def set_timeouts(
    conn: psycopg.Connection[Any],
    *,
    local: bool,
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> None:
    """Set the given timeouts for the current transaction (`local`) or for the session, in one round trip."""
    conn.execute(timeouts_sql(local=local, lock_timeout=lock_timeout, statement_timeout=statement_timeout))


def reset_timeouts(conn: psycopg.Connection[Any], *names: Timeout) -> None:
    """Back to the role's / database's own settings (what was in force before a session-level `SET`)."""
    for name in names:
        conn.execute(sql.SQL("RESET {}").format(sql.SQL(name)))


@contextmanager
def session_timeouts(
    conn: psycopg.Connection[Any], *, lock_timeout: float | None = None, statement_timeout: float | None = None
) -> Iterator[None]:
    """Session-level timeouts for the block (statements outside a transaction, where `SET LOCAL` cannot
    reach), reset afterwards so they do not outlive it on a connection the caller keeps."""
    set_timeouts(conn, local=False, lock_timeout=lock_timeout, statement_timeout=statement_timeout)
    try:
        yield
    finally:
        if not conn.closed:
            reset_timeouts(conn, *_given(lock_timeout, statement_timeout))


def _given(lock_timeout: float | None, statement_timeout: float | None) -> dict[Timeout, float]:
    both: dict[Timeout, float | None] = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    return {name: seconds for name, seconds in both.items() if seconds is not None}


def read_only_options(dsn: str) -> str:
    """The DSN's `options` plus `-c default_transaction_read_only=on`, for `psycopg.connect(options=…)`: every
    transaction of the session starts READ ONLY, so Postgres refuses any write in it (plan, dry runs, status,
    verify), whatever else the DSN sets. Raises psycopg.ProgrammingError for a DSN libpq cannot parse."""
    given = conninfo_to_dict(dsn).get("options") or ""
    return f"{given} -c default_transaction_read_only=on".strip()


def lock_holders(conn: psycopg.Connection[Any], table: str) -> str:
    """Who holds locks on `table` now, for a lock-timeout message; empty when it cannot be told."""
    try:
        rows = conn.execute(
            "SELECT l.pid, l.mode, coalesce(a.state, '') FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.relation = to_regclass(%s) AND l.granted AND l.pid <> pg_backend_pid()",
            [table],
        ).fetchall()
    except psycopg.Error:
        return ""
    return ", ".join(f"pid {p} holds {m}" + (f" ({s})" if s else "") for p, m, s in rows)
