"""Schedules and sensors (SPEC §7).

Sensors only decide; jobs do the work, so every action is a visible, retryable run. Run keys make decisions
idempotent: the file sensor keys runs by the content fingerprint of the spec or migration files, the expand sensor
by the change's fingerprint, the rollback sensor by the evolution run id, the connector sensor by the failure
it saw, the CLI-evolution sensor by the evolution run and its status — a tick that sees nothing new asks for nothing
new.

`automation(jobs, …)` builds them for a set of jobs: the code location's (module level, reading the `project`
resource), or one project's among several (names prefixed, that project bound).
"""


import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from dagster import (
    AssetCheckKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import MigrateAssetsError
from migrate_assets.expand import runner
from migrate_assets.jobs.database import (
    APPLICATION_NAME,
    abort_expand,
    contract,
    expand,
    migrations_down,
    migrations_status,
    migrations_up,
    schema_apply,
    schema_plan,
)
from migrate_assets.jobs.evolve import (
    evolve_pipeline,
    restart_failed_connector,
    rollback_evolution,
    verify_pipeline,
)
from migrate_assets.jobs.evolve_launch import EVOLUTION_RUN_TAG, ON_FAILURE_TAG, TABLES_TAG
from migrate_assets.jobs.observe import ASSET_LAYERS, FINISHED, GROUP, STORE_START, has_layer, recorded_since
from migrate_assets.resources import database

#: tag of a rollback run: the evolve_pipeline run whose failure asked for it
FAILED_RUN_TAG = "migrate_assets/failed_run"

# ------------------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------------------

# ------------------------------------------------------------------------------------------------------------
# files changed → plan / apply / migrate
# ------------------------------------------------------------------------------------------------------------


def files_fingerprint(paths: list[Path], suffixes: tuple[str, ...]) -> str:
    """SHA-256 over the relative names and contents of every matching file (order-independent)."""
    h = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root] if root.exists() else []
        for f in files:
            if f.is_file() and f.name.endswith(suffixes):
                h.update(str(f.relative_to(root) if root.is_dir() else f.name).encode() + b"\0")
                h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def project_fingerprints(cfg: ProjectConfig) -> dict[str, str]:
    return {
        "schema": files_fingerprint([cfg.path(p) for p in cfg.schemas], (".yaml", ".yml")),
        "migrations": files_fingerprint([cfg.path(cfg.migrations)], (".sql",)),
    }


def _spec_files_changed(context: SensorEvaluationContext, project: MigrateProjectResource,
                        jobs: Mapping[str, Any]) -> SensorResult:
    """Spec or migration files changed → plan (or apply with `auto_apply`); run key = content fingerprint."""
    cfg = project.load()
    now = project_fingerprints(cfg)
    seen = json.loads(context.cursor) if context.cursor else {}
    requests = []
    if now["schema"] != seen.get("schema"):
        job = jobs["schema_apply" if project.auto_apply else "schema_plan"]
        requests.append(RunRequest(run_key=f"schema:{now['schema']}", job_name=job.name,
                                   tags={"migrate_assets/fingerprint": now["schema"]}))
    if now["migrations"] != seen.get("migrations"):
        job = jobs["migrations_up" if project.auto_apply else "migrations_status"]
        requests.append(RunRequest(run_key=f"migrations:{now['migrations']}", job_name=job.name,
                                   tags={"migrate_assets/fingerprint": now["migrations"]}))
    if not requests:
        return SensorResult(skip_reason=SkipReason("spec and migration files unchanged"), cursor=context.cursor)
    return SensorResult(run_requests=requests, cursor=json.dumps(now, sort_keys=True))


# ------------------------------------------------------------------------------------------------------------
# expanded change safe to contract → contract
# ------------------------------------------------------------------------------------------------------------


