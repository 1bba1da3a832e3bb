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

The resources are the primary configuration; migrate.yaml serves the CLI. `project_yaml(resource)` generates the
file from a `MigrateProjectResource` (an `EnvVar` written as `${VAR}`, never its value), and `resource_from_yaml`
goes the other way (`${VAR}` → `EnvVar`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from migrate_assets.config import (
    IcebergConfig,
    KafkaConnectConfig,
    ProjectConfig,
    SchemaRegistryConfig,
    load_config,
)
from migrate_assets.errors import ConfigError, UsageError
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


# ------------------------------------------------------------------------------------------------------------
# migrate.yaml <-> MigrateProjectResource
# ------------------------------------------------------------------------------------------------------------

#: the resource's field → where migrate.yaml keeps that setting
_FILE_KEYS: dict[str, tuple[str, str]] = {"dsn": ("database", "dsn"), "kafka_connect_url": ("kafka_connect", "url"),
                                          "schema_registry_url": ("schema_registry", "url"),
                                          "iceberg_properties": ("iceberg", "properties")}
#: a whole value that is one environment reference, `${VAR}` (with a default it stays in the file)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: pyiceberg catalog properties that hold secrets (credential, token, s3.secret-access-key, …)
_SECRET_PROPERTY = re.compile(r"password|secret|token|credential|private|session", re.IGNORECASE)


def _secret(key: str, value: str) -> bool:
    return bool(dsn_secrets(value)) or (key.startswith("iceberg_properties.") and
                                        bool(_SECRET_PROPERTY.search(key.split(".", 1)[1])))


def _to_file(key: str, value: Any, source: str) -> Any:
    """A resource value as migrate.yaml writes it: an `EnvVar` as `${VAR}`; a literal secret is refused."""
    if isinstance(value, dict):
        return {k: _to_file(f"{key}.{k}", v, source) for k, v in value.items()}
    if isinstance(value, EnvVar):
        return "${" + value.env_var_name + "}"
    if _secret(key, value):
        raise UsageError(f"{key} holds a secret as plain text: it would be written into migrate.yaml; give it as "
                         f"EnvVar('...') (written as ${{VAR}})", file=source, key=key)
    return value


def _from_file(key: str, value: Any) -> Any:
    """A migrate.yaml value as the resource takes it: `${VAR}` → `EnvVar('VAR')`; a literal secret, or a value with
    a reference inside (`${VAR:-default}`, `http://${HOST}:8081`) → None (it stays in the file, which the resource
    still reads and expands); any other literal as it is."""
    if isinstance(value, dict):
        return {k: _from_file(f"{key}.{k}", v) for k, v in value.items()}
    m = _ENV_REF.fullmatch(value)
    if m:
        return EnvVar(m[1])
    return None if "${" in value or _secret(key, value) else value


def project_yaml(project: MigrateProjectResource) -> str:
    """migrate.yaml for the CLI, generated from the resource: the project file at `config_path` (pipelines, specs,
    policies, and its own `${VAR}` references as written) with the layers the resource sets put in place of the
    file's. An `EnvVar` field is written as a `${VAR}` reference, never as its value; a literal password (in a DSN
    or URL) or catalog credential is refused with a UsageError naming the field. The file is not written here."""
    import yaml

    doc = _raw_project(project.config_path)
    out = dict(doc.data)
    for name, (section, key) in _FILE_KEYS.items():
        value = getattr(project, name)
        if value is None:
            continue
        current = out.get(section)
        merged = dict(current) if isinstance(current, dict) else {}
        merged[key] = _to_file(name, value, "<resource MigrateProjectResource>")
        if section == "iceberg":
            merged.setdefault("name", "lake")
        out[section] = merged
    text: str = yaml.safe_dump(out, sort_keys=False, allow_unicode=True)
    return text


def resource_from_yaml(path: str | Path, **fields: Any) -> MigrateProjectResource:
    """The resource for a migrate.yaml (the reverse of `project_yaml`): `config_path` is the file, and each layer
    the file locates becomes a field — `${VAR}` as `EnvVar('VAR')`, a plain URL as it is; a literal secret is left
    in the file (the resource reads it from there at run time), never copied into the resource's config.
    `fields`: the resource's other settings (asset_key_prefix, auto_apply …)."""
    doc = _raw_project(path)
    given: dict[str, Any] = {}
    for name, (section, key) in _FILE_KEYS.items():
        holder = doc.data.get(section)
        if holder is None:
            continue
        if not isinstance(holder, dict):
            raise ConfigError([doc.problem((section,), "expected a mapping")])
        if key not in holder:
            continue
        value = holder[key]
        expected = dict if name == "iceberg_properties" else str
        if not isinstance(value, expected) or (isinstance(value, dict) and
                                               not all(isinstance(v, str) for v in value.values())):
            what = "a mapping of strings" if expected is dict else "a string"
            raise ConfigError([doc.problem((section, key), f"expected {what} (got {value!r})")])
        converted = _from_file(name, value)
        if isinstance(converted, dict):
            kept = {k: v for k, v in converted.items() if v is not None}
            if len(kept) == len(converted):  # a secret among the properties: the file keeps them all
                given[name] = kept
        elif converted is not None:
            given[name] = converted
    return MigrateProjectResource(config_path=str(path), **given, **fields)


def _raw_project(path: str | Path) -> Any:
    """migrate.yaml as written (no `${VAR}` expanded): a missing file or a top level that is not a mapping is a
    ConfigError naming the file (and the line)."""
    from migrate_assets.schema.yamlsrc import load_yaml

    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "expected a mapping of settings at the top level")])
    return doc
