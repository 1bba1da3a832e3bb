"""`evolve_pipeline`, `rollback_evolution` and the run-failure sensor on a real pipeline (local stack).

The tests of this module share one pipeline and run in file order: a dry run changes nothing; a DDL step that
cannot get its lock fails for real and the rollback ops restore every layer; a successful run changes every layer;
`rollback_evolution` then undoes that run for good.
"""

from __future__ import annotations

import psycopg
from dagster import DagsterInstance, RunRequest, SkipReason, build_run_status_sensor_context
from pyiceberg.types import StringType

from migrate_assets.config import load_config
from migrate_assets.jobs.automation import evolution_failed_rollback
from migrate_assets.jobs.evolve import EVOLUTION_RUN_TAG, evolve_pipeline, rollback_evolution
from migrate_assets.resources import project as projectlib
from tests.jobs.conftest import project_for, steps_with
from tests.pipeline import Pipeline

ADD_NOTE = """
table: public.customers
operations:
  - add_column: {name: note, type: text, nullable: true}
"""
FORWARD = ["preflight", "register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector", "verify"]
ROLLBACK = ["rollback_connector", "rollback_ddl", "rollback_lakehouse", "rollback_registry", "evolution_failed"]


def _run(p: Pipeline, instance: DagsterInstance | None = None, **config: object):
    return evolve_pipeline.execute_in_process(
        run_config={"ops": {"preflight": {"config": {"change_yaml": ADD_NOTE, **config}}}},
        resources={"project": project_for(p.config_path)}, instance=instance, raise_on_error=False)


def _record(p: Pipeline, run_id: str):
    store = projectlib.store(load_config(str(p.config_path)))
    try:
        return store.load(run_id)
    finally:
        store.close()


