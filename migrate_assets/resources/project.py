"""From a `migrate.yaml` project to the evolution engine's inputs: layer clients, pipeline targets, policy, run store.

One place turns configuration into real clients, so the CLI and the Dagster resources build them the same way (the
database-only inputs are in `migrate_assets.resources.database`). A layer that is not configured stays None and is
reported as skipped everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from migrate_assets.config import PipelineConfig, ProjectConfig
from migrate_assets.errors import UsageError
from migrate_assets.evolution.actions import Bounds, RunContext
from migrate_assets.evolution.planner import PipelineTarget, Policy
from migrate_assets.evolution.saga import RetryPolicy
from migrate_assets.evolution.store import EvolutionStore
from migrate_assets.resources.iceberg import IcebergLakehouse
from migrate_assets.resources.kafka_connect import KafkaConnectClient
from migrate_assets.resources.postgres import PostgresSource
from migrate_assets.resources.registry import SchemaRegistryAdapter

# -- layer clients: every caller (saga, ops, sensors, per-layer Dagster resources) gets the same retry settings --


def source(dsn: str, schema: str) -> PostgresSource:
    """One attempt per call: the saga or the op's RetryPolicy owns retrying, so retries never multiply."""
    return PostgresSource(dsn, schema, attempts=1)


def connector(url: str, bootstrap: str | None = None) -> KafkaConnectClient:
    """Short in-client retries ride out a rebalance's 409s; the saga's policy or the op's RetryPolicy covers
    longer outages, so the two never multiply into minutes against a stopped worker. With Kafka's `bootstrap`
    the connector step sees Debezium's progress on its topics instead of waiting for an offset flush."""
    return KafkaConnectClient(url, retries=2, backoff=0.25, max_backoff=2.0, bootstrap=bootstrap)


def registry(url: str) -> SchemaRegistryAdapter:
    return SchemaRegistryAdapter(url)


def lakehouse(name: str, properties: Mapping[str, str]) -> IcebergLakehouse:
    return IcebergLakehouse(name, dict(properties))


def build_context(cfg: ProjectConfig, log: Callable[[str], None] | None = None,
                  bounds: Bounds | None = None) -> RunContext:
    ctx = RunContext(
        source=source(cfg.database.dsn, cfg.database.schema_),
        registry=registry(cfg.schema_registry.url) if cfg.schema_registry else None,
        lakehouse=lakehouse(cfg.iceberg.name, cfg.iceberg.properties) if cfg.iceberg else None,
        connector=connector(cfg.kafka_connect.url, cfg.kafka.bootstrap_servers if cfg.kafka else None)
        if cfg.kafka_connect else None,
        bounds=bounds or Bounds(),
    )
    if log is not None:
        ctx.log = log
    return ctx


# -- pipeline targets ------------------------------------------------------------------------------------------


def qualify(table: str, default_schema: str) -> str:
    return table if "." in table else f"{default_schema}.{table}"


def target_for(p: PipelineConfig, cfg: ProjectConfig) -> PipelineTarget:
    return PipelineTarget(
        table=qualify(p.table, cfg.database.schema_),
        connector=p.connector if cfg.kafka_connect else None,
        subject=p.subject if cfg.schema_registry else None,
        iceberg_table=p.iceberg_table if cfg.iceberg else None,
        sink=p.sink if cfg.kafka_connect and cfg.iceberg else None,
    )


def targets(cfg: ProjectConfig) -> list[PipelineTarget]:
    return [target_for(p, cfg) for p in cfg.pipelines]


def target(cfg: ProjectConfig, table: str) -> PipelineTarget:
    """The pipeline of a qualified table; a table no pipeline captures is a target in the source database only."""
    return next((t for t in targets(cfg) if t.table == table), PipelineTarget(table))


def select_targets(cfg: ProjectConfig, tables: Sequence[str], file: str, key: str) -> list[PipelineTarget]:
    """The pipelines of `tables` (all when empty); a table that is not a pipeline's is a usage error at `file`/`key`."""
    found = targets(cfg)
    if not tables:
        return found
    wanted = {qualify(t, cfg.database.schema_) for t in tables}
    unknown = wanted - {t.table for t in found}
    if unknown:
        raise UsageError(f"not a pipeline table in {cfg.source_file}: {', '.join(sorted(unknown))}", file=file,
                         key=key)
    return [t for t in found if t.table in wanted]


# -- policy, retries, run store --------------------------------------------------------------------------------


def policy(cfg: ProjectConfig, allow_irreversible: bool = False) -> Policy:
    return Policy(on_breaking_change=cfg.on_breaking_change, allow_irreversible=allow_irreversible,
                  lock_timeout=cfg.lock_timeout, pipelines=tuple(targets(cfg)))


def retry_policy(cfg: ProjectConfig) -> RetryPolicy:
    return RetryPolicy(cfg.retries.attempts, cfg.retries.backoff, cfg.retries.max_backoff)


def store(cfg: ProjectConfig) -> EvolutionStore:
    return EvolutionStore(cfg.database.dsn, cfg.database.schema_)
