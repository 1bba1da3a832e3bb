"""The database-only jobs on a real PostgreSQL database, and the sensors and schedule that start them:
schema_plan / schema_apply, migrations_*, expand / expand_status / contract / abort_expand."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from dagster import (
    Backoff,
    DagsterInstance,
    Jitter,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
)

from migrate_assets.jobs import JOBS
from migrate_assets.jobs.automation import (
    expand_ready,
    layers_changed,
    nightly_drift_check,
    spec_files_changed,
)
from migrate_assets.jobs.database import (
    abort_expand,
    contract,
    expand,
    expand_status,
    migrations_down,
    migrations_status,
    migrations_up,
    schema_apply,
    schema_plan,
)
from tests.jobs.conftest import project_for, steps_with, write_db_project
from tests.support import column_names

ACCOUNTS = """
- table: accounts
  columns:
    - {name: id, type: integer, primary_key: true}
    - {name: email, type: text, nullable: true}
"""


def _ops(name: str, **config: object) -> dict:
    return {"ops": {name: {"config": config}}}


@pytest.fixture
def db_project(fresh_dsn: str, tmp_path: Path) -> Path:
    cfg = write_db_project(tmp_path, fresh_dsn)
    (tmp_path / "schemas" / "accounts.yaml").write_text(ACCOUNTS)
    (tmp_path / "migrations" / "001_seed.up.sql").write_text(
        "INSERT INTO accounts (id, email) SELECT g, 'u' || g || '@x' FROM generate_series(1, 50) g;\n")
    (tmp_path / "migrations" / "001_seed.down.sql").write_text("DELETE FROM accounts;\n")
    return cfg


def test_every_op_retries_transient_errors_with_exponential_backoff_and_jitter() -> None:
    for job in JOBS:
        for node in job.graph.iterate_op_defs():
            policy = node.retry_policy  # type: ignore[attr-defined]
            assert policy is not None, f"{job.name}.{node.name}"
            assert (policy.max_retries, policy.backoff, policy.jitter) == (3, Backoff.EXPONENTIAL, Jitter.PLUS_MINUS)


def test_schema_plan_apply_and_drift_schedule(db_project: Path, fresh_dsn: str) -> None:
    res = {"project": project_for(db_project)}
    plan = schema_plan.execute_in_process(resources=res)
    out = plan.output_for_node("plan_schema")
    assert [c["kind"] for c in out["changes"]] == ["create_table"]
    md = next(e for e in plan.all_events if e.event_type_value == "STEP_OUTPUT").event_specific_data.metadata["plan"]
    assert md.value.startswith("**1 change(s)**") and "| public.accounts |" in md.value  # type: ignore[union-attr]

    # the nightly drift check runs schema_plan with fail_on_changes: the database still lacks the table
    req = nightly_drift_check.evaluate_tick(build_schedule_context()).run_requests[0]  # type: ignore[index]
    drift = schema_plan.execute_in_process(run_config=req.run_config, resources=res, raise_on_error=False)
    assert not drift.success and "drift" in drift.failure_data_for_node("plan_schema").error.message  # type: ignore[union-attr]

    instance = DagsterInstance.ephemeral()
    dry = schema_apply.execute_in_process(run_config=_ops("apply_schema", dry_run=True), resources=res,
                                          instance=instance)
    assert dry.output_for_node("apply_schema")["dry_run"] is True
    applied = schema_apply.execute_in_process(resources=res, instance=instance)
    assert len(applied.output_for_node("apply_schema")["changes"]) == 1
    # the layers_changed sensor: the applied run asks for an observation of the pipeline assets, the dry run not
    for run, expect in ((dry, SkipReason), (applied, RunRequest)):
        ctx = build_run_status_sensor_context(sensor_name="layers_changed", dagster_event=run.get_run_success_event(),
                                              dagster_instance=instance, dagster_run=run.dagster_run)
        out = layers_changed(ctx)
        assert isinstance(out, expect), out
    assert out.run_key == f"observe-after:{applied.run_id}"  # type: ignore[union-attr]
    assert out.tags["migrate_assets/after_job"] == "schema_apply"  # type: ignore[union-attr]
    assert schema_plan.execute_in_process(run_config=req.run_config, resources=res).success  # converged

    # a breaking change is a semantic failure: Failure(allow_retries=False), never retried
    (db_project.parent / "schemas" / "accounts.yaml").write_text(ACCOUNTS.replace(
        "    - {name: email, type: text, nullable: true}\n", ""))
    blocked = schema_apply.execute_in_process(resources=res, raise_on_error=False)
    assert not blocked.success
    assert steps_with(blocked, "STEP_UP_FOR_RETRY") == []
    err = blocked.failure_data_for_node("apply_schema").error  # type: ignore[union-attr]
    assert "BreakingChangeBlocked" in str(blocked.failure_data_for_node("apply_schema").user_failure_data.metadata)  # type: ignore[union-attr]
    assert "breaking changes blocked" in err.message  # type: ignore[union-attr]
    assert len(column_names(fresh_dsn, "public.accounts")) == 2


def test_migrations_status_up_down(db_project: Path, fresh_dsn: str) -> None:
    res = {"project": project_for(db_project)}
    schema_apply.execute_in_process(resources=res)
    st = migrations_status.execute_in_process(resources=res).output_for_node("migration_status")
    assert [m["version"] for m in st["pending"]] == [1]
    dry = migrations_up.execute_in_process(run_config=_ops("migrate_up", dry_run=True), resources=res)
    assert dry.output_for_node("migrate_up")["dry_run"] is True
    up = migrations_up.execute_in_process(resources=res).output_for_node("migrate_up")
    assert up["current"] == 1 and [s["action"] for s in up["steps"]] == ["up"]
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 50  # type: ignore[index]
    down = migrations_down.execute_in_process(run_config=_ops("migrate_down", steps=1), resources=res)
    assert down.output_for_node("migrate_down")["current"] is None
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0  # type: ignore[index]


def test_spec_files_sensor_keys_runs_by_content(db_project: Path) -> None:
    project = project_for(db_project)
    first = spec_files_changed(build_sensor_context(resources={"project": project}))
    keys = sorted(r.run_key for r in first.run_requests or [])
    assert [k.split(":")[0] for k in keys] == ["migrations", "schema"]
    assert {r.job_name for r in first.run_requests or []} == {"schema_plan", "migrations_status"}
    # unchanged files: no new run key
    second = spec_files_changed(build_sensor_context(cursor=first.cursor, resources={"project": project}))
    assert not second.run_requests and second.cursor == first.cursor
    # a spec edit: one new run for the schema only; auto_apply turns it into schema_apply
    spec = db_project.parent / "schemas" / "accounts.yaml"
    spec.write_text(spec.read_text() + "    - {name: tier, type: text, nullable: true}\n")
    auto = project_for(db_project, auto_apply=True)
    third = spec_files_changed(build_sensor_context(cursor=first.cursor, resources={"project": auto}))
    assert [(r.job_name, r.run_key.split(":")[0]) for r in third.run_requests or []] == [("schema_apply", "schema")]
    assert third.run_requests[0].run_key not in keys  # type: ignore[index]


def test_expand_status_sensor_contract_and_abort(db_project: Path, fresh_dsn: str) -> None:
    res = {"project": project_for(db_project)}
    schema_apply.execute_in_process(resources=res)
    migrations_up.execute_in_process(resources=res)
    changes = db_project.parent / "changes"
    (changes / "rename_email.yaml").write_text(
        "table: public.accounts\noperations:\n  - rename_column: {from: email, to: email_address}\n")
    cf = "changes/rename_email.yaml"
    instance = DagsterInstance.ephemeral()
    ex = expand.execute_in_process(run_config=_ops("expand_change", change_file=cf, batch_size=10), resources=res,
                                   instance=instance)
    assert ex.output_for_node("expand_change")["status"] == "expanded"
    logs = [e.user_message for e in instance.all_logs(ex.run_id)]
    assert any(m.startswith("backfill: 50/50 rows (100.0%)") for m in logs), logs  # progress in the run log
    st = expand_status.execute_in_process(run_config=_ops("expand_change_status", change_file=cf), resources=res)
    assert st.output_for_node("expand_change_status")["safe_to_contract"] is True

    # the sensor: ready but auto_contract off → no run; on → one contract run keyed by the change
    off = expand_ready(build_sensor_context(resources=res))
    assert not off.run_requests and "rename_email.yaml" in str(off.skip_reason)
    auto = {"project": project_for(db_project, auto_contract=True)}
    on = expand_ready(build_sensor_context(resources=auto))
    req = on.run_requests[0]  # type: ignore[index]
    assert isinstance(req, RunRequest) and req.run_key.startswith("contract:")
    assert expand_ready(build_sensor_context(resources=auto)).run_requests[0].run_key == req.run_key  # type: ignore[index]
    done = contract.execute_in_process(run_config=req.run_config, resources=res)
    assert done.output_for_node("contract_change")["status"] == "contracted"
    assert not expand_ready(build_sensor_context(resources=auto)).run_requests
    assert column_names(fresh_dsn, "public.accounts") == ["id", "email_address"]

    # abort: an expand undone completely
    (changes / "tier.yaml").write_text(
        "table: public.accounts\noperations:\n  - add_column: {name: tier, type: text, nullable: true}\n")
    expand.execute_in_process(run_config=_ops("expand_change", change_file="changes/tier.yaml"), resources=res)
    ab = abort_expand.execute_in_process(run_config=_ops("abort_change", change_file="changes/tier.yaml"),
                                         resources=res)
    assert ab.output_for_node("abort_change")["status"] == "aborted"
    # contract of an aborted change is refused: a semantic failure
    refused = contract.execute_in_process(run_config=_ops("contract_change", change_file="changes/tier.yaml"),
                                          resources=res, raise_on_error=False)
    assert not refused.success and steps_with(refused, "STEP_UP_FOR_RETRY") == []


def test_schema_apply_hands_breaking_changes_to_expand_contract(fresh_dsn: str, tmp_path: Path) -> None:
    cfg = write_db_project(tmp_path, fresh_dsn, on_breaking_change="expand_contract")
    spec = tmp_path / "schemas" / "accounts.yaml"
    spec.write_text(ACCOUNTS)
    res = {"project": project_for(cfg)}
    schema_apply.execute_in_process(resources=res)
    spec.write_text(ACCOUNTS.replace("{name: email, type: text, nullable: true}",
                                     "{name: email_address, type: text, nullable: true, renamed_from: email}"))
    out = schema_apply.execute_in_process(resources=res).output_for_node("apply_schema")
    assert [(e["table"], e["status"]) for e in out["expanded"]] == [("public.accounts", "expanded")]
    change_file = Path(out["expanded"][0]["change_file"])
    assert change_file.parent == tmp_path / "changes"
    st = expand_status.execute_in_process(run_config=_ops("expand_change_status", change_file=str(change_file)),
                                          resources=res).output_for_node("expand_change_status")
    assert st["safe_to_contract"] is True
