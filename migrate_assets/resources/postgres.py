"""The source database as the evolution engine sees it (`SourceLayer`), on psycopg 3.

Every call opens its own short autocommit connection: the engine calls rarely, a saga may outlive a
connection, and no session state (search_path, lock_timeout) can leak from one call into the next.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg
from psycopg import sql

from migrate_assets.errors import LayerRequestError, LayerUnreachableError, LockTimeoutError, TransientError
from migrate_assets.evolution.layers import DdlResult, Layer, SlotState, SourceColumn, lsn_to_int
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.model import fingerprint as tables_fingerprint
from migrate_assets.schema.retry import retry_postgres
from migrate_assets.schema.session import lock_holders, read_only_options, set_timeouts

LAYER = Layer.SOURCE_DB
#: the prefix of the logical decoding messages `write_heartbeat` emits
HEARTBEAT_PREFIX = "migrate-assets"

# the table a DDL statement locks, for the lock-timeout message (best effort; the statement is named anyway)
_TABLE_RE = re.compile(
    r"\b(?:ALTER\s+TABLE(?:\s+IF\s+EXISTS)?(?:\s+ONLY)?|LOCK(?:\s+TABLE)?|ON(?:\s+ONLY)?|TRUNCATE(?:\s+TABLE)?"
    r"|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+((?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)",
    re.IGNORECASE,
)


#: the WAL insert position, not pg_current_wal_lsn() (the *write* position): with synchronous_commit=off
#: (the local stack) the write position can still be before a just-committed transaction's commit record
_LSN_FN = "pg_current_wal_insert_lsn"


class PostgresSource:
    """`SourceLayer` on one database; `schema` qualifies the bare table names the engine passes."""

    def __init__(
        self,
        dsn: str,
        schema: str = "public",
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        connect_timeout: float = 5.0,
        read_only: bool = False,
    ) -> None:
        self.dsn, self.schema = dsn, schema
        self.read_only = read_only  #: every transaction READ ONLY (dry runs, verify)
        self.attempts, self.backoff, self.max_backoff = max(1, attempts), backoff, max_backoff
        self.connect_timeout = connect_timeout

    # -- connections -----------------------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection; refusal or loss of the server becomes a (retryable) layer error."""
        try:
            extra: dict[str, Any] = {"options": read_only_options(self.dsn)} if self.read_only else {}
            conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)), **extra
            )
        except psycopg.OperationalError as exc:
            raise LayerUnreachableError(LAYER, _first_line(exc)) from exc
        try:
            with conn:
                yield conn
        except psycopg.Error as exc:
            if conn.broken:
                raise LayerUnreachableError(LAYER, f"connection lost: {_first_line(exc)}") from exc
            raise LayerRequestError(LAYER, _first_line(exc), code=exc.sqlstate) from exc

    def _key(self, table: str) -> tuple[str, str]:
        schema, dot, name = table.partition(".")
        return (schema, name) if dot else (self.schema, table)

    # -- schema ----------------------------------------------------------------------------------------------

    def columns(self, table: str) -> list[SourceColumn] | None:
        key = self._key(table)
        with self.connect() as conn:
            live = introspect(conn, [key[0]], [key])
        found = live.get(key)
        if found is None:
            return None
        return [SourceColumn(c.name, c.type.plain.render(), c.nullable) for c in found.columns]

    def fingerprint(self, table: str) -> str:
        """The schema package's fingerprint of the one table (an absent table hashes as empty)."""
        key = self._key(table)
        with self.connect() as conn:
            live = introspect(conn, [key[0]], [key])
        return tables_fingerprint(live, f"{key[0]}.{key[1]}")

    # -- DDL -------------------------------------------------------------------------------------------------

    def execute_ddl(self, statements: list[str], lock_timeout: float) -> DdlResult:
        """All statements in one transaction under `SET LOCAL lock_timeout`; 55P03 retried with backoff.

        The statements must be transactional (no `CONCURRENTLY`). The commit LSN is the WAL insert position
        read on the same connection right after COMMIT, so it is at or past the end of the commit record: a
        slot whose confirmed_flush_lsn reaches it has seen the DDL.
        """
        last = ""
        with self.connect() as conn:

            def attempt(n: int) -> DdlResult:
                nonlocal last
                with conn.transaction():
                    set_timeouts(conn, local=True, lock_timeout=lock_timeout)
                    for stmt in statements:
                        last = stmt
                        conn.execute(stmt.encode())
                row = conn.execute(f"SELECT {_LSN_FN}()::text").fetchone()
                lsn = lsn_to_int(row[0] if row else None)
                assert lsn is not None
                return DdlResult(commit_lsn=lsn, attempts=n)

            def give_up(_: psycopg.Error, attempts: int) -> NoReturn:
                table = _table_of(last)
                raise LockTimeoutError(table, lock_timeout, attempts, last, lock_holders(conn, table)) from None

            def fail(exc: psycopg.Error) -> NoReturn:
                if conn.broken:
                    raise exc
                raise LayerRequestError(
                    LAYER,
                    f"DDL failed and was rolled back: {_first_line(exc)} (statement: {last})",
                    code=exc.sqlstate,
                ) from None

            return retry_postgres(
                attempt,
                what=lambda: f"DDL {last!r}",
                attempts=self.attempts,
                backoff=self.backoff,
                max_backoff=self.max_backoff,
                give_up=give_up,
                fail=fail,
            )

    # -- WAL and slots ---------------------------------------------------------------------------------------

    def current_lsn(self) -> int:
        with self.connect() as conn:
            row = conn.execute(f"SELECT {_LSN_FN}()::text").fetchone()
        lsn = lsn_to_int(row[0] if row else None)
        if lsn is None:
            raise TransientError("source_db: pg_current_wal_lsn() returned nothing")
        return lsn

    def count_values(self, table: str, column: str | None = None) -> int:
        """`count(*)` of the table, or `count(column)` (its non-null values); 0 when either is absent."""
        schema, name = self._key(table)
        with self.connect() as conn:
            cols = _column_types(conn, schema, name)
            if not cols or (column is not None and column not in cols):
                return 0
            what = sql.SQL("count(*)") if column is None else sql.SQL("count({})").format(sql.Identifier(column))
            row = conn.execute(
                sql.SQL("SELECT {} FROM {}").format(what, sql.Identifier(schema, name))
            ).fetchone()
        return int(row[0]) if row else 0

    def count_changed(self, table: str, column: str, type_sql: str, using_sql: str) -> int:
        """How many rows `ALTER COLUMN column TYPE type_sql USING using_sql` would change: values that do not come
        back equal when cast to `type_sql` and back to the column's current type (a truncated varchar, a
        rounded numeric or timestamp). 0 when the column is absent; a value the cast rejects raises (the ALTER
        would fail on it too, changing nothing). `type_sql`/`using_sql` come from a stored plan's own statements."""
        schema, name = self._key(table)
        with self.connect() as conn:
            current = _column_types(conn, schema, name).get(column)
            if current is None:
                return 0
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS DISTINCT FROM CAST(CAST(({}) AS {}) AS {})").format(
                sql.Identifier(schema, name), sql.Identifier(column), sql.SQL(using_sql),  # type: ignore[arg-type]
                sql.SQL(type_sql), sql.SQL(current))  # type: ignore[arg-type]
            counted = conn.execute(query).fetchone()
        return int(counted[0]) if counted else 0

    def primary_key(self, table: str) -> tuple[str, ...]:
        """The table's primary-key columns in key order (one catalog query; empty: no key, or no table)."""
        schema, name = self._key(table)
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                "WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary "
                "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                [schema, name],
            ).fetchall()
        return tuple(str(r[0]) for r in rows)

    def slot(self, slot_name: str) -> SlotState | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT slot_name, active, confirmed_flush_lsn::text, restart_lsn::text "
                "FROM pg_replication_slots WHERE slot_name = %s",
                [slot_name],
            ).fetchone()
        if row is None:
            return None
        return SlotState(str(row[0]), bool(row[1]), lsn_to_int(row[2]), lsn_to_int(row[3]))

    def published(self, publication: str, tables: Sequence[str]) -> bool:
        with self.connect() as conn:
            rows = conn.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                                [publication]).fetchall()
        return {self._key(t) for t in tables} <= {(str(r[0]), str(r[1])) for r in rows}

    def write_heartbeat(self) -> None:
        """Write a transactional logical decoding message: WAL for an idle slot to confirm past.

        Transactional, so Debezium sees it at its own commit like any transaction. A non-transactional message
        takes a LSN inside whatever transactions are open at that moment; Debezium can store that LSN as its
        offset, and after a restart it then skipped a row whose INSERT came before the message and whose COMMIT
        after it (seen once: 1 row of 146 across two connector restarts).

        Measured with Debezium 3.0.7 (pgoutput): each message becomes one record on `<topic.prefix>.message`,
        and committing that record's offset moves `confirmed_flush_lsn` past it within ~1-1.5 s
        (offset.flush.interval.ms=1000; measured with non-transactional messages; with transactional ones the
        evolve bench's connector step, two such waits, took 1.74 s). A table write alone is not enough: Debezium confirms only up to the
        transaction before its newest record. A connector with `message.prefix.exclude.list` covering
        `migrate-assets` ignores these; it then needs Debezium's own `heartbeat.interval.ms`.
        """
        with self.connect() as conn:
            conn.execute("SELECT pg_logical_emit_message(true, %s, 'heartbeat')", [HEARTBEAT_PREFIX])


def _column_types(conn: psycopg.Connection, schema: str, name: str) -> dict[str, str]:
    """The live columns of `schema.name` with their types as `format_type` spells them (none when absent)."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        [schema, name],
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _table_of(statement: str) -> str:
    m = _TABLE_RE.search(statement)
    return m.group(1) if m else "the statement's table"
