"""Persisted saga state: `migrate_assets_evolutions` in the source database.

Each run's plan and every step's state (pending → running → done | failed → compensated | ...) are written as
they change, on their own autocommit connection, so a process that dies mid-run leaves enough behind for
`evolve --resume RUN` or `--rollback RUN` from another process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from migrate_assets.errors import InvalidInputError, Problem
from migrate_assets.evolution.layers import Layer

TABLE = "migrate_assets_evolutions"


@dataclass
class StepState:
    id: str
    layer: str  # a `Layer` (str-valued: run records store its name)
    status: str = "pending"  # pending | running | done | failed | compensating | compensated | compensation_failed | skipped
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    compensation: str | None = None  # outcome text of the compensation, once run
    compensation_result: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    run_id: str
    table: str
    status: str  # running | succeeded | failed | rolled_back | rollback_failed | dry_run
    plan: dict[str, Any]
    steps: list[StepState]
    error: str | None = None
    failed_step: str | None = None

    def step(self, step_id: str) -> StepState:
        return next(s for s in self.steps if s.id == step_id)


class EvolutionStore:
    """One autocommit connection; every save is a single UPSERT."""

    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn, self.schema = dsn, schema
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, application_name="migrate-assets evolve")
            self._ensure()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, TABLE)

    def _ensure(self) -> None:
        assert self._conn is not None
        self._conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run_id text PRIMARY KEY, table_name text NOT NULL, "
                "status text NOT NULL, plan jsonb NOT NULL, steps jsonb NOT NULL, error text, failed_step text, "
                "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(self._ident())
        )

    def save(self, rec: RunRecord) -> None:
        steps = [s.__dict__ for s in rec.steps]
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (run_id, table_name, status, plan, steps, error, failed_step) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, "
                "steps = EXCLUDED.steps, error = EXCLUDED.error, failed_step = EXCLUDED.failed_step, "
                "updated_at = now()"
            ).format(self._ident()),
            (rec.run_id, rec.table, rec.status, Jsonb(rec.plan), Jsonb(steps), rec.error, rec.failed_step),
        )

    def load(self, run_id: str) -> RunRecord:
        row = self.conn.execute(
            sql.SQL("SELECT run_id, table_name, status, plan, steps, error, failed_step FROM {} WHERE run_id = %s")
            .format(self._ident()),
            (run_id,),
        ).fetchone()
        if row is None:
            raise InvalidInputError([Problem(file="<command line>", key="RUN",
                                             message=f"no evolution run {run_id!r} in {self.schema}.{TABLE}")])
        steps = [StepState(**{**s, "layer": Layer.of(s["layer"])})
                 for s in (row[4] if isinstance(row[4], list) else json.loads(row[4]))]
        return RunRecord(row[0], row[1], row[2], row[3], steps, row[5], row[6])

    def recent(self, limit: int = 20) -> list[tuple[str, str, str]]:
        rows = self.conn.execute(
            sql.SQL("SELECT run_id, table_name, status FROM {} ORDER BY created_at DESC LIMIT %s")
            .format(self._ident()),
            (limit,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
