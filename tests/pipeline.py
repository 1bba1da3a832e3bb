"""A real pipeline table for evolution tests: PostgreSQL table + Debezium connector (Avro, bundled registry) +
Iceberg table + a migrate.yaml pointing at all of it, and a steady writer to prove no event is lost."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField

from migrate_assets.evolution.typemap import map_type
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources.iceberg import parse_type as parse_iceberg_type
from tests.cdc import (
    connector_running,
    create_connector,
    debezium_config,
    delete_connector,
    poll_until,
    read_values,
)


@dataclass
class Writer:
    """Inserts rows at a steady rate on its own connection until stopped; records every id it committed."""

    dsn: str
    table: str
    rate: float = 100.0
    start_id: int = 1000
    ids: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = self.start_id
        period = 1.0 / self.rate
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            nxt = time.monotonic()
            while not self._stop.is_set():
                try:
                    conn.execute(f"INSERT INTO {self.table} (id, name) VALUES (%s, %s)", (i, f"w{i}"))  # noqa: S608
                    self.ids.append(i)
                    i += 1
                except psycopg.Error as exc:
                    self.errors.append(str(exc).splitlines()[0])
                    time.sleep(0.05)
                nxt += period
                time.sleep(max(0.0, nxt - time.monotonic()))

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if exc_type is None:  # a writer that wrote nothing would make every "no event lost" check vacuous
            assert self.ids, "the writer committed no row"
            assert not self.errors, f"writes failed during the change: {self.errors[:3]}"


@dataclass
class Pipeline:
    stack: StackInfo
    dsn: str
    tmp: Path
    table: str = "customers"
    name: str = field(default_factory=lambda: "cdc-" + uuid.uuid4().hex[:6])
    prefix: str = field(default_factory=lambda: "p" + uuid.uuid4().hex[:6])
    namespace: str = field(default_factory=lambda: "ns_" + uuid.uuid4().hex[:6])
    config: dict[str, str] = field(default_factory=dict)
    registry_url: str = ""  # default: the stack's
    connect_url: str = ""  # default: the stack's

    def __post_init__(self) -> None:
        self.registry_url = self.registry_url or self.stack.registry_url
        self.connect_url = self.connect_url or self.stack.connect_url

    @property
    def topic(self) -> str:
        return f"{self.prefix}.public.{self.table}"

    @property
    def subject(self) -> str:
        return f"{self.topic}-value"

    @property
    def iceberg_table(self) -> str:
        return f"{self.namespace}.{self.table}"

    @property
    def config_path(self) -> Path:
        return self.tmp / "migrate.yaml"

    columns: str = "id integer PRIMARY KEY, name text NOT NULL, amount integer"

    def setup(self, extra_connector: dict[str, str] | None = None) -> Pipeline:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE public.{self.table} ({self.columns})")
            conn.execute(f"INSERT INTO public.{self.table} (id, name) SELECT g, 'n' || g FROM generate_series(1, 5) g")  # noqa: S608
            dbname = conn.info.dbname
            cols = conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (f"public.{self.table}",)).fetchall()
        self.config = debezium_config({"port": self.stack.parts["postgres"]["port"], "dbname": dbname},
                                      self.registry_url, [f"public.{self.table}"], self.prefix)
        self.config.update(extra_connector or {})
        create_connector(self.connect_url, self.name, self.config)
        poll_until(lambda: connector_running(self.connect_url, self.name), 60, "connector RUNNING")
        poll_until(lambda: len(self.events()) >= 5, 60, "snapshot events")
        catalog = load_catalog("lake", **self.stack.iceberg_properties)
        catalog.create_namespace(self.namespace)
        fields = [NestedField(i + 1, name, parse_iceberg_type(map_type(t).iceberg), required=False)
                  for i, (name, t) in enumerate(cols)]
        catalog.create_table(self.iceberg_table, schema=Schema(*fields))
        self.write_config()
        return self

    def write_config(self, **overrides: Any) -> Path:
        cfg: dict[str, Any] = {
            "database": {"dsn": self.dsn, "schema": "public"},
            "lock_timeout": "1s",
            "retries": {"attempts": 3, "backoff": "0.2s", "max_backoff": "1s"},
            "kafka_connect": {"url": self.connect_url},
            "kafka": {"bootstrap_servers": self.stack.bootstrap},
            "schema_registry": {"url": self.registry_url},
            "iceberg": {"name": "lake", "properties": self.stack.iceberg_properties},
            "pipelines": [{"table": f"public.{self.table}", "connector": self.name, "subject": self.subject,
                           "iceberg_table": self.iceberg_table}],
        }
        cfg.update(overrides)
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return self.config_path

    def events(self) -> list[dict[str, Any]]:
        return read_values(self.stack.bootstrap, self.topic, self.registry_url, idle=0.7)

    def event_ids(self) -> set[int]:
        return {e["after"]["id"] for e in self.events() if e.get("after")}

    def assert_no_event_lost(self, ids: list[int], timeout: float = 60) -> None:
        """Every committed id reaches the topic (polled: Debezium may still be behind the last write)."""
        assert ids
        poll_until(lambda: not (set(ids) - self.event_ids()), timeout, f"the events of all {len(ids)} written rows")

    def writer(self, rate: float = 100.0) -> Writer:
        return Writer(self.dsn, f"public.{self.table}", rate=rate)

    def iceberg(self) -> Any:
        return load_catalog("lake", **self.stack.iceberg_properties).load_table(self.iceberg_table)

    def teardown(self) -> None:
        delete_connector(self.connect_url, self.name, self.dsn)

    def layer_state(self) -> dict[str, Any]:
        """Every layer's schema as plain data, to compare before and after a run."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        with psycopg.connect(self.dsn) as conn:
            cols = conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (f"public.{self.table}",),
            ).fetchall()
        reg = SchemaRegistryClient({"url": self.registry_url})
        latest = reg.get_latest_version(self.subject)
        table = self.iceberg()
        return {
            "db": cols,
            "registry": (latest.version, latest.schema.schema_str),
            "iceberg": (table.metadata.current_schema_id, [(f.field_id, f.name, str(f.field_type))
                                                            for f in table.schema().fields]),
            "connector": sorted(__import__("httpx").get(f"{self.connect_url}/connectors/{self.name}/config",
                                                        timeout=10).json().items()),
        }


def change_file(tmp: Path, text: str, name: str = "change.yaml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


__all__ = ["Pipeline", "Writer", "change_file"]
