"""`migrate-assets evolve` with several change files on a real pipeline of two tables behind one Debezium
connector with a column include list (local stack): the CLI's launch has the protections the Dagster fan-out has
(issue 13 item 4) — two changes of one table are refused before anything runs, and two tables whose plans both
read the connector's config before either ran keep both changes (each change rebased on the live config under the
evolution layer lock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pyiceberg.catalog import load_catalog

from migrate_assets.config import load_config
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources import project as projectlib
from tests.cdc import poll_until
from tests.jobs.conftest import pipeline_database
from tests.pipeline import Pipeline
from tests.support import run_cli_process

COLUMNS = ("id", "name", "amount")
INCLUDE = ",".join(f"public.{t}.{c}" for t in ("customers", "orders") for c in COLUMNS)


@pytest.fixture(scope="module")
def tables(stack_info: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, Pipeline]]:
    def orders_table(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.orders (id integer PRIMARY KEY, name text NOT NULL, amount integer)")
            conn.execute("INSERT INTO public.orders (id, name) SELECT g, 'o' || g FROM generate_series(1, 3) g")

    with pipeline_database(stack_info, tmp_path_factory.mktemp("many"), orders_table,
                           extra_connector={"table.include.list": "public.customers,public.orders",
                                            "column.include.list": INCLUDE}) as p:
        orders = Pipeline(stack_info, p.dsn, p.tmp, table="orders", name=p.name, prefix=p.prefix,
                          namespace=p.namespace, config=p.config)
        poll_until(lambda: len(orders.events()) >= 3, 60, "the snapshot events of orders")
        load_catalog("lake", **stack_info.iceberg_properties).create_table(orders.iceberg_table,
                                                                          schema=p.iceberg().schema())
        p.write_config(pipelines=[p.pipeline_entry("customers"), p.pipeline_entry("orders")])
        yield p, orders


def _change(tmp: Path, name: str, table: str, column: str) -> str:
    path = tmp / name
    path.write_text(f"table: public.{table}\noperations:\n  - add_column: {{name: {column}, type: text, "
                    "nullable: true}\n")
    return str(path)


def _columns(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                           "table_name = %s ORDER BY ordinal_position", (table,))]


def test_two_changes_of_one_table_are_refused_before_anything_runs(tables: tuple[Pipeline, Pipeline],
                                                                   tmp_path: Path) -> None:
    p, _ = tables
    a, b = _change(tmp_path, "a.yaml", "customers", "x1"), _change(tmp_path, "b.yaml", "customers", "x2")
    r = run_cli_process("evolve", a, b, config=p.config_path, fmt="json")
    assert r.code == 2, (r.code, r.out, r.err)
    assert "public.customers is already changed by" in r.out + r.err
    assert _columns(p.dsn, "customers") == list(COLUMNS)


def test_two_tables_of_one_connector_evolve_and_both_connector_changes_stay(tables: tuple[Pipeline, Pipeline],
                                                                           tmp_path: Path) -> None:
    p, orders = tables
    a, b = _change(tmp_path, "c.yaml", "customers", "note"), _change(tmp_path, "o.yaml", "orders", "note")
    r = run_cli_process("evolve", a, b, config=p.config_path, fmt="json", timeout=600)
    assert r.code == 0, (r.code, r.out[-3000:], r.err[-3000:])
    doc = json.loads(r.out)
    assert [run["table"] for run in doc["runs"]] == ["public.customers", "public.orders"]
    assert [run["status"] for run in doc["runs"]] == ["succeeded", "succeeded"]
    assert all(s["status"] == "done" for run in doc["runs"] for s in run["steps"])
    assert "note" in _columns(p.dsn, "customers") and "note" in _columns(p.dsn, "orders")
    ctx = projectlib.build_context(load_config(str(p.config_path)))
    assert ctx.connector is not None
    include = ctx.connector.config(p.name)["column.include.list"]
    # both plans read the config before either ran: the second run is rebased, not a write of its stale copy
    assert r"public\.customers\.note" in include and r"public\.orders\.note" in include, include
    v = run_cli_process("verify", "--progress-bound", "30", config=p.config_path, fmt="json", timeout=300)
    assert v.code == 0, (v.code, v.out[-3000:], v.err[-2000:])
