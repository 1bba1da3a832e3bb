"""`MigrateAssetsComponent`: everything migrate-assets defines for a project, built from a `defs.yaml`.

In a `dg` project, `dg scaffold defs migrate_assets.component.MigrateAssetsComponent schema_changes` writes
`defs/schema_changes/defs.yaml`:

    type: migrate_assets.component.MigrateAssetsComponent
    attributes:
      config_path: migrate.yaml      # relative to this folder (or absolute; "{{ env.VAR }}" works)
      asset_key_prefix: []           # before every pipeline asset key
      asset_keys_map: {}             # "<schema.table>:<source|registry|iceberg>" -> your key (dbt, iceberg)
      auto_apply: false
      auto_contract: false

and the component builds the same definitions as `migrate_assets.definitions` for that project: the jobs, the
observable pipeline assets and their checks, the sensors and schedules, and the `project` resource.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component
from dagster.components.scaffold.scaffold import Scaffolder, ScaffoldRequest, scaffold_with
from pydantic import Field

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.definitions import build_definitions


class MigrateAssetsScaffolder(Scaffolder):  # type: ignore[type-arg]
    """`dg scaffold defs …`: a defs.yaml with every attribute at its default, to edit."""

    def scaffold(self, request: ScaffoldRequest[Any]) -> None:
        scaffold_component(request, {"config_path": "migrate.yaml", "asset_key_prefix": [], "asset_keys_map": {},
                                     "auto_apply": False, "auto_contract": False})


@scaffold_with(MigrateAssetsScaffolder)
class MigrateAssetsComponent(dg.Component, dg.Model, dg.Resolvable):
    """Schema changes carried safely through PostgreSQL, the CDC pipeline, the registry and Iceberg: the jobs,
    assets, checks, sensors and schedules of one migrate-assets project."""

    config_path: str = Field(default="migrate.yaml", description="the project file, relative to this defs folder")
    asset_key_prefix: list[str] = Field(default_factory=list, description="before every pipeline asset key")
    asset_keys_map: dict[str, list[str]] = Field(
        default_factory=dict, description="`<schema.table>:<source|registry|iceberg>` → an asset key path of your "
                                          "graph (a dagster-dbt source, a dagster-iceberg asset)")
    auto_apply: bool = Field(default=False, description="the file sensor applies instead of planning")
    auto_contract: bool = Field(default=False, description="the expand sensor contracts when safe")

    def project(self, base: Path) -> MigrateProjectResource:
        path = Path(self.config_path)
        return MigrateProjectResource(config_path=str(path if path.is_absolute() else base / path),
                                      asset_key_prefix=self.asset_key_prefix, asset_keys_map=self.asset_keys_map,
                                      auto_apply=self.auto_apply, auto_contract=self.auto_contract)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_definitions(project=self.project(context.path))
