"""End-to-end `evolve` (add a column) on the local stack, per step, beside the floor: the same calls made
directly with the clients in a plain script, once without and once with the slot waits a safe run needs.
A writer inserts 100 rows/s throughout; every row's CDC event must be in the topic afterwards (0 lost).
The evolve runs on the stack's worker (`offset.flush.interval.ms=1000`) and again on a second worker with
Kafka Connect's default (60 s) and no Debezium heartbeat, side by side (issue 17 item 6)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from pyiceberg.types import StringType

from benchmarks.common import write_results
from migrate_assets.config import load_config
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.derive import derive_avro
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.expand.ops import AddColumn
from migrate_assets.local import connect, procs, stack
from migrate_assets.resources import project

sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.cdc import poll_until  # noqa: E402
from tests.pipeline import Pipeline  # noqa: E402

REPEAT = 3


def _db(info: stack.StackInfo) -> str:
    name = "b_" + uuid.uuid4().hex[:8]
    with psycopg.connect(info.pg_dsn, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return info.pg_dsn.rsplit("/", 1)[0] + "/" + name


def ours(p: Pipeline, column: str) -> dict[str, Any]:
    cfg = load_config(str(p.config_path))
    ctx = project.build_context(cfg)
    store = project.store(cfg)
    cs = parse_change_text(f"table: public.customers\noperations:\n  - add_column: {{name: {column}, type: text, "
                           "nullable: true}\n", "bench.yaml")
    t0 = time.perf_counter()
    _, rec = evo.evolve(cs, project.targets(cfg)[0], ctx, project.policy(cfg), store, project.retry_policy(cfg))
    total = time.perf_counter() - t0
    store.close()
    res = evo.result_dict(rec)
    assert res["status"] == "succeeded", res
    steps = {s["layer"]: s["seconds"] for s in res["steps"]}
    return {"total": total, "steps": steps, "preflight": total - sum(steps.values())}


def floor(p: Pipeline, column: str, with_waits: bool) -> float:
    """The same work with the raw clients, no orchestration: register, Iceberg update, ALTER, status."""
    reg = SchemaRegistryClient({"url": p.registry_url})
    t0 = time.perf_counter()
    latest = reg.get_latest_version(p.subject)
    new = derive_avro(latest.schema.schema_str, (AddColumn(column, "text", True),), {})
    reg.register_schema(p.subject, Schema(new, "AVRO"))
    with p.iceberg().update_schema() as upd:
        upd.add_column(column, StringType())
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE public.customers ADD COLUMN "{column}" text')
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        if with_waits:
            for _ in range(2):  # slot past the DDL, then past a fresh LSN (progress)
                target = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0] if _ else lsn
                poll_until(lambda t=target: (conn.execute("SELECT pg_logical_emit_message(false, 'b', 'x')"),
                                             conn.execute("SELECT confirmed_flush_lsn >= %s FROM pg_replication_slots "
                                                          "WHERE slot_name = %s", (t, p.config["slot.name"]))
                                             .fetchone()[0])[1], 60, "slot", interval=0.05)
    httpx.get(f"{p.connect_url}/connectors/{p.name}/status", timeout=10).raise_for_status()
    return time.perf_counter() - t0


def default_flush_runs(info: stack.StackInfo, state: Path) -> tuple[list[dict[str, Any]], int, int]:
    """`ours` REPEAT times on a worker of its own with Connect's default offset flush (60 s), no heartbeat."""
    port = procs.free_port()
    pid = connect.start(state / "connect-60s", info.bootstrap, port, group="bench-60s", offset_flush_ms=None)
    runs: list[dict[str, Any]] = []
    written = lost = 0
    try:
        for i in range(REPEAT):
            p = Pipeline(info, _db(info), Path(tempfile.mkdtemp()), connect_url=f"http://127.0.0.1:{port}").setup()
            try:
                with p.writer(rate=100) as w:
                    runs.append(ours(p, f"slow_{i}"))
                written += len(w.ids)
                try:
                    poll_until(lambda p=p, w=w: not (set(w.ids) - p.event_ids()), 60, "every written row in the topic")
                except AssertionError:
                    pass
                lost += len(set(w.ids) - p.event_ids())
            finally:
                p.teardown()
    finally:
        procs.kill(pid, grace=10)
    return runs, written, lost


