"""The Iceberg sink's task fails mid-evolve (issue 17, real faults).

The sink reads the registry through a registry process of its own, serving the stack registry's database (the
same schemas and ids). That process is stopped for real before the evolve starts, once the sink has decoded the
old shape (its converter caches the ids it has seen, so old-shape events keep flowing): the first event in the new
shape, after the evolve's DDL, carries a schema id the sink has not seen, the lookup fails and Connect marks the
sink's task FAILED. Stopping it only after the DDL was seen raced the sink: when the first new-shape event was
decoded within that poll, the task never failed (CI, stop 27). The evolve completes or compensates; with the
registry back, restarting the failed task (what an operator does) brings every row into Iceberg, and no CDC event
is lost."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from migrate_assets.local import iceberg, procs
from migrate_assets.local.stack import StackInfo
from tests.cdc import connect_request, poll_until, start_connector
from tests.conftest import Service
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import run_cli_process


@pytest.fixture
def sink_registry(stack_info: StackInfo, tmp_path: Path) -> Iterator[Service]:
    """A second registry process on the stack registry's database: what the sink alone talks to."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "migrate_assets.local.registry", "--host", "127.0.0.1", "--port", str(port),
            "--db", str(stack_info.state_dir / "registry.db")]
    url = f"http://127.0.0.1:{port}"

    def start() -> int:
        log = tmp_path / "sink-registry.log"
        pid = procs.spawn(argv, log)
        procs.wait_until(lambda: httpx.get(url + "/", timeout=2).status_code == 200, 30, "registry", "GET /",
                         log, pid)
        return pid

    with Service(start, url) as svc:
        yield svc


def _sink_tasks(p: Pipeline, sink: str) -> list[dict[str, str]]:
    r = httpx.get(f"{p.connect_url}/connectors/{sink}/status", timeout=10)
    return list(r.json().get("tasks", [])) if r.status_code == 200 else []


def _iceberg_ids(p: Pipeline) -> set[int]:
    return set(p.iceberg().scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())


def _has_note(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = %s AND "
                            "column_name = 'note'", [table]).fetchone() is not None


def test_sink_task_failed_mid_evolve_then_restarted_writes_every_row(
        pipeline: Pipeline, stack_info: StackInfo, sink_registry: Service) -> None:
    p = pipeline
    sink = f"{p.name}-sink"
    start_connector(p.connect_url, sink, iceberg.sink_connector_config(
        stack_info.iceberg_properties, sink, p.topic, p.iceberg_table, sink_registry.url), timeout=90)
    try:
        p.write_config(pipelines=[{**p.pipeline_entry(p.table), "sink": sink}])
        poll_until(lambda: _iceberg_ids(p) >= {1, 2, 3, 4, 5}, 90, "the snapshot rows in Iceberg")
        cf = change_file(p.tmp, ADD_NOTE)
        with p.writer(rate=50) as w, ThreadPoolExecutor(1) as pool:
            poll_until(lambda: len(w.ids) > 20, 10, "writer progress")
            poll_until(lambda: len(_iceberg_ids(p)) > 10, 60, "streamed old-shape rows in Iceberg")
            sink_registry.stop()  # old-shape events need no lookup: the task runs on until the new shape
            run = pool.submit(run_cli_process, "evolve", str(cf), config=p.config_path, fmt="json", timeout=300)
            failed = poll_until(lambda: [t for t in _sink_tasks(p, sink) if t["state"] == "FAILED"], 120,
                                "the sink's task FAILED")
            ran = run.result(timeout=300)
        doc = ran.doc
        assert doc is not None, ran.err
        assert doc["status"] in ("succeeded", "rolled_back"), (ran.out, ran.err)
        assert failed[0]["trace"]
        # the operator's fix: the registry back, the failed task restarted
        sink_registry.start()
        connect_request("POST", f"{p.connect_url}/connectors/{sink}/restart",
                        params={"includeTasks": "true", "onlyFailed": "true"}).raise_for_status()
        p.assert_no_event_lost(w.ids, timeout=120)
        expected = set(w.ids) | {1, 2, 3, 4, 5}
        poll_until(lambda: expected <= _iceberg_ids(p), 180, f"all {len(expected)} rows in Iceberg")
        succeeded = doc["status"] == "succeeded"
        assert _has_note(p.dsn, p.table) == succeeded
        assert ("note" in {f.name for f in p.iceberg().schema().fields}) == succeeded
        print(f"\nsink fault: evolve {doc['status']}; {len(w.ids)} rows written, all in the topic and Iceberg")
    finally:
        httpx.delete(f"{p.connect_url}/connectors/{sink}", timeout=30)
