"""The key translator joins a user's graph (issue 19 item 3): a real dbt project (dbt-postgres, `dbt parse` for its
manifest, a `sources:` entry for the pipeline table) loaded with dagster-dbt, a consumer of the Iceberg table under
the key dagster-iceberg gives it — loaded through dagster-iceberg's own IO manager — and the pipeline assets mapped
onto those keys, all in one `Definitions`.

dagster-iceberg 0.3.14 declares `pyiceberg[pyarrow]>=0.8,<0.12` and this package needs 0.12, so `make install`
adds it with `--no-deps`. Its IO manager reads the Iceberg table `<namespace>.<table>` for the asset key
`[..., namespace, table]` (the key's last two parts), and on pyiceberg 0.12 it works once the namespace exists
(it lists the namespace first, which 0.12 refuses for a missing one) — a pipeline's Iceberg table always has one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import yaml
from dagster import AssetIn, AssetKey, DagsterInstance, Definitions, asset, materialize
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from dagster_iceberg.config import IcebergCatalogConfig
from dagster_iceberg.io_manager.arrow import PyArrowIcebergIOManager
from pyiceberg.catalog.sql import SqlCatalog

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.definitions import build_definitions
from tests.jobs.conftest import columns_of

SOURCE_KEY = AssetKey(["shop", "customers"])  # dagster-dbt's key of source('shop', 'customers')
ICEBERG_TABLE = "lake.customers"


def dagster_iceberg_key(identifier: str) -> AssetKey:
    """The asset key whose Iceberg table dagster-iceberg's IO manager reads: `[namespace, table]`."""
    namespace, _, table = identifier.rpartition(".")
    return AssetKey([namespace, table])


