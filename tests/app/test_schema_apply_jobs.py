"""The Dagster database jobs obey the same rules as the CLI (issue 16 item 6): migrations_up refuses a migration
that would change a pipeline table (a final Failure, never retried) unless allow_pipeline_drift, and contract
writes its change back into the spec, so the drift check passes after it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from migrate_assets.jobs.database import contract, expand, migrations_up, schema_plan
from tests.jobs.conftest import project_for, steps_with, write_db_project
from tests.support import column_names

SPEC = """\
# accounts, captured by the CDC pipeline
table: accounts
columns:
  - {name: id, type: integer, primary_key: true}
  - {name: score, type: integer, nullable: true}   # points
"""


@pytest.fixture
def project(fresh_dsn: str, tmp_path: Path) -> Path:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id integer PRIMARY KEY, score integer)")
        conn.execute("INSERT INTO accounts SELECT g, g FROM generate_series(1, 20) g")
    cfg = write_db_project(tmp_path, fresh_dsn, pipelines=[{"table": "public.accounts"}])
    (tmp_path / "schemas" / "accounts.yaml").write_text(SPEC)
    (tmp_path / "migrations" / "001_tier.up.sql").write_text("ALTER TABLE accounts ADD COLUMN tier text;\n")
    return cfg


def _ops(name: str, **config: object) -> dict:
    return {"ops": {name: {"config": config}}}


def test_migrations_up_job_refuses_a_pipeline_table_change(project: Path, fresh_dsn: str) -> None:
    res = {"project": project_for(project)}
    refused = migrations_up.execute_in_process(resources=res, raise_on_error=False)
    assert not refused.success and steps_with(refused, "STEP_UP_FOR_RETRY") == []
    err = refused.failure_data_for_node("migrate_up").error  # type: ignore[union-attr]
    assert "001_tier.up.sql" in err.message and "public.accounts" in err.message  # type: ignore[union-attr]
    assert column_names(fresh_dsn, "public.accounts") == ["id", "score"]
    ran = migrations_up.execute_in_process(run_config=_ops("migrate_up", allow_pipeline_drift=True), resources=res)
    out = ran.output_for_node("migrate_up")
    assert [s["file"] for s in out["steps"]] == ["001_tier.up.sql"]
    assert [d["table"] for d in out["pipeline_drift"]] == ["public.accounts"]
    assert column_names(fresh_dsn, "public.accounts") == ["id", "score", "tier"]


def test_contract_job_writes_the_spec_back(project: Path) -> None:
    res = {"project": project_for(project)}
    (project.parent / "changes" / "wide.yaml").write_text(
        "table: public.accounts\noperations:\n  - change_type: {column: score, to_type: bigint}\n")
    cfg = _ops("expand_change", change_file="changes/wide.yaml")
    assert expand.execute_in_process(run_config=cfg, resources=res).success
    done = contract.execute_in_process(run_config=_ops("contract_change", change_file="changes/wide.yaml"),
                                       resources=res)
    assert done.output_for_node("contract_change")["spec"]["status"] == "written"
    assert (project.parent / "schemas" / "accounts.yaml").read_text() == SPEC.replace(
        "{name: score, type: integer, nullable: true}", "{name: score, type: bigint, nullable: true}")
    drift = schema_plan.execute_in_process(run_config=_ops("plan_schema", fail_on_changes=True), resources=res)
    assert drift.success
