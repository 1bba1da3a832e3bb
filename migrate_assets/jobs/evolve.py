"""Pipeline evolution as Dagster jobs: `evolve_pipeline`, `rollback_evolution`, `verify_pipeline`, and the connector
restart the FAILED-connector sensor asks for.

`evolve_pipeline` shows the saga in the run graph. `preflight` plans and persists a run record; each forward op runs
one planned step (registry → lakehouse → source DDL → connector → verify) and yields exactly one of two optional
outputs, `ok` (the next forward op runs) or `failed` (the rollback branch runs). The rollback ops
(rollback_connector → rollback_ddl → rollback_lakehouse → rollback_registry) each undo one layer; each takes a
fan-in of "the forward step just after my layer failed" and "the rollback op before me finished", so a failure
enters the chain exactly where compensation must start and everything earlier is undone in reverse order. Dagster
skips an op whose inputs all went unyielded, so on success no rollback op runs and on failure no later forward op
runs. `evolution_failed` ends a rolled-back run as a failed Dagster run, naming the failed step and every
compensation's outcome.
"""


from collections.abc import Callable, Iterator
from typing import Any

from dagster import (
    Config,
    Failure,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    job,
    op,
)
from pydantic import Field

from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import DriftError, EvolutionFailedError, UsageError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.preflight import resolve_target
from migrate_assets.evolution.store import RunRecord, StepState
from migrate_assets.evolution.verify import TableVerification, verify_table
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.jobs.common import DDL_POOL, OP_RETRY, engine_errors, failure, md_table
from migrate_assets.jobs.stepwise import compensate_step, final_status, run_step
from migrate_assets.resources import database
from migrate_assets.resources import project as projectlib
from migrate_assets.schema.model import Table

#: run tag linking a Dagster run to the evolution run it persisted (read by the run-failure sensor)
EVOLUTION_RUN_TAG = "migrate_assets/evolution_run"


class EvolveConfig(Config):
    change_file: str = Field(default="changes/add_loyalty_tier.yaml",
                             description="change file (expand–contract operations); relative to the project file")
    change_yaml: str = Field(default="", description="the change as inline YAML; overrides change_file")
    from_specs: bool = Field(default=False, description="instead of a change: create the first pipeline table "
                             "declared in the specs but absent from the database, in every layer")
    dry_run: bool = Field(default=False, description="plan and pre-flight only; change nothing")
    allow_irreversible: bool = Field(default=False, description="run changes that have no lossless inverse")


class RollbackConfig(Config):
    run_id: str = Field(description="evolution run id (migrate_assets_evolutions.run_id)")


class VerifyConfig(Config):
    tables: list[str] = Field(default_factory=list, description="only these pipeline tables (default: all)")
    progress_bound: float = Field(default=20.0, description="seconds a replication slot may take to progress")


class RestartConfig(Config):
    connector: str = Field(description="Kafka Connect connector name")
    timeout: float = Field(default=60.0, description="seconds to wait for RUNNING after the restart")


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------


def load_change(config: EvolveConfig, project: MigrateProjectResource, cfg: ProjectConfig) -> ChangeSet:
    if config.change_yaml.strip():
        return parse_change_text(config.change_yaml, "<run config change_yaml>", cfg.database.schema_)
    if not config.change_file:
        raise UsageError("set change_file or change_yaml", file="<run config>", key="change_file")
    return database.read_change(cfg, project.resolve(config.change_file))


def new_pipeline_table(cfg: ProjectConfig, project: MigrateProjectResource,
                       ctx: RunContext) -> tuple[Table, PipelineTarget]:
    """The first pipeline table that the specs declare and the database lacks (`evolve` without a change file)."""
    specs = {t.qualified: t for t in database.specs(cfg)}
    for t in project.targets():
        if t.table in specs and ctx.source.columns(t.table) is None:
            return specs[t.table], t
    raise UsageError("nothing to evolve from the specs: every pipeline table exists", file="<run config>",
                     key="from_specs")


def steps_md(data: dict[str, Any]) -> str:
    rows = [[s["layer"], s["action"], s["status"], s["compensation"], s["reversible"], s["seconds"], s["attempts"]]
            for s in data["steps"]]
    head = f"**evolution `{data['run_id']}`** of `{data['table']}`: **{data['status']}**\n\n"
    tail = f"\n\nfailed at `{data['failed_step']}`: {data['error']}" if data.get("error") else ""
    return head + md_table(["layer", "action", "status", "compensation", "reversible", "seconds", "attempts"],
                           rows) + tail


def verify_md(results: list[TableVerification]) -> str:
    rows = [[r.table, layer, v.status, "; ".join(v.differences)] for r in results for layer, v in r.layers.items()]
    return md_table(["table", "layer", "status", "differences"], rows)


def _log_step(context: OpExecutionContext) -> Callable[[StepState], None]:
    def log(st: StepState) -> None:
        extra = st.compensation or st.error or (f"{st.seconds:.2f}s" if st.status == "done" else "")
        context.log.info(f"step {st.id} ({st.layer}): {st.status}" + (f" — {extra}" if extra else ""))

    return log


