"""The one `Definitions` object: the code location `workspace.yaml` loads (`dagster dev -w workspace.yaml`).

Loading contacts no service. The project file — `$MIGRATE_ASSETS_CONFIG`, else the bundled example — is read only
to know which pipeline tables get schema-state assets; if it cannot be read the jobs still load (they read the
file again when they run, and report the problem there).
"""

from __future__ import annotations

import logging

from dagster import Definitions, in_process_executor

from migrate_assets.assets import pipeline_assets
from migrate_assets.config import load_config
from migrate_assets.dagster_resources import MigrateProjectResource, default_config_path
from migrate_assets.errors import MigrateAssetsError
from migrate_assets.jobs import JOBS, SCHEDULES, SENSORS

log = logging.getLogger(__name__)


def build_definitions(config_path: str | None = None) -> Definitions:
    path = config_path or default_config_path()
    try:
        assets, checks = pipeline_assets(load_config(path))
    except MigrateAssetsError as exc:
        log.warning("no pipeline assets: cannot read %s: %s", path, exc)
        assets, checks = [], []
    return Definitions(
        assets=assets, asset_checks=checks, jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS,
        resources={"project": MigrateProjectResource(config_path=path)},
        # the jobs are sequential (a saga, or one op): one process per run instead of one per op saves seconds of
        # imports per step; a deployment may still set another executor per job or run
        executor=in_process_executor,
    )


defs = build_definitions()
