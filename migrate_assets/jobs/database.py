"""Database-only jobs: declarative schema (`schema_plan`, `schema_apply`), versioned migrations (`migrations_up`,
`migrations_down`, `migrations_status`) and expand–contract (`expand`, `expand_status`, `contract`, `abort_expand`).

Each job is one op around the engine function the CLI calls, with the inputs `migrate_assets.resources.database`
builds from `migrate.yaml` for both; the op only adds typed run config, Markdown metadata and the retry/failure
split of `jobs.common`.
"""


import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from dagster import Config, Failure, MetadataValue, OpExecutionContext, job, op
from pydantic import Field

from migrate_assets.app import expand_pipeline, migrations, spec_writeback
from migrate_assets.app.stored_plan import plan_to_apply
from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.expand import runner
from migrate_assets.expand.backfill import Progress
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.jobs.common import DDL_POOL, OP_RETRY, engine_errors, md_table
from migrate_assets.resources import database
from migrate_assets.schema.plan import Plan
from migrate_assets.versioned import MigrationRunner, RunReport, Step, status_dict

#: how the jobs' sessions show in pg_stat_activity
APPLICATION_NAME = "migrate-assets dagster"


def plan_md(plan: Plan) -> str:
    head = f"**{len(plan.changes)} change(s)**, safe: {'yes' if plan.safe else '**no**'}, " \
           f"fingerprint `{plan.fingerprint}`\n\n"
    rows = [[c.table, c.kind, c.description, ", ".join(map(str, c.hazards)), "yes" if c.breaking else "",
             "\n".join(c.sql)] for c in plan.changes]
    body = md_table(["table", "kind", "change", "hazards", "breaking", "sql"], rows) if rows else "_No changes._"
    gaps = "".join(f"**Spec behind the database:** {g} — declare it there to keep it\n\n" for g in plan.spec_gaps)
    return head + gaps + body + "".join(f"\n\n**Refused:** {r}" for r in plan.refusals)


class SchemaPlanConfig(Config):
    tables: list[str] = Field(default_factory=list, description="only these tables (default: every spec table)")
    allow_drop_table: bool = Field(default=False, description="also plan DROP TABLE for unlisted tables")
    fail_on_changes: bool = Field(default=False, description="fail the run when the database differs (drift check)")


class SchemaApplyConfig(Config):
    tables: list[str] = Field(default_factory=list, description="only these tables")
    allow_drop_table: bool = Field(default=False, description="drop tables that no spec lists")
    dry_run: bool = Field(default=False, description="check everything, change nothing")
    plan_file: str | None = Field(default=None, description=(
        "a reviewed stored plan (`migrate-assets plan --format json`, or schema_plan's output as JSON), "
        "relative to the project file: applied only while the database still has the fingerprint it was "
        "planned from and the specs still ask for the same changes, else the op fails and nothing changes"))


@op(retry_policy=OP_RETRY)
def plan_schema(context: OpExecutionContext, config: SchemaPlanConfig, project: MigrateProjectResource) -> dict:
    """Diff the spec files against the live database; the plan appears as a Markdown table."""
    with engine_errors("schema plan"):
        plan = database.schema_plan(project.load(), config.tables, config.allow_drop_table, APPLICATION_NAME)
    md = MetadataValue.md(plan_md(plan))
    if config.fail_on_changes and not plan.empty:
        raise Failure(description=f"drift: the database differs from the spec files ({len(plan.changes)} change(s))",
                      allow_retries=False, metadata={"plan": md, "fingerprint": plan.fingerprint})
    context.add_output_metadata({"plan": md, "changes": len(plan.changes), "safe": plan.safe,
                                 "fingerprint": plan.fingerprint})
    return plan.to_dict()


