"""Dagster `ConfigurableResource`s over the real systems (SPEC §7).

Thin on purpose: each resource holds only configuration (every field accepts `dagster.EnvVar`, so secrets such as a
DSN with a password never appear in code or in the launchpad) and hands out the plain adapters of
`migrate_assets.resources`, which implement the narrow protocols the engine speaks. The engine never imports
Dagster; these classes are the only place the two meet.

`MigrateProjectResource` is what the jobs use: one `migrate.yaml` (read lazily, on first use in a run, so the code
location loads without any service running) from which the run context, pipeline targets, policy and run store
are built by the factories the CLI calls (`migrate_assets.resources.project`; the database jobs pass the loaded
project to `migrate_assets.resources.database`). The per-layer resources serve code that needs one system only, e.g.
`PostgresResource(dsn=EnvVar("DATABASE_URL"))`, hand out the very clients of a run context (same retry settings),
and can be derived from a project with `from_project`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field

from migrate_assets.config import (
    IcebergConfig,
    KafkaConnectConfig,
    ProjectConfig,
    SchemaRegistryConfig,
    load_config,
)
from migrate_assets.errors import UsageError
from migrate_assets.evolution.actions import Bounds, RunContext
from migrate_assets.evolution.planner import PipelineTarget, Policy
from migrate_assets.evolution.saga import RetryPolicy
from migrate_assets.evolution.store import EvolutionStore
from migrate_assets.redact import dsn_secrets, redact_dsn, remember
from migrate_assets.resources import project as projectlib
from migrate_assets.resources.iceberg import IcebergLakehouse
from migrate_assets.resources.kafka_connect import KafkaConnectClient
from migrate_assets.resources.postgres import PostgresSource
from migrate_assets.resources.registry import SchemaRegistryAdapter

if TYPE_CHECKING:
    from migrate_assets.jobs.observe import PipelineAssetKeys

#: the bundled example project: what `dagster dev -w workspace.yaml` shows when nothing else is configured
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "migrate.yaml"


def default_config_path() -> str:
    """`$MIGRATE_ASSETS_CONFIG`, else the example project (SPEC §2 order, minus the CLI flag)."""
    return os.environ.get("MIGRATE_ASSETS_CONFIG") or str(EXAMPLE_CONFIG)


class PostgresResource(ConfigurableResource):  # type: ignore[type-arg]
    """The source database (`SourceLayer`)."""

    dsn: str = Field(description="libpq URL or conninfo; pass EnvVar('DATABASE_URL') for secrets")
    db_schema: str = Field(default="public", description="schema of unqualified table names")

    def source(self) -> PostgresSource:
        remember(*dsn_secrets(self.dsn))  # no message of this run may carry the password
        return projectlib.source(self.dsn, self.db_schema)

    def __repr__(self) -> str:
        return f"PostgresResource(dsn={redact_dsn(self.dsn)!r}, db_schema={self.db_schema!r})"

    __str__ = __repr__

    @classmethod
    def from_project(cls, cfg: ProjectConfig) -> PostgresResource:
        return cls(dsn=cfg.database.dsn, db_schema=cfg.database.schema_)


class KafkaConnectResource(ConfigurableResource):  # type: ignore[type-arg]
    """A Kafka Connect cluster's REST API (`ConnectorLayer`)."""

    url: str = Field(description="Kafka Connect REST URL, e.g. http://127.0.0.1:8083")

    def client(self) -> KafkaConnectClient:
        return projectlib.connector(self.url)

    @classmethod
    def from_project(cls, cfg: ProjectConfig) -> KafkaConnectResource | None:
        return cls(url=cfg.kafka_connect.url) if cfg.kafka_connect else None


class SchemaRegistryResource(ConfigurableResource):  # type: ignore[type-arg]
    """A Confluent-compatible schema registry (`RegistryLayer`)."""

    url: str = Field(description="registry URL, e.g. http://127.0.0.1:8081")

    def adapter(self) -> SchemaRegistryAdapter:
        return projectlib.registry(self.url)

    @classmethod
    def from_project(cls, cfg: ProjectConfig) -> SchemaRegistryResource | None:
        return cls(url=cfg.schema_registry.url) if cfg.schema_registry else None


class IcebergCatalogResource(ConfigurableResource):  # type: ignore[type-arg]
    """Any pyiceberg catalog reached through `load_catalog` (`LakehouseLayer`): REST, Glue, Hive, SQL."""

    name: str = Field(default="lake", description="catalog name")
    properties: dict[str, str] = Field(default_factory=dict, description="load_catalog properties")

    def lakehouse(self) -> IcebergLakehouse:
        return projectlib.lakehouse(self.name, self.properties)

    @classmethod
    def from_project(cls, cfg: ProjectConfig) -> IcebergCatalogResource | None:
        return cls(name=cfg.iceberg.name, properties=dict(cfg.iceberg.properties)) if cfg.iceberg else None


