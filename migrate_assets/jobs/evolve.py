"""Pipeline evolution as Dagster jobs: `evolve_pipeline`, `rollback_evolution`, `verify_pipeline`, and the connector
restart the FAILED-connector sensor asks for.

`evolve_pipeline` fans out per pipeline table (SPEC §11), one branch per table, one op per saga step:

    preflight ─runs: one DynamicOutput per table─▶ evolve_table[<table>] ─evolved─▶ evolution_report
                                                   register_schema → evolve_lakehouse → apply_ddl
                                                   → restart_connector → verify

`preflight` plans every table and runs every check before any table changes anything, persists one evolution run
per table, tags the Dagster run with the tables, the change and the evolution runs, and yields one
`DynamicOutput` per table. In `evolve_table` each op runs one planned step (jobs/evolve_steps.py). A failed step
fails *its* op — red where it happened — after the table's completed layers were undone in reverse order inside
that op; the table's later ops do not run, the other tables' branches carry on. "Re-execute from failure" resumes
the evolution, or retries a rolled-back change (see jobs/evolve_steps.py). What branches share — the source
database and the connector — is ordered in `jobs/fanout.py` (the DDL pool, a layer lock, rebased connector
config). `evolution_report` collects the branches: it runs when every table evolved (a failed branch stops it;
the failed op says everything about its table).
"""


from collections.abc import Iterator
from typing import Any

from dagster import (
    Config,
    DynamicOut,
    DynamicOutput,
    Failure,
    GraphOut,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    graph,
    job,
    multi_or_in_process_executor,
    op,
)
from pydantic import Field

from migrate_assets.app.verify import verify_project
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import DriftError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.layers import STEP_ORDER, Layer
from migrate_assets.evolution.verify import TableVerification
from migrate_assets.jobs.common import DDL_POOL, OP_RETRY, engine_errors, failure, md_table
from migrate_assets.jobs.evolve_launch import (
    EVOLUTION_RUN_TAG,
    TABLES_TAG,
    EvolveConfig,
    launch_tags,
    load_changes,
    outcomes_md,
    plan_tables,
    steps_md,
    yaml_documents,
)
from migrate_assets.jobs.evolve_steps import forward_op, log_step
from migrate_assets.jobs.fanout import layer_guard, mapping_keys
from migrate_assets.jobs.observe import ASSET_LAYERS, observe_layers
from migrate_assets.jobs.stepwise import rollback_record
from migrate_assets.redact import scrub


class RollbackConfig(Config):
    run_id: str = Field(description="evolution run id (migrate_assets_evolutions.run_id)")
    allow_data_loss: bool = Field(default=False, description="let the undo drop columns that hold values or "
                                  "tables that hold rows (refused otherwise, naming what would be lost)")
    dry_run: bool = Field(default=False, description="say what the rollback would undo (probing every layer) "
                          "and change nothing, the run record included")


class VerifyConfig(Config):
    tables: list[str] = Field(default_factory=list, description="only these pipeline tables (default: all)")
    progress_bound: float = Field(default=20.0, description="seconds a replication slot may take to progress")


class RestartConfig(Config):
    connector: str = Field(description="Kafka Connect connector name")
    timeout: float = Field(default=60.0, description="seconds to wait for RUNNING after the restart")


def verify_md(results: list[TableVerification]) -> str:
    rows = [[r.table, layer, v.status, "; ".join(v.differences)] for r in results for layer, v in r.layers.items()]
    return md_table(["table", "layer", "status", "differences"], rows)


# ------------------------------------------------------------------------------------------------------------
# evolve_pipeline
# ------------------------------------------------------------------------------------------------------------


@op(out={"runs": DynamicOut(str, is_required=False,
                            description="one evolution run id per table; mapping key: the table"),
         "evolutions": Out(dict, is_required=False, description="table → evolution run id"),
         "dry_run_plans": Out(dict, is_required=False, description="table → plan, when dry_run"),
         "dry_run_plan": Out(dict, is_required=False, description="the plan, when dry_run of one table")},
    retry_policy=OP_RETRY, tags={"layer": "all"})
