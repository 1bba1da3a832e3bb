"""Several projects (databases) in one code location: each with its own jobs, sensors, schedules, assets and
resource, and a job of one project changes its own database only (real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from dagster import AssetKey, Definitions, RunRequest, build_sensor_context

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.definitions import project_definitions
from migrate_assets.errors import UsageError
from tests.jobs.conftest import write_db_project
from tests.support import column_names

ACCOUNTS = "table: accounts\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
NOTES = "table: notes\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"


def _project(tmp: Path, dsn: str, name: str, pipelines: bool = True) -> MigrateProjectResource:
    tmp.mkdir()
    extra = {"pipelines": [{"table": "accounts"}]} if pipelines else {}
    path = write_db_project(tmp, dsn, **extra)
    (tmp / "schemas" / "accounts.yaml").write_text(ACCOUNTS)  # the pipeline table, there already
    (tmp / "schemas" / "notes.yaml").write_text(NOTES)  # a table schema_apply creates
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.accounts (id bigint PRIMARY KEY)")
    return MigrateProjectResource(config_path=str(path), asset_key_prefix=[name])


def test_two_projects_in_one_code_location(tmp_path: Path, fresh_dsn: str, fresh_db_factory: object) -> None:
    other_dsn = fresh_db_factory()  # type: ignore[operator]
    shop, crm = _project(tmp_path / "shop", fresh_dsn, "shop"), _project(tmp_path / "crm", other_dsn, "crm")
    defs = Definitions.merge(project_definitions(shop, "shop"), project_definitions(crm, "crm"))
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    names = {j.name for j in repo.get_all_jobs()}
    assert {"shop__evolve_pipeline", "crm__evolve_pipeline", "shop__schema_apply", "crm__observe_pipeline_schemas"} \
        <= names
    assert {s.name for s in repo.sensor_defs} >= {"shop__evolution_failed_rollback", "crm__evolution_failed_rollback"}
    assert {AssetKey(["shop", "pipeline", "accounts", "source"]), AssetKey(["crm", "pipeline", "accounts", "source"])} \
        <= set(repo.asset_graph.get_all_asset_keys())

    # each project's job carries its own resource: shop's schema_apply creates the table in shop's database only
    assert defs.resolve_job_def("shop__schema_apply").execute_in_process().success
    assert column_names(fresh_dsn, "public.notes") == ["id"]
    assert not column_names(other_dsn, "public.notes")
    # and each project's sensor its own project, asking for its own jobs
    tick = repo.get_sensor_def("crm__spec_files_changed")(build_sensor_context())
    assert {r.job_name for r in tick.run_requests} == {"crm__schema_plan", "crm__migrations_status"}
    assert all(isinstance(r, RunRequest) for r in tick.run_requests)


def test_a_project_among_several_needs_a_key_prefix_and_a_plain_name(tmp_path: Path, fresh_dsn: str) -> None:
    project = _project(tmp_path / "p", fresh_dsn, "p", pipelines=False)
    with pytest.raises(UsageError, match="letters, digits and _"):
        project_definitions(project, "my-shop")
    bare = MigrateProjectResource(config_path=project.config_path)
    with pytest.raises(UsageError, match="set asset_key_prefix"):
        project_definitions(bare, "shop")
