"""Schema-state assets per pipeline table and their checks (SPEC §7).

For each `pipelines` entry of `migrate.yaml`: the source table, the registry subject and the Iceberg table, keyed
by the key translator (`PipelineAssetKeys`, default `["pipeline", <table>, "source" | "registry" | "iceberg"]`) and
chained by lineage in the order events travel. They are *observable* assets: this package does not produce them,
it reads them — "Observe" (or the `refresh_pipeline_schemas` schedule) reads each layer's live schema into
`dagster/column_schema`, and every job that changes a layer reports the same observation, so an asset page shows
the columns the last change left (jobs/observe.py).

Checks: `matches_declared_spec` on the source table (the declarative planner finds nothing to change between the
YAML spec and the live table; otherwise it reports the drift), and `layers_consistent`, one check over the three
assets (verify: every layer agrees with the source by field name and mapped type; each asset gets its layer's
verdict).

Only the project file is read to build these definitions (which tables, which layers); no service is contacted
until something runs.
"""


import re
from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MetadataValue,
    ObserveResult,
    asset_check,
    multi_asset_check,
    multi_observable_source_asset,
)

from migrate_assets.app.verify import verify_pipeline
from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.jobs.common import engine_errors
from migrate_assets.jobs.database import APPLICATION_NAME, plan_md
from migrate_assets.jobs.evolve import verify_md
from migrate_assets.jobs.observe import (
    ASSET_LAYERS,
    GROUP,
    READERS,
    PipelineAssetKeys,
    default_key,
    has_layer,
)
from migrate_assets.resources import database
from migrate_assets.resources import project as projectlib

#: what each asset is, for its description and kinds
_WHAT = {"source": ("Live schema of the source table {table}.", {"postgres"}),
         "registry": ("Latest value schema registered for {table}'s change events.", {"avro"}),
         "iceberg": ("Current schema of the Iceberg table {iceberg}.", {"iceberg"})}
#: the verify layer whose verdict each asset's `layers_consistent` result carries (None: the whole verdict)
_VERDICT = {"source": None, "registry": Layer.SCHEMA_REGISTRY.value, "iceberg": Layer.LAKEHOUSE.value}


def layer_key(table: str, default_schema: str, layer: str) -> AssetKey:
    """The default key of a layer's asset (no translator)."""
    return default_key(table, default_schema, layer)


