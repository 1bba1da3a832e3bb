"""The one `Definitions` object: the code location `workspace.yaml` loads (`dagster dev -w workspace.yaml`).

Loading contacts no service. The project file — `$MIGRATE_ASSETS_CONFIG`, else the bundled example — is read only
to know which pipeline tables get schema-state assets; if it cannot be read the jobs still load (they read the
file again when they run, and report the problem there). Loading also asks the Dagster instance whether the DDL
pool has a limit, and warns when it has none (then two schema changes may run at once).

`project_definitions(project, name)` builds one project among several in a code location (jobs and sensors named
`<name>__…`, the project bound to them); `migrate_assets.component.MigrateAssetsComponent` builds either kind from
a defs.yaml.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from dagster import (
    DagsterInstance,
    Definitions,
    JobDefinition,
    ScheduleDefinition,
    SensorDefinition,
    in_process_executor,
)

from migrate_assets.assets import pipeline_assets
from migrate_assets.config import load_config
from migrate_assets.dagster_resources import MigrateProjectResource, default_config_path
from migrate_assets.errors import MigrateAssetsError, UsageError
from migrate_assets.jobs import JOBS, SCHEDULES, SENSORS
from migrate_assets.jobs.automation import ASSET_JOBS, ASSET_SCHEDULES, ASSET_SENSORS, WITH_ASSETS, automation
from migrate_assets.jobs.common import DDL_POOL

log = logging.getLogger(__name__)

POOL_HELP = (f"give it one: `dagster instance concurrency set {DDL_POOL} 1`, or `concurrency: {{pools: "
             "{default_limit: 1}}` in dagster.yaml (make dev writes it); see docs/dagster.md")


def ddl_pool_warning(instance: DagsterInstance | None = None) -> str | None:
    """Why the DDL pool is unlimited on this Dagster instance, or None when it has a limit (its own or the
    instance's default pool limit)."""
    if instance is None:
        if not os.environ.get("DAGSTER_HOME"):
            return f"DAGSTER_HOME is not set: the instance is temporary and the pool {DDL_POOL} has no limit; " + \
                POOL_HELP
        with DagsterInstance.get() as inst:
            return ddl_pool_warning(inst)
    if instance.get_concurrency_config().pool_config.default_pool_limit is not None:
        return None
    if DDL_POOL in instance.event_log_storage.get_concurrency_keys():
        if instance.event_log_storage.get_concurrency_info(DDL_POOL).slot_count > 0:
            return None
    return f"the Dagster concurrency pool {DDL_POOL} has no limit, so schema changes of two runs may overlap; " + \
        POOL_HELP


def _warn_unlimited_pool() -> None:
    try:
        warning = ddl_pool_warning()
    except Exception as exc:  # noqa: BLE001 - a check at load must never stop the code location
        warning = f"cannot read the limit of the concurrency pool {DDL_POOL}: {exc}"
    if warning:
        log.warning(warning)


def build_definitions(config_path: str | None = None, project: MigrateProjectResource | None = None) -> Definitions:
    """Every job, sensor and schedule, and the assets and checks of the project's pipeline tables. `project`: the
    resource to use (keys, auto_apply …; the Component passes its own), else one for `config_path`."""
    path = project.config_path if project is not None else config_path or default_config_path()
    project = project or MigrateProjectResource(config_path=path)
    try:
        assets, checks = pipeline_assets(load_config(path), project.asset_keys())
    except MigrateAssetsError as exc:
        log.warning("no pipeline assets: cannot read %s: %s", path, exc)
        assets, checks = [], []
    jobs: list[Any] = [*JOBS, *(ASSET_JOBS if assets else [])]
    sensors: list[Any] = [*SENSORS, *(ASSET_SENSORS if assets else [])]
    return Definitions(
        assets=assets, asset_checks=checks, jobs=jobs, sensors=sensors,
        schedules=[*SCHEDULES, *(ASSET_SCHEDULES if assets else [])],
        resources={"project": project},
        # the jobs are sequential (a saga, or one op): one process per run instead of one per op saves seconds of
        # imports per step; a deployment may still set another executor per job or run
        executor=in_process_executor,
    )


def _renamed(job: JobDefinition, prefix: str, resources: dict[str, Any]) -> JobDefinition:
    """The job under `<prefix><name>` with the project bound to it (its ops ask for the resource `project`)."""
    return job.graph.to_job(
        name=prefix + job.name, description=job.description, tags=job.tags, resource_defs=resources,
        config=job.run_config, op_retry_policy=job.op_retry_policy,
        executor_def=job.executor_def if job.has_specified_executor else in_process_executor)


def project_definitions(project: MigrateProjectResource, name: str) -> Definitions:
    """The definitions of one project among several in a code location (merge them with `Definitions.merge`).

    Every job, schedule and sensor is named `<name>__<job>` and has the project bound to it; the assets are in the
    group `<name>_pipeline_schema`, read the project as the resource `<name>_project`, and take the resource's
    key prefix (set `asset_key_prefix`: two projects may hold tables of the same name)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise UsageError(f"project name {name!r}: expected letters, digits and _ (it prefixes job names)",
                         file="<definitions>", key="name")
    if not project.asset_key_prefix:
        raise UsageError(f"project {name}: set asset_key_prefix (e.g. [{name!r}]): the pipeline assets of several "
                         "projects need keys of their own", file="<definitions>", key="asset_key_prefix")
    prefix, group, key = f"{name}__", f"{name}_pipeline_schema", f"{name}_project"
    bound = {"project": project}
    jobs = {job.name: _renamed(job, prefix, bound) for job in JOBS}
    assets, checks = pipeline_assets(project.load(), project.asset_keys(), group=group, resource_key=key)
    auto = {n: d for n, d in automation(jobs, bound=project, prefix=prefix, group=group).items()
            if assets or n not in WITH_ASSETS}
    return Definitions(
        assets=assets, asset_checks=checks, resources={key: project}, executor=in_process_executor,
        jobs=[*jobs.values(), *(d for n, d in auto.items() if n == "observe_pipeline_schemas")],
        schedules=[d for d in auto.values() if isinstance(d, ScheduleDefinition)],
        sensors=[d for d in auto.values() if isinstance(d, SensorDefinition)])

_warn_unlimited_pool()
defs = build_definitions()
