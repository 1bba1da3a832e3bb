"""`evolve_pipeline` fanned out per pipeline table (SPEC §11) on a real pipeline of two tables that share one
Debezium connector (local stack): `public.customers` and `public.orders`.

The tests share the pipeline and run in file order: changes that would race each other are refused before
anything changes; two tables evolve in one run, in parallel branches under the multiprocess executor; a lock held on
one table fails that table's DDL for real, its apply_ddl fails after undoing its layers while the other table evolves; `from_specs` creates
every missing table, both joining the shared connector.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import (
    DagsterInstance,
    JobDefinition,
    SkipReason,
    build_reconstructable_job,
    build_run_status_sensor_context,
    execute_job,
    instance_for_test,
)
from pyiceberg.catalog import load_catalog

from migrate_assets.config import load_config
from migrate_assets.definitions import build_definitions
from migrate_assets.jobs.automation import evolution_failed_rollback
from migrate_assets.jobs.common import DDL_POOL
from migrate_assets.jobs.evolve import EVOLUTION_RUN_TAG, evolve_pipeline
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources import project as projectlib
from tests.cdc import poll_until
from tests.jobs.conftest import op_metadata, ops_with, pipeline_database, project_for, steps_with
from tests.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
FORWARD = ["register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector", "verify"]
CUSTOMERS, ORDERS = "public_customers", "public_orders"  # the mapping keys of the two branches
#: step processes forked from one that imported everything once: seconds less per step than a fresh interpreter
FORKSERVER = {"forkserver": {"preload_modules": ["migrate_assets.definitions", "tests.jobs.test_evolve_fanout"]}}


def _add(column: str, *tables: str) -> str:
    """Inline YAML: one document per table, each adding `column`."""
    return "\n---\n".join(f"table: public.{t}\noperations:\n  - add_column: {{name: {column}, type: text, "
                          "nullable: true}" for t in tables)


@pytest.fixture(scope="module")
def tables(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, Pipeline]]:
    """customers (the usual pipeline) and orders (same columns, rows, captured by the same connector, its own
    subject and Iceberg table), both in `pipelines`."""
    def orders_table(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.orders (id integer PRIMARY KEY, name text NOT NULL, amount integer)")
            conn.execute("INSERT INTO public.orders (id, name) SELECT g, 'o' || g FROM generate_series(1, 3) g")

    with pipeline_database(stack_info, tmp_path_factory.mktemp("fanout"), orders_table,
                           extra_connector={"table.include.list": "public.customers,public.orders"}) as p:
        orders = Pipeline(stack_info, p.dsn, p.tmp, table="orders", name=p.name, prefix=p.prefix,
                          namespace=p.namespace, config=p.config)
        poll_until(lambda: len(orders.events()) >= 3, 60, "the snapshot events of orders")
        load_catalog("lake", **stack_info.iceberg_properties).create_table(orders.iceberg_table,
                                                                          schema=p.iceberg().schema())
        p.write_config(pipelines=[p.pipeline_entry("customers"), p.pipeline_entry("orders")])
        yield p, orders


def _run(p: Pipeline, instance: DagsterInstance | None = None, **config: object) -> Any:
    return evolve_pipeline.execute_in_process(
        run_config={"ops": {"preflight": {"config": config}}}, resources={"project": project_for(p.config_path)},
        instance=instance, raise_on_error=False)


def _records(p: Pipeline, tag: str) -> dict[str, Any]:
    store = projectlib.store(load_config(str(p.config_path)))
    try:
        return {rec.table: rec for rec in (store.load(r) for r in tag.split(","))}
    finally:
        store.close()


def _columns(state: dict[str, Any]) -> list[str]:
    return [c[0] for c in state["db"]]


def _event_with(p: Pipeline, row_id: int, **values: str) -> None:
    """A row written now reaches the table's topic with these values (the connector captures the new columns)."""
    row = {"id": row_id, "name": "x", **values}
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO public.{p.table} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",  # noqa: S608
                     list(row.values()))
    poll_until(lambda: any((e.get("after") or {}).items() >= row.items() for e in p.events()), 60,
               f"the event of row {row_id} of {p.table} with {values}")


# ------------------------------------------------------------------------------------------------------------


