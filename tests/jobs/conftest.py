"""Fixtures for the Dagster jobs: one real pipeline per module (table + Debezium connector + registry subject +
Iceberg table), so the module's tests share its ~5 s setup; and helpers to read a run's event log."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, JobExecutionResult

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.local.stack import StackInfo
from tests.pipeline import Pipeline
from tests.support import new_database


@contextmanager
def pipeline_database(stack_info: StackInfo, tmp: Path, prepare: Callable[[str], None] | None = None,
                      **setup: Any) -> Iterator[Pipeline]:
    """A database of its own on the stack's PostgreSQL with a real pipeline on it (`Pipeline.setup(**setup)`,
    after `prepare(dsn)`); connector and database are removed afterwards."""
    with new_database(stack_info.pg_dsn, prefix="j_") as dsn:
        if prepare is not None:
            prepare(dsn)
        p = Pipeline(stack_info, dsn, tmp)
        try:
            yield p.setup(**setup)
        finally:
            p.teardown()


@pytest.fixture(scope="module")
def module_pipeline(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with pipeline_database(stack_info, tmp_path_factory.mktemp("pipeline")) as p:
        yield p


def project_for(config_path: Path | str, **kw: Any) -> MigrateProjectResource:
    return MigrateProjectResource(config_path=str(config_path), **kw)


def steps_with(result: ExecuteInProcessResult | JobExecutionResult, event_type: str) -> list[str]:
    """Step keys with an event of this type, in event-log order."""
    return [e.step_key for e in result.all_events if e.event_type_value == event_type and e.step_key]


def op_of(step_key: str) -> tuple[str, str | None]:
    """(op, mapping key) of a step key: `evolve_table.apply_ddl[public_customers]` → (`apply_ddl`,
    `public_customers`); `preflight` → (`preflight`, None)."""
    m = re.fullmatch(r"(?:\w+\.)*(\w+)(?:\[(\w+)\])?", step_key)
    assert m, step_key
    return m[1], m[2]


def ops_with(result: ExecuteInProcessResult | JobExecutionResult, event_type: str, key: str | None = None) -> list[str]:
    """Ops with an event of this type, in event-log order: every step, or (`key`) one mapped branch's steps."""
    return [op for op, k in map(op_of, steps_with(result, event_type)) if key is None or k == key]


def op_metadata(result: ExecuteInProcessResult | JobExecutionResult, op: str, key: str | None = None) -> dict[str, Any]:
    """The metadata of an op's output (of one mapped branch with `key`), as plain values."""
    for e in result.all_events:
        if e.event_type_value == "STEP_OUTPUT" and e.step_key and op_of(e.step_key) == (op, key):
            return {k: v.value for k, v in e.event_specific_data.metadata.items()}  # type: ignore[union-attr]
    raise AssertionError(f"no output of {op}[{key}]")


def observations(result: ExecuteInProcessResult | JobExecutionResult,
                 instance: DagsterInstance | None = None) -> list[Any]:
    """The asset observation events of a run (event-log order): `.asset_key`, `.step_key`, `.metadata`. Those a
    failed step logged before it failed are only in the instance's event log: pass the instance for them."""
    out = []
    events = result.all_events if instance is None else [
        r.dagster_event for r in instance.all_logs(result.run_id) if r.dagster_event is not None]
    for e in events:
        if e.event_type_value == "ASSET_OBSERVATION":
            obs = e.event_specific_data.asset_observation  # type: ignore[union-attr]
            out.append(SimpleNamespace(asset_key=obs.asset_key, step_key=e.step_key, metadata=obs.metadata))
    return out


def columns_of(obs: Any) -> list[str]:
    """Column names of an observation's `dagster/column_schema`."""
    return [c.name for c in obs.metadata["dagster/column_schema"].value.columns]


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
