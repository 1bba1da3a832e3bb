"""A heartbeat written while another transaction is open must not make a connector restart skip that
transaction (found by the fan-out tests: one row of 146 lost across two restarts)."""

from __future__ import annotations

import psycopg

from migrate_assets.resources import KafkaConnectClient, PostgresSource
from tests.cdc import poll_until
from tests.pipeline import Pipeline


def test_a_restart_after_a_heartbeat_keeps_a_transaction_open_across_it(pipeline: Pipeline) -> None:
    source = PostgresSource(pipeline.dsn)
    connect = KafkaConnectClient(pipeline.connect_url)
    slot = pipeline.config["slot.name"]
    with psycopg.connect(pipeline.dsn) as open_tx:
        open_tx.execute(f"INSERT INTO public.{pipeline.table} (id, name) VALUES (9001, 'open across the restart')")  # noqa: S608
        # heartbeats until the slot is confirmed past one written after the row: Debezium has stored an
        # offset beyond the row's LSN while the row's transaction is still open
        mark = source.current_lsn()

        def flushed_past_mark() -> bool:
            source.write_heartbeat()
            st = source.slot(slot)
            return bool(st and st.confirmed_flush_lsn is not None and st.confirmed_flush_lsn > mark)

        poll_until(flushed_past_mark, 30, "slot confirmed past a heartbeat written after the open row", 0.3)
        connect.restart(pipeline.name)
        connect.wait_running(pipeline.name, 60)
        open_tx.commit()
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:  # something after it, so Debezium streams on
        conn.execute(f"INSERT INTO public.{pipeline.table} (id, name) VALUES (9002, 'after')")  # noqa: S608
    pipeline.row_events(9002)
    pipeline.row_events(9001, timeout=10)  # raises (poll_until) if the row committed after the restart was skipped