def preflight(context: OpExecutionContext, config: EvolveConfig,
              project: MigrateProjectResource) -> Iterator[Output[Any] | DynamicOutput[str]]:
    """Read every layer, plan every table, run every check; persist one run record per table. Nothing changes
    here, and one table's failed pre-flight stops the whole launch."""
    with engine_errors("pre-flight"):
        planned = plan_tables(config, project, context.log.info)
        tables = [rec.table for _, rec in planned]
        meta: dict[str, Any] = {
            "tables": ", ".join(tables),
            "plan": MetadataValue.md("\n\n".join(steps_md(evo.result_dict(rec)) for _, rec in planned)),
            "preflight": MetadataValue.md(md_table(["table", "layer", "check"], [
                [rec.table, layer, check] for report, rec in planned for layer, check in report.checks])),
            "fingerprints": MetadataValue.json({rec.table: report.snapshot.fingerprints()
                                                for report, rec in planned}),
            "skipped_layers": "; ".join(f"{rec.table}: {', '.join(rec.plan['skipped_layers']) or 'none'}"
                                        for _, rec in planned),
        }
        if config.dry_run:
            yield Output({rec.table: scrub(rec.plan) for _, rec in planned}, "dry_run_plans", metadata=meta)
            if len(planned) == 1:
                yield Output(scrub(planned[0][1].plan), "dry_run_plan")
            return
        store = project.store()
        try:
            for _, rec in planned:
                rec.status = "running"
                store.save(rec)
        finally:
            store.close()
    context.instance.add_run_tags(context.run_id, {EVOLUTION_RUN_TAG: ",".join(rec.run_id for _, rec in planned),
                                                   **launch_tags(config, [rec for _, rec in planned])})
    context.log.info("plans persisted: " + ", ".join(f"{rec.table} → evolution {rec.run_id} ({len(rec.steps)} "
                                                     "step(s))" for _, rec in planned))
    yield Output({rec.table: rec.run_id for _, rec in planned}, "evolutions", metadata=meta)
    keys = mapping_keys(tables)
    for _, rec in planned:
        yield DynamicOutput(rec.run_id, keys[rec.table], "runs",
                            metadata={"table": rec.table, "evolution_run": rec.run_id,
                                      "plan": MetadataValue.md(steps_md(evo.result_dict(rec)))})


register_schema = forward_op("register_schema", Layer.SCHEMA_REGISTRY.step,
                             "Register the derived Avro schema (registry).")
evolve_lakehouse = forward_op("evolve_lakehouse", Layer.LAKEHOUSE.step, "Apply the Iceberg schema update (lakehouse).")
apply_ddl = forward_op("apply_ddl", Layer.SOURCE_DB.step, "Run the source DDL under lock_timeout (source database).",
                       DDL_POOL)
restart_connector = forward_op("restart_connector", Layer.CONNECTOR.step,
                               "Carry the change through the connector: wait for the slot, restart only if needed.")
verify = forward_op("verify", Layer.VERIFY.step, "Compare every layer by field name and mapped type.")

#: the op that runs each layer's step; the graph below chains them in the engine's step order
FORWARD_OPS = {Layer.SCHEMA_REGISTRY: register_schema, Layer.LAKEHOUSE: evolve_lakehouse, Layer.SOURCE_DB: apply_ddl,
               Layer.CONNECTOR: restart_connector, Layer.VERIFY: verify}


@graph(out={"evolved": GraphOut(description="the evolution run id, once every step of the table succeeded")})
def evolve_table(run: str) -> Any:
    """One table's saga, one op per step. A failed step fails its op after undoing the completed layers."""
    out = run
    for layer in STEP_ORDER:
        out = FORWARD_OPS[layer](out)
    return out


@op(ins={"runs": In(list[str])}, retry_policy=OP_RETRY)
def evolution_report(context: OpExecutionContext, runs: list[str], project: MigrateProjectResource) -> dict:
    """Every table's outcome as one Markdown table (from the persisted runs; a retried change has its new run)."""
    store = project.store()
    try:
        records = [store.load(run) for run in runs]
    finally:
        store.close()
    status = {rec.table: evo.result_dict(rec)["status"] for rec in records}
    evolved = sorted(t for t, s in status.items() if s == "succeeded")
    context.add_output_metadata({"evolved": ", ".join(evolved) or "none",
                                 "outcomes": MetadataValue.md(outcomes_md(records))})
    return {"evolved": evolved, "status": status}


@job(description="Carry changes through registry → lakehouse → source DDL → connector → verify, one branch per "
                 "pipeline table (in parallel under a multiprocess executor). A failed step fails its op after "
                 "undoing the table's completed layers; Re-execute from failure resumes or retries the change.",
     tags={"migrate_assets/kind": "evolution"}, executor_def=multi_or_in_process_executor,
     # in one process by default, like every job here (per-step process start costs more than one table gains);
     # `execution: {config: {multiprocess: {max_concurrent: N}}}` in the launch runs the branches in parallel
     config={"execution": {"config": {"in_process": {}}}})
def evolve_pipeline() -> None:
    runs, _evolutions, _plans, _plan = preflight()
    evolution_report(runs.map(evolve_table).collect())


# ------------------------------------------------------------------------------------------------------------
# rollback_evolution, verify_pipeline, restart_failed_connector
# ------------------------------------------------------------------------------------------------------------