def _node_name(what: str, key: AssetKey) -> str:
    """An op name unique per table and project: from the source asset's key (`observe__pipeline__customers__source`)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", "__".join([what, *key.path]))


def _project(context: AssetExecutionContext | AssetCheckExecutionContext, key: str) -> MigrateProjectResource:
    project: MigrateProjectResource = getattr(context.resources, key)
    return project


def _layers(t: PipelineTarget, cfg: ProjectConfig) -> list[str]:
    return [layer for layer in ASSET_LAYERS if has_layer(t, layer, cfg.schema_registry is not None)]


def _specs(t: PipelineTarget, cfg: ProjectConfig, keys: PipelineAssetKeys, group: str) -> list[AssetSpec]:
    specs, upstream = [], None
    for layer in _layers(t, cfg):
        text, kinds = _WHAT[layer]
        specs.append(AssetSpec(keys.key(t.table, layer), group_name=group, kinds=kinds,
                               deps=[upstream] if upstream else [],
                               description=text.format(table=t.table, iceberg=t.iceberg_table),
                               metadata={"table": t.table, "layer": layer}))
        upstream = keys.key(t.table, layer)
    return specs


def _observable(t: PipelineTarget, cfg: ProjectConfig, keys: PipelineAssetKeys, group: str,
                resource_key: str) -> AssetsDefinition:
    layer_of = {keys.key(t.table, layer): layer for layer in _layers(t, cfg)}

    @multi_observable_source_asset(specs=_specs(t, cfg, keys, group), required_resource_keys={resource_key},
                                   name=_node_name("observe", keys.key(t.table, "source")), can_subset=True,
                                   description=f"Read the live schema of {t.table} in each layer.")
    def _observe(context: AssetExecutionContext) -> Iterator[ObserveResult]:
        ctx = _project(context, resource_key).run_context()
        selected = context.selected_asset_keys
        for key, layer in layer_of.items():  # in lineage order: Dagster wants an upstream observed first
            if key not in selected:
                continue
            with engine_errors(f"read the {layer} schema of {t.table}"):
                meta = READERS[layer](t, ctx)
            if not meta["exists"]:
                context.log.warning(f"{layer} of {t.table}: absent")
            yield ObserveResult(asset_key=key, metadata=meta)

    return _observe


def _spec_check(t: PipelineTarget, keys: PipelineAssetKeys, resource_key: str) -> AssetChecksDefinition:
    @asset_check(asset=keys.key(t.table, "source"), name="matches_declared_spec",
                 required_resource_keys={resource_key},
                 description="The live table matches its YAML spec (drift: the declarative plan is not empty).")
    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        with engine_errors("schema plan"):
            plan = database.schema_plan(_project(context, resource_key).load(), [t.table],
                                        application_name=APPLICATION_NAME)
        n = len(plan.changes)
        text = ("no drift: the live table matches its spec" if plan.empty else
                f"drift: the live table differs from its YAML spec; {n} change(s) would bring it back "
                "(`migrate-assets plan` / schema_apply)")
        return AssetCheckResult(passed=plan.empty, severity=AssetCheckSeverity.WARN, description=text,
                                metadata={"drift": not plan.empty, "changes": n, "fingerprint": plan.fingerprint,
                                          "plan": MetadataValue.md(plan_md(plan))})

    return _check


def _layers_check(t: PipelineTarget, cfg: ProjectConfig, keys: PipelineAssetKeys,
                  resource_key: str) -> AssetChecksDefinition:
    layers = _layers(t, cfg)
    specs = [AssetCheckSpec("layers_consistent", asset=keys.key(t.table, layer),
                            description="Every layer agrees with the source table by field name and mapped type "
                                        "(one verify over source, registry, lakehouse and connector).")
             for layer in layers]

    # subsettable: observing one asset (a run for one table's layer) selects that asset's check only
    @multi_asset_check(specs=specs, name=_node_name("layers_consistent", keys.key(t.table, "source")),
                       required_resource_keys={resource_key}, description=f"Verify {t.table} across every layer.",
                       can_subset=True)
    def _check(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        selected = {k.asset_key for k in context.selected_asset_check_keys}
        project = _project(context, resource_key)
        with engine_errors("verify"):
            ctx = project.run_context()
            (res,) = verify_pipeline([project.target(t.table)], ctx).tables
        whole = MetadataValue.md(verify_md([res]))
        for layer in layers:
            if keys.key(t.table, layer) not in selected:
                continue
            name = _VERDICT[layer]
            verdict = res.layers.get(name) if name else None
            passed = res.consistent if verdict is None else verdict.status in ("consistent", "skipped")
            diffs = res.differences() if verdict is None else list(verdict.differences)
            status = ("consistent" if res.consistent else "drift") if verdict is None else verdict.status
            yield AssetCheckResult(asset_key=keys.key(t.table, layer), check_name="layers_consistent", passed=passed,
                                   description=f"{layer}: {status}" + (f" — {'; '.join(diffs)}" if diffs else ""),
                                   metadata={"status": status, "differences": "; ".join(diffs) or "none",
                                             "verify": whole})

    return _check


def pipeline_assets(cfg: ProjectConfig, keys: PipelineAssetKeys | None = None, group: str = GROUP,
                    resource_key: str = "project") -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    """Assets and checks for every pipeline table of a project (layers that are not configured have no asset).
    `group` and `resource_key` (the key of the project's `MigrateProjectResource`) keep several projects of one
    code location apart."""
    keys = keys or PipelineAssetKeys(cfg.database.schema_)
    assets: list[AssetsDefinition] = []
    checks: list[AssetChecksDefinition] = []
    for t in projectlib.targets(cfg):
        assets.append(_observable(t, cfg, keys, group, resource_key))
        checks += [_spec_check(t, keys, resource_key), _layers_check(t, cfg, keys, resource_key)]
    return assets, checks
