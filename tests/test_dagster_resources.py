"""The per-layer Dagster resources hand out the very clients a project's run context holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import EnvVar, build_sensor_context, job, op

from migrate_assets.dagster_resources import KafkaConnectResource, MigrateProjectResource, PostgresResource
from migrate_assets.redact import redact_text
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


def test_layer_resources_with_env_vars_replace_the_files_sections(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """EnvVar fields are the primary configuration: each layer's setting given to the resource replaces
    migrate.yaml's; the resource stays a plain one (built by hand, e.g. in a sensor test, without `with`)."""
    path = tmp_path / "migrate.yaml"
    path.write_text("database: {dsn: 'postgresql://file@127.0.0.1:1/file'}\nkafka_connect: {url: 'http://file:1'}\n"
                    "pipelines: [{table: customers}]\n")
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://app:s3cret@127.0.0.1:2/env")
    monkeypatch.setenv("TEST_REGISTRY_URL", "http://registry.example:8081")
    res = MigrateProjectResource(config_path=str(path), dsn=EnvVar("TEST_DATABASE_URL"),
                                 schema_registry_url=EnvVar("TEST_REGISTRY_URL"),
                                 kafka_connect_url="http://connect.example:8083",
                                 iceberg_properties={"uri": "http://catalog.example"})

    @op
    def read(project: MigrateProjectResource) -> dict[str, object]:
        cfg = project.load()
        assert cfg.iceberg is not None and cfg.kafka_connect is not None and cfg.schema_registry is not None
        return {"dsn": cfg.database.dsn, "schema": cfg.database.schema_, "connect": cfg.kafka_connect.url,
                "registry": cfg.schema_registry.url, "catalog": cfg.iceberg.properties,
                "tables": [p.table for p in cfg.pipelines]}

    @job(resource_defs={"project": res})
    def show() -> None:
        read()

    out = show.execute_in_process().output_for_node("read")
    assert out == {"dsn": "postgresql://app:s3cret@127.0.0.1:2/env", "schema": "public",
                   "connect": "http://connect.example:8083", "registry": "http://registry.example:8081",
                   "catalog": {"uri": "http://catalog.example"}, "tables": ["customers"]}  # pipelines: the file's
    assert "s3cret" not in redact_text("the password s3cret, alone")  # remembered as a secret
    build_sensor_context(resources={"project": res}).resources.project.load()  # no context manager needed
