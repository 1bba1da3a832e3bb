"""Distributed Kafka Connect with two workers (issue 17 item 5): the worker running the Debezium task is killed
with SIGKILL while an evolve is between its DDL and the connector step. The group moves the tasks to the other
worker, the saga completes or compensates, no CDC event is lost and the Iceberg sink writes every row."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from migrate_assets.local import connect, iceberg, procs
from migrate_assets.local.stack import StackInfo
from tests.cdc import poll_until, start_connector
from tests.conftest import Service
from tests.evolution.faults import ddl_seen_mid_run
from tests.pipeline import ADD_NOTE, PipelineFactory, change_file
from tests.support import run_cli_process


@pytest.fixture
def two_workers(stack_info: StackInfo, tmp_path: Path) -> Iterator[list[Service]]:
    """Two distributed workers of one group of their own (one Connect cluster), each with its own REST port."""
    group = "fo" + uuid.uuid4().hex[:6]
    workers: list[Service] = []
    try:
        for i in range(2):
            port = procs.free_port()
            root = tmp_path / f"worker{i}"
            svc = Service(lambda root=root, port=port: connect.start(root, stack_info.bootstrap, port, group=group),
                          f"http://127.0.0.1:{port}")
            svc.start()
            workers.append(svc)
        # both answer for the same cluster: a worker forwards what only the leader may do
        poll_until(lambda: all(httpx.get(w.url + "/connectors", timeout=5).status_code == 200 for w in workers),
                   60, "both workers in the group")
        yield workers
    finally:
        for w in workers:
            if w.pid is not None:
                w.stop()


def _tasks(url: str, name: str) -> list[dict[str, str]]:
    r = httpx.get(f"{url}/connectors/{name}/status", timeout=5)
    return list(r.json().get("tasks", [])) if r.status_code == 200 else []


def _iceberg_ids(p: object) -> set[int]:
    table = p.iceberg()  # type: ignore[attr-defined]
    table.refresh()
    return set(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())


def test_killing_the_worker_of_the_debezium_task_mid_evolve_loses_nothing(
        make_pipeline: PipelineFactory, two_workers: list[Service], stack_info: StackInfo) -> None:
    first, second = two_workers
    p = make_pipeline(connect_url=first.url)
    sink = f"{p.name}-sink"
    cfg = iceberg.sink_connector_config(stack_info.iceberg_properties, sink, p.topic, p.iceberg_table, p.registry_url)
    # the sink's consumer leaves the group 6 s after its worker dies, not after the 45 s default
    cfg.update({"consumer.override.session.timeout.ms": "6000", "consumer.override.heartbeat.interval.ms": "1000"})
    start_connector(first.url, sink, cfg, timeout=90)
    poll_until(lambda: _iceberg_ids(p) >= {1, 2, 3, 4, 5}, 90, "the snapshot rows in Iceberg")

    # the saga talks to the worker that survives; the other one runs the Debezium task and is killed
    host = {w.url.removeprefix("http://"): w for w in two_workers}
    victim = host[_tasks(first.url, p.name)[0]["worker_id"]]
    survivor = second if victim is first else first
    p.connect_url = survivor.url
    p.write_config(pipelines=[{**p.pipeline_entry(p.table), "sink": sink}],
                   kafka_connect={"url": survivor.url})
    cf = change_file(p.tmp, ADD_NOTE)

    with p.writer(rate=50) as w, ThreadPoolExecutor(1) as pool:
        poll_until(lambda: len(w.ids) > 20, 10, "writer progress")
        run = pool.submit(run_cli_process, "evolve", str(cf), config=p.config_path, fmt="json", timeout=300)
        ddl_seen_mid_run(p.dsn, p.table, "note", run)  # the kill must land mid-run
        killed_at = time.monotonic()
        assert procs.kill(victim.pid, first=signal.SIGKILL)
        victim.pid = None
        # the tasks move: the Debezium connector runs on the survivor again
        moved = poll_until(lambda: [t for t in _tasks(survivor.url, p.name)
                                    if t["state"] == "RUNNING" and t["worker_id"] == survivor.url[7:]],
                           120, "the Debezium task RUNNING on the surviving worker")
        moved_after = time.monotonic() - killed_at
        ran = run.result(timeout=300)
    doc = ran.doc
    assert doc is not None, ran.err
    assert doc["status"] in ("succeeded", "rolled_back"), (ran.out, ran.err)
    assert moved and moved_after < 60
    print(f"\nfailover: task moved {moved_after:.1f}s after SIGKILL; evolve {doc['status']}; {len(w.ids)} rows written")
    # 0 events lost, and the sink (moved too, if it ran on the victim) writes every row into Iceberg
    p.assert_no_event_lost(w.ids, timeout=120)
    expected = set(w.ids) | {1, 2, 3, 4, 5}
    poll_until(lambda: expected <= _iceberg_ids(p), 180, f"all {len(expected)} rows in Iceberg")
    with psycopg.connect(p.dsn) as conn:
        has_note = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = %s AND "
                                "column_name = 'note'", [p.table]).fetchone()
    # every layer agrees with how the run ended
    assert bool(has_note and has_note[0]) == (doc["status"] == "succeeded")
    assert ("note" in {f.name for f in p.iceberg().schema().fields}) == (doc["status"] == "succeeded")