class MigrateProjectResource(ConfigurableResource):  # type: ignore[type-arg]
    """A `migrate.yaml` project: the one resource every job needs.

    Where each layer is can be given here instead of in the file (`dsn=EnvVar("DATABASE_URL")`,
    `schema_registry_url=…`, `kafka_connect_url=…`, `iceberg_properties=…`): each replaces its setting of
    migrate.yaml for every run, so secrets and per-deployment URLs come from the environment; the file keeps
    pipelines, specs, migrations and policies (and serves the CLI). Plain fields, not nested resources: a resource
    with nested resources must be opened as a context manager wherever it is built by hand (tests, sensors).

    `auto_apply` and `auto_contract` let the file sensors act instead of only planning; `changes_dir` is where the
    expand-ready sensor looks for change files (relative to the project file).
    """

    config_path: str = Field(default_factory=default_config_path, description="path of migrate.yaml")
    auto_apply: bool = Field(default=False, description="file sensor applies instead of planning")
    auto_contract: bool = Field(default=False, description="expand sensor contracts when safe")
    changes_dir: str = Field(default="changes/", description="change files watched by the expand sensor")
    dsn: str | None = Field(default=None, description="the source database; replaces `database.dsn` of "
                            "migrate.yaml (pass EnvVar('DATABASE_URL'))")
    kafka_connect_url: str | None = Field(default=None, description="replaces `kafka_connect.url`")
    schema_registry_url: str | None = Field(default=None, description="replaces `schema_registry.url`")
    iceberg_properties: dict[str, str] | None = Field(default=None, description="replaces `iceberg.properties` "
                                                      "(pyiceberg load_catalog properties, e.g. uri, credential)")
    asset_key_prefix: list[str] = Field(default_factory=list, description="put before every pipeline asset key "
                                        "(several projects in one code location)")
    asset_keys_map: dict[str, list[str]] = Field(
        default_factory=dict, description="the key translator: `<schema.table>:<source|registry|iceberg>` → the "
        "asset key path of that layer in your graph, e.g. {'public.customers:source': ['shop', 'customers']} for the "
        "dagster-dbt source of the table, so lineage joins")

    def load(self) -> ProjectConfig:
        """migrate.yaml, with the layers given as resources put in place of the file's."""
        cfg = load_config(self.config_path)
        update: dict[str, Any] = {}
        if self.dsn:
            remember(*dsn_secrets(self.dsn))
            update["database"] = cfg.database.model_copy(update={"dsn": self.dsn})
        if self.kafka_connect_url:
            update["kafka_connect"] = KafkaConnectConfig(url=self.kafka_connect_url) if cfg.kafka_connect is None \
                else cfg.kafka_connect.model_copy(update={"url": self.kafka_connect_url})
        if self.schema_registry_url:
            update["schema_registry"] = SchemaRegistryConfig(url=self.schema_registry_url) \
                if cfg.schema_registry is None else cfg.schema_registry.model_copy(update={"url":
                                                                                           self.schema_registry_url})
        if self.iceberg_properties is not None:
            name = cfg.iceberg.name if cfg.iceberg is not None else "lake"
            update["iceberg"] = IcebergConfig(name=name, properties=dict(self.iceberg_properties))
        return cfg.model_copy(update=update) if update else cfg

    def run_context(self, log: Callable[[str], None] | None = None, bounds: Bounds | None = None) -> RunContext:
        return projectlib.build_context(self.load(), log=log, bounds=bounds)

    def targets(self) -> list[PipelineTarget]:
        return projectlib.targets(self.load())

    def target(self, table: str) -> PipelineTarget:
        return projectlib.target(self.load(), table)

    def policy(self, allow_irreversible: bool = False) -> Policy:
        return projectlib.policy(self.load(), allow_irreversible)

    def retry_policy(self) -> RetryPolicy:
        return projectlib.retry_policy(self.load())

    def store(self) -> EvolutionStore:
        return projectlib.store(self.load())

    def resolve(self, path: str) -> Path:
        """A path from run config: absolute, or relative to the cwd when it exists there, else to the project."""
        p = Path(path)
        if p.is_absolute() or p.exists():
            return p
        return self.load().path(path)

    def asset_keys(self) -> PipelineAssetKeys:
        """The key translator of this project's pipeline assets (`asset_key_prefix`, `asset_keys_map`)."""
        from dagster import AssetKey

        from migrate_assets.jobs.observe import PipelineAssetKeys

        cfg = self.load()
        overrides = {}
        for name, path in self.asset_keys_map.items():
            table, sep, layer = name.rpartition(":")
            if not sep or layer not in ("source", "registry", "iceberg") or not path:
                raise UsageError(f"asset_keys_map key {name!r}: expected `<schema.table>:<source|registry|iceberg>` "
                                 "mapped to a non-empty key path", file="<resource project>", key="asset_keys_map")
            overrides[(projectlib.qualify(table, cfg.database.schema_), layer)] = AssetKey(path)
        return PipelineAssetKeys(cfg.database.schema_, tuple(self.asset_key_prefix), overrides)

    def layers(self) -> dict[str, Any]:
        """The per-layer resources this project configures (None for a layer that is not configured)."""
        cfg = self.load()
        return {
            "postgres": PostgresResource.from_project(cfg),
            "kafka_connect": KafkaConnectResource.from_project(cfg),
            "schema_registry": SchemaRegistryResource.from_project(cfg),
            "iceberg": IcebergCatalogResource.from_project(cfg),
        }
