"""From a `migrate.yaml` project to the engine's inputs: layer adapters, pipeline targets, policy, run store.

One place turns configuration into real clients, so the CLI and the Dagster resources build them the same way.
A layer that is not configured stays None and is reported as skipped everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from migrate_assets.config import PipelineConfig, ProjectConfig
from migrate_assets.evolution.actions import Bounds, RunContext
from migrate_assets.evolution.planner import PipelineTarget, Policy
from migrate_assets.evolution.saga import RetryPolicy
from migrate_assets.evolution.store import EvolutionStore
from migrate_assets.resources.iceberg import IcebergLakehouse
from migrate_assets.resources.kafka_connect import KafkaConnectClient
from migrate_assets.resources.postgres import PostgresSource
from migrate_assets.resources.registry import SchemaRegistryAdapter


def qualify(table: str, default_schema: str) -> str:
    return table if "." in table else f"{default_schema}.{table}"


def target_for(p: PipelineConfig, cfg: ProjectConfig) -> PipelineTarget:
    return PipelineTarget(
        table=qualify(p.table, cfg.database.schema_),
        connector=p.connector if cfg.kafka_connect else None,
        subject=p.subject if cfg.schema_registry else None,
        iceberg_table=p.iceberg_table if cfg.iceberg else None,
    )


def targets(cfg: ProjectConfig) -> list[PipelineTarget]:
    return [target_for(p, cfg) for p in cfg.pipelines]


def build_context(cfg: ProjectConfig, log: Callable[[str], None] | None = None,
                  bounds: Bounds | None = None) -> RunContext:
    r = cfg.retries
    ctx = RunContext(
        # one attempt per call: the saga owns retrying (with the project's backoff), so retries never multiply
        source=PostgresSource(cfg.database.dsn, cfg.database.schema_, attempts=1, backoff=r.backoff,
                              max_backoff=r.max_backoff),
        registry=SchemaRegistryAdapter(cfg.schema_registry.url) if cfg.schema_registry else None,
        lakehouse=IcebergLakehouse(cfg.iceberg.name, dict(cfg.iceberg.properties)) if cfg.iceberg else None,
        # short in-client retries ride out a rebalance's 409s; the saga's policy covers longer outages, so the
        # two never multiply into minutes against a stopped worker
        connector=KafkaConnectClient(cfg.kafka_connect.url, retries=2, backoff=0.25, max_backoff=2.0)
        if cfg.kafka_connect else None,
        bounds=bounds or Bounds(),
    )
    if log is not None:
        ctx.log = log
    return ctx


def policy(cfg: ProjectConfig, allow_irreversible: bool = False) -> Policy:
    return Policy(on_breaking_change=cfg.on_breaking_change, allow_irreversible=allow_irreversible,
                  lock_timeout=cfg.lock_timeout)


def retry_policy(cfg: ProjectConfig) -> RetryPolicy:
    return RetryPolicy(cfg.retries.attempts, cfg.retries.backoff, cfg.retries.max_backoff)


def store(cfg: ProjectConfig) -> EvolutionStore:
    return EvolutionStore(cfg.database.dsn, cfg.database.schema_)
