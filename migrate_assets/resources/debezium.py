"""The Debezium PostgreSQL connector settings the tool relies on, built in one place (`pipeline add`, the example
setup and the tests use it): pgoutput with a publication filtered to the captured tables, a named replication
slot, a signal table for incremental snapshots, and the AvroConverter on the configured registry for keys and
values (so every change is registered as `<topic.prefix>.<schema>.<table>-value`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from psycopg.conninfo import conninfo_to_dict

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
AVRO = "io.confluent.connect.avro.AvroConverter"
SIGNAL_TABLE = "debezium_signal"


def slug(text: str) -> str:
    """A name usable as a replication slot or publication: lower-case letters, digits and `_`, at most 48 bytes."""
    out = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "cdc"
    return out[:48]


def connector_config(dsn: str, registry_url: str, tables: Sequence[str], topic_prefix: str, slot: str,
                     publication: str, signal_table: str | None = None, host: str | None = None,
                     port: int | None = None) -> dict[str, str]:
    """The config of a connector streaming `tables` of the database of `dsn`: entries of Debezium's
    `table.include.list`, i.e. regular expressions (`re.escape("public.customers")` names exactly one table).
    `host`/`port` override the DSN's (the address Connect reaches PostgreSQL at). With `signal_table`
    (schema.table) the publication covers it too, and incremental snapshots can be requested through it."""
    info = conninfo_to_dict(dsn)
    include = list(tables)
    cfg = {
        "connector.class": CONNECTOR_CLASS,
        "database.hostname": str(host or info.get("host") or "127.0.0.1"),
        "database.port": str(port or info.get("port") or 5432),
        "database.user": str(info.get("user") or "postgres"),
        "database.password": str(info.get("password") or ""),
        "database.dbname": str(info.get("dbname") or "postgres"),
        "plugin.name": "pgoutput",
        "slot.name": slot,
        "publication.name": publication,
        "publication.autocreate.mode": "filtered",
        "table.include.list": ",".join(include),
        "topic.prefix": topic_prefix,
        "poll.interval.ms": "100",
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
        "key.converter": AVRO,
        "key.converter.schema.registry.url": registry_url,
        "value.converter": AVRO,
        "value.converter.schema.registry.url": registry_url,
    }
    if signal_table:
        cfg["table.include.list"] += "," + re.escape(signal_table)
        cfg["signal.data.collection"] = signal_table
    return cfg
