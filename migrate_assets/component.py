"""`MigrateAssetsComponent`: everything migrate-assets defines for a project, built from a `defs.yaml`.

In a `dg` project, `dg scaffold defs migrate_assets.component.MigrateAssetsComponent schema_changes` writes
`defs/schema_changes/defs.yaml` (`dg list components` lists the type: the package registers this module for `dg`):

    type: migrate_assets.component.MigrateAssetsComponent
    attributes:
      config_path: migrate.yaml      # relative to this folder (or absolute; "{{ env.VAR }}" works)
      name: null                     # several projects in one code location: a name each (prefixes jobs)
      asset_key_prefix: []           # before every pipeline asset key
      asset_keys_map: {}             # "<schema.table>:<source|registry|iceberg>" -> your key (dbt, iceberg)
      auto_apply: false
      auto_contract: false
      env: {}                        # {dsn: DATABASE_URL, schema_registry_url: …}: EnvVar fields of the resource

and the component builds the same definitions as `migrate_assets.definitions` for that project: the jobs, the
observable pipeline assets and their checks, the sensors and schedules, and the `project` resource. With a
`name`, several such folders (one per database) load side by side in one code location
(`definitions.project_definitions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component
from dagster.components.scaffold.scaffold import Scaffolder, ScaffoldRequest, scaffold_with
from pydantic import Field

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import UsageError

#: the project resource's fields a defs.yaml may take from the environment (`env`)
_ENV_FIELDS = ("dsn", "kafka_connect_url", "schema_registry_url")


class MigrateAssetsScaffolder(Scaffolder):  # type: ignore[type-arg]
    """`dg scaffold defs …`: a defs.yaml with every attribute at its default, to edit."""

    def scaffold(self, request: ScaffoldRequest[Any]) -> None:
        scaffold_component(request, {"config_path": "migrate.yaml", "name": None, "asset_key_prefix": [],
                                     "asset_keys_map": {}, "auto_apply": False, "auto_contract": False,
                                     "env": {}})


@scaffold_with(MigrateAssetsScaffolder)
class MigrateAssetsComponent(dg.Component, dg.Model, dg.Resolvable):
    """Schema changes carried safely through PostgreSQL, the CDC pipeline, the registry and Iceberg: the jobs,
    assets, checks, sensors and schedules of one migrate-assets project."""

    config_path: str = Field(default="migrate.yaml", description="the project file, relative to this defs folder")
    name: str | None = Field(default=None, description="set it to put several projects (databases) in one code "
                             "location: jobs, sensors and schedules are named `<name>__…`, asset keys start with "
                             "the name unless asset_key_prefix says otherwise")
    asset_key_prefix: list[str] = Field(default_factory=list, description="before every pipeline asset key")
    asset_keys_map: dict[str, list[str]] = Field(
        default_factory=dict, description="`<schema.table>:<source|registry|iceberg>` → an asset key path of your "
                                          "graph (a dagster-dbt source, a dagster-iceberg asset)")
    auto_apply: bool = Field(default=False, description="the file sensor applies instead of planning")
    auto_contract: bool = Field(default=False, description="the expand sensor contracts when safe")
    env: dict[str, str] = Field(
        default_factory=dict, description="where the layers are, from environment variables (EnvVar fields of the "
        "project resource, resolved when a run starts, never shown): `dsn`, `kafka_connect_url`, "
        "`schema_registry_url` or `iceberg_properties.<property>` → the variable's name; each replaces the "
        "setting of migrate.yaml")

    def project(self, base: Path) -> MigrateProjectResource:
        path = Path(self.config_path)
        prefix = self.asset_key_prefix or ([self.name] if self.name else [])
        fields: dict[str, Any] = {}
        for field, var in self.env.items():
            if field in _ENV_FIELDS:
                fields[field] = dg.EnvVar(var)
            elif field.startswith("iceberg_properties.") and field != "iceberg_properties.":
                fields.setdefault("iceberg_properties", {})[field.removeprefix("iceberg_properties.")] = \
                    dg.EnvVar(var)
            else:
                raise UsageError(f"env key {field!r}: expected one of {', '.join(_ENV_FIELDS)} or "
                                 "iceberg_properties.<property>", file=str(base / "defs.yaml"),
                                 key=f"attributes.env.{field}")
        return MigrateProjectResource(config_path=str(path if path.is_absolute() else base / path),
                                      asset_key_prefix=prefix, asset_keys_map=self.asset_keys_map,
                                      auto_apply=self.auto_apply, auto_contract=self.auto_contract, **fields)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        # here, not at the top: `dg scaffold defs` / `dg list components` import this module only to describe the
        # component, and migrate_assets.definitions builds the default code location when imported
        from migrate_assets.definitions import build_definitions, project_definitions

        project = self.project(context.path)
        return project_definitions(project, self.name) if self.name else build_definitions(project=project)
