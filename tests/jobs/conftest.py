"""Fixtures for the Dagster jobs: one real pipeline per module (table + Debezium connector + registry subject +
Iceberg table), so the module's tests share its ~5 s setup; and helpers to read a run's event log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import ExecuteInProcessResult
from psycopg import sql

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.local.stack import StackInfo
from tests.pipeline import Pipeline


@pytest.fixture(scope="module")
def module_pipeline(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    name = "j_" + uuid.uuid4().hex[:12]
    with psycopg.connect(stack_info.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = stack_info.pg_dsn.rsplit("/", 1)[0] + "/" + name
    p = Pipeline(stack_info, dsn, tmp_path_factory.mktemp("pipeline")).setup()
    try:
        yield p
    finally:
        try:
            p.teardown()
        finally:
            with psycopg.connect(stack_info.pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def project_for(config_path: Path | str, **kw: Any) -> MigrateProjectResource:
    return MigrateProjectResource(config_path=str(config_path), **kw)


def steps_with(result: ExecuteInProcessResult, event_type: str) -> list[str]:
    """Step keys with an event of this type, in event-log order."""
    return [e.step_key for e in result.all_events if e.event_type_value == event_type and e.step_key]


def write_db_project(tmp: Path, dsn: str, **extra: Any) -> Path:
    """A DB-only migrate.yaml with schemas/, migrations/ and changes/ folders next to it."""
    import yaml

    for d in ("schemas", "migrations", "changes"):
        (tmp / d).mkdir(exist_ok=True)
    cfg: dict[str, Any] = {"database": {"dsn": dsn}, "lock_timeout": "1s",
                           "retries": {"attempts": 2, "backoff": "0.1s", "max_backoff": "0.5s"}, **extra}
    path = tmp / "migrate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
