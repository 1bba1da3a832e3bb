"""The per-layer Dagster resources hand out the very clients a project's run context holds; migrate.yaml is
generated from the project resource and loads into it (EnvVar ↔ `${VAR}`, secrets never copied)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from dagster import EnvVar, build_sensor_context, job, op

from migrate_assets.config import ProjectConfig, load_config
from migrate_assets.dagster_resources import (
    KafkaConnectResource,
    MigrateProjectResource,
    PostgresResource,
    project_yaml,
    resource_from_yaml,
)
from migrate_assets.errors import ConfigError, InvalidInputError, UsageError
from migrate_assets.redact import redact_text
from migrate_assets.resources import project
from tests.support import run_cli


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


# ------------------------------------------------------------------------------------------------------------
# migrate.yaml generated from the resource, and loaded into it
# ------------------------------------------------------------------------------------------------------------

PROJECT_FILE = """database:
  dsn: ${TEST_DATABASE_URL}
  schema: app
lock_timeout: 3s
kafka_connect:
  url: ${TEST_CONNECT_URL:-http://127.0.0.1:8083}
schema_registry:
  url: http://registry.example:8081
iceberg:
  name: lake
  properties:
    uri: ${TEST_CATALOG_URI}
    warehouse: file:///tmp/warehouse
pipelines:
- table: customers
  subject: app.customers-value
  iceberg_table: lake.customers
"""


def test_migrate_yaml_loads_into_the_resource_and_is_generated_back(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`${VAR}` becomes an EnvVar field and back; references with defaults and the rest of the file stay as written;
    the generated file loads (for the CLI) into the very settings the resource gives a run."""
    path = tmp_path / "migrate.yaml"
    path.write_text(PROJECT_FILE)
    res = resource_from_yaml(path, asset_key_prefix=["shop"])
    assert res.config_path == str(path) and res.asset_key_prefix == ["shop"]
    assert isinstance(res.dsn, EnvVar) and res.dsn.env_var_name == "TEST_DATABASE_URL"
    assert res.kafka_connect_url is None  # `${VAR:-default}`: the file keeps it and expands it
    assert res.schema_registry_url == "http://registry.example:8081"
    assert res.iceberg_properties is not None and isinstance(res.iceberg_properties["uri"], EnvVar)

    assert yaml.safe_load(project_yaml(res)) == yaml.safe_load(PROJECT_FILE)  # round trip, references unresolved

    # a resource set up in code: the file it generates holds references, not the values of the environment
    monkeypatch.setenv("PROD_DATABASE_URL", "postgresql://app:pr0d-s3cret@db.internal:5432/shop")
    monkeypatch.setenv("TEST_CATALOG_URI", "http://catalog.internal:8181")
    prod = MigrateProjectResource(config_path=str(path), dsn=EnvVar("PROD_DATABASE_URL"),
                                  schema_registry_url=EnvVar("PROD_REGISTRY_URL"),
                                  iceberg_properties={"uri": "http://catalog.internal:8181",
                                                      "credential": EnvVar("PROD_CATALOG_CREDENTIAL")})
    text = project_yaml(prod)
    assert "pr0d-s3cret" not in text and "db.internal" not in text
    doc = yaml.safe_load(text)
    assert doc["database"] == {"dsn": "${PROD_DATABASE_URL}", "schema": "app"}
    assert doc["schema_registry"] == {"url": "${PROD_REGISTRY_URL}"}
    assert doc["iceberg"]["properties"] == {"uri": "http://catalog.internal:8181",
                                            "credential": "${PROD_CATALOG_CREDENTIAL}"}
    assert doc["pipelines"] == yaml.safe_load(PROJECT_FILE)["pipelines"]
    generated = tmp_path / "generated" / "migrate.yaml"
    generated.parent.mkdir()
    generated.write_text(text)
    monkeypatch.setenv("PROD_REGISTRY_URL", "http://registry.internal:8081")
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://test@127.0.0.1:1/test")  # the source file's reference
    monkeypatch.setenv("PROD_CATALOG_CREDENTIAL", "client:secret")
    from_file, from_resource = load_config(str(generated)), _loaded(prod)
    assert from_file.model_copy(update={"base_dir": "", "source_file": ""}) == \
        from_resource.model_copy(update={"base_dir": "", "source_file": ""})


def _loaded(res: MigrateProjectResource) -> ProjectConfig:
    """What a run gets from the resource (its EnvVars resolved, as Dagster does when the run starts)."""
    @op
    def read(project: MigrateProjectResource) -> ProjectConfig:
        return project.load()

    @job(resource_defs={"project": res})
    def show() -> None:
        read()

    loaded: ProjectConfig = show.execute_in_process().output_for_node("read")
    return loaded


def test_secrets_are_never_copied_between_file_and_resource(tmp_path: Path) -> None:
    path = tmp_path / "migrate.yaml"
    path.write_text("database: {dsn: 'postgresql://app:l1teral@127.0.0.1:5432/shop'}\n"
                    "iceberg: {properties: {uri: 'http://catalog:8181', token: 'abc'}}\n")
    res = resource_from_yaml(path)
    assert res.dsn is None and res.iceberg_properties is None  # left in the file, which the resource reads
    assert res.load().database.dsn.endswith("@127.0.0.1:5432/shop")
    literal = MigrateProjectResource(config_path=str(path), dsn="postgresql://app:l1teral@127.0.0.1:5432/shop")
    with pytest.raises(UsageError) as err:
        project_yaml(literal)
    assert err.value.problems[0].key == "dsn" and "EnvVar" in str(err.value) and "l1teral" not in str(err.value)
    creds = MigrateProjectResource(config_path=str(path), iceberg_properties={"credential": "id:secret"})
    with pytest.raises(UsageError) as err:
        project_yaml(creds)
    assert err.value.problems[0].key == "iceberg_properties.credential"


@pytest.mark.parametrize(("text", "key", "line"), [
    ("- database\n", "", 1),
    ("database: {dsn: x}\nschema_registry: [http://r]\n", "schema_registry", 2),
    ("database: {dsn: x}\nkafka_connect:\n  url: 8083\n", "kafka_connect.url", 3),
])
def test_a_bad_project_file_is_named_with_its_key(tmp_path: Path, text: str, key: str, line: int) -> None:
    path = tmp_path / "migrate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        resource_from_yaml(path)
    (problem,) = err.value.problems
    assert (problem.file, problem.key, problem.line) == (str(path), key, line)
    with pytest.raises(InvalidInputError, match="file not found"):
        resource_from_yaml(tmp_path / "missing.yaml")


# the resource defined in a module, as `dagster-config from-resource` finds it
CLI_PROJECT = None


def test_cli_dagster_config_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "migrate.yaml"
    path.write_text(PROJECT_FILE)
    monkeypatch.setenv("PROD_DATABASE_URL", "postgresql://app:pr0d-s3cret@db.internal:5432/shop")
    monkeypatch.setattr(sys.modules[__name__], "CLI_PROJECT", MigrateProjectResource(
        config_path=str(path), dsn=EnvVar("PROD_DATABASE_URL")))
    out = tmp_path / "generated.yaml"
    ran = run_cli(capsys, "dagster-config", "from-resource", f"{__name__}:CLI_PROJECT", "--out", str(out))
    assert ran.code == 0, ran
    assert yaml.safe_load(out.read_text())["database"]["dsn"] == "${PROD_DATABASE_URL}"
    assert "pr0d-s3cret" not in out.read_text() + ran.out + ran.err
    again = run_cli(capsys, "dagster-config", "from-resource", f"{__name__}:CLI_PROJECT", "--out", str(out))
    assert again.code == 2 and "--force" in again.err, again
    wrong = run_cli(capsys, "dagster-config", "from-resource", f"{__name__}:PROJECT_FILE")
    assert wrong.code == 2 and "expected a MigrateProjectResource" in wrong.err, wrong

    back = run_cli(capsys, "dagster-config", "to-resource", config=path, fmt="json")
    assert back.code == 0, back
    assert back.doc["fields"] == {"dsn": {"env": "TEST_DATABASE_URL"},
                                  "schema_registry_url": "http://registry.example:8081",
                                  "iceberg_properties": {"uri": {"env": "TEST_CATALOG_URI"},
                                                         "warehouse": "file:///tmp/warehouse"}}
    shown = run_cli(capsys, "dagster-config", "to-resource", config=path)
    assert "dsn=EnvVar('TEST_DATABASE_URL')" in shown.out, shown