def _expand_ready(context: SensorEvaluationContext, project: MigrateProjectResource) -> SensorResult:
    """An expanded change in `changes_dir` reports safe_to_contract → `contract` (with `auto_contract`)."""
    cfg = project.load()
    folder = project.resolve(project.changes_dir)
    files = sorted(p for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    ready, requests = [], []
    with database.connect(cfg, APPLICATION_NAME, autocommit=False) as conn:
        for f in files:
            try:
                change = database.read_change(cfg, f)
                st = runner.status(conn, change, database.expand_options(cfg))
            except (MigrateAssetsError, psycopg.Error) as exc:
                conn.rollback()
                context.log.warning(f"{f.name}: {exc}")
                continue
            conn.rollback()
            if st.phase == "expanded" and st.safe_to_contract:
                ready.append(f.name)
                if project.auto_contract:
                    requests.append(RunRequest(
                        run_key=f"contract:{change.fingerprint()}",
                        run_config={"ops": {"contract_change": {"config": {"change_file": str(f)}}}},
                        tags={"migrate_assets/change": f.name}))
    if requests:
        return SensorResult(run_requests=requests)
    if ready:
        return SensorResult(skip_reason=SkipReason(f"safe to contract (auto_contract is off): {', '.join(ready)}"))
    return SensorResult(skip_reason=SkipReason("no expanded change is safe to contract"))


# ------------------------------------------------------------------------------------------------------------
# evolution run failed → rollback_evolution
# ------------------------------------------------------------------------------------------------------------


def _evolution_failed_rollback(context: RunFailureSensorContext,
                               project: MigrateProjectResource) -> list[RunRequest] | SkipReason:
    """A failed `evolve_pipeline` run whose layers were not all restored → `rollback_evolution` per evolution run.

    The run's tag lists one evolution run per table. A table whose own rollback branch finished has nothing left to
    undo, and a table that evolved in a run that failed for another table keeps its change; one that died mid-step
    (or whose compensation failed) left its record behind, and the rollback job finishes the work.
    """
    run_ids = [r for r in context.dagster_run.tags.get(EVOLUTION_RUN_TAG, "").split(",") if r]
    if context.dagster_run.tags.get(ON_FAILURE_TAG) == "hold":
        return SkipReason("on_failure: hold: the layers are kept for Re-execute from failure (resume); "
                          "run rollback_evolution to undo " + ", ".join(run_ids))
    if not run_ids:
        return SkipReason("the failed run never persisted an evolution (it failed in pre-flight): nothing changed")
    store = project.store()
    try:
        records = [store.load(run_id) for run_id in run_ids]
    finally:
        store.close()
    pending = [rec for rec in records if rec.status not in ("rolled_back", "succeeded")]
    if not pending:
        return SkipReason("every evolution of the failed run was rolled back inside it or succeeded: "
                          + ", ".join(f"{rec.run_id} ({rec.table}) {rec.status}" for rec in records))
    return [RunRequest(run_key=f"rollback:{rec.run_id}",
                       run_config={"ops": {"rollback_run": {"config": {"run_id": rec.run_id}}}},
                       tags={EVOLUTION_RUN_TAG: rec.run_id, TABLES_TAG: rec.table,
                             FAILED_RUN_TAG: context.dagster_run.run_id})
            for rec in pending]


# ------------------------------------------------------------------------------------------------------------
# connector FAILED → restart only the failed tasks
# ------------------------------------------------------------------------------------------------------------


def _connector_failed(context: SensorEvaluationContext, project: MigrateProjectResource) -> SensorResult:
    """A pipeline connector (or one of its tasks) FAILED → restart with onlyFailed=true.

    The run key names the failure (connector, task states, first trace line), so one failure asks for one restart
    and a later, different failure asks again.
    """
    ctx = project.run_context()
    if ctx.connector is None:
        return SensorResult(skip_reason=SkipReason("kafka_connect is not configured"))
    requests, states = [], []
    for name in sorted({t.connector for t in project.targets() if t.connector}):
        try:
            st = ctx.connector.status(name)
        except MigrateAssetsError as exc:
            states.append(f"{name}: {exc}")
            continue
        states.append(f"{name}: {st.state} {list(st.tasks)}")
        if st.state == "FAILED" or "FAILED" in st.tasks:
            failure_id = hashlib.sha256(json.dumps([st.state, list(st.tasks), st.trace.splitlines()[:1]])
                                       .encode()).hexdigest()[:16]
            requests.append(RunRequest(run_key=f"restart:{name}:{failure_id}",
                                       run_config={"ops": {"restart_failed_tasks": {"config": {"connector": name}}}},
                                       tags={"migrate_assets/connector": name}))
    if requests:
        return SensorResult(run_requests=requests)
    return SensorResult(skip_reason=SkipReason("; ".join(states) or "no pipeline connector"))


def _layers_changed(context: RunStatusSensorContext) -> RunRequest | SkipReason:
    """A job that changed the source database succeeded → observe the pipeline assets (not after a dry run)."""
    run = context.dagster_run
    config: dict[str, Any] = dict(run.run_config)
    ops: Mapping[str, Any] = config.get("ops") or {}
    if any(((op or {}).get("config") or {}).get("dry_run") for op in ops.values()):
        return SkipReason(f"run {run.run_id} was a dry run: nothing changed")
    return RunRequest(run_key=f"observe-after:{run.run_id}",
                      tags={"migrate_assets/after_run": run.run_id, "migrate_assets/after_job": run.job_name})


# ------------------------------------------------------------------------------------------------------------
# evolutions made outside Dagster (the CLI) → observe their tables
# ------------------------------------------------------------------------------------------------------------

#: tag of an observation run the cli_evolutions sensor asked for: the evolution run it follows
AFTER_EVOLUTION_TAG = "migrate_assets/after_evolution"


def _cli_evolutions(context: SensorEvaluationContext, project: MigrateProjectResource,
                    observe: Any) -> SensorResult:
    """An evolution run recorded in the run store since the last tick, by a process other than a Dagster run
    (the CLI), finished → observe that table's assets and check `layers_consistent` on them, so the asset pages
    show the columns it left.

    The cursor is the store's (updated_at, run_id) of the last run seen; the first tick starts at the newest run
    (history is not replayed). A run a Dagster job made is left out: its job observed the layers itself (its id is
    in a run's `migrate_assets/evolution_run` tag)."""
    cursor = tuple(json.loads(context.cursor)) if context.cursor else None
    cfg = project.load()
    store = project.store()
    try:
        runs = recorded_since(store, cursor)  # type: ignore[arg-type]
    finally:
        store.close()
    if cursor is None:
        start = runs[-1].position if runs else STORE_START
        return SensorResult(skip_reason=SkipReason("watching the run store from now on"), cursor=json.dumps(start))
    if not runs:
        return SensorResult(skip_reason=SkipReason("no evolution recorded since the last tick"),
                            cursor=context.cursor)
    by_dagster = {i for _, values in context.instance.get_run_tags(tag_keys=[EVOLUTION_RUN_TAG])
                  for value in values for i in value.split(",") if i}
    keys, registry = project.asset_keys(), cfg.schema_registry is not None
    tables = {t.table: t for t in project.targets()}
    requests, skipped = [], []
    for run in runs:
        t = tables.get(run.table)
        if run.status not in FINISHED or run.run_id in by_dagster or t is None:
            why = ("not finished" if run.status not in FINISHED else "a Dagster run's" if run.run_id in by_dagster
                   else "not a pipeline table")
            skipped.append(f"{run.run_id} ({run.table}, {run.status}): {why}")
            continue
        selected = [keys.key(t.table, layer) for layer in ASSET_LAYERS if has_layer(t, layer, registry)]
        requests.append(RunRequest(
            run_key=f"observe-after-evolution:{run.run_id}:{run.status}", job_name=observe.name,
            asset_selection=selected,  # and verify them (layers_consistent); spec drift is the nightly check's
            asset_check_keys=[AssetCheckKey(k, "layers_consistent") for k in selected],
            tags={AFTER_EVOLUTION_TAG: run.run_id, TABLES_TAG: run.table, "migrate_assets/evolution_status":
                  run.status}))
    cursor_now = json.dumps(runs[-1].position)
    if not requests:
        return SensorResult(skip_reason=SkipReason("; ".join(skipped)), cursor=cursor_now)
    return SensorResult(run_requests=requests, cursor=cursor_now)


# ------------------------------------------------------------------------------------------------------------
# the schedules and sensors of a set of jobs
# ------------------------------------------------------------------------------------------------------------

#: the jobs that change the source database outside evolve_pipeline (which reports its own observations)
SOURCE_CHANGING_JOBS = ("schema_apply", "migrations_up", "migrations_down", "expand", "contract", "abort_expand")
_STOPPED = DefaultSensorStatus.STOPPED


def _with_project(body: Callable[..., Any], bound: MigrateProjectResource | None,
                  **extra: Any) -> Callable[..., Any]:
    """The sensor function: the project from the `project` resource, or — one project among several in a code
    location — the project bound here."""
    fn: Callable[..., Any]
    if bound is None:
        def from_resource(context: Any, project: MigrateProjectResource) -> Any:
            return body(context, project, **extra)
        fn = from_resource
    else:
        def from_binding(context: Any) -> Any:
            return body(context, bound, **extra)
        fn = from_binding
    fn.__doc__ = body.__doc__
    return fn


def automation(jobs: Mapping[str, Any], bound: MigrateProjectResource | None = None, prefix: str = "",
               group: str = GROUP) -> dict[str, Any]:
    """Every schedule and sensor (and the observation job) for these jobs, by name: the code location's, or
    (`bound`, `prefix`, `group`) those of one project among several."""
    observe = define_asset_job(
        f"{prefix}observe_pipeline_schemas", selection=AssetSelection.groups(group, include_sources=True),
        description="Read every pipeline table's schema in each layer into its asset (observations).")
    out: dict[str, Any] = {"observe_pipeline_schemas": observe}
    out["nightly_verify"] = ScheduleDefinition(
        name=f"{prefix}nightly_verify", job=jobs["verify_pipeline"], cron_schedule="0 2 * * *",
        execution_timezone="UTC", default_status=DefaultScheduleStatus.STOPPED,
        description="Every night: compare every pipeline table across all layers (drift fails the run). Turn on in "
                    "production: it is how drift made outside this tool is noticed.")
    out["nightly_drift_check"] = ScheduleDefinition(
        name=f"{prefix}nightly_drift_check", job=jobs["schema_plan"], cron_schedule="30 2 * * *",
        execution_timezone="UTC", default_status=DefaultScheduleStatus.STOPPED,
        run_config={"ops": {"plan_schema": {"config": {"fail_on_changes": True}}}},
        description="Every night: fail when the live database drifted from the YAML specs. Turn on when the specs "
                    "are the source of truth of the database.")
    out["refresh_pipeline_schemas"] = ScheduleDefinition(
        name=f"{prefix}refresh_pipeline_schemas", job=observe, cron_schedule="0 * * * *", execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
        description="Every hour: observe every layer's schema, so asset pages follow changes made outside this "
                    "tool. Turn on when others change the layers too.")
    out["spec_files_changed"] = sensor(
        name=f"{prefix}spec_files_changed", minimum_interval_seconds=30, default_status=_STOPPED,
        jobs=[jobs[n] for n in ("schema_plan", "schema_apply", "migrations_status", "migrations_up")],
        description="Spec or migration files changed → schema_plan / migrations_status (schema_apply / "
                    "migrations_up with auto_apply). Turn on where the files are deployed with the code.",
    )(_with_project(_spec_files_changed, bound, jobs=jobs))
    out["expand_ready"] = sensor(
        name=f"{prefix}expand_ready", job=jobs["contract"], minimum_interval_seconds=60, default_status=_STOPPED,
        description="An expanded change in changes_dir is safe to contract → contract (with auto_contract; "
                    "otherwise the tick says which). Turn on when you use expand/contract.",
    )(_with_project(_expand_ready, bound))
    out["evolution_failed_rollback"] = run_failure_sensor(
        name=f"{prefix}evolution_failed_rollback", monitored_jobs=[jobs["evolve_pipeline"]],
        request_job=jobs["rollback_evolution"], default_status=_STOPPED,
        description="An evolve_pipeline run failed and left an evolution not undone (its process died mid-step, or "
                    "an undo could not finish) → rollback_evolution for it. Turn on in production; runs with "
                    "on_failure: hold are left for Re-execute from failure.",
    )(_with_project(_evolution_failed_rollback, bound))
    out["connector_failed"] = sensor(
        name=f"{prefix}connector_failed", job=jobs["restart_failed_connector"], minimum_interval_seconds=30,
        default_status=_STOPPED, description="A pipeline connector or task is FAILED → restart only the failed "
                                             "tasks, once per failure. Turn on in production.",
    )(_with_project(_connector_failed, bound))
    out["layers_changed"] = run_status_sensor(
        name=f"{prefix}layers_changed", run_status=DagsterRunStatus.SUCCESS, request_job=observe,
        monitored_jobs=[jobs[n] for n in SOURCE_CHANGING_JOBS], default_status=DefaultSensorStatus.RUNNING,
        description="A job that changed the source database succeeded (schema_apply, migrations, "
                    "expand/contract/abort) → observe the pipeline assets, so they show the new columns. On by "
                    "default (it only reads); keep it on.",
    )(_layers_changed)
    out["cli_evolutions"] = sensor(
        name=f"{prefix}cli_evolutions", job=observe, minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="An evolution made outside Dagster (migrate-assets evolve / apply from the CLI) finished, as "
                    "the run store records it → observe that table's assets, so they show its columns. On by "
                    "default (it only reads); keep it on.",
    )(_with_project(_cli_evolutions, bound, observe=observe))
    return out


#: what exists only when the project has pipeline assets (an asset job cannot select nothing)
WITH_ASSETS = ("observe_pipeline_schemas", "refresh_pipeline_schemas", "layers_changed", "cli_evolutions")
_ALL = automation({j.name: j for j in (schema_plan, schema_apply, migrations_status, migrations_up, migrations_down,
                                       expand, contract, abort_expand, evolve_pipeline, rollback_evolution,
                                       verify_pipeline, restart_failed_connector)})
nightly_verify, nightly_drift_check = _ALL["nightly_verify"], _ALL["nightly_drift_check"]
spec_files_changed, expand_ready = _ALL["spec_files_changed"], _ALL["expand_ready"]
evolution_failed_rollback, connector_failed = _ALL["evolution_failed_rollback"], _ALL["connector_failed"]
observe_pipeline_schemas, refresh_pipeline_schemas = _ALL["observe_pipeline_schemas"], _ALL["refresh_pipeline_schemas"]
layers_changed, cli_evolutions = _ALL["layers_changed"], _ALL["cli_evolutions"]

SCHEDULES = [nightly_verify, nightly_drift_check]
SENSORS = [spec_files_changed, expand_ready, evolution_failed_rollback, connector_failed]
ASSET_JOBS = [observe_pipeline_schemas]
ASSET_SCHEDULES = [refresh_pipeline_schemas]
ASSET_SENSORS = [layers_changed, cli_evolutions]
