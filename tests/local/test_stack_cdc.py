"""Real CDC through the local stack: Debezium + AvroConverter + bundled registry + Apache Kafka, and Iceberg."""

from __future__ import annotations

import uuid

import psycopg
import pyarrow as pa
from confluent_kafka.schema_registry import SchemaRegistryClient
from pyiceberg.catalog import load_catalog
from pyiceberg.types import StringType

from migrate_assets.local.stack import StackInfo
from tests.cdc import (
    connect_request,
    connector_running,
    delete_connector,
    poll_until,
    read_values,
    stack_debezium_config,
    start_connector,
)


def test_debezium_avro_events_follow_an_added_column(stack_info: StackInfo, stack_dsn: str) -> None:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.customers (id integer PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO public.customers VALUES (1, 'ada'), (2, 'grace')")
    name = "cdc-" + uuid.uuid4().hex[:6]
    cfg = stack_debezium_config(stack_info, stack_dsn, ["public.customers"])
    try:
        start_connector(stack_info.connect_url, name, cfg)
        topic = f"{cfg['topic.prefix']}.public.customers"
        snap = poll_until(
            lambda: (
                (v := read_values(stack_info.bootstrap, topic, stack_info.registry_url)) and len(v) >= 2 and v
            ),
            60,
            "snapshot events",
        )
        assert sorted(e["after"]["id"] for e in snap) == [1, 2]
        assert {e["op"] for e in snap} == {"r"}

        registry = SchemaRegistryClient({"url": stack_info.registry_url})
        subject = f"{topic}-value"
        versions_before = registry.get_versions(subject)

        with psycopg.connect(stack_dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE public.customers ADD COLUMN note text")
        r = connect_request(
            "POST", f"{stack_info.connect_url}/connectors/{name}/restart?includeTasks=true&onlyFailed=false")
        assert r.status_code in (202, 204), r.text
        poll_until(
            lambda: connector_running(stack_info.connect_url, name), 60, "connector RUNNING after restart"
        )
        with psycopg.connect(stack_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO public.customers VALUES (3, 'edsger', 'hello')")

        def third() -> list[dict]:
            return [
                e
                for e in read_values(stack_info.bootstrap, topic, stack_info.registry_url)
                if e["after"] and e["after"]["id"] == 3
            ]

        ev = poll_until(third, 60, "event for the row inserted after ALTER")[0]
        assert ev["op"] == "c"
        assert ev["after"]["note"] == "hello"
        assert len(registry.get_versions(subject)) == len(versions_before) + 1
        latest = registry.get_latest_version(subject)
        assert '"note"' in latest.schema.schema_str
    finally:
        delete_connector(stack_info.connect_url, name, stack_dsn)


def test_iceberg_create_append_evolve_read(stack_info: StackInfo) -> None:
    catalog = load_catalog("lake", **stack_info.iceberg_properties)
    ns = "ns_" + uuid.uuid4().hex[:6]
    catalog.create_namespace(ns)
    schema = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("name", pa.string())])
    table = catalog.create_table(f"{ns}.customers", schema=schema)
    table.append(pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["ada", "grace"]}, schema=schema))
    with table.update_schema() as upd:
        upd.add_column("note", StringType())
    table = catalog.load_table(f"{ns}.customers")
    assert [f.name for f in table.schema().fields] == ["id", "name", "note"]
    rows = table.scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": 1, "name": "ada", "note": None}, {"id": 2, "name": "grace", "note": None}]
    assert len(table.schemas()) == 2
