"""Persisted saga state: `migrate_assets_evolutions` in the source database.

Each run's plan and every step's state (pending → running → done | failed → compensated | ...) are written as
they change, on their own autocommit connection, so a process that dies mid-run leaves enough behind for
`evolve --resume RUN` or `--rollback RUN` from another process.

When the database is gone (PostgreSQL shut down mid-run), a save does not fail the run: the record is written to
a spill file (`spill_path`, mode 0600) and the next save or `load` of that run, once PostgreSQL answers again,
writes it to the table and removes the file. `load` reads a spilled record even while the database is down.

`run_lock` is the per-run lock: a session advisory lock keyed on the run id, held on one dedicated connection for
as long as a process works on the run (forward, `--resume`, `--rollback`); a second process is refused with the
holder's pid, application name and client address.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from migrate_assets.errors import (
    ConfigError,
    InvalidInputError,
    LayerUnreachableError,
    LockNotAcquiredError,
    Problem,
    RunLockedError,
)
from migrate_assets.evolution.layers import Layer
from migrate_assets.redact import redact_row
from migrate_assets.versioned import lock as advisory

TABLE = "migrate_assets_evolutions"
#: where records go while the database cannot be written (override with this variable)
SPILL_ENV = "MIGRATE_ASSETS_RUN_SPILL_DIR"


@dataclass
class StepState:
    id: str
    layer: str  # a `Layer`'s plain name (run records, JSON and Dagster metadata hold strings)
    status: str = "pending"  # pending | running | done | failed | compensating | compensated | compensation_failed | skipped
    #: the action's result in its stored JSON form (`Action.read_result` gives the typed `evolution.results` one)
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    compensation: str | None = None  # outcome text of the compensation, once run
    compensation_result: dict[str, Any] = field(default_factory=dict)  # the inverse action's result, stored form

    def __post_init__(self) -> None:
        self.layer = str(self.layer)


@dataclass
class RunRecord:
    run_id: str
    table: str
    status: str  # running | interrupted | succeeded | failed | rolled_back | rollback_failed | dry_run
    plan: dict[str, Any]
    steps: list[StepState]
    error: str | None = None
    failed_step: str | None = None

    def step(self, step_id: str) -> StepState:
        return next(s for s in self.steps if s.id == step_id)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def default_spill_dir() -> Path:
    given = os.environ.get(SPILL_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "migrate-assets" / "runs"


class EvolutionStore:
    """One autocommit connection; every save is a single UPSERT (or a spill file while the database is gone)."""

    def __init__(self, dsn: str, schema: str = "public", spill_dir: Path | None = None) -> None:
        self.dsn, self.schema = dsn, schema
        self.spill_dir = spill_dir or default_spill_dir()
        self._conn: psycopg.Connection | None = None
        self._ensured = False
        #: run id → spill file, for records whose last save could not reach the database
        self.unsaved: dict[str, Path] = {}

    def _connect(self, application_name: str) -> psycopg.Connection:
        """A new autocommit connection: unreachable → LayerUnreachableError; a DSN libpq cannot parse → ConfigError
        without libpq's message (it quotes the DSN, password included)."""
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=5, application_name=application_name)
        except psycopg.OperationalError as exc:
            raise LayerUnreachableError("run store (PostgreSQL)", _first_line(exc)) from None
        except psycopg.Error:
            raise ConfigError("invalid DSN: libpq could not parse it (its message is not shown: it can quote the "
                              "password)", file="<config>", key="database.dsn") from None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect("migrate-assets evolve")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, TABLE)

    def _ensure(self) -> None:
        if self._ensured:
            return
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text PRIMARY KEY, table_name text NOT NULL, "
                "status text NOT NULL, plan jsonb NOT NULL, steps jsonb NOT NULL, error text, failed_step text, "
                "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(self._ident())
        )
        self._ensured = True

    # -- the stored form -------------------------------------------------------------------------------------

    @staticmethod
    def row(rec: RunRecord) -> dict[str, Any]:
        """The record as stored (table row and spill file alike)."""
        return redact_row({"run_id": rec.run_id, "table_name": rec.table, "status": rec.status, "plan": rec.plan,
                           "steps": [dict(s.__dict__) for s in rec.steps], "error": rec.error,
                           "failed_step": rec.failed_step})

    @staticmethod
    def from_row(row: dict[str, Any]) -> RunRecord:
        steps = row["steps"] if isinstance(row["steps"], list) else json.loads(row["steps"])
        return RunRecord(row["run_id"], row["table_name"], row["status"], row["plan"],
                         [StepState(**{**s, "layer": str(Layer.of(s["layer"]))}) for s in steps], row["error"],
                         row["failed_step"])

    def _upsert(self, row: dict[str, Any]) -> None:
        self._ensure()
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (run_id, table_name, status, plan, steps, error, failed_step) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, "
                "steps = EXCLUDED.steps, error = EXCLUDED.error, failed_step = EXCLUDED.failed_step, "
                "updated_at = now()"
            ).format(self._ident()),
            (row["run_id"], row["table_name"], row["status"], Jsonb(row["plan"]), Jsonb(row["steps"]), row["error"],
             row["failed_step"]),
        )

    # -- spill files -----------------------------------------------------------------------------------------

    def spill_path(self, run_id: str) -> Path:
        """Where `run_id`'s record waits while the database is gone: one folder per database and schema."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.dsn)
            where = f"{info.get('host', '')}\0{info.get('port', '')}\0{info.get('dbname', '')}"
        except psycopg.Error:
            where = "unparsed"
        key = hashlib.sha256(f"{where}\0{self.schema}".encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)
        return self.spill_dir / key / f"{safe}.json"

    def _spill(self, row: dict[str, Any]) -> Path:
        path = self.spill_path(row["run_id"])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(row, f, default=str)
        os.replace(tmp, path)
        return path

    def _unspill(self, run_id: str) -> None:
        path = self.unsaved.pop(run_id, None) or self.spill_path(run_id)
        path.unlink(missing_ok=True)

    def _drop_conn(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except psycopg.Error:
            pass
        self._conn, self._ensured = None, False

    # -- API -------------------------------------------------------------------------------------------------

    def save(self, rec: RunRecord) -> None:
        """Write the record; with the database unreachable, write the spill file instead (never raises for that)."""
        row = self.row(rec)
        try:
            self._upsert(row)
        except (psycopg.OperationalError, psycopg.InterfaceError, LayerUnreachableError):
            self._drop_conn()
            self.unsaved[rec.run_id] = self._spill(row)
            return
        if rec.run_id in self.unsaved or self.spill_path(rec.run_id).exists():
            self._unspill(rec.run_id)

    def load(self, run_id: str) -> RunRecord:
        """The stored record; a spilled one (newer by construction) is written back first, or read alone while
        the database is down."""
        path = self.spill_path(run_id)
        if path.exists():
            rec = self.from_row(json.loads(path.read_text()))
            self.save(rec)
            return rec
        try:
            self._ensure()
            found = self.conn.execute(
                sql.SQL("SELECT run_id, table_name, status, plan, steps, error, failed_step FROM {} "
                        "WHERE run_id = %s").format(self._ident()),
                (run_id,),
            ).fetchone()
        except psycopg.OperationalError as exc:
            self._drop_conn()
            raise LayerUnreachableError("run store (PostgreSQL)", _first_line(exc)) from exc
        if found is None:
            raise InvalidInputError([Problem(file="<command line>", key="RUN",
                                             message=f"no evolution run {run_id!r} in {self.schema}.{TABLE}")])
        names = ("run_id", "table_name", "status", "plan", "steps", "error", "failed_step")
        return self.from_row(dict(zip(names, found, strict=True)))

    def recent(self, limit: int = 20) -> list[tuple[str, str, str]]:
        self._ensure()
        rows = self.conn.execute(
            sql.SQL("SELECT run_id, table_name, status FROM {} ORDER BY created_at DESC LIMIT %s")
            .format(self._ident()),
            (limit,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """Hold the run's advisory lock on a connection of its own; refused (RunLockedError) when another
        session holds it. The server drops the lock with the session, so a killed process never leaves it."""
        conn = self._connect(f"migrate-assets run {run_id}"[:63])
        try:
            key = advisory.lock_key(conn.info.dbname, f"{self.schema}.{TABLE}/{run_id}")
            try:
                advisory.acquire(conn, key, 0)
            except LockNotAcquiredError as exc:
                raise RunLockedError(run_id, exc.holder) from exc
            try:
                yield
            finally:
                try:
                    advisory.release(conn, key)
                except psycopg.Error:
                    pass  # the database went away: the lock went with the session
        finally:
            try:
                conn.close()
            except psycopg.Error:
                pass
