"""A real pipeline table for evolution tests: PostgreSQL table + Debezium connector (Avro, bundled registry) +
Iceberg table + a migrate.yaml pointing at all of it, and a steady writer to prove no event is lost."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
import yaml
from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, StringType

from migrate_assets.evolution.typemap import map_type
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources.iceberg import parse_type as parse_iceberg_type
from tests.cdc import (
    connect_request,
    connector_in,
    delete_connector,
    live_connector_config,
    poll_until,
    read_values,
    stack_debezium_config,
    start_connector,
)
from tests.support import table_columns

#: the change most evolution tests make: a nullable column `note` on the pipeline's default table
ADD_NOTE = "table: public.customers\noperations:\n  - add_column: {name: note, type: text, nullable: true}\n"


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

    def topic_of(self, table: str) -> str:
        return f"{self.prefix}.public.{table}"

    @property
    def topic(self) -> str:
        return self.topic_of(self.table)

    @property
    def subject(self) -> str:
        return f"{self.topic}-value"

    @property
    def iceberg_table(self) -> str:
        return f"{self.namespace}.{self.table}"

    def pipeline_entry(self, table: str) -> dict[str, str]:
        """The `pipelines:` entry of migrate.yaml for `public.TABLE` on this connector, subject and namespace."""
        return {"table": f"public.{table}", "connector": self.name, "subject": f"{self.topic_of(table)}-value",
                "iceberg_table": f"{self.namespace}.{table}"}

    @property
    def config_path(self) -> Path:
        return self.tmp / "migrate.yaml"

    columns: str = "id integer PRIMARY KEY, name text NOT NULL, amount integer"

    def setup(self, extra_connector: dict[str, str] | None = None) -> Pipeline:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE public.{self.table} ({self.columns})")
            conn.execute(f"INSERT INTO public.{self.table} (id, name) SELECT g, 'n' || g FROM generate_series(1, 5) g")  # noqa: S608
        cols = table_columns(self.dsn, f"public.{self.table}")
        self.config = stack_debezium_config(self.stack, self.dsn, [f"public.{self.table}"], self.prefix,
                                            self.registry_url)
        self.config.update(extra_connector or {})
        start_connector(self.connect_url, self.name, self.config)
        poll_until(lambda: len(self.events()) >= 5, 60, "snapshot events")
        catalog = load_catalog("lake", **self.stack.iceberg_properties)
        catalog.create_namespace(self.namespace)
        fields = [NestedField(i + 1, c.name, parse_iceberg_type(map_type(c.type).iceberg), required=False)
                  for i, c in enumerate(cols)]
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
            "pipelines": [self.pipeline_entry(self.table)],
        }
        cfg.update(overrides)
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return self.config_path

    def events(self, table: str | None = None) -> list[dict[str, Any]]:
        """Every event in the topic of `public.TABLE` (default: the pipeline's table), decoded."""
        return read_values(self.stack.bootstrap, self.topic_of(table or self.table), self.registry_url, idle=0.7)

    def event_ids(self) -> set[int]:
        return {e["after"]["id"] for e in self.events() if e.get("after")}

    def row_events(self, row_id: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The events of the row `row_id` (the pipeline's table), polled until there is at least one."""
        return poll_until(lambda: [e for e in self.events() if e["after"] and e["after"]["id"] == row_id], timeout,
                          f"event of row {row_id}")

    def assert_no_event_lost(self, ids: list[int], timeout: float = 60) -> None:
        """Every committed id reaches the topic (polled: Debezium may still be behind the last write)."""
        assert ids
        poll_until(lambda: not (set(ids) - self.event_ids()), timeout, f"the events of all {len(ids)} written rows")

    def writer(self, rate: float = 100.0) -> Writer:
        return Writer(self.dsn, f"public.{self.table}", rate=rate)

    def iceberg(self) -> Any:
        return load_catalog("lake", **self.stack.iceberg_properties).load_table(self.iceberg_table)

    def add_iceberg_column(self, name: str) -> None:
        """A schema commit on the Iceberg table made out of band (as another team's would be): a string column."""
        with self.iceberg().update_schema() as upd:
            upd.add_column(name, StringType())

    def pause(self) -> None:
        """Pause the connector and wait until it and its tasks say PAUSED: the request only asks (202), and a task
        keeps sending records until its next loop, so a caller that wants nothing streamed must wait."""
        assert connect_request("PUT", f"{self.connect_url}/connectors/{self.name}/pause").status_code == 202
        poll_until(lambda: connector_in(self.connect_url, self.name, "PAUSED"), 60, f"{self.name} and its tasks PAUSED")

    def resume(self) -> None:
        assert connect_request("PUT", f"{self.connect_url}/connectors/{self.name}/resume").status_code == 202

    def teardown(self) -> None:
        delete_connector(self.connect_url, self.name, self.dsn)

    def layer_state(self) -> dict[str, Any]:
        """Every layer's schema as plain data, to compare before and after a run."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        cols = table_columns(self.dsn, f"public.{self.table}")
        reg = SchemaRegistryClient({"url": self.registry_url})
        latest = reg.get_latest_version(self.subject)
        table = self.iceberg()
        return {
            "db": cols,
            "registry": (latest.version, latest.schema.schema_str),
            "iceberg": (table.metadata.current_schema_id, [(f.field_id, f.name, str(f.field_type))
                                                            for f in table.schema().fields]),
            "connector": sorted(live_connector_config(self.connect_url, self.name).items()),
        }


class PipelineFactory(Protocol):
    """The `make_pipeline` fixture: `fields` go to `Pipeline` (table, columns, registry_url, connect_url, ...),
    `extra_connector` into the Debezium config, `settings` over the default migrate.yaml."""

    def __call__(self, *, extra_connector: dict[str, str] | None = None, settings: dict[str, Any] | None = None,
                 **fields: Any) -> Pipeline: ...


def change_file(tmp: Path, text: str, name: str = "change.yaml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


__all__ = ["ADD_NOTE", "Pipeline", "PipelineFactory", "Writer", "change_file"]
