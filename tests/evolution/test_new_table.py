"""A table declared in the specs joins the pipeline: subject, Iceberg table, CREATE TABLE, connector filter
updated with a safe restart (publication.autocreate.mode=filtered), and its events flow."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from migrate_assets.cli import main
from migrate_assets.local.stack import StackInfo
from tests.cdc import poll_until, read_values
from tests.pipeline import Pipeline


def test_new_table_joins_the_pipeline(stack_info: StackInfo, stack_dsn: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    p = Pipeline(stack_info, stack_dsn, tmp_path).setup()
    try:
        (tmp_path / "schemas").mkdir()
        (tmp_path / "schemas" / "orders.yaml").write_text(
            "table: orders\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
            "  - {name: customer_id, type: int}\n  - {name: total, type: 'numeric(12,2)', nullable: true}\n"
            "  - {name: placed_at, type: timestamptz, nullable: true}\n")
        cfg = yaml.safe_load(p.config_path.read_text())
        cfg["schemas"] = "schemas/"
        orders_subject = f"{p.prefix}.public.orders-value"
        cfg["pipelines"].append({"table": "public.orders", "connector": p.name, "subject": orders_subject,
                                 "iceberg_table": f"{p.namespace}.orders"})
        p.config_path.write_text(yaml.safe_dump(cfg))
        with p.writer(rate=50) as w:
            code = main(["--format", "json", "--config", str(p.config_path), "evolve"])
            res = json.loads(capsys.readouterr().out)
            assert code == 0, res
        assert res["status"] == "succeeded"
        conn_step = next(s for s in res["steps"] if s["layer"] == "connector")
        assert conn_step["result"]["restarted"] is True
        include = httpx.get(f"{p.connect_url}/connectors/{p.name}/config", timeout=10).json()["table.include.list"]
        assert "orders" in include
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO public.orders VALUES (1, 1, 9.99, now())")
        topic = f"{p.prefix}.public.orders"
        ev = poll_until(lambda: read_values(stack_info.bootstrap, topic, p.registry_url, idle=0.7), 60,
                        "an event for the new table")
        assert ev[0]["after"]["id"] == 1 and ev[0]["after"]["customer_id"] == 1
        p.assert_no_event_lost(w.ids)  # the restart lost no event of the old table
        # the subject we derived is the one the converter wrote with: it registered no version of its own
        from confluent_kafka.schema_registry import SchemaRegistryClient

        assert SchemaRegistryClient({"url": p.registry_url}).get_versions(orders_subject) == [1]
        code = main(["--format", "json", "--config", str(p.config_path), "verify"])
        ver = json.loads(capsys.readouterr().out)
        assert code == 0, ver
        assert {t["table"] for t in ver["tables"]} == {"public.customers", "public.orders"}
    finally:
        p.teardown()