def _step_metadata(rec: RunRecord, st: StepState) -> dict[str, Any]:
    data = evo.result_dict(rec)
    step = next(s for s in data["steps"] if s["layer"] == st.layer)
    return {
        "evolution_run": rec.run_id, "layer": st.layer, "status": st.status, "action": step["action"],
        "seconds": st.seconds, "attempts": st.attempts, "error": st.error or "",
        "compensation": st.compensation or step["compensation"], "steps": MetadataValue.md(steps_md(data)),
    }


# ------------------------------------------------------------------------------------------------------------
# evolve_pipeline
# ------------------------------------------------------------------------------------------------------------


@op(out={"run": Out(str, is_required=False, description="evolution run id"),
         "dry_run_plan": Out(dict, is_required=False, description="the plan, when dry_run")},
    retry_policy=OP_RETRY, tags={"layer": "all"})
def preflight(context: OpExecutionContext, config: EvolveConfig,
              project: MigrateProjectResource) -> Iterator[Output[Any]]:
    """Read every layer, plan the change, run every check; persist the run record. Nothing changes here."""
    with engine_errors("pre-flight"):
        cfg = project.load()
        ctx = project.run_context(log=context.log.info)
        policy, retry = project.policy(config.allow_irreversible), project.retry_policy()
        if config.from_specs:
            table, target = new_pipeline_table(cfg, project, ctx)
            report, rec = evo.evolve_new_table(table, target, ctx, policy, None, retry, dry_run=True)
        else:
            change = load_change(config, project, cfg)
            report, rec = evo.evolve(change, project.target(change.qualified), ctx, policy, None, retry,
                                     dry_run=True)
        data = evo.result_dict(rec)
        meta: dict[str, Any] = {
            "table": rec.table,
            "plan": MetadataValue.md(steps_md(data)),
            "preflight": MetadataValue.md(md_table(["layer", "check"], list(report.checks))),
            "fingerprints": MetadataValue.json(report.snapshot.fingerprints()),
            "skipped_layers": ", ".join(data["skipped_layers"]) or "none",
        }
        if config.dry_run:
            yield Output(rec.plan, "dry_run_plan", metadata=meta)
            return
        rec.status = "running"
        store = project.store()
        try:
            store.save(rec)
        finally:
            store.close()
    context.instance.add_run_tags(context.run_id, {EVOLUTION_RUN_TAG: rec.run_id})
    context.log.info(f"evolution {rec.run_id}: plan persisted, {len(rec.steps)} step(s)")
    yield Output(rec.run_id, "run", metadata={"evolution_run": rec.run_id, **meta})


def _forward_op(name: str, step_id: str, doc: str, pool: str | None = None):  # type: ignore[no-untyped-def]
    @op(name=name, description=doc, ins={"run": In(str)}, pool=pool,
        out={"ok": Out(str, is_required=False, description="step done: continue"),
             "failed": Out(str, is_required=False, description="step failed: compensate")},
        retry_policy=OP_RETRY, tags={"layer": step_id})
    def _forward(context: OpExecutionContext, run: str, project: MigrateProjectResource) -> Iterator[Output[str]]:
        with engine_errors(name):
            store = project.store()
            try:
                rec = store.load(run)
                if step_id not in {s.id for s in rec.steps}:
                    skipped = ", ".join(rec.plan.get("skipped_layers", [])) or "none"
                    context.log.info(f"{name}: no {step_id} step in the plan (skipped layers: {skipped})")
                    out = Output(run, "ok", metadata={"status": "skipped", "skipped_layers": skipped})
                else:
                    ctx = project.run_context(log=context.log.info)
                    if step_id == "verify":
                        evo.attach_verifier(ctx, [resolve_target(project.target(rec.table), ctx)])
                    st = run_step(rec, step_id, ctx, store, project.retry_policy(), _log_step(context))
                    out = Output(run, "ok" if st.status == "done" else "failed", metadata=_step_metadata(rec, st))
            finally:
                store.close()
        yield out

    return _forward


def _rollback_op(name: str, step_id: str, doc: str, pool: str | None = None):  # type: ignore[no-untyped-def]
    @op(name=name, description=doc, ins={"runs": In(list[str])}, out=Out(str), retry_policy=OP_RETRY, pool=pool,
        tags={"layer": step_id, "kind": "rollback"})
    def _rollback(context: OpExecutionContext, runs: list[str], project: MigrateProjectResource) -> Output[str]:
        run = runs[0]
        with engine_errors(name):
            store = project.store()
            try:
                rec = store.load(run)
                if step_id not in {s.id for s in rec.steps}:
                    return Output(run, metadata={"status": "skipped", "reason": "layer not in the plan"})
                ctx = project.run_context(log=context.log.info)
                st = compensate_step(rec, step_id, ctx, store, project.retry_policy(), _log_step(context))
            finally:
                store.close()
        # a layer that could not be undone does not stop the chain: the other layers must still be restored
        return Output(run, metadata=_step_metadata(rec, st))

    return _rollback


