"""A table declared in the specs joins the pipeline: subject, Iceberg table, CREATE TABLE, connector filter
updated with a safe restart (publication.autocreate.mode=filtered), and its events flow."""

from __future__ import annotations

import psycopg
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from tests.cdc import live_connector_config, poll_until
from tests.pipeline import Pipeline
from tests.support import run_cli


def test_new_table_joins_the_pipeline(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    p = pipeline
    (p.tmp / "schemas").mkdir()
    (p.tmp / "schemas" / "orders.yaml").write_text(
        "table: orders\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
        "  - {name: customer_id, type: int}\n  - {name: total, type: 'numeric(12,2)', nullable: true}\n"
        "  - {name: placed_at, type: timestamptz, nullable: true}\n")
    orders = p.pipeline_entry("orders")
    p.write_config(schemas="schemas/", pipelines=[p.pipeline_entry("customers"), orders])
    with p.writer(rate=50) as w:
        ran = run_cli(capsys, "evolve", config=p.config_path, fmt="json")
        res = ran.doc
        assert ran.code == 0, res
    assert res["status"] == "succeeded"
    conn_step = next(s for s in res["steps"] if s["layer"] == "connector")
    assert conn_step["result"]["restarted"] is True
    include = live_connector_config(p.connect_url, p.name)["table.include.list"]
    assert "orders" in include
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.orders VALUES (1, 1, 9.99, now())")
    ev = poll_until(lambda: p.events("orders"), 60, "an event for the new table")
    assert ev[0]["after"]["id"] == 1 and ev[0]["after"]["customer_id"] == 1
    p.assert_no_event_lost(w.ids)  # the restart lost no event of the old table
    # the subject we derived is the one the converter wrote with: it registered no version of its own
    assert SchemaRegistryClient({"url": p.registry_url}).get_versions(orders["subject"]) == [1]
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0, ver.doc
    assert {t["table"] for t in ver.doc["tables"]} == {"public.customers", "public.orders"}
