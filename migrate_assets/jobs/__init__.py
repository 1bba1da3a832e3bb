"""Ops, graphs, jobs, schedules and sensors (SPEC §7). Thin: every op calls the engine the CLI calls."""

from migrate_assets.jobs.automation import SCHEDULES, SENSORS
from migrate_assets.jobs.database import (
    abort_expand,
    contract,
    expand,
    expand_status,
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

JOBS = [
    schema_plan, schema_apply, migrations_up, migrations_down, migrations_status, expand, expand_status, contract,
    abort_expand, evolve_pipeline, rollback_evolution, verify_pipeline, restart_failed_connector,
]

__all__ = ["JOBS", "SCHEDULES", "SENSORS"]
