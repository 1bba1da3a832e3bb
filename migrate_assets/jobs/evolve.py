"""Pipeline evolution as Dagster jobs: `evolve_pipeline`, `rollback_evolution`, `verify_pipeline`, and the connector
restart the FAILED-connector sensor asks for.

`evolve_pipeline` fans out per pipeline table (SPEC §11) and shows each table's saga in the run graph:

    preflight ─runs (one DynamicOutput per table)─▶ evolve_table[<table>] ─evolved──────▶ evolved_tables ─────┐
        │                                                                 └─rolled_back─▶ rolled_back_tables ─┤
        └─evolutions (table → run id)───────────────────────────────────────────────────▶ evolution_report ◀─┘

`preflight` plans every table and runs every check before any table changes anything, persists one evolution
run per table, and yields one `DynamicOutput` per table. `evolve_table` (a graph, mapped per table) is the saga:
register_schema → evolve_lakehouse → apply_ddl → restart_connector → verify, then, off verify's `failed` output,
rollback_connector → rollback_ddl → rollback_lakehouse → rollback_registry → evolution_failed. Each forward op
runs one planned step; after a failed step the later forward ops pass the run on untouched and verify yields
`failed`, so the rollback chain always starts at the connector and each rollback op undoes its layer only if that
layer's step completed — Dagster cannot fan in two outputs inside a mapped graph, so the entry point of
compensation is in the data (step states), not in the wiring. A table's failure runs *its* rollback chain only;
the other branches carry on. `evolution_failed` ends a rolled-back table's branch as a failed step (so the run
fails), naming the table, the failed step and every compensation's outcome. What branches share — the source
database and the connector — is ordered in `jobs/fanout.py` (the DDL pool, a layer lock, rebased connector config).

`.collect()` gathers only the outputs the branches yielded and skips its op when none did; and nothing downstream
of `evolution_failed` could run. So the branch's two ends are collected apart (`evolved_tables`: verify's `ok`;
`rolled_back_tables`: rollback_registry's output, upstream of `evolution_failed`) and `evolution_report` fans the
two in (it runs when at least one ran): a Markdown table of every table's outcome, written while the rolled-back
branches' `evolution_failed` still fail the run.
"""


from collections.abc import Callable, Iterator
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

from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import DriftError, EvolutionFailedError, UsageError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.layers import STEP_ORDER, Layer
from migrate_assets.evolution.preflight import PreflightReport, resolve_target
from migrate_assets.evolution.store import RunRecord, StepState
from migrate_assets.evolution.verify import TableVerification, verify_table
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.jobs.common import DDL_POOL, OP_RETRY, engine_errors, failure, md_table
from migrate_assets.jobs.fanout import (
    layer_guard,
    mapping_keys,
    refuse_duplicate_tables,
    refuse_overlapping_plans,
)
from migrate_assets.jobs.stepwise import compensate_step, final_status, rollback_record, run_step
from migrate_assets.redact import scrub
from migrate_assets.resources import database
from migrate_assets.resources import project as projectlib

#: run tag linking a Dagster run to the evolution runs it persisted, comma-separated (read by the run-failure sensor)
EVOLUTION_RUN_TAG = "migrate_assets/evolution_run"


class EvolveConfig(Config):
    change_file: str = Field(default="changes/add_loyalty_tier.yaml",
                             description="change file (expand–contract operations); relative to the project file. "
                                         "Used when neither change_files nor change_yaml is set")
    change_files: list[str] = Field(default_factory=list,
                                    description="several change files, one table each: the tables evolve in "
                                                "parallel branches")
    change_yaml: str = Field(default="", description="changes as inline YAML, one table per document (separate "
                             "documents with `---`); with change_files, both are run")
    from_specs: bool = Field(default=False, description="instead of changes: every pipeline table declared in the "
                             "specs but absent from the database is created, and every existing one its connector "
                             "does not capture joins, in every layer")
    dry_run: bool = Field(default=False, description="plan and pre-flight only; change nothing")
    allow_irreversible: bool = Field(default=False, description="run changes that have no lossless inverse")


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


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------


def yaml_documents(text: str) -> list[str]:
    """The documents of a multi-document YAML text, each padded with blank lines so that error lines stay
    those of the whole text; empty documents (e.g. before a leading `---`) are left out."""
    lines = text.splitlines()
    cuts = [i for i, line in enumerate(lines) if line.rstrip() == "---"]
    docs = []
    for start, end in zip([-1, *cuts], [*cuts, len(lines)], strict=True):
        body = lines[start + 1:end]
        if any(x.strip() and not x.lstrip().startswith("#") for x in body):
            docs.append("\n" * (start + 1) + "\n".join(body) + "\n")
    return docs


