"""Applying and reverting versioned migrations on one dedicated connection, under the advisory lock.

Each transactional migration becomes `BEGIN; SET LOCAL ...; <file>; INSERT state row; COMMIT`, so the migration
and its state row commit together or not at all (the original ran the script and the insert as separate,
untransacted statements). Consecutive migrations are sent as one simple-query string (psycopg's `execute`
without parameters uses the simple protocol, which accepts many statements): still one transaction each, but
one round trip per batch — the server stops at the first error, exactly as separate round trips would. A
`no-transaction` file runs statement by statement in autocommit (CREATE INDEX CONCURRENTLY refuses any
transaction block, implicit ones included), and its state row is written after its last statement succeeds.

Files are loaded and every refusal is decided before anything runs; the state is read once per run, after the
lock is held, and kept up to date in memory.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import pq

from migrate_assets.errors import MigrationFailedError, PipelineTableChangeRefused, UsageError
from migrate_assets.schema.session import local_timeouts_calls, set_timeouts
from migrate_assets.versioned import guard, sqltext
from migrate_assets.versioned import lock as advisory
from migrate_assets.versioned.files import Migration, load_migrations
from migrate_assets.versioned.state import StateTable
from migrate_assets.versioned.status import (
    Status,
    compute_status,
    plan_baseline,
    plan_down,
    plan_run,
    plan_up,
)


@dataclass(frozen=True)
class Step:
    """One unit of work done (or, in a dry run, that would be done)."""

    action: str  # up | down | baseline | repair
    version: int
    description: str
    file: str
    sql: str
    ms: float | None = None


@dataclass(frozen=True)
class RunReport:
    command: str
    dry_run: bool
    steps: tuple[Step, ...]
    current: int | None  # highest applied version after the run (before it, for a dry run)
    #: scripts that changed pipeline tables (run anyway: --allow-pipeline-drift), from the trial before the run
    pipeline_changes: tuple[guard.Touch, ...] = ()
    #: the trial in a rolled-back transaction: whole time, and its own overhead (catalog reads, rollback)
    trial_ms: float | None = None
    trial_overhead_ms: float | None = None


class MigrationRunner:
    """The versioned-migration engine for one database and one migrations directory."""

    def __init__(
        self,
        dsn: str,
        migrations_dir: str | Path,
        state_table: StateTable | None = None,
        *,
        lock_wait: float = 30.0,
        lock_timeout: float = 2.0,
        statement_timeout: float = 0.0,
        on_step: Callable[[Step], None] | None = None,
        batch_size: int = 100,
        pipeline_tables: Sequence[str] = (),
    ) -> None:
        self.dsn = dsn
        self.migrations_dir = Path(migrations_dir)
        self.table = state_table or StateTable("public", "schema_migrations")
        self.lock_wait = lock_wait
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.on_step = on_step
        self.batch_size = batch_size
        self.batch_bytes = 1 << 20
        #: `schema.table` of every table a pipeline captures: scripts that would change one are refused
        self.pipeline_tables = tuple(pipeline_tables)
        # one statement per file for the bookkeeping: the start time the state row measures from, and the
        # timeouts again for this transaction (an earlier file may have SET them for the session)
        timeouts = local_timeouts_calls(lock_timeout=lock_timeout, statement_timeout=statement_timeout).as_string()
        self._prefix = ("BEGIN;\nSELECT set_config('migrate_assets.started', clock_timestamp()::text, true)"
                        + (f", {timeouts}" if timeouts else "") + ";\n")

    # -- connection and lock -------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        app = f"migrate-assets migrations (pid {os.getpid()} on {socket.gethostname()})"[:63]
        conn = psycopg.connect(self.dsn, autocommit=True, application_name=app)
        if conn.info.server_version >= 140000:
            # a backend whose client died (kill -9) aborts its migration within a second instead of running
            # on, holding the lock and an open transaction, until its query ends
            conn.execute("SET client_connection_check_interval = 1000")
        return conn

    @contextmanager
    def _locked(self) -> Iterator[psycopg.Connection]:
        """The run's one connection, holding the advisory lock, with the state table in place."""
        conn = self._connect()
        try:
            key = advisory.lock_key(conn.info.dbname, self.table.qualified)
            with advisory.held(conn, key, self.lock_wait):
                # session-wide too, for no-transaction files; after the lock so they cannot cut its wait short
                set_timeouts(
                    conn, local=False, lock_timeout=self.lock_timeout, statement_timeout=self.statement_timeout
                )
                self.table.ensure(conn)
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection]:
        """A connection for read-only work (status, dry runs): no lock, nothing created."""
        conn = self._connect()
        try:
            conn.execute("SET default_transaction_read_only = on")  # whatever runs on it cannot write
            set_timeouts(conn, local=False, statement_timeout=self.statement_timeout)
            yield conn
        finally:
            conn.close()

    # -- commands ------------------------------------------------------------------------------------------

    def load(self) -> tuple[Migration, ...]:
        return load_migrations(self.migrations_dir)

    def status(self) -> Status:
        migrations = self.load()
        with self._reading() as conn:
            return compute_status(migrations, self.table.read(conn))

    def up(self, to: int | None = None, allow_out_of_order: bool = False, dry_run: bool = False,
           allow_pipeline_drift: bool = False) -> RunReport:
        """Apply pending migrations (those ≤ `to`), in version order; each is tried first against the pipeline
        tables (`guard`), and one that would change them is refused unless `allow_pipeline_drift`."""
        migrations = self.load()
        if dry_run:
            with self._reading() as conn:
                status = compute_status(migrations, self.table.read(conn))
                todo = plan_up(status, to, allow_out_of_order)
                steps = tuple(self._preview_up(conn, m) for m in todo)
            return RunReport("up", True, steps, status.current)
        with self._locked() as conn:
            status = compute_status(migrations, self.table.read(conn))
            todo = plan_up(status, to, allow_out_of_order)
            steps, trial = self._guarded_up(conn, todo, allow_pipeline_drift)
            return RunReport("up", False, steps, _current(status, steps), *trial)

    def run(self, version: int, dry_run: bool = False, allow_pipeline_drift: bool = False) -> RunReport:
        """Apply exactly one pending version (even if older than the highest applied: it was asked for)."""
        migrations = self.load()
        if dry_run:
            with self._reading() as conn:
                status = compute_status(migrations, self.table.read(conn))
                m = plan_run(status, version)
                return RunReport("run", True, (self._preview_up(conn, m),), status.current)
        with self._locked() as conn:
            status = compute_status(migrations, self.table.read(conn))
            steps, trial = self._guarded_up(conn, (plan_run(status, version),), allow_pipeline_drift)
            return RunReport("run", False, steps, _current(status, steps), *trial)

    def down(self, steps: int | None = None, to: int | None = None, dry_run: bool = False,
             allow_pipeline_drift: bool = False) -> RunReport:
        """Revert the last `steps` applied migrations, or every applied version above `to`, newest first."""
        if steps is None and to is None:
            steps = 1
        migrations = self.load()
        by_version = {m.version: m for m in migrations}
        if dry_run:
            with self._reading() as conn:
                status = compute_status(migrations, self.table.read(conn))
                targets = plan_down(status, steps, to)
                preview = tuple(self._preview_down(conn, by_version[r.version]) for r in targets)
            return RunReport("down", True, preview, status.current)
        with self._locked() as conn:
            status = compute_status(migrations, self.table.read(conn))
            targets = plan_down(status, steps, to)
            done: list[Step] = []

            def revert(ms: tuple[Migration, ...]) -> None:
                for m in ms:
                    done.append(self._revert(conn, m, done))

            trial = self._guarded(conn, tuple(by_version[r.version] for r in targets), _down_script, revert,
                                  allow_pipeline_drift, done)
            gone = {s.version for s in done}
            left = [r.version for r in status.applied if r.version not in gone]
            return RunReport("down", False, tuple(done), max(left, default=None), *trial)

    def baseline(self, version: int, dry_run: bool = False) -> RunReport:
        """Record versions ≤ `version` as applied without running them (an existing database joins)."""
        if version < 1:
            raise UsageError(
                "baseline version must be a positive integer", file="<command line>", key="VERSION"
            )
        migrations = self.load()
        with self._reading() if dry_run else self._locked() as conn:
            status = compute_status(migrations, self.table.read(conn))
            marks = plan_baseline(status, version)
            rows = [(m.version, m.description, m.checksum, m.down_checksum, m.name) for m in marks]
            if not any(m.version == version for m in marks):
                rows.append((version, "<< baseline >>", "", None, ""))
            steps = tuple(
                Step("baseline", v, d, f, self.table.insert_sql(v, d, c, dc, "baseline", 0).as_string(conn))
                for v, d, c, dc, f in rows
            )
            if not dry_run and steps:
                text = "BEGIN;\n" + ";\n".join(s.sql for s in steps) + ";\nCOMMIT;"
                self._execute(conn, self.table.qualified, text, "", [])
            return RunReport("baseline", dry_run, steps, version if not dry_run else status.current)

    def repair(self, dry_run: bool = False) -> RunReport:
        """Accept the files' current checksums (and descriptions) after a deliberate edit."""
        migrations = self.load()
        by_version = {m.version: m for m in migrations}
        with self._reading() if dry_run else self._locked() as conn:
            status = compute_status(migrations, self.table.read(conn))
            steps = []
            for r in status.applied:
                m = by_version.get(r.version)
                if m is None or (r.checksum, r.down_checksum, r.description) == (
                    m.checksum,
                    m.down_checksum,
                    m.description,
                ):
                    continue
                update = self.table.update_checksums_sql(
                    m.version, m.description, m.checksum, m.down_checksum
                )
                steps.append(Step("repair", m.version, m.description, m.name, update.as_string(conn)))
            if not dry_run and steps:
                text = "BEGIN;\n" + ";\n".join(s.sql for s in steps) + ";\nCOMMIT;"
                self._execute(conn, self.table.qualified, text, "", [])
            return RunReport("repair", dry_run, tuple(steps), status.current)

    # -- the pipeline-table guard --------------------------------------------------------------------------

    def _guarded_up(self, conn: psycopg.Connection, todo: tuple[Migration, ...],
                    allow: bool) -> tuple[tuple[Step, ...], tuple[tuple[guard.Touch, ...], float | None, float | None]]:
        done: list[Step] = []
        trial = self._guarded(conn, todo, _up_script, lambda ms: self._apply(conn, ms, done), allow, done)
        return tuple(done), trial

    def _guarded(self, conn: psycopg.Connection, todo: tuple[Migration, ...],
                 script: Callable[[Migration], guard.Script], execute: Callable[[tuple[Migration, ...]], object],
                 allow: bool, done: list[Step]) -> tuple[tuple[guard.Touch, ...], float | None, float | None]:
        """Try `todo`'s scripts in a rolled-back transaction, refuse those that change pipeline tables (unless
        `allow`), then `execute` the ones tried. A script that failed in the trial is tried again once the
        scripts before it have run (it may depend on their commit); failing first in line, it is the run's
        failure — nothing of it ran for real."""
        if not self.pipeline_tables or not todo:
            if todo:
                execute(todo)
            return (), None, None
        touches: list[guard.Touch] = []
        total = overhead = 0.0
        remaining = todo
        while remaining:
            tried = guard.trial(conn, [script(m) for m in remaining], self.pipeline_tables,
                                lock_timeout=self.lock_timeout, statement_timeout=self.statement_timeout)
            total += tried.ms
            overhead += tried.overhead_ms
            if tried.touches and not allow:
                raise PipelineTableChangeRefused(
                    [(t.file, table, "; ".join(what)) for t in tried.touches for table, what in t.tables.items()],
                    committed=len(done))
            touches += tried.touches
            ok, remaining = remaining[:tried.checked], remaining[tried.checked:]
            if tried.failed is not None and not ok:
                name, exc = tried.failed
                raise MigrationFailedError(
                    name, f"{_describe(exc)} (found when it was tried against the pipeline tables in a rolled-back "
                    f"transaction: nothing of it ran){_earlier(done)}")
            execute(ok)
        return tuple(touches), round(total, 2), round(overhead, 2)

    # -- execution -----------------------------------------------------------------------------------------

    def _transactional(self, body: str, tail: str) -> str:
        # the newline ends a trailing `--` comment; the `;` ends a last statement written without one
        return f"{self._prefix}{body}\n;\n{tail};\nCOMMIT;"

    def _preview_up(self, conn: psycopg.Connection, m: Migration) -> Step:
        insert = self.table.insert_sql(m.version, m.description, m.checksum, m.down_checksum).as_string(conn)
        text = (
            m.up_sql.rstrip() + "\n" + insert + ";"
            if m.no_transaction
            else self._transactional(m.up_sql, insert)
        )
        return Step("up", m.version, m.description, m.name, text)

    def _preview_down(self, conn: psycopg.Connection, m: Migration) -> Step:
        assert m.down_sql is not None and m.down_path is not None
        delete = self.table.delete_sql(m.version).as_string(conn)
        text = (
            m.down_sql.rstrip() + "\n" + delete + ";"
            if m.down_no_transaction
            else self._transactional(m.down_sql, delete)
        )
        return Step("down", m.version, m.description, m.down_path.name, text)

    def _apply(self, conn: psycopg.Connection, todo: tuple[Migration, ...],
               done: list[Step] | None = None) -> tuple[Step, ...]:
        done = [] if done is None else done
        i = 0
        while i < len(todo):
            m = todo[i]
            if m.no_transaction:
                started = time.perf_counter()
                self._autocommit_script(conn, m.up_path.name, m.up_sql, done)
                ms = int((time.perf_counter() - started) * 1000)
                tail = self.table.insert_sql(
                    m.version, m.description, m.checksum, m.down_checksum, execution_ms=ms
                ).as_string(conn)
                self._execute(conn, m.up_path.name, tail, "", done)
                self._record(Step("up", m.version, m.description, m.name, m.up_sql, ms), done)
                i += 1
                continue
            j, size = i, 0
            while (
                j < len(todo)
                and not todo[j].no_transaction
                and j - i < self.batch_size
                and size < self.batch_bytes
            ):
                size += len(todo[j].up_sql)
                j += 1
            self._apply_batch(conn, todo[i:j], done)
            i = j
        return tuple(done)

    def _apply_batch(self, conn: psycopg.Connection, batch: tuple[Migration, ...], done: list[Step]) -> None:
        """Several migrations, each still in its own BEGIN ... COMMIT, sent in one simple-query round trip.

        The server runs them in order and stops at the first error: transactions before it stay committed,
        the failing one rolls back, later ones never start — the same outcome as one round trip each.
        """
        texts: list[str] = []
        bounds: list[int] = []  # where each migration's text starts in the joined string
        offset = 0
        insert = self.table.insert_renderer(conn)
        for m in batch:
            text = self._transactional(
                m.up_sql, insert(m.version, m.description, m.checksum, m.down_checksum)
            )
            bounds.append(offset)
            texts.append(text)
            offset += len(text) + 1
        started = time.perf_counter()
        try:
            conn.execute("\n".join(texts))
        except psycopg.Error as exc:
            self._rollback(conn)
            if conn.closed or conn.broken:
                raise MigrationFailedError(
                    batch[0].name,
                    f"connection lost: {_describe(exc)}; run `migrations status` to see what "
                    "was applied" + _earlier(done),
                ) from exc
            applied = {r.version for r in self.table.read(conn)}
            first = next(k for k, m in enumerate(batch) if m.version not in applied)
            share = (time.perf_counter() - started) * 1000 / len(batch)
            for m in batch[:first]:
                self._record(Step("up", m.version, m.description, m.name, m.up_sql, share), done)
            position = exc.diag.statement_position
            failing = first
            if position:
                failing = max(first, max(k for k, b in enumerate(bounds) if b < int(position)))
            if failing > first:
                # a syntax error stops the whole string before anything runs: apply the ones before it
                self._apply_batch(conn, batch[first:failing], done)
            m = batch[failing]
            local = int(position) - bounds[failing] if position and failing >= first else None
            raise self._failure(m.name, exc, m.up_sql, local, done) from exc
        share = (time.perf_counter() - started) * 1000 / len(batch)
        for m in batch:
            self._record(Step("up", m.version, m.description, m.name, m.up_sql, share), done)

    def _record(self, step: Step, done: list[Step]) -> None:
        done.append(step)
        if self.on_step:
            self.on_step(step)

    @staticmethod
    def _rollback(conn: psycopg.Connection) -> None:
        if not conn.closed and conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass

    def _failure(
        self, name: str, exc: psycopg.Error, body: str, position: int | None, done: list[Step]
    ) -> MigrationFailedError:
        """The error for a failed transactional script; `position` is 1-based within the script's text."""
        where = ""
        file_pos: int | None = None
        if position and body:
            offset = position - len(self._prefix)
            if 0 < offset <= len(body):
                file_pos = offset
                line, number = sqltext.locate(body, offset)
                where = f" (line {line}" + (f", statement {number})" if number else ")")
            else:
                where = " (in the state-table bookkeeping, not in the file)"
        return MigrationFailedError(name, f"{_describe(exc)}{where}{_earlier(done)}", file_pos)

    def _revert(self, conn: psycopg.Connection, m: Migration, done: list[Step]) -> Step:
        assert m.down_sql is not None and m.down_path is not None
        started = time.perf_counter()
        name = m.down_path.name
        delete = self.table.delete_sql(m.version).as_string(conn)
        if m.down_no_transaction:
            self._autocommit_script(conn, name, m.down_sql, done)
            self._execute(conn, name, delete, "", done)
        else:
            self._execute(conn, name, self._transactional(m.down_sql, delete), m.down_sql, done)
        step = Step(
            "down", m.version, m.description, name, m.down_sql, (time.perf_counter() - started) * 1000
        )
        if self.on_step:
            self.on_step(step)
        return step

    def _autocommit_script(self, conn: psycopg.Connection, name: str, script: str, done: list[Step]) -> None:
        statements = sqltext.split_statements(script)
        for i, stmt in enumerate(statements, start=1):
            try:
                conn.execute(stmt.text)
            except psycopg.Error as exc:
                position = exc.diag.statement_position
                at = stmt.start + int(position) if position else stmt.start + 1
                line = script.count("\n", 0, at - 1) + 1
                note = (
                    f"; statements 1-{i - 1} of this no-transaction file were committed and stay applied"
                    if i > 1
                    else ""
                )
                raise MigrationFailedError(
                    name, f"{_describe(exc)} (line {line}, statement {i}){note}{_earlier(done)}", at
                ) from exc

    def _execute(self, conn: psycopg.Connection, name: str, text: str, body: str, done: list[Step]) -> None:
        """Send one simple-query string; on failure roll back and name the file, line and statement."""
        try:
            conn.execute(text)
        except psycopg.Error as exc:
            self._rollback(conn)
            position = exc.diag.statement_position
            raise self._failure(name, exc, body, int(position) if position else None, done) from exc