@op(retry_policy=OP_RETRY, pool=DDL_POOL)
def apply_schema(context: OpExecutionContext, config: SchemaApplyConfig, project: MigrateProjectResource) -> dict:
    """Apply the declarative plan (or the stored `plan_file`, while it is still true): one transaction,
    lock_timeout with retries, concurrent index builds after."""
    with engine_errors("schema apply"):
        cfg = project.load()
        desired = database.specs(cfg)
        opts = database.plan_options(cfg, config.tables, config.allow_drop_table)
        stored = str(project.resolve(config.plan_file)) if config.plan_file else None
        with database.schema_connection(cfg, APPLICATION_NAME, read_only=config.dry_run) as conn:
            plan = plan_to_apply(conn, desired, opts, stored)  # a stale or mismatched stored plan: refused here
            if stored is not None:
                context.log.info(f"stored plan {stored} (fingerprint {plan.fingerprint}) is still true: "
                                 f"{len(plan.changes)} change(s)")
            runs: list[dict[str, Any]] = []
            if cfg.pipelines:  # pipeline tables' column changes through the evolution saga, as the CLI's apply
                from migrate_assets.app.schema_apply import apply_schema as apply_with_pipelines

                applied = apply_with_pipelines(conn, cfg, plan, desired, opts,
                                               dry_run=config.dry_run,
                                               on_step=lambda st: context.log.info(f"{st.id}: {st.status}"))
                runs = applied.pipeline
                if applied.result is None:
                    last = runs[-1]
                    raise Failure(description=f"the pipeline change of {last['table']} did not go through: "
                                              f"{last.get('error')}; {last.get('next') or ''}",
                                  allow_retries=False, metadata={"pipeline": MetadataValue.json(runs)})
                result, handed_off = applied.result, applied.expanded
            else:
                _, result, handed_off = database.apply_schema(
                    conn, cfg, plan, desired, opts, dry_run=config.dry_run,
                    on_attempt=lambda n: context.log.info(f"apply attempt {n}"), on_progress=BackfillLog(context))
    expanded = [{"table": e["table"], "change_file": e["change_file"], "status": e["result"]["status"]}
                for e in handed_off]
    for e in expanded:
        context.log.warning(f"{e['table']}: breaking column changes handed to expand–contract ({e['change_file']}); "
                            "run the contract job once clients use the new shape")
    for w in result.warnings:
        context.log.warning(w)
    rows = [[c.table, c.kind, c.description, ", ".join(map(str, c.hazards))] for c in result.applied]
    context.add_output_metadata({
        "dry_run": result.dry_run, "applied": len(result.applied), "seconds": round(result.seconds, 3),
        "changes": MetadataValue.md(md_table(["table", "kind", "change", "hazards"], rows) if rows
                                    else "_No changes: the database matches the specs._"),
        "warnings": "\n".join(result.warnings) or "none",
        "expanded": MetadataValue.json(expanded),
        "pipeline": MetadataValue.md(md_table(["table", "run", "status", "steps"], [
            [r["table"], r["run_id"], r["status"], ", ".join(f"{s['layer']} {s['status']}" for s in r["steps"])]
            for r in runs]) if runs else "_No pipeline table changed._"),
    })
    return {"dry_run": result.dry_run, "changes": [c.to_dict() for c in result.applied], "warnings": result.warnings,
            "expanded": expanded, "pipeline": runs}


@job(description="Plan the changes that make the database match the YAML table specs.")
def schema_plan() -> None:
    plan_schema()


@job(description="Apply the declarative schema plan (refusals and on_breaking_change respected).")
def schema_apply() -> None:
    apply_schema()


# ------------------------------------------------------------------------------------------------------------
# versioned migrations
# ------------------------------------------------------------------------------------------------------------


class MigrationsUpConfig(Config):
    to: int | None = Field(default=None, description="apply pending versions up to and including this one")
    allow_out_of_order: bool = Field(default=False, description="apply pending versions older than current")
    dry_run: bool = Field(default=False, description="report the SQL, change nothing")
    allow_pipeline_drift: bool = Field(default=False, description="run migrations that change pipeline tables; "
                                       "their layers' drift is reported right after")


class MigrationsDownConfig(Config):
    steps: int | None = Field(default=None, description="revert the last N applied (default 1)")
    to: int | None = Field(default=None, description="revert every applied version above this one")
    dry_run: bool = Field(default=False, description="report the SQL, change nothing")
    allow_pipeline_drift: bool = Field(default=False, description="revert migrations that change pipeline tables")


