"""The migration lock: a session-level advisory lock on the run's one dedicated connection.

The original took `pg_advisory_lock(<fixed key>)` through a connection pool, with no timeout: the lock and the
work could land on different sessions, and every project on a server shared one key. Here the key is derived
from the database and the state table (so separate state tables never block each other), the lock lives on the
connection that runs the migrations, and waiting is bounded by `lock_wait` through Postgres' own `lock_timeout`
(advisory lock waits honour it), which wakes up the moment the holder releases — no polling loop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pgerrors

from migrate_assets.errors import LockNotAcquiredError
from migrate_assets.schema.session import session_timeouts


def lock_key(database: str, state_table: str) -> int:
    """A stable, non-negative 63-bit key from database name + schema-qualified state table."""
    digest = hashlib.sha256(f"migrate-assets\0{database}\0{state_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def holder(conn: psycopg.Connection, key: int) -> str:
    """Who holds the advisory lock `key`, as far as pg_stat_activity lets us see."""
    try:
        row = conn.execute(
            "SELECT a.pid, a.application_name, a.usename, host(a.client_addr), a.client_port, "
            "a.backend_start, a.state "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid LIMIT 1",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchone()
    except psycopg.Error:
        return ""
    if not row:
        return ""
    pid, app, user, addr, port, started, state = row
    parts = [f"pid {pid}"]
    if app:
        parts.append(f"application {app!r}")
    if user:
        parts.append(f"user {user}")
    if addr:
        parts.append(f"client {addr}:{port}" if port and port > 0 else f"client {addr}")
    elif port == -1:
        parts.append("client local socket")
    if started:
        parts.append(f"connected since {started:%Y-%m-%d %H:%M:%S%z}")
    if state:
        parts.append(f"state {state}")
    return ", ".join(parts)


def acquire(conn: psycopg.Connection, key: int, wait: float) -> None:
    """Take the lock on `conn` (autocommit), waiting at most `wait` seconds, else LockNotAcquiredError."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row and row[0]:
        return
    started = time.monotonic()
    if wait > 0:
        try:
            with session_timeouts(conn, lock_timeout=wait):
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            return
        except (pgerrors.LockNotAvailable, pgerrors.QueryCanceled):
            pass  # lock_timeout expired (or a statement_timeout set by the caller's role cut the wait short)
    raise LockNotAcquiredError(key, time.monotonic() - started if wait > 0 else 0.0, holder(conn, key))


def release(conn: psycopg.Connection, key: int) -> None:
    if conn.closed or conn.broken:
        return  # the server ends a session lock with its session
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@contextmanager
def held(conn: psycopg.Connection, key: int, wait: float) -> Iterator[None]:
    """Hold the lock on `conn` for the duration of the block."""
    acquire(conn, key, wait)
    try:
        yield
    finally:
        release(conn, key)