def test_dry_run_plans_and_changes_nothing(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    before = p.layer_state()
    res = _run(p, dry_run=True)
    assert res.success
    assert steps_with(res, "STEP_SUCCESS") == ["preflight"]
    plan = res.output_for_node("preflight", "dry_run_plan")
    assert [s["layer"] for s in plan["steps"]] == ["schema_registry", "lakehouse", "source_db", "connector", "verify"]
    assert p.layer_state() == before


def test_ddl_lock_fault_runs_the_rollback_ops_and_restores_every_layer(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    before = p.layer_state()
    instance = DagsterInstance.ephemeral()
    holder = psycopg.connect(p.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # ACCESS SHARE held: the ALTER cannot get its lock
    try:
        res = _run(p, instance)
    finally:
        holder.rollback()
        holder.close()
    assert not res.success
    ok = steps_with(res, "STEP_SUCCESS")
    # the forward chain stops at apply_ddl (its `failed` output fired); compensation starts at the lakehouse
    assert ok == ["preflight", "register_schema", "evolve_lakehouse", "apply_ddl", "rollback_lakehouse",
                  "rollback_registry"]
    assert set(steps_with(res, "STEP_SKIPPED")) == {"restart_connector", "verify", "rollback_connector",
                                                    "rollback_ddl"}
    assert steps_with(res, "STEP_FAILURE") == ["evolution_failed"]
    fail = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert "failed at ddl" in fail.event_specific_data.error.message  # type: ignore[union-attr]
    ddl_out = next(e for e in res.all_events if e.event_type_value == "STEP_OUTPUT" and e.step_key == "apply_ddl")
    assert ddl_out.event_specific_data.step_output_handle.output_name == "failed"  # type: ignore[union-attr]
    rid = res.dagster_run.tags[EVOLUTION_RUN_TAG]
    rec = _record(p, rid)
    assert rec.status == "rolled_back" and rec.failed_step == "ddl"
    assert {s.id: s.status for s in rec.steps} == {"registry": "compensated", "lakehouse": "compensated",
                                                   "ddl": "failed", "connector": "skipped", "verify": "skipped"}
    after = p.layer_state()
    assert after["db"] == before["db"] and after["iceberg"] == before["iceberg"]
    assert after["registry"][0] == before["registry"][0] and after["connector"] == before["connector"]

    # the run-failure sensor: nothing left to undo after the in-run rollback ...
    ctx = build_run_status_sensor_context(
        sensor_name="evolution_failed_rollback", dagster_event=res.get_run_failure_event(), dagster_instance=instance,
        dagster_run=res.dagster_run, resources={"project": project_for(p.config_path)}).for_run_failure()
    assert isinstance(evolution_failed_rollback(ctx), SkipReason)
    # ... but a run that died before its rollback finished (status left `failed`) gets a rollback run
    store = projectlib.store(load_config(str(p.config_path)))
    try:
        rec.status = "failed"
        store.save(rec)
    finally:
        store.close()
    req = evolution_failed_rollback(ctx)
    assert isinstance(req, RunRequest) and req.run_key == f"rollback:{rid}"
    assert req.run_config == {"ops": {"rollback_run": {"config": {"run_id": rid}}}}
    again = rollback_evolution.execute_in_process(run_config=req.run_config,
                                                  resources={"project": project_for(p.config_path)})
    assert again.success and _record(p, rid).status == "rolled_back"


def test_verify_drift_runs_every_rollback_op_in_reverse_order(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    with p.iceberg().update_schema() as upd:  # out-of-band: pre-flight does not verify, the verify step will
        upd.add_column("sneaky", StringType())
    try:
        before = p.layer_state()
        res = _run(p)
        assert not res.success
        ok = steps_with(res, "STEP_SUCCESS")
        assert ok == FORWARD + ROLLBACK[:4]  # every layer compensated: connector, ddl, lakehouse, registry
        assert steps_with(res, "STEP_FAILURE") == ["evolution_failed"]
        rec = _record(p, res.dagster_run.tags[EVOLUTION_RUN_TAG])
        assert rec.status == "rolled_back" and rec.failed_step == "verify" and "sneaky" in (rec.error or "")
        assert [s.status for s in rec.steps] == ["compensated"] * 4 + ["failed"]
        after = p.layer_state()
        assert after["db"] == before["db"] and after["iceberg"] == before["iceberg"]
        assert after["registry"][0] == before["registry"][0] and after["connector"] == before["connector"]
    finally:
        with p.iceberg().update_schema() as upd:
            upd.delete_column("sneaky")


def test_success_changes_every_layer_then_rollback_evolution_undoes_it(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    before = p.layer_state()
    res = _run(p)
    assert res.success, [e.message for e in res.all_events if e.event_type_value == "STEP_FAILURE"]
    assert steps_with(res, "STEP_SUCCESS") == FORWARD
    assert set(steps_with(res, "STEP_SKIPPED")) == set(ROLLBACK)
    assert res.output_for_node("verify", "ok") == res.dagster_run.tags[EVOLUTION_RUN_TAG]
    after = p.layer_state()
    assert [c[0] for c in after["db"]][-1] == "note"
    assert after["registry"][0] > before["registry"][0]  # soft-deleted versions keep their numbers
    assert "note" in [f[1] for f in after["iceberg"][1]]
    meta = next(e for e in res.all_events if e.event_type_value == "STEP_OUTPUT" and e.step_key == "verify")
    md = meta.event_specific_data.metadata["steps"].value  # type: ignore[union-attr]
    assert "| schema_registry |" in md and "succeeded" in md

    rid = res.dagster_run.tags[EVOLUTION_RUN_TAG]
    undo = rollback_evolution.execute_in_process(run_config={"ops": {"rollback_run": {"config": {"run_id": rid}}}},
                                                 resources={"project": project_for(p.config_path)})
    assert undo.success
    assert _record(p, rid).status == "rolled_back"
    restored = p.layer_state()
    assert restored["db"] == before["db"] and restored["iceberg"][1] == before["iceberg"][1]
    assert restored["registry"][0] == before["registry"][0]


def test_from_specs_plans_a_new_pipeline_table_in_every_layer(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    (p.tmp / "schemas").mkdir(exist_ok=True)
    (p.tmp / "schemas" / "orders.yaml").write_text(
        "table: orders\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
        "  - {name: total, type: 'numeric(12,2)', nullable: true}\n")
    p.write_config(schemas=[str(p.tmp / "schemas")], pipelines=[
        {"table": "public.customers", "connector": p.name, "subject": p.subject, "iceberg_table": p.iceberg_table},
        {"table": "public.orders", "connector": p.name, "subject": f"{p.prefix}.public.orders-value",
         "iceberg_table": f"{p.namespace}.orders"}])
    try:
        res = evolve_pipeline.execute_in_process(
            run_config={"ops": {"preflight": {"config": {"from_specs": True, "dry_run": True}}}},
            resources={"project": project_for(p.config_path)})
        plan = res.output_for_node("preflight", "dry_run_plan")
        assert plan["table"] == "public.orders"
        assert [s["layer"] for s in plan["steps"]] == ["schema_registry", "lakehouse", "source_db", "connector",
                                                       "verify"]
        assert steps_with(res, "STEP_SUCCESS") == ["preflight"]
    finally:
        p.write_config()