def _log_step(context: OpExecutionContext) -> Callable[[Step], None]:
    return lambda s: context.log.info(f"{s.action} {s.file} ({s.ms or 0:.0f} ms)")


def migration_runner(context: OpExecutionContext, cfg: ProjectConfig) -> MigrationRunner:
    """The project's runner, guarding its pipeline tables (`app.migrations`)."""
    return migrations.runner(cfg, on_step=_log_step(context))


def outcome_metadata(context: OpExecutionContext, outcome: migrations.Outcome) -> dict[str, Any]:
    """The run's metadata plus the pipeline tables it changed (allowed) and their layers verified after."""
    meta = report_metadata(outcome.report)
    changes = [[t.file, table, "; ".join(what)] for t in outcome.report.pipeline_changes
               for table, what in t.tables.items()]
    if outcome.report.trial_ms is not None:
        meta["pipeline_check_ms"] = outcome.report.trial_ms
    if changes:
        meta["pipeline_changes"] = MetadataValue.md(md_table(["file", "table", "change"], changes))
        meta["pipeline_drift"] = MetadataValue.json(outcome.drift)
    for d in outcome.drift:
        context.log.warning(f"pipeline table {d['table']} changed outside the pipeline: "
                            f"{'DRIFT' if not d.get('consistent') else 'still consistent'}")
    return meta


def report_metadata(report: RunReport) -> dict[str, Any]:
    rows = [[s.action, s.version, s.description, s.file, None if s.ms is None else round(s.ms, 2)]
            for s in report.steps]
    meta: dict[str, Any] = {
        "command": report.command, "dry_run": report.dry_run, "current": report.current or 0,
        "steps": MetadataValue.md(md_table(["action", "version", "description", "file", "ms"], rows) if rows
                                  else "_Nothing to do._"),
    }
    if report.dry_run and report.steps:
        meta["sql"] = MetadataValue.md("\n\n".join(f"**{s.action} {s.file}**\n\n```sql\n{s.sql}\n```"
                                                   for s in report.steps))
    return meta


def report_dict(report: RunReport) -> dict[str, Any]:
    return {"command": report.command, "dry_run": report.dry_run, "current": report.current,
            "steps": [{"action": s.action, "version": s.version, "file": s.file, "ms": s.ms} for s in report.steps]}


@op(retry_policy=OP_RETRY, pool=DDL_POOL)
def migrate_up(context: OpExecutionContext, config: MigrationsUpConfig, project: MigrateProjectResource) -> dict:
    """Apply pending migrations under the advisory lock; each file and its state row commit together."""
    with engine_errors("migrations up"):
        outcome = migrations.up(project.load(), to=config.to, allow_out_of_order=config.allow_out_of_order,
                                dry_run=config.dry_run, allow_pipeline_drift=config.allow_pipeline_drift,
                                on_step=_log_step(context))
    context.add_output_metadata(outcome_metadata(context, outcome))
    return {**report_dict(outcome.report), "pipeline_drift": outcome.drift}


@op(retry_policy=OP_RETRY, pool=DDL_POOL)
def migrate_down(context: OpExecutionContext, config: MigrationsDownConfig, project: MigrateProjectResource) -> dict:
    """Revert applied migrations, most recently applied first."""
    with engine_errors("migrations down"):
        outcome = migrations.down(project.load(), steps=config.steps, to=config.to, dry_run=config.dry_run,
                                  allow_pipeline_drift=config.allow_pipeline_drift, on_step=_log_step(context))
    context.add_output_metadata(outcome_metadata(context, outcome))
    return {**report_dict(outcome.report), "pipeline_drift": outcome.drift}


