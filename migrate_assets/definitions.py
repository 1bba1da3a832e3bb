"""The one `Definitions` object: the code location `workspace.yaml` loads (`dagster dev -w workspace.yaml`).

Loading contacts no service. The project file — `$MIGRATE_ASSETS_CONFIG`, else the bundled example — is read only
to know which pipeline tables get schema-state assets; if it cannot be read the jobs still load (they read the
file again when they run, and report the problem there). Loading also asks the Dagster instance whether the DDL
pool has a limit, and warns when it has none (then two schema changes may run at once).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from dagster import DagsterInstance, Definitions, in_process_executor

from migrate_assets.assets import pipeline_assets
from migrate_assets.config import load_config
from migrate_assets.dagster_resources import MigrateProjectResource, default_config_path
from migrate_assets.errors import MigrateAssetsError
from migrate_assets.jobs import JOBS, SCHEDULES, SENSORS
from migrate_assets.jobs.automation import ASSET_JOBS, ASSET_SCHEDULES, ASSET_SENSORS
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


_warn_unlimited_pool()
defs = build_definitions()
