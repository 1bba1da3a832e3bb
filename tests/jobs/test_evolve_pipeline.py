"""`evolve_pipeline`, `rollback_evolution` and the run-failure sensor on a real pipeline (local stack), one table.

The tests of this module share one pipeline and run in file order: a dry run changes nothing; a DDL step that
cannot get its lock fails apply_ddl for real (red where it happened) after the op undid the completed layers; a
successful run changes every layer and observes each layer's asset with its new columns;
`rollback_evolution` then undoes that run for good. One table is one mapped branch, `evolve_table[public_customers]`.
"""

from __future__ import annotations

import psycopg
from dagster import DagsterInstance, RunRequest, SkipReason, build_run_status_sensor_context

from migrate_assets.config import load_config
from migrate_assets.jobs.automation import evolution_failed_rollback
from migrate_assets.jobs.evolve import EVOLUTION_RUN_TAG, evolve_pipeline, rollback_evolution
from migrate_assets.jobs.evolve_launch import CHANGE_TAG, ON_FAILURE_TAG, TABLES_TAG
from migrate_assets.resources import project as projectlib
from tests.jobs.conftest import (
    columns_of,
    observations,
    op_metadata,
    op_of,
    ops_with,
    project_for,
    steps_with,
)
from tests.pipeline import ADD_NOTE, Pipeline

FORWARD = ["register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector", "verify"]
KEY = "public_customers"  # the mapping key of the table's branch


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


def test_ddl_lock_fault_fails_apply_ddl_after_undoing_the_completed_layers(module_pipeline: Pipeline) -> None:
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
    # red where it happened: apply_ddl failed; the ops before it succeeded, the ones after it never ran
    assert ops_with(res, "STEP_SUCCESS", KEY) == FORWARD[:2]
    assert ops_with(res, "STEP_FAILURE") == ["apply_ddl"]
    assert not set(ops_with(res, "STEP_START")) & {"restart_connector", "verify", "evolution_report"}
    fail = res.failure_data_for_node("evolve_table.apply_ddl").user_failure_data  # type: ignore[union-attr]
    meta = {k: v.value for k, v in fail.metadata.items()}
    assert fail.description is not None and "failed at ddl" in fail.description
    assert "public.customers" in fail.description and "Re-execute from failure retries the change" in \
        fail.description
    assert meta["status"] == "rolled_back" and meta["failed_step"] == "ddl" and "lock" in meta["error"]
    assert "| ddl | source_db | failed |" in meta["layers"] and "| lakehouse | lakehouse | compensated |" in \
        meta["layers"]
    rid = res.dagster_run.tags[EVOLUTION_RUN_TAG]
    assert meta["evolution_run"] == rid
    rec = _record(p, rid)
    assert rec.status == "rolled_back" and rec.failed_step == "ddl"
    assert {s.id: s.status for s in rec.steps} == {"registry": "compensated", "lakehouse": "compensated",
                                                   "ddl": "failed", "connector": "skipped", "verify": "skipped"}
    after = p.layer_state()
    assert after["db"] == before["db"] and after["iceberg"] == before["iceberg"]
    assert after["registry"][0] == before["registry"][0] and after["connector"] == before["connector"]
    # the layers the op undid were observed again, as they are after the undo
    undone = [e for e in observations(res, instance) if e.step_key == f"evolve_table.apply_ddl[{KEY}]"]
    assert sorted(e.asset_key.path[-1] for e in undone) == ["iceberg", "registry"]
    iceberg = next(e for e in undone if e.asset_key.path[-1] == "iceberg")
    assert "note" not in columns_of(iceberg)

    # the run-failure sensor: nothing left to undo after the in-op undo ...
    ctx = build_run_status_sensor_context(
        sensor_name="evolution_failed_rollback", dagster_event=res.get_run_failure_event(), dagster_instance=instance,
        dagster_run=res.dagster_run, resources={"project": project_for(p.config_path)}).for_run_failure()
    assert isinstance(evolution_failed_rollback(ctx), SkipReason)
    # ... but a run that died before its undo finished (status left `failed`) gets a rollback run
    store = projectlib.store(load_config(str(p.config_path)))
    try:
        rec.status = "failed"
        store.save(rec)
    finally:
        store.close()
    reqs = evolution_failed_rollback(ctx)
    assert isinstance(reqs, list) and len(reqs) == 1
    req = reqs[0]
    assert isinstance(req, RunRequest) and req.run_key == f"rollback:{rid}"
    assert req.run_config == {"ops": {"rollback_run": {"config": {"run_id": rid}}}}
    again = rollback_evolution.execute_in_process(run_config=req.run_config,
                                                  resources={"project": project_for(p.config_path)})
    assert again.success and _record(p, rid).status == "rolled_back"