def load_changes(config: EvolveConfig, project: MigrateProjectResource, cfg: ProjectConfig) -> list[ChangeSet]:
    changes = [parse_change_text(doc, "<run config change_yaml>", cfg.database.schema_)
               for doc in yaml_documents(config.change_yaml)]
    changes += [database.read_change(cfg, project.resolve(f)) for f in config.change_files]
    if changes:
        return changes
    if not config.change_file:
        raise UsageError("set change_files, change_file or change_yaml", file="<run config>", key="change_file")
    return [database.read_change(cfg, project.resolve(config.change_file))]


def plan_tables(config: EvolveConfig, project: MigrateProjectResource,
                log: Callable[[str], None]) -> list[tuple[PreflightReport, RunRecord]]:
    """Pre-flight of every table of the launch (reads and checks only): all pass, or the launch stops here."""
    cfg = project.load()
    ctx = project.run_context(log=log)
    policy, retry = project.policy(config.allow_irreversible), project.retry_policy()
    if config.from_specs:
        pending = evo.tables_to_add(project.targets(), database.specs(cfg, missing_ok=True), ctx)
        database.check_specs(cfg, [s for _, s in pending if s is not None])  # their SQL, before any DDL
        if not pending:
            raise UsageError("nothing to evolve from the specs: every pipeline table exists and is captured",
                             file="<run config>", key="from_specs")
        planned = [evo.evolve_new_table(spec, target, ctx, policy, None, retry, dry_run=True)
                   for target, spec in pending]
    else:
        changes = load_changes(config, project, cfg)
        refuse_duplicate_tables(changes)
        planned = [evo.evolve(c, project.target(c.qualified), ctx, policy, None, retry, dry_run=True)
                   for c in changes]
    refuse_overlapping_plans([report.plan for report, _ in planned],
                             "<run config from_specs>" if config.from_specs else "<run config changes>")
    return planned


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


def outcomes_md(records: list[RunRecord]) -> str:
    rows = []
    for rec in records:
        data = evo.result_dict(rec)
        layers = ", ".join(f"{s['layer']} {s['status']}" for s in data["steps"])
        rows.append([rec.table, rec.run_id, data["status"], rec.failed_step or "", rec.error or "", layers])
    return md_table(["table", "evolution run", "status", "failed step", "error", "steps"], rows)


def _log_step(context: OpExecutionContext) -> Callable[[StepState], None]:
    def log(st: StepState) -> None:
        extra = st.compensation or st.error or (f"{st.seconds:.2f}s" if st.status == "done" else "")
        context.log.info(f"step {st.id} ({st.layer}): {st.status}" + (f" — {extra}" if extra else ""))

    return log


def _step_metadata(rec: RunRecord, st: StepState) -> dict[str, Any]:
    data = evo.result_dict(rec)
    step = next(s for s in data["steps"] if s["layer"] == st.layer)
    return {
        "evolution_run": rec.run_id, "table": rec.table, "layer": st.layer, "status": st.status,
        "action": step["action"], "seconds": st.seconds, "attempts": st.attempts, "error": st.error or "",
        "compensation": st.compensation or step["compensation"], "steps": MetadataValue.md(steps_md(data)),
    }


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
    context.instance.add_run_tags(context.run_id, {EVOLUTION_RUN_TAG: ",".join(rec.run_id for _, rec in planned)})
    context.log.info("plans persisted: " + ", ".join(f"{rec.table} → evolution {rec.run_id} ({len(rec.steps)} "
                                                     "step(s))" for _, rec in planned))
    yield Output({rec.table: rec.run_id for _, rec in planned}, "evolutions", metadata=meta)
    keys = mapping_keys(tables)
    for _, rec in planned:
        yield DynamicOutput(rec.run_id, keys[rec.table], "runs",
                            metadata={"table": rec.table, "evolution_run": rec.run_id,
                                      "plan": MetadataValue.md(steps_md(evo.result_dict(rec)))})