def main() -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    t0 = time.perf_counter()
    info, _ = stack.up(state)
    stack_seconds = time.perf_counter() - t0
    runs: list[dict[str, Any]] = []
    floors: list[float] = []
    floors_waits: list[float] = []
    lost = 0
    written = 0
    try:
        slow_runs, slow_written, slow_lost = default_flush_runs(info, state)
        for i in range(REPEAT):
            p = Pipeline(info, _db(info), Path(tempfile.mkdtemp())).setup()
            try:
                with p.writer(rate=100) as w:
                    runs.append(ours(p, f"ours_{i}"))
                    floors.append(floor(p, f"floor_{i}", with_waits=False))
                    floors_waits.append(floor(p, f"floorw_{i}", with_waits=True))
                written += len(w.ids)
                # Debezium may still be behind the last writes: wait (bounded) before counting what is missing
                try:
                    poll_until(lambda p=p, w=w: not (set(w.ids) - p.event_ids()), 60, "every written row in the topic")
                except AssertionError:
                    pass
                lost += len(set(w.ids) - p.event_ids())
            finally:
                p.teardown()
    finally:
        stack.down(state, purge=True)
    med = statistics.median
    total = med(r["total"] for r in runs)
    layers = ["schema_registry", "lakehouse", "source_db", "connector", "verify"]
    per_step = {layer: med(r["steps"][layer] for r in runs) for layer in layers}
    data = {
        "repeat": REPEAT, "stack_up_seconds": round(stack_seconds, 2),
        "evolve_total_median_s": round(total, 3),
        "preflight_median_s": round(med(r["preflight"] for r in runs), 3),
        "per_step_median_s": {k: round(v, 3) for k, v in per_step.items()},
        "floor_calls_only_median_s": round(med(floors), 3),
        "floor_with_slot_waits_median_s": round(med(floors_waits), 3),
        "overhead_vs_floor_with_waits_s": round(total - med(floors_waits), 3),
        "events_written": written, "events_lost": lost,
        "flush_60s": {
            "evolve_total_median_s": round(med(r["total"] for r in slow_runs), 3),
            "evolve_total_max_s": round(max(r["total"] for r in slow_runs), 3),
            "per_step_median_s": {k: round(med(r["steps"][k] for r in slow_runs), 3) for k in layers},
            "events_written": slow_written, "events_lost": slow_lost,
        },
    }
    slow = data["flush_60s"]
    md = [
        "## evolve: add a column on the local stack (median of 3, writer at 100 inserts/s)\n",
        "| step | seconds |", "|---|---|",
        f"| outside the steps: pre-flight (all layers read + checked) and the run record | {data['preflight_median_s']:.3f} |",
        *[f"| {k} | {v:.3f} |" for k, v in data["per_step_median_s"].items()],
        f"| **evolve total** | **{total:.3f}** |",
        f"| floor: raw client calls only | {data['floor_calls_only_median_s']:.3f} |",
        f"| floor: raw calls + the same slot waits | {data['floor_with_slot_waits_median_s']:.3f} |",
        f"| overhead over the floor with waits | {data['overhead_vs_floor_with_waits_s']:.3f} |",
        "", f"CDC events written {written}, lost **{lost}**. Stack up: {stack_seconds:.1f} s.",
        "", "### offset.flush.interval.ms 1 s (the stack's) vs 60 s (Connect's default), no Debezium heartbeat\n",
        "| | 1 s flush | 60 s flush |", "|---|---|---|",
        *[f"| {k} | {data['per_step_median_s'][k]:.3f} | {slow['per_step_median_s'][k]:.3f} |" for k in layers],
        f"| **evolve total (median)** | **{total:.3f}** | **{slow['evolve_total_median_s']:.3f}** |",
        f"| evolve total (max) | {max(r['total'] for r in runs):.3f} | {slow['evolve_total_max_s']:.3f} |",
        f"| CDC events written / lost | {written} / {lost} | {slow['events_written']} / {slow['events_lost']} |",
    ]
    write_results("bench_evolve", data, "\n".join(md))
    print("\n".join(md))
    return data


if __name__ == "__main__":
    main()