def test_verify_drift_fails_verify_after_undoing_every_layer(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    p.add_iceberg_column("sneaky")  # out-of-band: pre-flight does not verify, the verify step will
    try:
        before = p.layer_state()
        instance = DagsterInstance.ephemeral()
        res = _run(p, instance)
        assert not res.success
        assert ops_with(res, "STEP_SUCCESS", KEY) == FORWARD[:4] and ops_with(res, "STEP_FAILURE") == ["verify"]
        fail = res.failure_data_for_node("evolve_table.verify").user_failure_data  # type: ignore[union-attr]
        assert fail.metadata["status"].value == "rolled_back"
        undone = [e for e in observations(res, instance) if e.step_key == f"evolve_table.verify[{KEY}]"]
        assert sorted(e.asset_key.path[-1] for e in undone) == ["iceberg", "registry", "source"]
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
    assert ops_with(res, "STEP_SUCCESS") == ["preflight", *FORWARD, "evolution_report"]
    assert res.output_for_node("evolve_table", "evolved") == {KEY: res.dagster_run.tags[EVOLUTION_RUN_TAG]}
    assert res.output_for_node("evolution_report") == {"evolved": ["public.customers"],
                                                       "status": {"public.customers": "succeeded"}}
    tags = res.dagster_run.tags
    assert (tags[TABLES_TAG], tags[CHANGE_TAG], tags[ON_FAILURE_TAG]) == ("public.customers", "change_yaml",
                                                                          "rollback")
    # each op that changed a layer observed that layer's asset: the new column is in its column schema
    seen = {e.asset_key.path[-1]: (op_of(e.step_key)[0], columns_of(e)) for e in observations(res)}
    assert {layer: op for layer, (op, _) in seen.items()} == {"registry": "register_schema",
                                                              "iceberg": "evolve_lakehouse", "source": "apply_ddl"}
    assert all("note" in cols for _, cols in seen.values()), seen
    after = p.layer_state()
    assert [c[0] for c in after["db"]][-1] == "note"
    assert after["registry"][0] > before["registry"][0]  # soft-deleted versions keep their numbers
    assert "note" in [f[1] for f in after["iceberg"][1]]
    md = op_metadata(res, "verify", KEY)["steps"]
    assert "| schema_registry |" in md and "succeeded" in md

    rid = res.dagster_run.tags[EVOLUTION_RUN_TAG]
    undo = rollback_evolution.execute_in_process(run_config={"ops": {"rollback_run": {"config": {"run_id": rid}}}},
                                                 resources={"project": project_for(p.config_path)})
    assert undo.success
    assert _record(p, rid).status == "rolled_back"
    assert (undo.dagster_run.tags[EVOLUTION_RUN_TAG], undo.dagster_run.tags[TABLES_TAG]) == (rid, "public.customers")
    restored = p.layer_state()
    assert restored["db"] == before["db"] and restored["iceberg"][1] == before["iceberg"][1]
    assert restored["registry"][0] == before["registry"][0]
    back = {e.asset_key.path[-1]: columns_of(e) for e in observations(undo)}
    assert set(back) == {"source", "registry", "iceberg"} and not any("note" in c for c in back.values())


def test_from_specs_plans_a_new_pipeline_table_in_every_layer(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    (p.tmp / "schemas").mkdir(exist_ok=True)
    (p.tmp / "schemas" / "orders.yaml").write_text(
        "table: orders\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
        "  - {name: total, type: 'numeric(12,2)', nullable: true}\n")
    p.write_config(schemas=[str(p.tmp / "schemas")], pipelines=[p.pipeline_entry("customers"),
                                                                 p.pipeline_entry("orders")])
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
