"""The Apache Iceberg sink in the stack's Kafka Connect writes the CDC topic's rows into the Iceberg table that the
project's pyiceberg opens: one JDBC catalog in the stack's PostgreSQL, seen by both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from migrate_assets.local import iceberg
from migrate_assets.local.stack import StackInfo
from tests.cdc import poll_until, start_connector
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import run_cli


def iceberg_rows(pipeline: Pipeline) -> dict[int, dict[str, Any]]:
    table = pipeline.iceberg()
    if table.current_snapshot() is None:
        return {}
    return {r["id"]: r for r in table.scan().to_arrow().to_pylist()}


@pytest.fixture
def sink(pipeline: Pipeline, stack_info: StackInfo) -> Iterator[str]:
    name = f"{pipeline.name}-sink"
    cfg = iceberg.sink_connector_config(stack_info.iceberg_properties, name, pipeline.topic, pipeline.iceberg_table,
                                        pipeline.registry_url)
    start_connector(pipeline.connect_url, name, cfg, timeout=90)
    yield name
    httpx.delete(f"{pipeline.connect_url}/connectors/{name}", timeout=30)


def test_catalog_is_postgres_and_the_sink_uses_the_same_one(stack_info: StackInfo) -> None:
    props = stack_info.iceberg_properties
    assert props["uri"].startswith("postgresql+psycopg://") and props["uri"].endswith("/iceberg")
    cfg = iceberg.sink_catalog_config(props)
    assert cfg["iceberg.catalog.uri"] == (
        f"jdbc:postgresql://127.0.0.1:{stack_info.parts['postgres']['port']}/iceberg")
    assert cfg["iceberg.catalog"] == "lake" and cfg["iceberg.catalog.jdbc.schema-version"] == "V1"
    with psycopg.connect(stack_info.pg_dsn.rsplit("/", 1)[0] + "/iceberg") as conn:
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'iceberg_tables'")}
    assert "iceberg_type" in cols  # the V1 layout both sides expect


def test_rows_reach_iceberg_before_and_after_an_evolution(
    pipeline: Pipeline, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    poll_until(lambda: set(range(1, 6)) <= set(iceberg_rows(pipeline)), 90, "the snapshot's rows in Iceberg")
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, amount) SELECT g, 'r' || g, g FROM generate_series(100, 119) g")
    rows = poll_until(lambda: (r := iceberg_rows(pipeline)) and set(range(100, 120)) <= set(r) and r, 60,
                      "20 inserted rows in Iceberg")
    assert rows[107] == {"id": 107, "name": "r107", "amount": 107}

    ran = run_cli(capsys, "evolve", str(change_file(pipeline.tmp, ADD_NOTE)), config=pipeline.config_path,
                  fmt="json")
    assert ran.code == 0, ran.doc
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, note) VALUES (200, 'after', 'filled')")
    rows = poll_until(lambda: (r := iceberg_rows(pipeline)) and 200 in r and r, 60, "the row written after the change")
    assert rows[200]["note"] == "filled"
    assert rows[107]["note"] is None  # rows from before the change read with the new column empty
    assert set(range(1, 6)) | set(range(100, 120)) <= set(rows)
    status = httpx.get(f"{pipeline.connect_url}/connectors/{sink}/status", timeout=10).json()
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]