@op(retry_policy=OP_RETRY)
def migration_status(context: OpExecutionContext, project: MigrateProjectResource) -> dict:
    """Applied, pending, missing, mismatched and out-of-order migrations."""
    with engine_errors("migrations status"):
        data: dict[str, Any] = status_dict(migration_runner(context, project.load()).status())
    rows = [[r["version"], r["description"], r.get("kind", "applied")] for r in data["applied"]]
    rows += [[m["version"], m["description"], "pending"] for m in data["pending"]]
    rows += [[r["version"], r.get("description", ""), "missing on disk"] for r in data["missing"]]
    rows += [[r["version"], r.get("description", ""), "checksum mismatch"] for r in data["mismatched"]]
    context.add_output_metadata({
        "current": data["current"] or 0, "pending": len(data["pending"]), "mismatched": len(data["mismatched"]),
        "status": MetadataValue.md(md_table(["version", "description", "state"], rows) if rows else "_none_"),
    })
    return data


@job(description="Apply pending versioned migrations.")
def migrations_up() -> None:
    migrate_up()


@job(description="Revert applied versioned migrations.")
def migrations_down() -> None:
    migrate_down()


@job(description="Report the state of the versioned migrations.")
def migrations_status() -> None:
    migration_status()


# ------------------------------------------------------------------------------------------------------------
# expand–contract
# ------------------------------------------------------------------------------------------------------------


class ChangeConfig(Config):
    change_file: str = Field(description="expand–contract change file; relative to the project file")
    dry_run: bool = Field(default=False, description="validate and report the SQL, change nothing")


class ExpandConfig(ChangeConfig):
    batch_size: int = Field(default=runner.Options.batch_size, ge=1, description="rows per backfill batch")
    batch_delay: float = Field(default=0.0, ge=0, description="seconds between backfill batches")


class ContractConfig(ChangeConfig):
    force: bool = Field(default=False, description="contract even when expand_status says it is not safe")


class StatusConfig(Config):
    change_file: str = Field(description="expand–contract change file; relative to the project file")


class BackfillLog:
    """Backfill progress in the run log: rows done / total and rows per second, every few seconds."""

    def __init__(self, context: OpExecutionContext, every: float = 2.0) -> None:
        self.context, self.every, self.last = context, every, 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self.last >= self.every or p.rows_done >= p.rows_total:
            self.last = now
            self.context.log.info(f"backfill: {p.rows_done}/{p.rows_total} rows ({100 * p.fraction:.1f}%), "
                                  f"{p.rows_per_second:,.0f} rows/s, {p.rows_updated} updated, {p.batches} batches")


@contextmanager
def change_session(project: MigrateProjectResource, change_file: str,
                   read_only: bool = False) -> Iterator[tuple[ProjectConfig, ChangeSet, psycopg.Connection[Any]]]:
    """The project, the op's change file, and the connection the expand–contract runner drives transactions on."""
    cfg = project.load()
    change = database.read_change(cfg, project.resolve(change_file))
    with database.connect(cfg, APPLICATION_NAME, autocommit=False, read_only=read_only) as conn:
        yield cfg, change, conn


def _sql_md(sql: list[str]) -> MetadataValue:
    return MetadataValue.md("```sql\n" + "\n".join(sql) + "\n```" if sql else "_none_")


@op(retry_policy=OP_RETRY, pool=DDL_POOL)
def expand_change(context: OpExecutionContext, config: ExpandConfig, project: MigrateProjectResource) -> dict:
    """Add the new columns and sync triggers, then backfill in batches (resumable; a re-run continues)."""
    with engine_errors("expand"), change_session(project, config.change_file, config.dry_run) as (cfg, change, conn):
        cdc = expand_pipeline.before_expand(cfg, change, config.dry_run)  # pipeline tables: helpers unpublished
        data = database.expand(conn, cfg, change, database.expand_options(cfg, config.batch_size, config.batch_delay),
                               dry_run=config.dry_run, on_progress=BackfillLog(context))
        expand_pipeline.report_expand(data, cdc)
    for w in data["warnings"]:
        context.log.warning(w)
    rows = [[o["index"], o["summary"], ", ".join(o["new_columns"])] for o in data["operations"]]
    meta: dict[str, Any] = {"table": data["table"], "status": data["status"],
                            "operations": MetadataValue.md(md_table(["#", "operation", "new columns"], rows)),
                            "cdc_new_columns": ", ".join(data["cdc"]["new_columns_emitted"]) or "none"}
    if data.get("backfill"):
        meta["backfill"] = MetadataValue.json(data["backfill"])
    if data.get("sql"):
        meta["sql"] = _sql_md(data["sql"])
    context.add_output_metadata(meta)
    return data