def _forward_op(name: str, step_id: str, doc: str, pool: str | None = None,
                last: bool = False):  # type: ignore[no-untyped-def]
    outs = ({"ok": Out(str, is_required=False, description="every step done: the table is evolved"),
             "failed": Out(str, is_required=False, description="a step failed: roll back")} if last else
            {"run": Out(str, description="the evolution run, to the next layer (after a failed step: passed on "
                                         "untouched, on to the rollback chain)")})

    @op(name=name, description=doc, ins={"run": In(str)}, pool=pool, out=outs, retry_policy=OP_RETRY,
        tags={"layer": step_id})
    def _forward(context: OpExecutionContext, run: str, project: MigrateProjectResource) -> Iterator[Output[str]]:
        with engine_errors(name):
            store = project.store()
            try:
                rec = store.load(run)
                if rec.failed_step:
                    context.log.info(f"{name}: not run, step {rec.failed_step} of {rec.table} failed")
                    meta: dict[str, Any] = {"evolution_run": run, "table": rec.table, "status": "not run",
                                            "failed_step": rec.failed_step}
                elif step_id not in {s.id for s in rec.steps}:
                    skipped = ", ".join(rec.plan.get("skipped_layers", [])) or "none"
                    context.log.info(f"{name}: no {step_id} step in the plan (skipped layers: {skipped})")
                    meta = {"evolution_run": run, "table": rec.table, "status": "skipped", "skipped_layers": skipped}
                else:
                    ctx = project.run_context(log=context.log.info)
                    if step_id == Layer.VERIFY.step:
                        evo.attach_verifier(ctx, [resolve_target(project.target(rec.table), ctx)])
                    with layer_guard(project.load(), rec, step_id, ctx):
                        st = run_step(rec, step_id, ctx, store, project.retry_policy(), _log_step(context))
                    meta = _step_metadata(rec, st)
            finally:
                store.close()
        yield Output(run, ("failed" if rec.failed_step else "ok") if last else "run", metadata=meta)

    return _forward


def _rollback_op(name: str, step_id: str, doc: str, pool: str | None = None):  # type: ignore[no-untyped-def]
    @op(name=name, description=doc, ins={"run": In(str)}, out=Out(str), retry_policy=OP_RETRY, pool=pool,
        tags={"layer": step_id, "kind": "rollback"})
    def _rollback(context: OpExecutionContext, run: str, project: MigrateProjectResource) -> Output[str]:
        with engine_errors(name):
            store = project.store()
            try:
                rec = store.load(run)
                if step_id not in {s.id for s in rec.steps}:
                    return Output(run, metadata={"table": rec.table, "status": "skipped",
                                                 "reason": "layer not in the plan"})
                ctx = project.run_context(log=context.log.info)
                with layer_guard(project.load(), rec, step_id, ctx, undo=True):
                    st = compensate_step(rec, step_id, ctx, store, project.retry_policy(), _log_step(context))
            finally:
                store.close()
        # a layer that could not be undone does not stop the chain: the other layers must still be restored
        return Output(run, metadata=_step_metadata(rec, st))

    return _rollback


register_schema = _forward_op("register_schema", Layer.SCHEMA_REGISTRY.step,
                              "Register the derived Avro schema (registry).")
evolve_lakehouse = _forward_op("evolve_lakehouse", Layer.LAKEHOUSE.step, "Apply the Iceberg schema update (lakehouse).")
apply_ddl = _forward_op("apply_ddl", Layer.SOURCE_DB.step, "Run the source DDL under lock_timeout (source database).",
                        DDL_POOL)
restart_connector = _forward_op("restart_connector", Layer.CONNECTOR.step,
                                "Carry the change through the connector: wait for the slot, restart only if needed.")
verify = _forward_op("verify", Layer.VERIFY.step, "Compare every layer by field name and mapped type.", last=True)

rollback_connector = _rollback_op("rollback_connector", Layer.CONNECTOR.step, "Put back the connector's previous config.")
rollback_ddl = _rollback_op("rollback_ddl", Layer.SOURCE_DB.step, "Run the inverse DDL.", DDL_POOL)
rollback_lakehouse = _rollback_op("rollback_lakehouse", Layer.LAKEHOUSE.step,
                                  "Revert the Iceberg schema; every snapshot is kept.")
rollback_registry = _rollback_op("rollback_registry", Layer.SCHEMA_REGISTRY.step,
                                 "Soft-delete the registered version if it is still the latest.")

#: the op that runs / undoes each layer's step; the graph below chains them in the engine's step order
FORWARD_OPS = {Layer.SCHEMA_REGISTRY: register_schema, Layer.LAKEHOUSE: evolve_lakehouse, Layer.SOURCE_DB: apply_ddl,
               Layer.CONNECTOR: restart_connector, Layer.VERIFY: verify}
ROLLBACK_OPS = {Layer.SCHEMA_REGISTRY: rollback_registry, Layer.LAKEHOUSE: rollback_lakehouse,
                Layer.SOURCE_DB: rollback_ddl, Layer.CONNECTOR: rollback_connector}


