"""The main job on the shop example (`make run`): evolve public.customers across every layer and report.

Expects the environment of examples/stack_env.py (scripts/run.sh sets it). Steps: set up the example
(idempotent), read every layer's schema, run `evolve_pipeline` in process adding a column, read every layer again,
run `verify_pipeline`, print before/after per layer, per-step timings and the verify result. A second run adds a
fresh column (`loyalty_tier_2`, ...) because the first one is already there.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from dagster import DagsterInstance
from psycopg import sql

from migrate_assets.config import load_config
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.derive import avro_row_fields
from migrate_assets.evolution.typemap import avro_signature
from migrate_assets.jobs.evolve import EVOLUTION_RUN_TAG, evolve_pipeline, verify_pipeline
from migrate_assets.resources import project as projectlib

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from setup_shop import SINK, TABLE, iceberg_rows, setup  # noqa: E402

CHANGE = HERE / "changes" / "add_loyalty_tier.yaml"
#: the report is the output; Dagster's own event log stays in the instance (and in `make dev`'s UI)
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def layer_schemas(config_path: str) -> dict[str, str]:
    """Each layer's schema of the pipeline table, one line per layer, from the engine's own adapters."""
    cfg = load_config(config_path)
    ctx = projectlib.build_context(cfg)
    pipe = cfg.pipelines[0]
    assert ctx.registry and ctx.lakehouse and ctx.connector and pipe.subject and pipe.iceberg_table and pipe.connector
    cols = ctx.source.columns(TABLE) or []
    latest = ctx.registry.latest(pipe.subject)
    ice = ctx.lakehouse.state(pipe.iceberg_table)
    status = ctx.connector.status(pipe.connector)
    reg = "absent"
    if latest is not None:
        fields = avro_row_fields(latest.schema)
        reg = f"v{latest.version}: " + ", ".join(f"{n} {avro_signature(t)[0]}" for n, t in fields.items())
    return {
        "source_db": ", ".join(f"{c.name} {c.type}" for c in cols),
        "schema_registry": reg,
        "lakehouse": (f"schema {ice.schema_id}: " + ", ".join(f"{f.name} {f.type}" for f in ice.fields))
        if ice else "absent",
        "connector": f"{status.state}, tasks {', '.join(status.tasks)}",
    }


def fresh_column(config_path: str, base: str) -> str:
    cfg = load_config(config_path)
    existing = {c.name for c in projectlib.build_context(cfg).source.columns(TABLE) or []}
    name, n = base, 1
    while name in existing:
        n += 1
        name = f"{base}_{n}"
    return name


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall time of each Dagster op, from its step's STEP_START and STEP_SUCCESS/FAILURE events (one table: one
    mapped branch, so `evolve_table.apply_ddl[public_customers]` is reported as `apply_ddl`)."""
    start: dict[str, float] = {}
    out: dict[str, float] = {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type_value == "STEP_START":
            start[ev.step_key] = rec.timestamp
        elif ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key in start:
            out[ev.step_key.split("[")[0].rsplit(".", 1)[-1]] = rec.timestamp - start[ev.step_key]
    return out


def row_reaches_iceberg(config_path: str, column: str | None = None, timeout: float = 60) -> str:
    """Insert a customer (with `column` filled, when given) and wait until the sink has committed it to Iceberg."""
    cfg = load_config(config_path)
    with psycopg.connect(cfg.database.dsn, autocommit=True) as conn:
        row_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM public.customers").fetchone()[0]  # type: ignore[index]
        cols, vals = ["id", "name"], [row_id, f"customer {row_id}"]
        if column:
            cols.append(column)
            vals.append("gold")
        conn.execute(sql.SQL("INSERT INTO public.customers ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join(sql.Placeholder() * len(vals))), vals)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        rows = iceberg_rows(cfg)
        if row_id in rows:
            filled = f", {column}={rows[row_id].get(column)!r}" if column else ""
            return (f"row id={row_id}{filled} in Iceberg after {time.monotonic() - t0:.1f}s "
                    f"({len(rows)} rows, written by {SINK})")
        time.sleep(0.3)
    raise SystemExit(f"row {row_id} did not reach Iceberg within {timeout:.0f}s: is {SINK} running?")


def main() -> int:
    config_path = os.environ.get("MIGRATE_ASSETS_CONFIG", str(HERE / "migrate.yaml"))
    t0 = time.monotonic()
    setup(load_config(config_path))
    t_setup = time.monotonic() - t0
    column = fresh_column(config_path, "loyalty_tier")
    change = CHANGE.read_text().replace("loyalty_tier", column)
    note = "" if column == "loyalty_tier" else f" ({'loyalty_tier'} exists from an earlier run: adding {column})"
    before = layer_schemas(config_path)
    rows_before = row_reaches_iceberg(config_path)

    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    resources = {"project": MigrateProjectResource(config_path=config_path)}
    t1 = time.monotonic()
    res = evolve_pipeline.execute_in_process(
        run_config={"ops": {"preflight": {"config": {"change_yaml": change}}}, **QUIET}, resources=resources,
        instance=instance, raise_on_error=False)
    t_evolve = time.monotonic() - t1
    after = layer_schemas(config_path)
    rows_after = row_reaches_iceberg(config_path, column) if res.success else "evolution failed: no row written"
    ver = verify_pipeline.execute_in_process(run_config=QUIET, resources=resources, instance=instance,
                                             raise_on_error=False)

    store = projectlib.store(load_config(config_path))
    try:
        data: dict[str, Any] = evo.result_dict(store.load(res.dagster_run.tags[EVOLUTION_RUN_TAG]))
    finally:
        store.close()
    dag_secs = step_seconds(instance, res.run_id)

    print(f"\n=== evolve_pipeline on the shop example: add column {column} to {TABLE}{note}")
    print(f"Dagster run {res.run_id} — evolution {data['run_id']}: {data['status'].upper()}\n")
    for layer in before:
        print(f"{layer}")
        print(f"  before: {before[layer]}")
        print(f"  after:  {after[layer]}")
    print("\nrows through the Iceberg sink")
    print(f"  before: {rows_before}")
    print(f"  after:  {rows_after}")
    print("\nsteps (Dagster op: wall time | engine step: status, seconds, attempts)")
    print(f"  {'preflight':<18} {dag_secs.get('preflight', 0):6.2f}s | read every layer, plan, checks")
    ops = {"schema_registry": "register_schema", "lakehouse": "evolve_lakehouse", "source_db": "apply_ddl",
           "connector": "restart_connector", "verify": "verify"}
    for s in data["steps"]:
        op = ops[s["layer"]]
        print(f"  {op:<18} {dag_secs.get(op, 0):6.2f}s | {s['status']}, {s['seconds']:.2f}s, "
              f"{s['attempts']} attempt(s): {s['action']}")
    print(f"\nsetup {t_setup:.1f}s, evolve_pipeline {t_evolve:.1f}s (in process, incl. Dagster overhead)")
    if ver.success:
        out = ver.output_for_node("verify_layers")
        layers = ", ".join(f"{k} {v['status']}" for t in out["tables"] for k, v in t["layers"].items())
        print(f"verify_pipeline: CONSISTENT ({layers})")
    else:
        fail = ver.failure_data_for_node("verify_layers")
        print(f"verify_pipeline: DRIFT — {fail.error.message if fail and fail.error else 'failed'}")
    ok = res.success and ver.success and data["status"] == "succeeded" and f"{column}='gold'" in rows_after
    print("\nresult: " + ("OK — the column reached every layer and its rows reach Iceberg" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
