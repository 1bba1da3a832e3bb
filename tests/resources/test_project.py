"""The project factories the CLI and the Dagster code share: targets, the state table the planner leaves alone,
spec loading, connections, and that the database-only half loads none of the layer clients."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from migrate_assets.config import ProjectConfig, load_config
from migrate_assets.errors import ConfigError, LayerUnreachableError, SpecError, UsageError
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.resources import database, project


def _cfg(tmp_path: Path, **extra: Any) -> ProjectConfig:
    return ProjectConfig.model_validate({
        "database": {"dsn": "postgresql://nobody@127.0.0.1:1/none", "schema": "app"},
        "kafka_connect": {"url": "http://127.0.0.1:1"},
        "pipelines": [{"table": "orders", "connector": "orders-cdc"}, {"table": "ops.audit"}],
        "base_dir": str(tmp_path), "source_file": str(tmp_path / "migrate.yaml"), **extra,
    })


def test_targets_are_qualified_and_selected_by_bare_or_qualified_name(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    assert project.target(cfg, "app.orders").connector == "orders-cdc"
    assert project.target(cfg, "app.other") == PipelineTarget("app.other")  # source database only
    chosen = project.select_targets(cfg, ["orders", "ops.audit"], file="<run config>", key="tables")
    assert [t.table for t in chosen] == ["app.orders", "ops.audit"]
    assert project.select_targets(cfg, [], file="<run config>", key="tables") == project.targets(cfg)
    with pytest.raises(UsageError) as err:
        project.select_targets(cfg, ["orders", "nope"], file="<command line>", key="--table")
    assert "not a pipeline table" in str(err.value) and "app.nope" in str(err.value)
    assert (err.value.problems[0].file, err.value.problems[0].key) == ("<command line>", "--table")


def test_run_context_clients_retry_briefly_and_leave_retrying_to_the_saga(tmp_path: Path) -> None:
    ctx = project.build_context(_cfg(tmp_path))
    assert ctx.source.attempts == 1  # type: ignore[attr-defined]
    assert ctx.connector is not None
    assert (ctx.connector.retries, ctx.connector.max_backoff) == (2, 2.0)  # type: ignore[attr-defined]
    assert ctx.registry is None and ctx.lakehouse is None  # not configured: skipped


@pytest.mark.parametrize(("lock_table", "ignored"), [("schema_migrations", ("app", "schema_migrations")),
                                                     ("ops.versions", ("ops", "versions"))])
def test_the_planner_ignores_the_migrations_state_table(tmp_path: Path, lock_table: str,
                                                        ignored: tuple[str, str]) -> None:
    opts = database.plan_options(_cfg(tmp_path, lock_table=lock_table), ["orders"])
    assert opts.ignore == frozenset({ignored}) and opts.only_tables == ("orders",)
    assert opts.default_schema == "app"


def test_a_malformed_state_table_is_a_config_error_for_plan_and_migrations(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, lock_table="a.b.c")
    for build in (database.plan_options, database.migration_runner):
        with pytest.raises(ConfigError) as err:
            build(cfg)
        assert err.value.problems[0].key == "lock_table"


def test_specs_are_strict_unless_missing_folders_are_allowed(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(SpecError):
        database.specs(cfg)
    assert database.specs(cfg, missing_ok=True) == []
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "orders.yaml").write_text("- table: orders\n  columns:\n    - {name: id, type: integer}\n")
    assert [t.qualified for t in database.specs(cfg)] == ["app.orders"]
    assert list((tmp_path / database.SPEC_CACHE).glob("*.json"))  # parsed once, reused by content hash


def test_an_unreachable_database_is_a_transient_layer_error_and_a_malformed_dsn_a_config_error(
        tmp_path: Path) -> None:
    with pytest.raises(LayerUnreachableError) as err, database.connect(_cfg(tmp_path)):
        pass
    assert err.value.transient and err.value.layer == "source_db"
    # a DSN libpq cannot parse is refused when the file is read, before any connection is tried
    (tmp_path / "migrate.yaml").write_text("database:\n  dsn: postgresql://nobody@127.0.0.1:1/none?bogus=1\n")
    with pytest.raises(ConfigError) as bad:
        load_config(str(tmp_path / "migrate.yaml"))
    assert not bad.value.transient and bad.value.problems[0].key == "database.dsn"


def test_the_database_factories_load_no_layer_client() -> None:
    code = ("import sys, migrate_assets.resources.database; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyiceberg', 'httpx', 'confluent_kafka'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