@op(ins={"run": In(str)}, tags={"kind": "rollback"})
def evolution_failed(context: OpExecutionContext, run: str, project: MigrateProjectResource) -> None:
    """End a compensated table as a failed step that names the table, the failed step and each compensation."""
    store = project.store()
    try:
        rec = store.load(run)
        if rec.status in ("failed", "running"):
            rec.status = final_status(rec)
            store.save(rec)
    finally:
        store.close()
    data = evo.result_dict(rec)
    err = EvolutionFailedError(rec.run_id, rec.failed_step or "?", rec.error or "")
    raise Failure(description=f"{rec.table}: {err} — {rec.status}", allow_retries=False,
                  metadata={"table": rec.table, "evolution_run": rec.run_id, "status": rec.status,
                            "failed_step": rec.failed_step or "", "steps": MetadataValue.md(steps_md(data))})


@graph(out={"evolved": GraphOut(description="the run id, when every step of the table succeeded"),
            "rolled_back": GraphOut(description="the run id, once the table's completed layers were undone")})
def evolve_table(run: str) -> dict[str, Any]:
    """One table's saga: the forward ops, and off verify's `failed` output the rollback chain (reverse order)."""
    *forward, last = STEP_ORDER
    out = run
    for layer in forward:
        out = FORWARD_OPS[layer](out)
    ok, failed = FORWARD_OPS[last](out)
    undone = failed
    for layer in reversed(forward):
        undone = ROLLBACK_OPS[layer](undone)
    evolution_failed(undone)
    return {"evolved": ok, "rolled_back": undone}


@op(ins={"evolutions": In(dict), "runs": In(list[str])}, out=Out(list[str]), retry_policy=OP_RETRY)
def evolved_tables(evolutions: dict, runs: list[str]) -> list[str]:
    """The tables whose branch evolved every layer (collected from verify's `ok`)."""
    return sorted(t for t, r in evolutions.items() if r in runs)


@op(ins={"evolutions": In(dict), "runs": In(list[str])}, out=Out(list[str]), retry_policy=OP_RETRY)
def rolled_back_tables(evolutions: dict, runs: list[str]) -> list[str]:
    """The tables whose branch was rolled back (collected from rollback_registry, before evolution_failed)."""
    return sorted(t for t, r in evolutions.items() if r in runs)


@op(ins={"evolutions": In(dict), "outcomes": In(list[list[str]])}, retry_policy=OP_RETRY)
def evolution_report(context: OpExecutionContext, evolutions: dict, outcomes: list[list[str]],
                     project: MigrateProjectResource) -> dict:
    """Every table's outcome as one Markdown table (from the persisted runs). A rolled-back table has already
    failed the run in its own branch (`evolution_failed`); this op only reports."""
    store = project.store()
    try:
        records = [store.load(run) for run in evolutions.values()]
    finally:
        store.close()
    status = {rec.table: evo.result_dict(rec)["status"] for rec in records}
    evolved = sorted(t for t, s in status.items() if s == "succeeded")
    failed = sorted(t for t, s in status.items() if s != "succeeded")
    reported = sorted(t for ts in outcomes for t in ts)
    if failed:
        context.log.error(f"{len(failed)} of {len(status)} table(s) not evolved: "
                          + ", ".join(f"{t} ({status[t]})" for t in failed))
    context.add_output_metadata({"evolved": ", ".join(evolved) or "none", "not_evolved": ", ".join(failed) or "none",
                                 "outcomes": MetadataValue.md(outcomes_md(records)),
                                 "branches_reported": len(reported)})
    return {"evolved": evolved, "not_evolved": failed, "status": status}


@job(description="Carry changes through registry → lakehouse → source DDL → connector → verify, one branch per "
                 "pipeline table (in parallel under a multiprocess executor), each with a rollback branch that "
                 "compensates its completed layers in reverse order.",
     tags={"migrate_assets/kind": "evolution"}, executor_def=multi_or_in_process_executor,
     # in one process by default, like every job here (per-step process start costs more than one table gains);
     # `execution: {config: {multiprocess: {max_concurrent: N}}}` in the launch runs the branches in parallel
     config={"execution": {"config": {"in_process": {}}}})
def evolve_pipeline() -> None:
    runs, evolutions, _plans, _plan = preflight()
    evolved, rolled_back = runs.map(evolve_table)
    evolution_report(evolutions, [evolved_tables(evolutions, evolved.collect()),
                                  rolled_back_tables(evolutions, rolled_back.collect())])


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
            with layer_guard(project.load(), rec, "all", ctx, undo=True):
                rec = rollback_record(rec, ctx, store, project.retry_policy(), _log_step(context))
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
