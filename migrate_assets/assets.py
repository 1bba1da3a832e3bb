"""Schema-state assets per pipeline table and their checks (SPEC §7).

For each `pipelines` entry of `migrate.yaml`: the source table, the registry subject and the Iceberg table, keyed
`["pipeline", <table>, "source" | "registry" | "iceberg"]` and chained by lineage in the order events travel.
Materialising one reads that layer's live schema into `dagster/column_schema` (a `TableSchema`), so the UI shows
each layer's columns and how they changed between materialisations. Two checks sit on the source asset:
`matches_declared_spec` (the declarative planner finds nothing to change between the YAML spec and the live table)
and `layers_consistent` (verify: every layer agrees by field name and mapped type).

Only the project file is read to build these definitions (which tables, which layers); no service is contacted
until something runs.
"""


from typing import Any

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
    asset,
    asset_check,
)

from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.evolution.derive import avro_row_fields
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.preflight import resolve_target
from migrate_assets.evolution.typemap import avro_signature
from migrate_assets.evolution.verify import verify_table
from migrate_assets.jobs.common import engine_errors, md_table
from migrate_assets.jobs.database import APPLICATION_NAME, plan_md
from migrate_assets.jobs.evolve import verify_md
from migrate_assets.resources import database
from migrate_assets.resources import project as projectlib

GROUP = "pipeline_schema"


def key_name(table: str, default_schema: str) -> str:
    schema, _, name = table.rpartition(".")
    return name if schema in ("", default_schema) else f"{schema}__{name}"


def layer_key(table: str, default_schema: str, layer: str) -> AssetKey:
    return AssetKey(["pipeline", key_name(table, default_schema), layer])


def _schema(columns: list[tuple[str, str, bool]]) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=n, type=t, constraints=TableColumnConstraints(nullable=nullable))
                                for n, t, nullable in columns])


def _avro_type(sig: tuple[str, str | None]) -> str:
    return sig[0] if sig[1] is None else f"{sig[0]} ({sig[1]})"


def _source_asset(t: PipelineTarget, schema: str) -> AssetsDefinition:
    @asset(key=layer_key(t.table, schema, "source"), group_name=GROUP, kinds={"postgres"},
           description=f"Live schema of the source table {t.table}.")
    def _source(context: AssetExecutionContext, project: MigrateProjectResource) -> MaterializeResult:
        with engine_errors(f"read {t.table}"):
            src = project.run_context().source
            cols = src.columns(t.table)
            fp = src.fingerprint(t.table) if cols is not None else "absent"
        if cols is None:
            context.log.warning(f"table {t.table} does not exist")
        return MaterializeResult(metadata={
            "dagster/column_schema": _schema([(c.name, c.type, c.nullable) for c in cols or []]),
            "table": t.table, "exists": cols is not None, "fingerprint": fp,
        })

    return _source


def _registry_asset(t: PipelineTarget, schema: str) -> AssetsDefinition:
    @asset(key=layer_key(t.table, schema, "registry"), group_name=GROUP, kinds={"kafka"},
           deps=[layer_key(t.table, schema, "source")],
           description=f"Latest value schema registered for {t.table}'s change events.")
    def _registry(context: AssetExecutionContext, project: MigrateProjectResource) -> MaterializeResult:
        with engine_errors(f"read the subject of {t.table}"):
            ctx = project.run_context()
            target = resolve_target(project.target(t.table), ctx)
            latest = ctx.registry.latest(target.subject) if ctx.registry and target.subject else None
        meta: dict[str, Any] = {"subject": target.subject or "", "exists": latest is not None}
        fields: list[tuple[str, str, bool]] = []
        if latest is not None:
            for name, typ in avro_row_fields(latest.schema).items():
                optional = isinstance(typ, list) and "null" in typ
                fields.append((name, _avro_type(avro_signature(typ)), optional))
            meta.update({"version": latest.version, "schema_id": latest.schema_id})
        meta["dagster/column_schema"] = _schema(fields)
        return MaterializeResult(metadata=meta)

    return _registry


def _iceberg_asset(t: PipelineTarget, schema: str, upstream: AssetKey) -> AssetsDefinition:
    @asset(key=layer_key(t.table, schema, "iceberg"), group_name=GROUP, kinds={"iceberg"}, deps=[upstream],
           description=f"Current schema of the Iceberg table {t.iceberg_table}.")
    def _iceberg(context: AssetExecutionContext, project: MigrateProjectResource) -> MaterializeResult:
        assert t.iceberg_table is not None
        with engine_errors(f"read {t.iceberg_table}"):
            lake = project.run_context().lakehouse
            st = lake.state(t.iceberg_table) if lake is not None else None
        meta: dict[str, Any] = {"identifier": t.iceberg_table, "exists": st is not None}
        if st is not None:
            meta.update({"schema_id": st.schema_id, "snapshot_id": str(st.snapshot_id)})
        meta["dagster/column_schema"] = _schema([(f.name, f.type, not f.required) for f in st.fields] if st else [])
        return MaterializeResult(metadata=meta)

    return _iceberg


def _spec_check(t: PipelineTarget, schema: str) -> AssetChecksDefinition:
    @asset_check(asset=layer_key(t.table, schema, "source"), name="matches_declared_spec",
                 description="The live table matches its YAML spec: the declarative plan is empty.")
    def _check(project: MigrateProjectResource) -> AssetCheckResult:
        with engine_errors("schema plan"):
            plan = database.schema_plan(project.load(), [t.table], application_name=APPLICATION_NAME)
        return AssetCheckResult(passed=plan.empty, severity=AssetCheckSeverity.WARN,
                                metadata={"changes": len(plan.changes), "plan": MetadataValue.md(plan_md(plan)),
                                          "fingerprint": plan.fingerprint})

    return _check


def _layers_check(t: PipelineTarget, schema: str) -> AssetChecksDefinition:
    @asset_check(asset=layer_key(t.table, schema, "source"), name="layers_consistent",
                 description="Source, registry, lakehouse and connector agree by field name and mapped type.")
    def _check(project: MigrateProjectResource) -> AssetCheckResult:
        with engine_errors("verify"):
            ctx = project.run_context()
            target = project.target(t.table)
            try:
                target = resolve_target(target, ctx)
            except Exception:  # noqa: BLE001 - verify reports the connector as unreachable itself
                pass
            res = verify_table(target, ctx)
        rows = [[layer, v.status] for layer, v in res.layers.items()]
        return AssetCheckResult(passed=res.consistent, metadata={
            "verify": MetadataValue.md(verify_md([res])), "layers": MetadataValue.md(md_table(["layer", "status"], rows)),
            "differences": "; ".join(res.differences()) or "none"})

    return _check


def pipeline_assets(cfg: ProjectConfig) -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    """Assets and checks for every pipeline table of a project (layers that are not configured have no asset)."""
    schema = cfg.database.schema_
    assets: list[AssetsDefinition] = []
    checks: list[AssetChecksDefinition] = []
    for t in projectlib.targets(cfg):
        assets.append(_source_asset(t, schema))
        upstream = layer_key(t.table, schema, "source")
        if cfg.schema_registry is not None and (t.subject or t.connector):
            assets.append(_registry_asset(t, schema))
            upstream = layer_key(t.table, schema, "registry")
        if t.iceberg_table:
            assets.append(_iceberg_asset(t, schema, upstream))
        checks += [_spec_check(t, schema), _layers_check(t, schema)]
    return assets, checks
