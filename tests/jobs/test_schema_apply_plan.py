"""The Dagster `schema_apply` job given a stored plan (`plan_file`) on a real PostgreSQL: a plan reviewed from
`schema_plan`'s output is applied while the database is still as planned; once the database moved, the op fails
red with a `Failure` saying the plan is stale, and nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from migrate_assets.jobs.database import schema_apply, schema_plan
from tests.app.test_stored_plan import SPEC  # the same spec and table as the app layer's stored-plan tests
from tests.jobs.conftest import project_for, steps_with, write_db_project
from tests.support import column_names


@pytest.fixture
def planned(fresh_dsn: str, tmp_path: Path) -> Path:
    """A project whose spec adds `note` to customers, and that plan stored as plans/plan.json by schema_plan."""
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)")
    cfg = write_db_project(tmp_path, fresh_dsn, schemas=["schemas/"])
    (tmp_path / "schemas" / "customers.yaml").write_text(SPEC)
    out = schema_plan.execute_in_process(resources={"project": project_for(cfg)}).output_for_node("plan_schema")
    assert [c["kind"] for c in out["changes"]] == ["add_column"]
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "plan.json").write_text(json.dumps(out))
    return cfg


def _apply(cfg: Path, **config: object):  # type: ignore[no-untyped-def]
    return schema_apply.execute_in_process(run_config={"ops": {"apply_schema": {"config": config}}},
                                           resources={"project": project_for(cfg)}, raise_on_error=False)


def test_a_fresh_stored_plan_is_applied(planned: Path, fresh_dsn: str) -> None:
    dry = _apply(planned, plan_file="plans/plan.json", dry_run=True)  # relative to the project file
    assert dry.success and column_names(fresh_dsn, "public.customers") == ["id", "name"]
    run = _apply(planned, plan_file="plans/plan.json")
    assert run.success
    assert [c["kind"] for c in run.output_for_node("apply_schema")["changes"]] == ["add_column"]
    assert column_names(fresh_dsn, "public.customers") == ["id", "name", "note"]


def test_a_stale_stored_plan_fails_the_op_and_changes_nothing(planned: Path, fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:  # the database moves after the review
        conn.execute("ALTER TABLE customers ADD COLUMN sneaky text")
    run = _apply(planned, plan_file="plans/plan.json")
    assert not run.success and steps_with(run, "STEP_UP_FOR_RETRY") == []
    failure = run.failure_data_for_node("apply_schema")
    assert failure is not None and failure.user_failure_data is not None
    assert "stale plan: it was computed from schema fingerprint" in failure.error.message  # type: ignore[union-attr]
    meta = failure.user_failure_data.metadata
    assert meta["error_type"].value == "StalePlanError" and meta["exit_code"].value == 3  # type: ignore[attr-defined]
    assert column_names(fresh_dsn, "public.customers") == ["id", "name", "sneaky"]


def test_specs_edited_since_the_plan_and_a_missing_plan_file_are_refused(planned: Path, fresh_dsn: str) -> None:
    (planned.parent / "schemas" / "customers.yaml").write_text(SPEC.replace("name: note", "name: memo"))
    run = _apply(planned, plan_file="plans/plan.json")
    assert not run.success
    assert "no longer matches the spec files" in run.failure_data_for_node("apply_schema").error.message  # type: ignore[union-attr]
    missing = _apply(planned, plan_file="plans/nope.json")
    message = missing.failure_data_for_node("apply_schema").error.message  # type: ignore[union-attr]
    assert not missing.success and "nope.json" in message and "cannot read plan file" in message
    assert column_names(fresh_dsn, "public.customers") == ["id", "name"]
