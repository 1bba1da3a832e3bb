"""An existing table with rows joins the connector: its old rows arrive through an incremental snapshot
(requested via the signal table after the safe restart), its new rows by streaming."""

from __future__ import annotations

import psycopg
import pytest

from tests.cdc import live_connector_config, poll_until
from tests.pipeline import Pipeline
from tests.support import run_cli


def test_existing_table_joins_with_snapshot_and_streaming(pipeline: Pipeline,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    p = pipeline
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id integer NOT NULL, "
                     "total numeric(12,2))")
        conn.execute("INSERT INTO public.orders SELECT g, g % 5, g * 1.5 FROM generate_series(1, 40) g")
    p.write_config(pipelines=[p.pipeline_entry("customers"), p.pipeline_entry("orders")])
    with p.writer(rate=50) as w:
        ran = run_cli(capsys, "evolve", config=p.config_path, fmt="json")
        res = ran.doc
        assert ran.code == 0, res
    conn_step = next(s for s in res["steps"] if s["layer"] == "connector")
    assert conn_step["result"]["restarted"] is True
    assert conn_step["result"]["snapshot_requested"] == ["public.orders"]
    config = live_connector_config(p.connect_url, p.name)
    assert config["signal.data.collection"] == "public.debezium_signal"
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.orders VALUES (1000, 1, 2.50)")

    def all_rows() -> list[dict] | None:
        evs = p.events("orders")
        ids = {e["after"]["id"] for e in evs if e.get("after")}
        return evs if ids >= set(range(1, 41)) | {1000} else None

    evs = poll_until(all_rows, 90, "snapshot events of the 40 old rows and the streamed new one")
    ops = {e["after"]["id"]: e["op"] for e in evs if e.get("after")}
    assert ops[1000] == "c" and ops[1] == "r"  # streamed vs snapshot read
    p.assert_no_event_lost(w.ids)  # the restart lost nothing on the table already captured
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0, ver.doc
