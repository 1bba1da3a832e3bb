"""The Component: `dg scaffold defs` writes a defs.yaml for it, and loading that defs folder builds the same jobs,
assets, checks, sensors and schedules as the code location, for the project the YAML names, with its keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from dagster import AssetKey
from dagster.components.testing import create_defs_folder_sandbox

from migrate_assets.component import MigrateAssetsComponent

ROOT = Path(__file__).resolve().parent.parent


def test_scaffolded_defs_yaml_builds_the_project_definitions(tmp_path: Path) -> None:
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.scaffold_component(component_cls=MigrateAssetsComponent, defs_path="schema_changes")
        scaffolded = yaml.safe_load((defs_path / "defs.yaml").read_text())
        assert scaffolded["type"] == "migrate_assets.component.MigrateAssetsComponent"
        assert scaffolded["attributes"]["config_path"] == "migrate.yaml"
        # the example project next to the defs.yaml, with a prefix and one layer mapped to a dbt source key
        for item in ("migrate.yaml", "schemas", "migrations", "changes"):
            src = ROOT / "examples" / item
            (shutil.copytree if src.is_dir() else shutil.copy)(src, defs_path / item)
        scaffolded["attributes"].update(asset_key_prefix=["shop"],
                                        asset_keys_map={"public.customers:source": ["dbt_shop", "customers"]})
        (defs_path / "defs.yaml").write_text(yaml.safe_dump(scaffolded))
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, MigrateAssetsComponent)
            repo = defs.get_repository_def()
            assert {"evolve_pipeline", "rollback_evolution", "schema_apply", "observe_pipeline_schemas"} <= \
                {j.name for j in repo.get_all_jobs()}
            assert "evolution_failed_rollback" in {s.name for s in repo.sensor_defs}
            keys = set(repo.asset_graph.get_all_asset_keys())
            assert {AssetKey(["dbt_shop", "customers"]), AssetKey(["shop", "pipeline", "customers", "registry"]),
                    AssetKey(["shop", "pipeline", "customers", "iceberg"])} <= keys
            project = defs.resources["project"]
            assert Path(project.config_path) == defs_path / "migrate.yaml"  # relative to the defs folder


def test_two_named_components_are_two_projects_in_one_code_location() -> None:
    with create_defs_folder_sandbox() as sandbox:
        for name in ("shop", "crm"):
            path = sandbox.scaffold_component(component_cls=MigrateAssetsComponent, defs_path=name)
            shutil.copy(ROOT / "examples" / "migrate.yaml", path / "migrate.yaml")
            doc = yaml.safe_load((path / "defs.yaml").read_text())
            doc["attributes"]["name"] = name
            (path / "defs.yaml").write_text(yaml.safe_dump(doc))
        with sandbox.build_all_defs() as defs:
            repo = defs.get_repository_def()
            jobs = {j.name for j in repo.get_all_jobs()}
            assert {"shop__evolve_pipeline", "crm__evolve_pipeline"} <= jobs and "evolve_pipeline" not in jobs
            keys = set(repo.asset_graph.get_all_asset_keys())
            assert {AssetKey(["shop", "pipeline", "customers", "source"]),
                    AssetKey(["crm", "pipeline", "customers", "source"])} <= keys
