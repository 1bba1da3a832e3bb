"""Set up the shop example on a running stack, idempotently: a second call keeps what the first one made.

What it makes, from examples/migrate.yaml:
* the `shop` database and its tables from schemas/ (declarative apply of the tables that are missing), with rows;
* the Debezium connector `shop-cdc` (pgoutput, AvroConverter on the configured registry) streaming
  public.customers, and so the registry subject `shop.public.customers-value` (registered by the converter);
* the Iceberg table `shop.customers` with the same columns (mapped types) and the current rows appended.

Usage: `python examples/setup_shop.py [path/to/migrate.yaml]` (default: $MIGRATE_ASSETS_CONFIG, else the example).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField

from migrate_assets.config import ProjectConfig, load_config
from migrate_assets.evolution.typemap import map_type
from migrate_assets.resources import debezium
from migrate_assets.resources.iceberg import parse_type
from migrate_assets.resources.kafka_connect import KafkaConnectClient
from migrate_assets.resources.postgres import PostgresSource
from migrate_assets.resources.registry import SchemaRegistryAdapter
from migrate_assets.schema.apply import ApplyOptions, apply_plan
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import load_specs

HERE = Path(__file__).resolve().parent
TABLE = "public.customers"


def log(msg: str) -> None:
    print(f"  setup: {msg}", flush=True)


def ensure_database(dsn: str) -> None:
    """CREATE DATABASE for the DSN's database when it does not exist (connecting to `postgres` to do it)."""
    base, _, name = dsn.rpartition("/")
    name = name.split("?")[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log(f"created database {name}")


def ensure_tables(cfg: ProjectConfig) -> None:
    """Create the spec tables that are missing; tables that exist (perhaps evolved since) are left alone."""
    desired = load_specs([cfg.path(p) for p in cfg.schemas], cfg.database.schema_)
    with psycopg.connect(cfg.database.dsn, autocommit=True) as conn:
        missing = [f"{t.schema}.{t.name}" for t in desired
                   if conn.execute("SELECT to_regclass(%s)", (f"{t.schema}.{t.name}",)).fetchone()[0] is None]  # type: ignore[index]
        if missing:
            plan = build_plan(conn, desired, PlanOptions(default_schema=cfg.database.schema_,
                                                         only_tables=tuple(missing)))
            apply_plan(conn, plan, ApplyOptions(lock_timeout=cfg.lock_timeout))
            log(f"created tables {', '.join(missing)} from {', '.join(cfg.schemas)}")
        if conn.execute("SELECT count(*) FROM public.customers").fetchone()[0] == 0:  # type: ignore[index]
            conn.execute("INSERT INTO public.customers (id, name, email) SELECT g, 'customer ' || g, "
                         "'c' || g || '@shop.example' FROM generate_series(1, 20) g")
            conn.execute("INSERT INTO public.orders (id, customer_id, amount) SELECT g, 1 + g % 20, "
                         "round((10 + g * 3.5)::numeric, 2) FROM generate_series(1, 40) g")
            log("inserted 20 customers and 40 orders")


def connector_config(cfg: ProjectConfig) -> dict[str, str]:
    """The package's Debezium settings (migrate_assets.resources.debezium) for the shop's customers table."""
    assert cfg.schema_registry is not None
    return debezium.connector_config(cfg.database.dsn, cfg.schema_registry.url, [TABLE], "shop", slot="shop_slot",
                                     publication="shop_pub")


def ensure_connector(cfg: ProjectConfig) -> None:
    assert cfg.kafka_connect is not None and cfg.schema_registry is not None
    pipe = cfg.pipelines[0]
    assert pipe.connector and pipe.subject
    client = KafkaConnectClient(cfg.kafka_connect.url)
    if not client.exists(pipe.connector):
        client.create(pipe.connector, connector_config(cfg))
        log(f"created connector {pipe.connector} (Debezium pgoutput, AvroConverter)")
    client.wait_running(pipe.connector, 90)
    # the converter registers the subject with the first event: the snapshot's, or — for a connector whose
    # offsets say the snapshot is long done — a no-op update we make
    reg = SchemaRegistryAdapter(cfg.schema_registry.url)
    start = time.monotonic()
    touched = False
    while reg.latest(pipe.subject) is None:
        waited = time.monotonic() - start
        if waited > 90:
            raise SystemExit(f"subject {pipe.subject} never appeared in the registry")
        if waited > 5 and not touched:
            with psycopg.connect(cfg.database.dsn, autocommit=True) as conn:
                conn.execute("UPDATE public.customers SET name = name WHERE id = (SELECT min(id) FROM public.customers)")
            touched = True
        time.sleep(0.3)


def ensure_iceberg(cfg: ProjectConfig) -> None:
    assert cfg.iceberg is not None
    ident = cfg.pipelines[0].iceberg_table
    assert ident
    catalog = load_catalog(cfg.iceberg.name, **cfg.iceberg.properties)
    try:
        catalog.create_namespace(ident.split(".")[0])
    except NamespaceAlreadyExistsError:
        pass
    try:
        table = catalog.load_table(ident)
    except NoSuchTableError:
        cols = PostgresSource(cfg.database.dsn, cfg.database.schema_).columns(TABLE) or []
        fields = [NestedField(i + 1, c.name, parse_type(map_type(c.type).iceberg), required=False)
                  for i, c in enumerate(cols)]
        table = catalog.create_table(ident, schema=Schema(*fields))
        log(f"created Iceberg table {ident}")
    if table.current_snapshot() is None:
        names = [f.name for f in table.schema().fields]
        with psycopg.connect(cfg.database.dsn) as conn:
            rows = conn.execute(sql.SQL("SELECT {} FROM public.customers ORDER BY id").format(
                sql.SQL(", ").join(map(sql.Identifier, names)))).fetchall()
        data: list[dict[str, Any]] = [dict(zip(names, r, strict=True)) for r in rows]
        table.append(pa.Table.from_pylist(data, schema=table.schema().as_arrow()))
        log(f"appended {len(rows)} rows to {ident}")


def setup(cfg: ProjectConfig) -> None:
    ensure_database(cfg.database.dsn)
    ensure_tables(cfg)
    ensure_connector(cfg)
    ensure_iceberg(cfg)


if __name__ == "__main__":
    setup(load_config(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MIGRATE_ASSETS_CONFIG",
                                                                          str(HERE / "migrate.yaml"))))
