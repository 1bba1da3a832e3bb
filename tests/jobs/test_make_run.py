"""`make run`'s script on the test stack: sets up the shop example, runs evolve_pipeline, prints the report."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql
from pyiceberg.catalog import load_catalog

from migrate_assets.local.stack import StackInfo
from tests.cdc import poll_until

ROOT = Path(__file__).resolve().parents[2]


def remove_shop_example(info: StackInfo, database: str | None) -> None:
    """Undo what examples/setup_shop.py made on a stack, so the next setup starts from nothing."""
    httpx.delete(f"{info.connect_url}/connectors/shop-iceberg-sink", timeout=30)
    poll_until(lambda: httpx.get(f"{info.connect_url}/connectors/shop-iceberg-sink", timeout=5).status_code == 404,
               30, "sink gone")
    base = f"{info.connect_url}/connectors/shop-cdc"
    if httpx.put(f"{base}/stop", timeout=30).status_code == 204:  # offsets go too: a new shop-cdc snapshots again
        poll_until(lambda: httpx.get(f"{base}/status", timeout=5).json()["connector"]["state"] == "STOPPED", 30,
                   "connector stopped")
        httpx.delete(f"{base}/offsets", timeout=30)
    httpx.delete(base, timeout=30)
    poll_until(lambda: httpx.get(f"{info.connect_url}/connectors/shop-cdc", timeout=5).status_code == 404, 30,
               "connector gone")
    # the topic and the sink's consumer group go too: a new sink reads from the start, and the old events'
    # schemas are deleted below
    admin = AdminClient({"bootstrap.servers": info.bootstrap})
    topics = [t for t in ("shop.public.customers", "_shop-iceberg-sink-iceberg-control")
              if t in admin.list_topics(timeout=10).topics]
    for fut in [*admin.delete_topics(topics).values(), *admin.delete_consumer_groups(
            ["connect-shop-iceberg-sink"]).values()] if topics else []:
        with contextlib.suppress(KafkaException):  # a group that never existed
            fut.result(30)
    poll_until(lambda: not set(topics) & set(admin.list_topics(timeout=10).topics), 30, "topics deleted")
    subject = f"{info.registry_url}/subjects/shop.public.customers-value"
    httpx.delete(subject, timeout=10)
    httpx.delete(subject, params={"permanent": "true"}, timeout=10)
    catalog = load_catalog("lake", **info.iceberg_properties)
    if catalog.table_exists("shop.customers"):
        catalog.drop_table("shop.customers")
    with psycopg.connect(info.pg_dsn, autocommit=True) as conn:
        def drop_slot() -> bool:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = 'shop_slot' AND NOT active")
            return conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'shop_slot'"
                                ).fetchone()[0] == 0  # type: ignore[index]

        poll_until(drop_slot, 30, "slot shop_slot dropped")
        if database:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def test_make_run_reports_every_layer_before_and_after(stack_info: StackInfo, tmp_path: Path) -> None:
    database = "shop_" + uuid.uuid4().hex[:8]
    env = {**os.environ, "MIGRATE_ASSETS_RUN_STATE": str(stack_info.state_dir), "MIGRATE_ASSETS_EXAMPLE_DB": database,
           "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("MIGRATE_ASSETS_CONFIG", None)
    remove_shop_example(stack_info, None)  # leftovers of an interrupted earlier session
    try:
        out = subprocess.run(["bash", "scripts/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
        report = out.stdout
        assert out.returncode == 0, report + out.stderr[-3000:]
        assert "add column loyalty_tier to public.customers" in report
        assert "SUCCEEDED" in report
        for layer in ("source_db", "schema_registry", "lakehouse", "connector"):
            assert f"\n{layer}\n  before: " in report
        assert "after:  id integer, name text, email text, created_at timestamp with time zone, loyalty_tier text" \
            in report
        assert "after:  v2: " in report and "loyalty_tier string" in report
        for op in ("register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector", "verify"):
            assert f"  {op}" in report
        # rows arrive in Iceberg through the sink before the change, and after it with the new column filled
        assert re.search(r"\n  before: row id=21 in Iceberg after [0-9.]+s \(21 rows", report), report
        assert re.search(r"\n  after:  row id=22, loyalty_tier='gold' in Iceberg after [0-9.]+s \(22 rows", report), report
        assert "verify_pipeline: CONSISTENT" in report and "result: OK" in report
    finally:
        remove_shop_example(stack_info, database)
