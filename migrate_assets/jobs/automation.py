"""Schedules and sensors (SPEC §7).

Sensors only decide; jobs do the work, so every action is a visible, retryable run. Run keys make decisions
idempotent: the file sensor keys runs by the content fingerprint of the spec or migration files, the expand sensor
by the change's fingerprint, the rollback sensor by the evolution run id, the connector sensor by the failure
it saw — a tick that sees nothing new asks for nothing new.
"""


import hashlib
import json
from pathlib import Path

import psycopg
from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import MigrateAssetsError
from migrate_assets.expand import runner
from migrate_assets.jobs.database import (
    APPLICATION_NAME,
    contract,
    migrations_status,
    migrations_up,
    schema_apply,
    schema_plan,
)
from migrate_assets.jobs.evolve import (
    EVOLUTION_RUN_TAG,
    evolve_pipeline,
    restart_failed_connector,
    rollback_evolution,
    verify_pipeline,
)
from migrate_assets.resources import database

# ------------------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------------------

nightly_verify = ScheduleDefinition(
    name="nightly_verify", job=verify_pipeline, cron_schedule="0 2 * * *", execution_timezone="UTC",
    description="Every night: compare every pipeline table across all layers (drift fails the run).",
    default_status=DefaultScheduleStatus.STOPPED,
)

nightly_drift_check = ScheduleDefinition(
    name="nightly_drift_check", job=schema_plan, cron_schedule="30 2 * * *", execution_timezone="UTC",
    run_config={"ops": {"plan_schema": {"config": {"fail_on_changes": True}}}},
    description="Every night: fail when the live database drifted from the YAML specs.",
    default_status=DefaultScheduleStatus.STOPPED,
)

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


@sensor(jobs=[schema_plan, schema_apply, migrations_status, migrations_up], minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.STOPPED)
def spec_files_changed(context: SensorEvaluationContext, project: MigrateProjectResource) -> SensorResult:
    """Spec or migration files changed → plan (or apply with `auto_apply`); run key = content fingerprint."""
    cfg = project.load()
    now = project_fingerprints(cfg)
    seen = json.loads(context.cursor) if context.cursor else {}
    requests = []
    if now["schema"] != seen.get("schema"):
        job = schema_apply if project.auto_apply else schema_plan
        requests.append(RunRequest(run_key=f"schema:{now['schema']}", job_name=job.name,
                                   tags={"migrate_assets/fingerprint": now["schema"]}))
    if now["migrations"] != seen.get("migrations"):
        job = migrations_up if project.auto_apply else migrations_status
        requests.append(RunRequest(run_key=f"migrations:{now['migrations']}", job_name=job.name,
                                   tags={"migrate_assets/fingerprint": now["migrations"]}))
    if not requests:
        return SensorResult(skip_reason=SkipReason("spec and migration files unchanged"), cursor=context.cursor)
    return SensorResult(run_requests=requests, cursor=json.dumps(now, sort_keys=True))


# ------------------------------------------------------------------------------------------------------------
# expanded change safe to contract → contract
# ------------------------------------------------------------------------------------------------------------


@sensor(job=contract, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def expand_ready(context: SensorEvaluationContext, project: MigrateProjectResource) -> SensorResult:
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


@run_failure_sensor(monitored_jobs=[evolve_pipeline], request_job=rollback_evolution,
                    default_status=DefaultSensorStatus.STOPPED)
def evolution_failed_rollback(context: RunFailureSensorContext,
                              project: MigrateProjectResource) -> list[RunRequest] | SkipReason:
    """A failed `evolve_pipeline` run whose layers were not all restored → `rollback_evolution` per evolution run.

    The run's tag lists one evolution run per table. A table whose own rollback branch finished has nothing left to
    undo, and a table that evolved in a run that failed for another table keeps its change; one that died mid-step
    (or whose compensation failed) left its record behind, and the rollback job finishes the work.
    """
    run_ids = [r for r in context.dagster_run.tags.get(EVOLUTION_RUN_TAG, "").split(",") if r]
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
                       tags={EVOLUTION_RUN_TAG: rec.run_id, "migrate_assets/failed_run": context.dagster_run.run_id})
            for rec in pending]


# ------------------------------------------------------------------------------------------------------------
# connector FAILED → restart only the failed tasks
# ------------------------------------------------------------------------------------------------------------


@sensor(job=restart_failed_connector, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED)
def connector_failed(context: SensorEvaluationContext, project: MigrateProjectResource) -> SensorResult:
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


SCHEDULES = [nightly_verify, nightly_drift_check]
SENSORS = [spec_files_changed, expand_ready, evolution_failed_rollback, connector_failed]