def test_duplicate_or_failing_tables_are_refused_before_anything_changes(tables: tuple[Pipeline, Pipeline]) -> None:
    p, orders = tables
    before = (p.layer_state(), orders.layer_state())
    first, second = p.tmp / "a.yaml", p.tmp / "b.yaml"
    first.write_text(_add("dup", "customers"))
    second.write_text("# the same table again\n" + _add("dup2", "customers"))
    res = _run(p, change_files=[str(first), str(second)])
    assert not res.success and steps_with(res, "STEP_FAILURE") == ["preflight"]
    assert not steps_with(res, "STEP_SUCCESS") and EVOLUTION_RUN_TAG not in res.dagster_run.tags
    err = res.failure_data_for_node("preflight").error.message  # type: ignore[union-attr]
    assert f"{second}:2: table: public.customers is already changed by {first}" in err
    fail = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data
    assert fail.user_failure_data.metadata["error_type"].value == "UsageError"  # type: ignore[union-attr]

    # two documents of the inline YAML for one table: refused the same way, the line names the second document
    res = _run(p, change_yaml=_add("dup", "customers", "customers"))
    assert not res.success
    assert "<run config change_yaml>:5: table: public.customers is already changed" in \
        res.failure_data_for_node("preflight").error.message  # type: ignore[union-attr]

    # one table's pre-flight fails (no such column): the other table, whose plan was fine, is not touched either
    bad = _add("ok", "customers") + "\n---\ntable: public.orders\noperations:\n  - change_type: {column: nope, " \
        "to_type: bigint}\n"
    res = _run(p, change_yaml=bad)
    assert not res.success and steps_with(res, "STEP_FAILURE") == ["preflight"]
    assert "column 'nope' does not exist" in res.failure_data_for_node("preflight").error.message  # type: ignore[union-attr]
    assert (p.layer_state(), orders.layer_state()) == before


def evolve_job(config_path: str) -> JobDefinition:
    """`evolve_pipeline` as the code location defines it, rebuilt in every step process of the multiprocess
    executor (build_reconstructable_job)."""
    return build_definitions(config_path).get_job_def("evolve_pipeline")


def test_two_tables_evolve_in_parallel_branches(tables: tuple[Pipeline, Pipeline]) -> None:
    p, orders = tables
    before = {t.table: t.layer_state() for t in (p, orders)}
    job = build_reconstructable_job("tests.jobs.test_evolve_fanout", "evolve_job",
                                    reconstructable_kwargs={"config_path": str(p.config_path)},
                                    reconstructor_working_directory=str(ROOT))
    with instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(DDL_POOL, 1)  # one DDL at a time, as documented
        with execute_job(job, instance, raise_on_error=False, run_config={
                "ops": {"preflight": {"config": {"change_yaml": _add("note", "customers", "orders")}}},
                "execution": {"config": {"multiprocess": {"max_concurrent": 2, "start_method": FORKSERVER}}}}) as res:
            assert res.success, [e.message for e in res.all_events if e.event_type_value == "STEP_FAILURE"]
            # one mapped branch per table, every forward op ran in both; no rollback op ran
            for key in (CUSTOMERS, ORDERS):
                assert sorted(ops_with(res, "STEP_SUCCESS", key)) == sorted(FORWARD)
                assert [op_metadata(res, op, key)["status"] for op in FORWARD] == ["done"] * 5
            assert f"evolve_table.apply_ddl[{ORDERS}]" in steps_with(res, "STEP_SUCCESS")
            assert not ops_with(res, "STEP_SKIPPED")
            assert res.output_for_node("evolution_report")["evolved"] == ["public.customers", "public.orders"]
            assert "| public.orders |" in op_metadata(res, "evolution_report")["outcomes"]
            windows = _step_windows(instance, res.run_id)
            tag = res.dagster_run.tags[EVOLUTION_RUN_TAG]
    # the branches ran side by side: some step of one overlaps some step of the other ...
    a = [w for k, w in windows.items() if k.endswith(f"[{CUSTOMERS}]")]
    b = [w for k, w in windows.items() if k.endswith(f"[{ORDERS}]")]
    assert any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b), windows
    # ... but the DDL pool let one DDL run at a time
    (s1, e1), (s2, e2) = (windows[f"evolve_table.apply_ddl[{k}]"] for k in (CUSTOMERS, ORDERS))
    assert e1 <= s2 or e2 <= s1, windows
    recs = _records(p, tag)
    assert {t: r.status for t, r in recs.items()} == {"public.customers": "succeeded", "public.orders": "succeeded"}
    for t in (p, orders):
        after = t.layer_state()
        assert _columns(after)[-1] == "note"
        assert after["registry"][0] > before[t.table]["registry"][0]
        assert "note" in [f[1] for f in after["iceberg"][1]]
        assert after["connector"] == before[t.table]["connector"]  # pgoutput carries added columns: no restart
        _event_with(t, 500, note=f"n-{t.table}")