def _dbt_project(tmp: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> DbtProject:
    """A dbt project over the pipeline's database: one source (the pipeline table), one model below it."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    monkeypatch.setenv("SHOP_PG_PASSWORD", str(info.get("password") or ""))
    (tmp / "models").mkdir(parents=True)
    (tmp / "dbt_project.yml").write_text("name: shop_analytics\nversion: '1.0'\nprofile: shop\n"
                                         "model-paths: [models]\n")
    output = {"type": "postgres", "host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
              "user": info["user"], "password": "{{ env_var('SHOP_PG_PASSWORD') }}", "dbname": info["dbname"],
              "schema": "analytics", "threads": 1}
    (tmp / "profiles.yml").write_text(yaml.safe_dump({"shop": {"target": "dev", "outputs": {"dev": output}}}))
    (tmp / "models" / "sources.yml").write_text(yaml.safe_dump(
        {"version": 2, "sources": [{"name": "shop", "schema": "public", "tables": [{"name": "customers"}]}]}))
    (tmp / "models" / "customer_names.sql").write_text("select id, name from {{ source('shop', 'customers') }}\n")
    return DbtProject(project_dir=tmp, profiles_dir=tmp)


def test_dbt_source_and_iceberg_key_join_the_pipeline_assets(tmp_path: Path, fresh_dsn: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.customers (id bigint PRIMARY KEY, name text)")
    project = _dbt_project(tmp_path / "dbt", fresh_dsn, monkeypatch)
    dbt = DbtCliResource(project_dir=project, dbt_executable=str(Path(sys.executable).parent / "dbt"))
    assert dbt.cli(["parse"], target_path=project.target_path).wait().is_successful()

    @dbt_assets(manifest=project.manifest_path)
    def shop_dbt(context, dbt: DbtCliResource):  # type: ignore[no-untyped-def]
        yield from dbt.cli(["build"], context=context).stream()

    # the Iceberg table the pipeline's sink writes, in a real SQL catalog, with two rows
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    props = {"uri": f"sqlite:///{tmp_path / 'catalog.db'}", "warehouse": warehouse.as_uri()}
    catalog = SqlCatalog("lake", **props)
    catalog.create_namespace("lake")
    catalog.create_table(ICEBERG_TABLE, schema=pa.schema([("id", pa.int64()), ("name", pa.string())])).append(
        pa.table({"id": [1, 2], "name": ["a", "b"]}))
    iceberg_io = PyArrowIcebergIOManager(name="lake", config=IcebergCatalogConfig(properties={"type": "sql", **props}),
                                         namespace="lake")

    @asset(ins={"customers": AssetIn(key=dagster_iceberg_key(ICEBERG_TABLE), input_manager_key="iceberg_io")},
           kinds={"iceberg"})
    def customers_in_lake(customers: pa.Table) -> int:
        """A consumer of the Iceberg table, loaded by dagster-iceberg's IO manager from our asset's key."""
        return int(customers.num_rows)

    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "customers.yaml").write_text(  # the live table's spec: matches_declared_spec passes
        "table: customers\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
        "  - {name: name, type: text, nullable: true}\n")
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"dsn": fresh_dsn}, "schema_registry": {"url": "http://127.0.0.1:9"},
        "iceberg": {"name": "lake", "properties": {"uri": "sqlite:///:memory:"}},
        "pipelines": [{"table": "customers", "subject": "shop.public.customers-value",
                       "iceberg_table": ICEBERG_TABLE}]}))
    ours = MigrateProjectResource(config_path=str(cfg), asset_keys_map={
        "public.customers:source": list(SOURCE_KEY.path),
        "public.customers:iceberg": list(dagster_iceberg_key(ICEBERG_TABLE).path)})
    defs = Definitions.merge(build_definitions(project=ours),
                             Definitions(assets=[shop_dbt, customers_in_lake],
                                         resources={"dbt": dbt, "iceberg_io": iceberg_io}))
    Definitions.validate_loadable(defs)

    graph = defs.resolve_asset_graph()
    registry = AssetKey(["pipeline", "customers", "registry"])
    lake = dagster_iceberg_key(ICEBERG_TABLE)
    model = AssetKey(["customer_names"])
    # the dbt model's upstream is our source-table asset: one node, observable, not a dbt stub
    assert graph.get(model).parent_keys == {SOURCE_KEY}
    assert graph.get(SOURCE_KEY).is_observable and graph.get(SOURCE_KEY).metadata["layer"] == "source"
    # events travel source → registry → Iceberg, and the Iceberg asset key is the one dagster-iceberg reads
    assert graph.get(registry).parent_keys == {SOURCE_KEY}
    assert graph.get(lake).parent_keys == {registry} and graph.get(lake).metadata["layer"] == "iceberg"
    assert graph.get(AssetKey(["customers_in_lake"])).parent_keys == {lake}
    assert graph.get(SOURCE_KEY).child_keys == {model, registry}
    # the checks sit on the translated keys too
    assert {k.asset_key for k in graph.asset_check_keys} == {SOURCE_KEY, registry, lake}

    # and for real: our observation lands on the key dbt reads, and dbt builds its model from that table
    instance = DagsterInstance.ephemeral()
    observed = defs.resolve_job_def("observe_pipeline_schemas").execute_in_process(
        instance=instance, asset_selection=[SOURCE_KEY])
    assert observed.success
    checks = {(e.asset_key, e.check_name): e for e in observed.get_asset_check_evaluations()}
    assert set(checks) == {(SOURCE_KEY, "matches_declared_spec"), (SOURCE_KEY, "layers_consistent")}
    spec = checks[(SOURCE_KEY, "matches_declared_spec")]  # the other layers' checks are not in this run
    assert spec.passed, spec.metadata["plan"]
    (obs,) = [e.asset_observation_data.asset_observation for e in observed.get_asset_observation_events()]
    assert obs.asset_key == SOURCE_KEY and columns_of(obs) == ["id", "name"]
    built = materialize([shop_dbt], resources={"dbt": dbt}, instance=instance)
    assert built.success and model in {e.asset_key for e in built.get_asset_materialization_events()}
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM analytics.customer_names").fetchone() == (0,)
    # and dagster-iceberg loads the Iceberg table through the key our asset has
    read = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[AssetKey(["customers_in_lake"])])
    assert read.success and read.output_for_node("customers_in_lake") == 2