def _describe(exc: psycopg.Error) -> str:
    diag = exc.diag
    lines = str(exc).splitlines()
    text = diag.message_primary or (lines[0] if lines else type(exc).__name__)
    if diag.sqlstate:
        text = f"{text} [SQLSTATE {diag.sqlstate}]"
    if diag.message_detail:
        text += f"; {diag.message_detail}"
    if diag.message_hint:
        text += f"; hint: {diag.message_hint}"
    if diag.sqlstate == "25001":  # active_sql_transaction: e.g. CREATE INDEX CONCURRENTLY, VACUUM
        text += "; start the file with '-- migrate: no-transaction' to run it outside a transaction"
    return text


def _earlier(done: list[Step]) -> str:
    if not done:
        return ""
    return f"; {len(done)} earlier migration(s) of this run committed before it"


def _up_script(m: Migration) -> guard.Script:
    return guard.Script(m.up_path.name, m.up_sql, m.no_transaction)


def _down_script(m: Migration) -> guard.Script:
    assert m.down_sql is not None and m.down_path is not None
    return guard.Script(m.down_path.name, m.down_sql, m.down_no_transaction)


def _current(status: Status, steps: tuple[Step, ...]) -> int | None:
    versions = [r.version for r in status.applied] + [s.version for s in steps]
    return max(versions, default=None)