def _step_windows(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    start: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is not None and ev.step_key and ev.event_type_value == "STEP_START":
            start[ev.step_key] = rec.timestamp
        elif ev is not None and ev.step_key in start and ev.event_type_value == "STEP_SUCCESS":
            out[ev.step_key] = (start[ev.step_key], rec.timestamp)
    return out


def test_a_fault_in_one_table_rolls_back_that_table_only(tables: tuple[Pipeline, Pipeline]) -> None:
    p, orders = tables
    before = {t.table: t.layer_state() for t in (p, orders)}
    instance = DagsterInstance.ephemeral()
    holder = psycopg.connect(orders.dsn)
    holder.execute("SELECT count(*) FROM public.orders")  # ACCESS SHARE held: the ALTER of orders cannot get its lock
    try:
        res = _run(p, instance, change_yaml=_add("memo", "customers", "orders"))
    finally:
        holder.rollback()
        holder.close()
    assert not res.success
    # orders: its apply_ddl failed (red) after undoing its completed layers; customers: every op succeeded
    assert ops_with(res, "STEP_SUCCESS", ORDERS) == FORWARD[:2]
    assert steps_with(res, "STEP_FAILURE") == [f"evolve_table.apply_ddl[{ORDERS}]"]
    assert ops_with(res, "STEP_SUCCESS", CUSTOMERS) == FORWARD
    err = res.failure_data_for_node("evolve_table.apply_ddl").error.message  # type: ignore[union-attr]
    assert "public.orders" in err and "failed at ddl" in err and "rolled_back" in err
    assert "evolution_report" not in ops_with(res, "STEP_SUCCESS")  # a failed branch stops the collect

    tag = res.dagster_run.tags[EVOLUTION_RUN_TAG]
    recs = _records(p, tag)
    assert {t: r.status for t, r in recs.items()} == {"public.customers": "succeeded", "public.orders": "rolled_back"}
    assert recs["public.orders"].failed_step == "ddl"
    after = {t.table: t.layer_state() for t in (p, orders)}
    assert after["orders"]["db"] == before["orders"]["db"]
    assert after["orders"]["iceberg"] == before["orders"]["iceberg"]
    assert after["orders"]["registry"][0] == before["orders"]["registry"][0]
    assert after["orders"]["connector"] == before["orders"]["connector"]
    assert _columns(after["customers"])[-1] == "memo"
    assert "memo" in [f[1] for f in after["customers"]["iceberg"][1]]

    # the run-failure sensor reads both evolutions from the comma-separated tag: nothing left to undo
    ctx = build_run_status_sensor_context(
        sensor_name="evolution_failed_rollback", dagster_event=res.get_run_failure_event(), dagster_instance=instance,
        dagster_run=res.dagster_run, resources={"project": project_for(p.config_path)}).for_run_failure()
    skip = evolution_failed_rollback(ctx)
    assert isinstance(skip, SkipReason)
    assert "(public.customers) succeeded" in (skip.skip_message or "")
    assert "(public.orders) rolled_back" in (skip.skip_message or "")


def test_from_specs_creates_every_missing_table(tables: tuple[Pipeline, Pipeline]) -> None:
    p, orders = tables
    schemas = p.tmp / "schemas"
    schemas.mkdir(exist_ok=True)
    new = [Pipeline(p.stack, p.dsn, p.tmp, table=t, name=p.name, prefix=p.prefix, namespace=p.namespace,
                    config=p.config) for t in ("items", "payments")]
    for t in new:
        (schemas / f"{t.table}.yaml").write_text(
            f"table: {t.table}\ncolumns:\n  - {{name: id, type: integer, primary_key: true}}\n"
            "  - {name: name, type: text}\n  - {name: price, type: 'numeric(12,2)', nullable: true}\n")
    p.write_config(schemas=[str(schemas)], pipelines=[p.pipeline_entry(x.table) for x in (p, orders, *new)])
    try:
        # rows keep arriving on customers, as in production: Debezium resumes streaming after a restart only once a
        # transaction of a captured table passes its stored position (an idle database leaves the slot still)
        with p.writer(rate=20):
            res = _run(p, from_specs=True)
        assert res.success, [e.message for e in res.all_events if e.event_type_value == "STEP_FAILURE"]
        for key in ("public_items", "public_payments"):
            assert ops_with(res, "STEP_SUCCESS", key) == FORWARD
            assert op_metadata(res, "restart_connector", key)["status"] == "done"
        assert res.output_for_node("evolution_report")["evolved"] == ["public.items", "public.payments"]
        recs = _records(p, res.dagster_run.tags[EVOLUTION_RUN_TAG])
        assert sorted(recs) == ["public.items", "public.payments"]
        # both tables joined the one connector: the second restart kept the first table's filter entry
        include = dict(p.layer_state()["connector"])["table.include.list"].split(",")
        assert sorted(x.replace("\\", "") for x in include) == ["public.customers", "public.items", "public.orders",
                                                                  "public.payments"]
        catalog = load_catalog("lake", **p.stack.iceberg_properties)
        for t in new:
            assert catalog.table_exists(t.iceberg_table)
            assert _columns(t.layer_state()) == ["id", "name", "price"]
            _event_with(t, 1, name=f"new-{t.table}")
    finally:
        p.write_config(pipelines=[p.pipeline_entry("customers"), p.pipeline_entry("orders")])


def test_nothing_to_create_from_specs_is_refused(tables: tuple[Pipeline, Pipeline]) -> None:
    p, _ = tables
    res = _run(p, from_specs=True)
    assert not res.success and steps_with(res, "STEP_FAILURE") == ["preflight"]
    assert "nothing to evolve from the specs" in \
        res.failure_data_for_node("preflight").error.message  # type: ignore[union-attr]
