"""An existing table with rows joins the connector: its old rows arrive through an incremental snapshot
(requested via the signal table after the safe restart), its new rows by streaming."""

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


def test_existing_table_joins_with_snapshot_and_streaming(stack_info: StackInfo, stack_dsn: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    p = Pipeline(stack_info, stack_dsn, tmp_path).setup()
    try:
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id integer NOT NULL, "
                         "total numeric(12,2))")
            conn.execute("INSERT INTO public.orders SELECT g, g % 5, g * 1.5 FROM generate_series(1, 40) g")
        cfg = yaml.safe_load(p.config_path.read_text())
        cfg["pipelines"].append({"table": "public.orders", "connector": p.name,
                                 "subject": f"{p.prefix}.public.orders-value", "iceberg_table": f"{p.namespace}.orders"})
        p.config_path.write_text(yaml.safe_dump(cfg))
        with p.writer(rate=50) as w:
            code = main(["--format", "json", "--config", str(p.config_path), "evolve"])
            res = json.loads(capsys.readouterr().out)
            assert code == 0, res
        conn_step = next(s for s in res["steps"] if s["layer"] == "connector")
        assert conn_step["result"]["restarted"] is True
        assert conn_step["result"]["snapshot_requested"] == ["public.orders"]
        config = httpx.get(f"{p.connect_url}/connectors/{p.name}/config", timeout=10).json()
        assert config["signal.data.collection"] == "public.debezium_signal"
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO public.orders VALUES (1000, 1, 2.50)")
        topic = f"{p.prefix}.public.orders"

        def all_rows() -> list[dict] | None:
            evs = read_values(stack_info.bootstrap, topic, p.registry_url, idle=0.7)
            ids = {e["after"]["id"] for e in evs if e.get("after")}
            return evs if ids >= set(range(1, 41)) | {1000} else None

        evs = poll_until(all_rows, 90, "snapshot events of the 40 old rows and the streamed new one")
        ops = {e["after"]["id"]: e["op"] for e in evs if e.get("after")}
        assert ops[1000] == "c" and ops[1] == "r"  # streamed vs snapshot read
        p.assert_no_event_lost(w.ids)  # the restart lost nothing on the table already captured
        code = main(["--format", "json", "--config", str(p.config_path), "verify"])
        ver = json.loads(capsys.readouterr().out)
        assert code == 0, ver
    finally:
        p.teardown()