register_schema = _forward_op("register_schema", "registry", "Register the derived Avro schema (registry).")
evolve_lakehouse = _forward_op("evolve_lakehouse", "lakehouse", "Apply the Iceberg schema update (lakehouse).")
apply_ddl = _forward_op("apply_ddl", "ddl", "Run the source DDL under lock_timeout (source database).", DDL_POOL)
restart_connector = _forward_op("restart_connector", "connector",
                                "Carry the change through the connector: wait for the slot, restart only if needed.")
verify = _forward_op("verify", "verify", "Compare every layer by field name and mapped type.")

rollback_connector = _rollback_op("rollback_connector", "connector", "Put back the connector's previous config.")
rollback_ddl = _rollback_op("rollback_ddl", "ddl", "Run the inverse DDL.", DDL_POOL)
rollback_lakehouse = _rollback_op("rollback_lakehouse", "lakehouse",
                                  "Restore the previous Iceberg schema id and snapshot.")
rollback_registry = _rollback_op("rollback_registry", "registry",
                                 "Soft-delete the registered version if it is still the latest.")


@op(ins={"runs": In(list[str])}, tags={"kind": "rollback"})
def evolution_failed(context: OpExecutionContext, runs: list[str], project: MigrateProjectResource) -> None:
    """End a compensated evolution as a failed run that names the failed step and each compensation's outcome."""
    store = project.store()
    try:
        rec = store.load(runs[0])
        if rec.status in ("failed", "running"):
            rec.status = final_status(rec)
            store.save(rec)
    finally:
        store.close()
    data = evo.result_dict(rec)
    err = EvolutionFailedError(rec.run_id, rec.failed_step or "?", rec.error or "")
    raise Failure(description=f"{err} — {rec.status}", allow_retries=False,
                  metadata={"evolution_run": rec.run_id, "status": rec.status,
                            "failed_step": rec.failed_step or "", "steps": MetadataValue.md(steps_md(data))})


@job(description="One change carried through registry → lakehouse → source DDL → connector → verify, "
                 "with a rollback branch that compensates completed layers in reverse order.",
     tags={"migrate_assets/kind": "evolution"})
def evolve_pipeline() -> None:
    run, _plan = preflight()
    reg_ok, reg_failed = register_schema(run)
    lake_ok, lake_failed = evolve_lakehouse(reg_ok)
    ddl_ok, ddl_failed = apply_ddl(lake_ok)
    conn_ok, conn_failed = restart_connector(ddl_ok)
    _done, verify_failed = verify(conn_ok)
    undone_connector = rollback_connector([verify_failed])
    undone_ddl = rollback_ddl([conn_failed, undone_connector])
    undone_lake = rollback_lakehouse([ddl_failed, undone_ddl])
    undone_registry = rollback_registry([lake_failed, undone_lake])
    evolution_failed([reg_failed, undone_registry])


# ------------------------------------------------------------------------------------------------------------
# rollback_evolution, verify_pipeline, restart_failed_connector
# ------------------------------------------------------------------------------------------------------------


@op(retry_policy=OP_RETRY)
def rollback_run(context: OpExecutionContext, config: RollbackConfig, project: MigrateProjectResource) -> dict:
    """Compensate every completed step of a persisted evolution run (after a crash or a failed run)."""
    with engine_errors(f"rollback {config.run_id}"):
        store = project.store()
        try:
            rec = evo.rollback(config.run_id, project.run_context(log=context.log.info), store,
                               project.retry_policy(), _log_step(context))
        finally:
            store.close()
    data = evo.result_dict(rec)
    if rec.status != "rolled_back":
        raise Failure(description=f"rollback of {rec.run_id} incomplete: {rec.status}", allow_retries=False,
                      metadata={"steps": MetadataValue.md(steps_md(data))})
    context.add_output_metadata({"status": rec.status, "steps": MetadataValue.md(steps_md(data))})
    return data


@job(description="Roll back a persisted evolution run: every completed layer compensated in reverse order.")
def rollback_evolution() -> None:
    rollback_run()


@op(retry_policy=OP_RETRY)
def verify_layers(context: OpExecutionContext, config: VerifyConfig, project: MigrateProjectResource) -> dict:
    """Verify every pipeline table across all layers; drift fails the run (a nightly alert), unreachable retries."""
    with engine_errors("verify"):
        ctx = project.run_context(log=context.log.info)
        results = []
        for t in projectlib.select_targets(project.load(), config.tables, file="<run config>", key="tables"):
            try:
                t = resolve_target(t, ctx)
            except Exception as exc:  # noqa: BLE001 - verify reports the connector as unreachable itself
                context.log.warning(f"cannot resolve the subject of {t.table}: {exc}")
            results.append(verify_table(t, ctx, progress_bound=config.progress_bound))
    data = {"consistent": all(r.consistent for r in results), "tables": [r.to_dict() for r in results]}
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
