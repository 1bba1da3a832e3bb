"""The per-layer Dagster resources hand out the very clients a project's run context holds."""

from __future__ import annotations

from pathlib import Path

from migrate_assets.dagster_resources import KafkaConnectResource, MigrateProjectResource, PostgresResource
from migrate_assets.resources import project


def _settings(client: object) -> dict[str, object]:
    return {k: v for k, v in vars(client).items() if not k.startswith("_")}


def test_layer_resources_build_clients_with_the_run_contexts_settings(tmp_path: Path) -> None:
    path = tmp_path / "migrate.yaml"
    path.write_text("database: {dsn: 'postgresql://nobody@127.0.0.1:1/none', schema: app}\n"
                    "kafka_connect: {url: 'http://127.0.0.1:1'}\n")
    res = MigrateProjectResource(config_path=str(path))
    cfg = res.load()
    ctx = project.build_context(cfg)
    connect = KafkaConnectResource.from_project(cfg)
    assert connect is not None
    assert _settings(connect.client()) == _settings(ctx.connector)
    assert _settings(PostgresResource.from_project(cfg).source()) == _settings(ctx.source)
    layers = res.layers()
    assert layers["schema_registry"] is None and layers["iceberg"] is None