@op(retry_policy=OP_RETRY)
def expand_change_status(context: OpExecutionContext, config: StatusConfig, project: MigrateProjectResource) -> dict:
    """Per operation: expanded, triggers, rows left to backfill, mismatches; and safe_to_contract."""
    with engine_errors("expand status"), change_session(project, config.change_file, True) as (cfg, change, conn):
        data = runner.status(conn, change, database.expand_options(cfg)).to_json()
    rows = [[o["index"], o["summary"], o["expanded"], o["mismatched_rows"], o["null_rows"]]
            for o in data["operations"]]
    context.add_output_metadata({
        "safe_to_contract": data["safe_to_contract"], "rows_to_backfill": data["rows_to_backfill"],
        "mismatched_rows": data["mismatched_rows"], "phase": str(data.get("phase")),
        "operations": MetadataValue.md(md_table(["#", "operation", "expanded", "mismatched", "NULLs"], rows)),
        "reasons": "; ".join(data.get("reasons", [])) or "none",
    })
    return data


@op(retry_policy=OP_RETRY, pool=DDL_POOL)
def contract_change(context: OpExecutionContext, config: ContractConfig, project: MigrateProjectResource) -> dict:
    """Drop triggers, functions and old columns in one transaction; refused unless safe_to_contract (or force)."""
    with engine_errors("contract"), change_session(project, config.change_file, config.dry_run) as (cfg, change, conn):
        before = None if config.dry_run else spec_writeback.live_table(cfg, change.qualified)
        if cfg.pipeline_for(change.qualified) is not None:  # through the evolution saga: every layer follows
            data = expand_pipeline.contract(cfg, change, force=config.force, dry_run=config.dry_run,
                                            on_step=lambda st: context.log.info(f"{st.id}: {st.status}"))
        else:
            data = runner.contract(conn, change, database.expand_options(cfg), force=config.force,
                                   dry_run=config.dry_run)
    if data["status"] == "failed":
        raise Failure(description=f"{data['table']}: contract through the pipeline did not go through: "
                                  f"{data['pipeline'].get('error')}; {data['pipeline'].get('next') or ''}",
                      allow_retries=False, metadata={"pipeline": MetadataValue.json(data["pipeline"])})
    data["spec"] = spec_writeback.after_command(cfg, change, before, data["status"] == "contracted")
    for w in spec_writeback.warnings_of(data["spec"]):
        context.log.warning(w)
    context.add_output_metadata({"table": data["table"], "status": data["status"], "sql": _sql_md(data["sql"]),
                                 "spec": MetadataValue.json(data["spec"] or {})})
    return data


@op(retry_policy=OP_RETRY, pool=DDL_POOL)
def abort_change(context: OpExecutionContext, config: ChangeConfig, project: MigrateProjectResource) -> dict:
    """Undo an expand completely: new columns, triggers and functions dropped; the table as before."""
    with engine_errors("abort"), change_session(project, config.change_file, config.dry_run) as (cfg, change, conn):
        before = None if config.dry_run else spec_writeback.live_table(cfg, change.qualified)
        data = runner.abort(conn, change, database.expand_options(cfg), dry_run=config.dry_run)
    data["spec"] = spec_writeback.after_command(cfg, change, before, data["status"] == "aborted")
    if data.get("schema_restored") is False:
        raise Failure(description=f"{data['table']}: schema after abort differs from before expand",
                      allow_retries=False, metadata={"sql": _sql_md(data["sql"])})
    context.add_output_metadata({"table": data["table"], "status": data["status"], "sql": _sql_md(data["sql"])})
    return data


@job(description="Expand a table: new columns, two-way sync triggers, batched backfill.")
def expand() -> None:
    expand_change()


@job(description="Is an expanded change safe to contract?")
def expand_status() -> None:
    expand_change_status()


@job(description="Finish an expanded change: drop the old shape.")
def contract() -> None:
    contract_change()


@job(description="Undo an expand: the table returns to its previous shape.")
def abort_expand() -> None:
    abort_change()
