"""The lakehouse of the local stack: an Iceberg JDBC catalog in the stack's PostgreSQL, a `file://` warehouse.

One catalog for both sides: the project's pyiceberg opens it as a `SqlCatalog` (SQLAlchemy on psycopg 3), the
Apache Iceberg sink in Kafka Connect as a `JdbcCatalog`. pyiceberg creates the catalog tables in the "V1" layout
(with `iceberg_type`); the sink is told so with `jdbc.schema-version=V1`, and both use the catalog name `lake`
(the `catalog_name` column), so they see the same tables.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pyiceberg.catalog import load_catalog

DATABASE = "iceberg"
CATALOG = "lake"


def properties(root: Path, pg_dsn: str, database: str = DATABASE) -> dict[str, str]:
    """pyiceberg's SqlCatalog properties for the catalog in `database` of the cluster `pg_dsn` points at."""
    info = conninfo_to_dict(pg_dsn)
    auth = quote(str(info.get("user") or "postgres"), safe="")
    if info.get("password"):
        auth += ":" + quote(str(info["password"]), safe="")
    host, port = info.get("host") or "127.0.0.1", info.get("port") or 5432
    return {
        "type": "sql",
        "uri": f"postgresql+psycopg://{auth}@{host}:{port}/{quote(database, safe='')}",
        "warehouse": f"file://{root / 'warehouse'}",
    }


def _ensure_database(pg_dsn: str, database: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def ensure(root: Path, pg_dsn: str, name: str = CATALOG) -> dict[str, str]:
    """Create the catalog's database and tables (pyiceberg's V1 layout) and the warehouse folder."""
    props = properties(root, pg_dsn)
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    _ensure_database(pg_dsn, DATABASE)
    load_catalog(name, **props).list_namespaces()  # creates iceberg_tables / iceberg_namespace_properties
    return props


def healthy(props: dict[str, str], name: str = CATALOG) -> bool:
    try:
        load_catalog(name, **props).list_namespaces()
        return True
    except Exception:  # noqa: BLE001 - any failure means not usable
        return False


def sink_catalog_config(props: dict[str, str], name: str = CATALOG) -> dict[str, str]:
    """The `iceberg.catalog.*` settings of the Iceberg sink for the catalog pyiceberg opens with `props`."""
    url = urlsplit(props["uri"])
    if url.scheme != "postgresql+psycopg":
        raise ValueError(f"the sink reaches only a PostgreSQL catalog, not {url.scheme}")
    out = {
        "iceberg.catalog": name,
        "iceberg.catalog.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        "iceberg.catalog.uri": f"jdbc:postgresql://{url.hostname}:{url.port or 5432}{url.path}",
        "iceberg.catalog.jdbc.user": unquote(url.username or "postgres"),
        "iceberg.catalog.jdbc.schema-version": "V1",
        "iceberg.catalog.warehouse": props["warehouse"],
    }
    if url.password:
        out["iceberg.catalog.jdbc.password"] = unquote(url.password)
    return out


def sink_connector_config(
    props: dict[str, str], connector: str, topic: str, table: str, registry_url: str, *,
    name: str = CATALOG, commit_interval_ms: int = 1000,
) -> dict[str, str]:
    """An Apache Iceberg sink `connector` writing Debezium's Avro events of `topic` into the existing `table`.

    Debezium's envelope becomes the row through the sink's own `DebeziumTransform`; rows are appended (no
    equality deletes, which pyiceberg cannot read). The sink neither creates tables nor evolves them: the
    project's saga owns the table's schema (a new column reaches Iceberg before the source DDL) and fields the
    table does not have are not written. It commits every `commit_interval_ms` (its default is 5 minutes), through
    a control topic of its own.
    """
    return {
        "connector.class": "org.apache.iceberg.connect.IcebergSinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "key.converter": "io.confluent.connect.avro.AvroConverter",
        "key.converter.schema.registry.url": registry_url,
        "value.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter.schema.registry.url": registry_url,
        "transforms": "debezium",
        "transforms.debezium.type": "org.apache.iceberg.connect.transforms.DebeziumTransform",
        "iceberg.tables": table,
        "iceberg.tables.auto-create-enabled": "false",
        "iceberg.tables.evolve-schema-enabled": "false",
        "iceberg.control.topic": f"_{connector}-iceberg-control",
        "iceberg.control.commit.interval-ms": str(commit_interval_ms),
        **sink_catalog_config(props, name),
    }