@op(retry_policy=OP_RETRY)
def rollback_run(context: OpExecutionContext, config: RollbackConfig, project: MigrateProjectResource) -> dict:
    """Compensate every completed step of a persisted evolution run (after a crash or a failed run)."""
    with engine_errors(f"rollback {config.run_id}"):
        store = project.store()
        try:
            ctx = project.run_context(log=context.log.info)
            ctx.allow_data_loss = config.allow_data_loss  # the engine refuses (DataLossRefused) → Failure
            if config.dry_run:  # reads and probes only: no lock, no layer, no record is written
                data = evo.result_dict(evo.rollback(config.run_id, ctx, store, project.retry_policy(),
                                                    dry_run=True))
                context.add_output_metadata({"status": "dry_run", "steps": MetadataValue.md(steps_md(data)),
                                             "would": "\n".join(data.get("dry_run_actions", [])) or "nothing"})
                return data
            rec = store.load(config.run_id)
            context.instance.add_run_tags(context.run_id, {EVOLUTION_RUN_TAG: rec.run_id, TABLES_TAG: rec.table})
            with layer_guard(project.load(), rec, "all", ctx, undo=True):
                rec = rollback_record(rec, ctx, store, project.retry_policy(), log_step(context))
        finally:
            store.close()
    report_layers(context, project, rec.table, ctx, evolution_run=rec.run_id)
    data = evo.result_dict(rec)
    if rec.status != "rolled_back":
        raise Failure(description=f"rollback of {rec.run_id} incomplete: {rec.status}", allow_retries=False,
                      metadata={"steps": MetadataValue.md(steps_md(data))})
    context.add_output_metadata({"status": rec.status, "steps": MetadataValue.md(steps_md(data))})
    return data


def report_layers(context: OpExecutionContext, project: MigrateProjectResource, table: str, ctx: Any,
                  **extra: Any) -> None:
    """Observe every layer asset of a table as it is now (after a job changed it)."""
    cfg = project.load()
    for obs in observe_layers(project.target(table), ctx, project.asset_keys(), ASSET_LAYERS,
                              cfg.schema_registry is not None, context.log.warning, reported_by=context.op_def.name,
                              **extra):
        context.log_event(obs)


@job(description="Roll back a persisted evolution run: every completed layer compensated in reverse order.",
     tags={"migrate_assets/kind": "rollback"})
def rollback_evolution() -> None:
    rollback_run()


@op(retry_policy=OP_RETRY)
def verify_layers(context: OpExecutionContext, config: VerifyConfig, project: MigrateProjectResource) -> dict:
    """Verify every pipeline table across all layers; drift fails the run (a nightly alert), unreachable retries."""
    with engine_errors("verify"):
        ctx = project.run_context(log=context.log.info)
        verified = verify_project(project.load(), ctx, config.tables, file="<run config>", key="tables",
                                  progress_bound=config.progress_bound, require_tables=False,
                                  warn=context.log.warning)
    results, data = list(verified.tables), verified.to_dict()
    md = MetadataValue.md(verify_md(results))
    if not data["consistent"]:
        drift = DriftError("; ".join(f"{r.table}: {d}" for r in results for d in r.differences()) or "unreachable")
        raise failure(drift, "pipeline drift", verify=md)
    context.add_output_metadata({"consistent": True, "tables": len(results), "verify": md})
    return data


@job(description="Compare every pipeline table across source, registry, lakehouse and connector.")
def verify_pipeline() -> None:
    verify_layers()


@op(retry_policy=OP_RETRY)
def restart_failed_tasks(context: OpExecutionContext, config: RestartConfig, project: MigrateProjectResource) -> str:
    """POST /connectors/<n>/restart?includeTasks=true&onlyFailed=true, then wait until everything is RUNNING."""
    cfg = project.load()
    if cfg.kafka_connect is None:
        raise Failure(description="kafka_connect is not configured", allow_retries=False)
    with engine_errors(f"restart {config.connector}"):
        client = project.run_context().connector
        assert client is not None
        client.restart(config.connector, include_tasks=True, only_failed=True)
        st = client.wait_running(config.connector, config.timeout)
    context.add_output_metadata({"connector": config.connector, "state": st.state, "tasks": ", ".join(st.tasks)})
    return st.state


@job(description="Restart only the FAILED tasks of a connector (asked for by the connector sensor).")
def restart_failed_connector() -> None:
    restart_failed_tasks()


__all__ = ["EVOLUTION_RUN_TAG", "EvolveConfig", "evolve_pipeline", "load_changes", "plan_tables",
           "restart_failed_connector", "rollback_evolution", "steps_md", "verify_md", "verify_pipeline",
           "yaml_documents"]
