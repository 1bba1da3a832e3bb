"""The code location loads without any service running and passes Dagster's own validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from migrate_assets.assets import pipeline_assets
from migrate_assets.config import load_config
from migrate_assets.definitions import build_definitions

ROOT = Path(__file__).resolve().parent.parent
JOBS = {"schema_plan", "schema_apply", "migrations_up", "migrations_down", "migrations_status", "expand",
        "expand_status", "contract", "abort_expand", "evolve_pipeline", "rollback_evolution", "verify_pipeline"}


def test_workspace_validates() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MIGRATE_ASSETS_CONFIG"}
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
                          "workspace.yaml"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_definitions_hold_every_job_schedule_sensor_and_the_example_assets() -> None:
    defs = build_definitions(str(ROOT / "examples" / "migrate.yaml"))
    repo = defs.get_repository_def()
    assert JOBS | {"observe_pipeline_schemas"} <= {j.name for j in repo.get_all_jobs()}
    assert {s.name for s in repo.schedule_defs} == {"nightly_verify", "nightly_drift_check",
                                                    "refresh_pipeline_schemas"}
    assert {s.name for s in repo.sensor_defs} == {"spec_files_changed", "expand_ready", "evolution_failed_rollback",
                                                  "connector_failed", "layers_changed", "cli_evolutions"}
    # every sensor and schedule says what it does and when to turn it on; all but the read-only observers start
    # stopped
    for d in [*repo.sensor_defs, *repo.schedule_defs]:
        assert d.description and ("Turn on" in d.description or "keep it on" in d.description), d.name
        assert d.default_status.value == ("RUNNING" if d.name in ("layers_changed", "cli_evolutions") else "STOPPED"), d.name
    keys = {AssetKey(["pipeline", "customers", x]) for x in ("source", "registry", "iceberg")}
    assert keys <= set(repo.asset_graph.get_all_asset_keys())
    # observable: "Materialize" is an observation; lineage runs source → registry → iceberg
    for key in keys:
        node = repo.asset_graph.get(key)
        assert node.is_observable and not node.is_materializable, key
    iceberg = repo.asset_graph.get(AssetKey(["pipeline", "customers", "iceberg"]))
    assert iceberg.parent_keys == {AssetKey(["pipeline", "customers", "registry"])}
    assert set(repo.asset_graph.get(AssetKey(["pipeline", "customers", "registry"])).kinds) == {"avro"}
    # layers_consistent is one check over the three assets; matches_declared_spec sits on the source table
    checks = {(k.asset_key, k.name) for k in repo.asset_graph.asset_check_keys}
    assert {(key, "layers_consistent") for key in keys} <= checks
    assert (AssetKey(["pipeline", "customers", "source"]), "matches_declared_spec") in checks
    _, check_defs = pipeline_assets(load_config(str(ROOT / "examples" / "migrate.yaml")))
    layers_check = next(c for c in check_defs if any(k.name == "layers_consistent" for k in c.check_keys))
    assert {k.asset_key for k in layers_check.check_keys} == keys

    job = defs.get_job_def("evolve_pipeline")
    assert sorted(n.name for n in job.graph.nodes) == ["evolution_report", "evolve_table", "preflight"]
    # preflight fans out per table: the per-table saga is a graph mapped over its dynamic output ...
    assert job.graph.dependency_structure.get_upstream_dynamic_output_for_node("evolve_table").output_def.name == \
        "runs"
    table = job.graph.node_named("evolve_table").definition
    # ... one op per step, chained in the engine's step order: nothing else to read in the graph
    structure = table.dependency_structure  # type: ignore[attr-defined]
    deps = {n.name: sorted(f"{o.node_name}.{o.output_def.name}"
                           for outs in structure.input_to_upstream_outputs_for_node(n.name).values() for o in outs)
            for n in table.nodes}  # type: ignore[attr-defined]
    assert deps == {"register_schema": [], "evolve_lakehouse": ["register_schema.result"],
                    "apply_ddl": ["evolve_lakehouse.result"], "restart_connector": ["apply_ddl.result"],
                    "verify": ["restart_connector.result"]}
    # the launchpad's defaults name no file of the example project
    config = job.graph.node_named("preflight").definition.config_schema.as_field().config_type  # type: ignore[attr-defined]
    assert config.fields["change_file"].default_value == ""  # type: ignore[attr-defined]


def test_a_translator_maps_layers_to_keys_of_other_integrations(tmp_path: Path) -> None:
    """A dbt source of the table and a dagster-iceberg asset of its Iceberg table, in one Definitions: the
    pipeline assets take those keys, so lineage joins the user's graph; a prefix keeps a second project apart."""
    from dagster import AssetSpec, Definitions

    from migrate_assets.dagster_resources import MigrateProjectResource

    cfg_path = str(ROOT / "examples" / "migrate.yaml")
    project = MigrateProjectResource(config_path=cfg_path, asset_key_prefix=["shop"], asset_keys_map={
        "public.customers:source": ["dbt_shop", "raw", "customers"],  # a dagster-dbt source key
        "customers:iceberg": ["lake", "shop", "customers"]})  # a dagster-iceberg asset key
    assets, checks = pipeline_assets(load_config(cfg_path), project.asset_keys())
    downstream = AssetSpec(["marts", "customer_stats"], deps=[["dbt_shop", "raw", "customers"]])
    defs = Definitions(assets=[*assets, downstream], asset_checks=checks, resources={"project": project})
    graph = defs.get_repository_def().asset_graph
    registry = AssetKey(["shop", "pipeline", "customers", "registry"])
    assert graph.get(registry).parent_keys == {AssetKey(["dbt_shop", "raw", "customers"])}
    assert graph.get(AssetKey(["lake", "shop", "customers"])).parent_keys == {registry}
    assert AssetKey(["marts", "customer_stats"]) in graph.get(AssetKey(["dbt_shop", "raw", "customers"])).child_keys


def test_a_broken_project_file_still_loads_the_jobs(tmp_path: Path) -> None:
    bad = tmp_path / "migrate.yaml"
    bad.write_text("database: {dsn: ${NO_SUCH_VARIABLE_ANYWHERE}}\n")
    defs = build_definitions(str(bad))
    assert JOBS <= {j.name for j in defs.get_repository_def().get_all_jobs()}
    assert not list(defs.get_repository_def().asset_graph.get_all_asset_keys())
    assert "observe_pipeline_schemas" not in {j.name for j in defs.get_repository_def().get_all_jobs()}


def test_an_unlimited_ddl_pool_is_named_at_load() -> None:
    from dagster import instance_for_test

    from migrate_assets.definitions import ddl_pool_warning
    from migrate_assets.jobs.common import DDL_POOL

    with instance_for_test() as instance:
        warning = ddl_pool_warning(instance)
        assert warning is not None and DDL_POOL in warning and "concurrency set" in warning
        instance.event_log_storage.set_concurrency_slots(DDL_POOL, 1)
        assert ddl_pool_warning(instance) is None
    with instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        assert ddl_pool_warning(instance) is None
