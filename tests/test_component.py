"""The Component: `dg scaffold defs` writes a defs.yaml for it, and loading that defs folder builds the same jobs,
assets, checks, sensors and schedules as the code location, for the project the YAML names, with its keys — through
Dagster's defs-folder loader, and through the real `dg` CLI (scaffold, check, list)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, EnvVar
from dagster.components.testing import create_defs_folder_sandbox

from migrate_assets.component import MigrateAssetsComponent
from migrate_assets.errors import UsageError

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
                                        asset_keys_map={"public.customers:source": ["dbt_shop", "customers"]},
                                        env={"dsn": "SHOP_DATABASE_URL",
                                             "iceberg_properties.credential": "SHOP_CATALOG_CREDENTIAL"})
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
            # the layers from the environment: EnvVar fields, resolved when a run starts, never in the config
            assert isinstance(project.dsn, EnvVar) and project.dsn.env_var_name == "SHOP_DATABASE_URL"
            assert project.iceberg_properties == {"credential": EnvVar("SHOP_CATALOG_CREDENTIAL")}
        scaffolded["attributes"]["env"] = {"database_url": "SHOP_DATABASE_URL"}
        (defs_path / "defs.yaml").write_text(yaml.safe_dump(scaffolded))
        with pytest.raises(Exception) as err:  # noqa: B017 - Dagster wraps it; the cause is ours
            with sandbox.load_component_and_build_defs(defs_path=defs_path):
                pass
        cause = err.value
        while not isinstance(cause, UsageError) and (cause.__cause__ or cause.__context__):
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        assert isinstance(cause, UsageError) and "expected one of dsn" in str(cause)
        assert (cause.problems[0].file, cause.problems[0].key) == (str(defs_path / "defs.yaml"),
                                                                   "attributes.env.database_url")


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


# ------------------------------------------------------------------------------------------------------------
# through the real `dg` CLI (dagster-dg-cli, dev extra)
# ------------------------------------------------------------------------------------------------------------

DG_PYPROJECT = """[project]
name = "shop_dagster"
version = "0.1.0"
requires-python = ">=3.11"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "shop_dagster"
"""

DG_DEFINITIONS = """from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _dg(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`dg ARGS` in the project folder, with this venv active (the project uses it: no uv, no install)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(Path(bin_dir).parent), "NO_COLOR": "1"}
    env.pop("MIGRATE_ASSETS_CONFIG", None)
    return subprocess.run([str(Path(bin_dir) / "dg"), *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=240)


def test_dg_cli_scaffolds_checks_and_lists_the_component(tmp_path: Path) -> None:
    """A `dg` project as `create-dagster project` lays it out; the component goes in through `dg scaffold defs`,
    `dg check defs` validates defs.yaml against the component's schema and loads it, and `dg list defs` shows what
    it built; a wrong attribute is reported with the file and the key."""
    project = tmp_path / "shop-dagster"
    (project / "shop_dagster" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(DG_PYPROJECT)
    (project / "shop_dagster" / "__init__.py").write_text("")
    (project / "shop_dagster" / "defs" / "__init__.py").write_text("")
    (project / "shop_dagster" / "definitions.py").write_text(DG_DEFINITIONS)

    made = _dg(project, "scaffold", "defs", "migrate_assets.component.MigrateAssetsComponent", "schema_changes")
    assert made.returncode == 0, made.stderr
    folder = project / "shop_dagster" / "defs" / "schema_changes"
    doc = yaml.safe_load((folder / "defs.yaml").read_text())
    assert doc == {"type": "migrate_assets.component.MigrateAssetsComponent",
                   "attributes": {"config_path": "migrate.yaml", "name": None, "asset_key_prefix": [],
                                  "asset_keys_map": {}, "auto_apply": False, "auto_contract": False,
                                  "env": {}}}
    for item in ("migrate.yaml", "schemas", "migrations", "changes"):
        src = ROOT / "examples" / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / item)
    doc["attributes"]["asset_keys_map"] = {"public.customers:source": ["shop", "customers"]}
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc))

    checked = _dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = _dg(project, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert {"evolve_pipeline", "rollback_evolution", "schema_apply", "observe_pipeline_schemas"} <= \
        {j["name"] for j in found["jobs"]}
    assert {"layers_changed", "evolution_failed_rollback"} <= {s["name"] for s in found["sensors"]}
    assets = {a["asset_key"]: a for a in found["assets"]}
    assert assets["pipeline/customers/registry"]["dependency_keys"] == ["shop/customers"]  # the translated key
    assert assets["shop/customers"]["source"].endswith("defs/schema_changes/defs.yaml:1")
    assert [r["name"] for r in found["resources"]] == ["project"]

    doc["attributes"]["auto_aply"] = True  # a typo
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc))
    bad = _dg(project, "check", "defs")
    said = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "defs.yaml" in said and "auto_aply" in said, said
